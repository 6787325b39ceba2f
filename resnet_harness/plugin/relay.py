"""How an xdist worker's live progress reaches the controller: an execnet channel of its own per
worker, on any gateway (``-n``'s local processes, ``--tx ssh=...`` on another host).

xdist's own channel refuses events it does not know (``unknown event``, and the worker is shut
down), and a worker on another host cannot write where the controller reads. So when xdist
makes a gateway (``pytest_xdist_newgateway``, before it starts the worker there) the
controller runs :data:`_REMOTE` on it: a short task that opens a second channel, hands it back
and leaves it in the worker's interpreter as ``sys.modules[MODULE].channel``. The worker's
:class:`ChannelSink` sends each progress snapshot through it; the controller's :class:`Inbox`
keeps the latest per worker for the poller to draw. The task returns at once: xdist's gateways
run one task at a time on the main thread (``execmodel=main_thread_only``), and its own worker
task comes next.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import asdict, replace
from typing import Any

from resnet_harness.plugin.progress import CaseProgress

MODULE = "resnet_harness_progress_relay"
OPEN_TIMEOUT_S = 30.0

# Runs in the worker's interpreter, which may not have this package yet (it runs before the
# worker imports anything): plain Python only, and it must not raise -- an execnet task that
# fails leaves a main_thread_only gateway refusing the next task, xdist's worker.
_REMOTE = f"""
import sys, types
try:
    relay = channel.gateway.newchannel()
    module = types.ModuleType({MODULE!r})
    module.channel = relay
    sys.modules[{MODULE!r}] = module
    channel.send(relay)
except Exception:
    channel.send(None)
"""


def open_channel(gateway, inbox: "Inbox") -> bool:
    """Controller side: give ``gateway``'s worker (xdist names it by the gateway's id, ``gw0``)
    a progress channel into ``inbox``. False
    (progress of that worker not shown, the run unaffected) when it cannot be opened."""
    try:
        task = gateway.remote_exec(_REMOTE)
        relay = task.receive(timeout=OPEN_TIMEOUT_S)
        task.waitclose(timeout=OPEN_TIMEOUT_S)  # the gateway is free for xdist's task
    except Exception:  # noqa: BLE001 - progress must never stop a session
        return False
    if relay is None:
        return False
    worker = gateway.id
    relay.setcallback(lambda message: inbox.receive(worker, message), endmarker=Inbox.CLOSED)
    # Held: execnet keeps channels weakly, and one collected here tells the worker's end to
    # stop delivering (CHANNEL_LAST_MESSAGE), so its close would never be seen.
    inbox.channels.append(relay)
    return True


def worker_channel():
    """Worker side: the channel the controller opened for this process, or None."""
    module = sys.modules.get(MODULE)
    return getattr(module, "channel", None)


class ChannelSink:
    """A worker's progress sink (see :func:`~resnet_harness.plugin.progress.progress_callback`):
    each snapshot sent to the controller as a dict."""

    interval = 1.0  # seconds between snapshots; epoch ends are sent at once

    def __init__(self, channel, worker: str):
        self.channel, self.worker = channel, worker

    def publish(self, state: CaseProgress, force: bool) -> None:
        self.channel.send(asdict(state))  # a closed channel raises: the callback stops sending

    def finish(self, state: CaseProgress) -> None:
        self.publish(state, True)

    def close(self) -> None:
        try:
            self.channel.close()
        except Exception:  # noqa: BLE001 - the controller may be gone already
            pass


class Inbox:
    """The controller's latest progress per worker, filled by execnet's receiver threads and
    read by the poller's."""

    CLOSED = object()  # the endmarker: the worker closed its channel (or its process ended)

    def __init__(self):
        self._lock = threading.Lock()
        self._latest: dict[str, CaseProgress] = {}
        self.channels: list = []  # the open channels (see open_channel)

    def receive(self, worker: str, message: Any) -> None:
        # execnet's receiver thread: no exception may escape, nothing slow.
        with self._lock:
            if message is Inbox.CLOSED:  # kept, as done: its last epoch may be undrawn yet
                if worker in self._latest:
                    self._latest[worker] = replace(self._latest[worker], done=True)
                return
            try:
                self._latest[worker] = CaseProgress(**message)
            except TypeError:  # a worker of another version of the package
                pass

    def states(self) -> list[CaseProgress]:
        """The workers' latest snapshots, by worker id (``done`` once a case or a worker
        ended)."""
        with self._lock:
            return [self._latest[worker] for worker in sorted(self._latest)]
