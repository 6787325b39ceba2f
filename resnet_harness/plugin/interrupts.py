"""Interruptions and write faults: SIGTERM handled like Ctrl-C, and an ``OSError`` while a case
writes its files turned into that case's one-line failure.

CI runners and batch schedulers stop a job with SIGTERM (then SIGKILL after a grace period).
Python's default for SIGTERM is to die at once, which skips pytest's session finish: no report, no
CSV. Raising ``KeyboardInterrupt`` instead makes pytest stop as after Ctrl-C: the case running is
interrupted, finished rows stay on disk, and the report and CSV are written before the exit.

Under xdist (``-n``, ``--tx``) the cases run in worker processes, and a signal to the controller
alone would leave them training: xdist answers the controller's ``KeyboardInterrupt`` by closing
the workers' gateways, and execnet interrupts a busy worker only 5 s later, killing it after 10
more (measured: 9 to 15 s from SIGTERM to exit). So the controller passes SIGTERM and SIGINT on to
its local workers at once (each worker handles them like Ctrl-C too, interrupting its case), waits
at most :data:`STOP_GRACE_S` for them to end their sessions, kills those that have not, and only
then writes the report: the interrupted cases are "unfinished", those never started "not run".
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

STOP_GRACE_S = 5.0
"""Seconds an xdist controller stopped by SIGTERM or SIGINT gives its workers, counted from the
signal, to interrupt their cases and end their sessions. A local worker needs about 1 s
(measured: the training step returns to Python, pytest finishes the session); one still running
at the end of the grace is killed (SIGKILL), its case listed as unfinished all the same. The
report is written after that (1.5 to 2 s here) and the process exits (1 s), so even a stop that
uses the whole grace fits the 10 s that ``docker stop`` allows by default between SIGTERM and
SIGKILL. A worker on another machine (``--tx ssh=...``) cannot be signalled from
here; it is stopped by closing its gateway (see :class:`WorkerStop`) and not waited for beyond
the grace either. A repeated signal within the grace is ignored (see :class:`StopHandlers`)."""

TEARDOWN_S = 0.2  # how long xdist's teardown waits for a stopped worker's process to exit
PLUGIN_NAME = "resnet_harness_worker_stop"
HANDLERS_NAME = "resnet_harness_stop_handlers"


class StopHandlers:
    """SIGTERM (and SIGINT, where given) raising ``KeyboardInterrupt`` in the main thread, once.

    The first signal calls ``on_stop(signum)`` (the controller passes the signal on to its
    workers there) and raises. A repeated signal within :data:`STOP_GRACE_S` of the first is
    ignored: the stop is under way, and a second ``KeyboardInterrupt`` would break off the report
    being written or the worker's session finish (CI runners do send a second signal: SIGINT,
    then SIGTERM). One after the grace raises again, for a stop that got stuck.
    """

    def __init__(self, signals, on_stop=None):
        self.signals = tuple(signals)
        self.on_stop = on_stop
        self.first: float | None = None  # time.monotonic() of the first signal
        self.raised: KeyboardInterrupt | None = None
        self.config: pytest.Config | None = None  # set when registered as a plugin
        self.full_trace = False  # --full-trace: keep pytest's whole traceback of the interrupt
        self.previous: dict[int, object] = {}  # the handlers replaced, to put back

    def install(self) -> "StopHandlers":
        """Replace the handlers of ``signals`` (from the main thread only). Ignored signals
        (SIG_IGN, nohup-like) stay ignored; SIGINT is taken over only from Python's default."""
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread
        for signum in self.signals:
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN:
                continue  # the parent asked us to ignore it: keep that
            if signum == signal.SIGINT and current is not signal.default_int_handler:
                continue  # someone else's Ctrl-C handler (a debugger): leave it
            self.previous[signum] = current
            signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self.previous.items():
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, previous)
        self.previous.clear()

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self.first is not None and now - self.first < STOP_GRACE_S:
            return
        self.first = now
        if self.on_stop is not None:
            try:
                self.on_stop(signum)
            except Exception:  # noqa: BLE001 - the stop itself must happen whatever failed here
                pass
        self.raised = KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")
        raise self.raised

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo) -> None:
        """Keep only the frame the signal arrived in, without its source. pytest formats the
        whole traceback of an interrupt (every frame's source and arguments) though without
        ``--full-trace`` it shows only the last frame's file, line and message. Through Keras'
        and TensorFlow's stacks that took 4 s of a worker's stop and 2 s of the controller's;
        even one frame's source costs a second (``inspect`` maps every loaded module to its
        file first). Measured here."""
        if excinfo.value is not self.raised or self.full_trace:
            return
        traceback = excinfo.traceback
        if not len(traceback):
            return
        last = traceback[-1]
        with contextlib.suppress(Exception):  # "value": the message only, no source lookup
            last = last.with_repr_style("value")
        excinfo.traceback = type(traceback)([last])


