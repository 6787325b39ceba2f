"""What each process sees: the hooks of live progress, rows coming home from xdist workers and
MLflow tracking. Each concern lives in its own module (``progress``, ``homecoming``,
``tracking``); these plugin objects only wire them to pytest's hooks, one class per role:
:class:`WorkerWatch` in a worker (xdist, SSH, a SLURM task), :class:`ControllerWatch` in the
process a user started. :func:`watch_for` picks the role."""

from __future__ import annotations

from typing import Any

import pytest

import resnet_harness.plugin.homecoming as homecoming
from resnet_harness.plugin import relay
from resnet_harness.plugin.progress import (ProgressPoller, SessionProgress, StatusLines,
                                             TerminalSink, progress_callback, progress_mode)


class _Watch:
    """What both roles do: a Keras progress callback per case into ``self.sink``, and each
    finished case's row attached to its pytest report."""

    worker: str | None = None
    with_files = False  # whether a report carries the row's files (a worker's, to send home)

    def __init__(self, config: pytest.Config, folder, *, run_info=dict, progress=None):
        self.config = config
        self.folder, self.run_info = folder, run_info
        self.progress = progress
        self.sink = None
        self.lines: StatusLines | None = None

    def case_started(self, case, batch_size: int) -> list:
        """Keras callbacks for the case that starts now: its live progress."""
        if self.sink is None:
            return []
        return [progress_callback(self.sink, case.id, batch_size=batch_size, worker=self.worker)]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        case_id = item.stash.get(homecoming.CASE_KEY, None)
        if report.when == "call" and case_id is not None:
            homecoming.attach(report, self.folder, case_id, with_files=self.with_files)
        return report


class WorkerWatch(_Watch):
    """A worker's: progress sent home on its own channel (the controller's poller draws it;
    ``relay``), the row and its predictions sent home with the report."""

    with_files = True

    def __init__(self, config: pytest.Config, folder, *, run_info=dict, progress=None):
        super().__init__(config, folder, run_info=run_info, progress=progress)
        self.worker = config.workerinput["workerid"]
        enabled = progress_mode(progress, 0, False)[0] and \
            config.workerinput.get("resnet_harness_progress", True)
        channel = relay.worker_channel()
        if enabled and channel is not None:
            self.sink = relay.ChannelSink(channel, self.worker)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if self.sink is not None:
            self.sink.close()  # the controller stops drawing this worker


class ControllerWatch(_Watch):
    """The controller's: the session's progress (in place on a terminal, plain lines in a log;
    the workers' snapshots drawn under xdist), rows received from workers, MLflow tracking."""

    def __init__(self, config: pytest.Config, folder, *, run_info=dict, progress=None,
                 mlflow_uri: str | None = None):
        super().__init__(config, folder, run_info=run_info, progress=progress)
        self.distributed = (getattr(config.option, "dist", "no") not in (None, "no")
                            and (getattr(config.option, "tx", None)
                                 or getattr(config.option, "numprocesses", None)))
        self.mlflow_uri = mlflow_uri
        self.tracker = None
        self.session_progress = SessionProgress()  # tests done and the session's ETA
        self.workers: set[str] = set()
        self.poller: ProgressPoller | None = None
        self.inbox = relay.Inbox()
        self.interval = 0.0

    def _setup_progress(self, setting: Any) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        writer = reporter._tw
        on_terminal = bool(getattr(reporter, "isatty", False))
        enabled, in_place, interval = progress_mode(
            setting, self.config.get_verbosity(),
            bool(getattr(writer, "hasmarkup", False)) and on_terminal)
        if not enabled:
            return
        self.lines = StatusLines(writer, in_place, on_terminal)
        self.interval = interval
        if not self.distributed:
            self.sink = TerminalSink(self.lines,
                                     self.config.pluginmanager.get_plugin("capturemanager"),
                                     interval, self.session_progress)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_newgateway(self, gateway) -> None:
        # Before xdist starts its worker on the gateway (the worker looks for the channel).
        if self.lines is not None:
            relay.open_channel(gateway, self.inbox)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput["resnet_harness_progress"] = self.lines is not None
        self.workers.add(node.workerinput["workerid"])  # a restarted worker keeps its id
        self.session_progress.workers = len(self.workers)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self.distributed:
            self.session_progress.total = len(session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        self.session_progress.total = len(ids)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # Here, not in __init__: the terminal reporter is registered after pytest_configure.
        self._setup_progress(self.progress)
        if self.distributed and self.lines is not None:
            self.poller = ProgressPoller(self.inbox.states, self.lines, self.interval,
                                         self.session_progress).start()
        if self.mlflow_uri:  # a plugin of its own from here on (tracking.MlflowTracker)
            from resnet_harness.plugin.tracking import start_tracking

            self.tracker = start_tracking(self.config, self.mlflow_uri, self.folder, self.run_info)

    # pytest writes on the terminal in these hooks; the status lines step aside first.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self, nodeid, location):
        self.session_progress.start(nodeid)
        return (yield from self._aside())

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logfinish(self, nodeid, location):
        self.session_progress.finish(nodeid)
        return (yield from self._aside())

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self, report):
        homecoming.receive(report, self.folder, self.run_info)
        return (yield from self._aside())

    def _aside(self):
        if self.lines is None:
            return (yield)
        with self.lines.lock:
            self.lines.clear()
            return (yield)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if self.poller is not None:
            self.poller.stop()
        elif self.lines is not None:
            self.lines.clear()


def watch_for(config: pytest.Config, folder, *, run_info=dict, progress=None,
              mlflow_uri: str | None = None) -> _Watch:
    """The watch of this process's role: a worker's in an xdist worker, else the controller's
    (``mlflow_uri`` is the controller's alone)."""
    if hasattr(config, "workerinput"):
        return WorkerWatch(config, folder, run_info=run_info, progress=progress)
    return ControllerWatch(config, folder, run_info=run_info, progress=progress,
                           mlflow_uri=mlflow_uri)