def _distributes(config: pytest.Config) -> bool:
    """Whether this pytest process is an xdist controller with workers (xdist's own test)."""
    return (not hasattr(config, "workerinput")
            and config.getoption("dist", "no") not in (None, "no")
            and bool(config.getoption("tx", None)))


def install_sigterm_handler(config: pytest.Config | None = None) -> StopHandlers | None:
    """Make SIGTERM raise ``KeyboardInterrupt`` in the main thread (see :class:`StopHandlers`);
    returns what :func:`restore_sigterm_handler` puts back, or None when nothing was installed.

    With the ``config`` of an xdist worker, SIGINT is handled the same way (execnet and the
    controller may both interrupt a stopping worker). With an xdist controller's, SIGTERM and
    SIGINT are also passed on to its workers and a :class:`WorkerStop` bounds the wait for them.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    signals, stop = [signal.SIGTERM], None
    if config is not None and hasattr(config, "workerinput"):
        signals.append(signal.SIGINT)
    elif config is not None and _distributes(config):
        signals.append(signal.SIGINT)
        stop = config.pluginmanager.get_plugin(PLUGIN_NAME)
        if stop is None:
            stop = WorkerStop(config)
            config.pluginmanager.register(stop, PLUGIN_NAME)
    handlers = StopHandlers(signals, on_stop=stop.forward if stop else None).install()
    if not handlers.previous:
        return None
    if config is not None:
        handlers.config = config
        handlers.full_trace = bool(config.getoption("fulltrace", False))
        config.pluginmanager.register(handlers, HANDLERS_NAME)
    return handlers


def restore_sigterm_handler(previous: StopHandlers | None) -> None:
    """Put back the handlers :func:`install_sigterm_handler` replaced."""
    if previous is not None:
        previous.restore()
        if previous.config is not None and previous.config.pluginmanager.is_registered(previous):
            previous.config.pluginmanager.unregister(previous)


class WorkerStop:
    """The xdist controller's part of a stop (registered as a plugin by
    :func:`install_sigterm_handler`).

    * In the signal handler, :meth:`forward` sends the signal to every local worker process (a
      ``popen`` gateway's subprocess; execnet keeps it as ``gateway._io.popen``). Its
      ``send_signal`` skips a process already reaped, so a reused pid is never hit. The workers
      are looked up in xdist's node manager at that moment, so replacements of crashed workers
      count too. Pids are not exchanged through files: a worker on another machine sharing the
      run folder over NFS would then name a pid of the wrong host.
    * A worker on another machine (``ssh=``, ``socket=``, ``popen//via=``) has no process here
      to signal (signalling the local ssh client would only cut the connection). At session
      finish its gateway is closed; execnet on that host then interrupts the worker's main
      thread with SIGINT about 5 s later (its worker handlers stop the case) and exits the
      process 10 s after that at the latest.
    * At session finish, before the report is written (``tryfirst``), it waits for every
      worker's channel to close (the worker ended its session), until :data:`STOP_GRACE_S`
      after the signal. Local workers still running then are killed; for remote ones the local
      ssh client is, which ends the connection. xdist's gateway teardown, which would wait 10 s
      more, is given only what is left of the grace.
    """

    def __init__(self, config: pytest.Config):
        self.config = config
        self.signal_name: str | None = None
        self.signalled_at: float | None = None  # time.monotonic() of the signal
        self.signalled: list[str] = []  # local workers the signal was passed on to
        self.stopped: dict[str, float] = {}  # worker id: seconds from the signal to its end
        self.killed: list[str] = []  # local workers killed at the end of the grace
        self.remote: list[str] = []  # workers on other machines, stopped through their gateway
        self.cut: list[str] = []  # remote ones still running at the end: connection closed

    def _workers(self) -> list:
        """``(gateway, node)`` of each xdist worker now running."""
        dsession = self.config.pluginmanager.get_plugin("dsession")
        group = getattr(getattr(dsession, "nodemanager", None), "group", None)
        if group is None:
            return []
        return [(gateway, gateway.node) for gateway in group
                if getattr(gateway, "node", None) is not None]

    @staticmethod
    def _process(gateway) -> subprocess.Popen | None:
        """The local process of a worker (a ``popen`` gateway); None on another machine."""
        spec = getattr(gateway, "spec", None)
        if not getattr(spec, "popen", False) or getattr(spec, "via", None):
            return None
        process = getattr(getattr(gateway, "_io", None), "popen", None)
        return process if isinstance(process, subprocess.Popen) else None

    def forward(self, signum: int) -> None:
        """Pass ``signum`` on to every local worker (called from the signal handler)."""
        self.signalled_at = time.monotonic()
        self.signal_name = signal.Signals(signum).name
        for gateway, _ in self._workers():
            process = self._process(gateway)
            if process is None or process.poll() is not None:
                continue  # on another machine, or gone already
            try:
                process.send_signal(signum)
            except OSError:
                continue
            self.signalled.append(gateway.id)

    @staticmethod
    def _running(node) -> bool:
        """Whether ``node``'s worker is still in its session (its channel is open)."""
        channel = getattr(node, "channel", None)
        if channel is None:
            return False
        try:
            channel.waitclose(0)
        except channel.TimeoutError:
            return True
        except Exception:  # noqa: BLE001 - closed with an error (a worker that died): ended
            return False
        return False

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.signalled_at is None:
            return
        deadline = self.signalled_at + STOP_GRACE_S
        waiting = {}
        for gateway, node in self._workers():
            if gateway.id in self.signalled:
                waiting[gateway.id] = gateway, node
            elif self._process(gateway) is None and self._running(node):
                self.remote.append(gateway.id)
                with contextlib.suppress(Exception):
                    gateway.exit()  # the remote host interrupts the worker (see the docstring)
                waiting[gateway.id] = gateway, node
        while waiting:
            for worker_id, (gateway, node) in list(waiting.items()):
                if not self._running(node):
                    self.stopped[worker_id] = time.monotonic() - self.signalled_at
                    del waiting[worker_id]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        for worker_id, (gateway, _) in waiting.items():
            process = self._process(gateway)
            if process is not None:
                self.killed.append(worker_id)
                with contextlib.suppress(Exception):
                    process.kill()
            else:  # its host goes on stopping it; xdist's teardown would wait 10 s for that
                self.cut.append(worker_id)
                with contextlib.suppress(Exception):
                    gateway._io.kill()  # the local ssh client: the connection ends
        manager = getattr(self.config.pluginmanager.get_plugin("dsession"), "nodemanager", None)
        if manager is not None:
            # xdist's teardown then closes the gateways and waits for the processes to exit
            # (10 s, then kills them). Their sessions have ended (or they were killed): what
            # is left is TensorFlow unloading, 1 to 2 s; not worth the wait.
            manager.EXIT_TIMEOUT = min(TEARDOWN_S, max(0.1, deadline - time.monotonic()))

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.signalled_at is None:
            return
        write = terminalreporter.write_line
        if self.stopped:
            slowest = max(self.stopped.values())
            write(f"{self.signal_name}: {len(self.stopped)} worker(s) stopped their cases "
                  f"within {slowest:.1f} s (grace {STOP_GRACE_S:g} s)")
        if self.killed:
            write(f"{self.signal_name}: worker(s) {', '.join(self.killed)} still running "
                  f"{STOP_GRACE_S:g} s after the signal: killed", yellow=True)
        if self.remote:
            cut = (f"; {', '.join(self.cut)} still running {STOP_GRACE_S:g} s after the signal: "
                   "connection closed" if self.cut else "")
            write(f"{self.signal_name}: worker(s) {', '.join(self.remote)} on other machines "
                  "stopped by closing their gateways (their hosts interrupt them about 5 s "
                  f"later){cut}; a case they were running is listed as not run", yellow=True)


def one_line(exc: BaseException) -> str:
    """``Type: message file`` on one line (an ``OSError``'s strerror and file name)."""
    text = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or ""
    where = f" {exc.filename}" if isinstance(exc, OSError) and exc.filename else ""
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}{where}"


@contextlib.contextmanager
def writing_rows(case_id: str, folder: Path, also: str | None = None):
    """Turn an ``OSError`` while writing a case's files (disk full, folder gone, read-only) into
    a one-line failure of that case (after ``also``, the case's own error); the session goes on
    with the next case."""
    reason = None
    try:
        yield
    except OSError as exc:
        reason = one_line(exc)
    if reason is not None:
        prefix = f"{also}; and it " if also else ""
        try:
            pytest.fail(f"{case_id}: {prefix}cannot write its row to {folder} ({reason}); "
                        "free disk space or pass a writable --report-dir", pytrace=False)
        except pytest.fail.Exception as failed:
            # Raised while the with statement handles the OSError: without "from None"
            # pytest would print the OSError and "During handling..." above the one line.
            raise failed from None
