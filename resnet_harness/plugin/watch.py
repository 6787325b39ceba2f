"""What the controller sees: the hooks of live progress, rows coming home from xdist workers and
MLflow tracking. Each concern lives in its own module (``progress``, ``homecoming``,
``tracking``); this plugin object only wires them to pytest's hooks."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

import resnet_harness.plugin.homecoming as homecoming
from resnet_harness.plugin.progress import (FileSink, ProgressPoller, SessionProgress,
                                             StatusLines, TerminalSink, progress_callback,
                                             progress_mode)

class Watch:
    """Registered next to the controller or worker in every process. Its collaborators are
    passed in: the run ``folder`` and ``run_info()`` (``run.json``'s content)."""

    def __init__(self, config: pytest.Config, folder, *, run_info=dict, progress=None,
                 mlflow_uri: str | None = None):
        self.config = config
        self.folder, self.run_info = folder, run_info
        self.is_worker = hasattr(config, "workerinput")
        self.worker = config.workerinput["workerid"] if self.is_worker else None
        self.distributed = (not self.is_worker
                            and getattr(config.option, "dist", "no") not in (None, "no")
                            and (getattr(config.option, "tx", None)
                                 or getattr(config.option, "numprocesses", None)))
        self.mlflow_uri = None if self.is_worker else mlflow_uri
        self.tracker = None
        self.session_progress = SessionProgress()  # tests done and the session's ETA (controller)
        self.workers: set[str] = set()
        self.lines: StatusLines | None = None
        self.sink = None
        self.poller: ProgressPoller | None = None
        self.progress = progress
        self.interval = 0.0
        if self.is_worker:
            self._setup_progress(progress)

    # -- progress --------------------------------------------------------------------------------
    def _setup_progress(self, setting: Any) -> None:
        if self.is_worker:
            enabled = progress_mode(setting, 0, False)[0] and \
                self.config.workerinput.get("resnet_harness_progress", True)
            if enabled:
                self.sink = FileSink(self.folder.progress_dir, self.worker)
            return
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

    def case_started(self, case, batch_size: int) -> list:
        """Keras callbacks for the case that starts now: its live progress."""
        if self.sink is None:
            return []
        return [progress_callback(self.sink, case.id, batch_size=batch_size, worker=self.worker)]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.is_worker:
            return
        # Here, not in __init__: the terminal reporter is registered after pytest_configure.
        self._setup_progress(self.progress)
        if self.distributed and self.lines is not None:
            folder = self.folder.progress_dir
            shutil.rmtree(folder, ignore_errors=True)
            self.poller = ProgressPoller(folder, self.lines, self.interval,
                                         self.session_progress).start()
        if self.mlflow_uri:  # a plugin of its own from here on (tracking.MlflowTracker)
            from resnet_harness.plugin.tracking import start_tracking

            self.tracker = start_tracking(self.config, self.mlflow_uri, self.folder, self.run_info)

    # pytest writes on the terminal in these hooks; the status lines step aside first.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self, nodeid, location):
        if not self.is_worker:
            self.session_progress.start(nodeid)
        return (yield from self._aside())

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logfinish(self, nodeid, location):
        if not self.is_worker:
            self.session_progress.finish(nodeid)
        return (yield from self._aside())

    def _aside(self):
        if self.lines is None:
            return (yield)
        with self.lines.lock:
            self.lines.clear()
            return (yield)

    # -- rows ------------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        case_id = item.stash.get(homecoming.CASE_KEY, None)
        if report.when == "call" and case_id is not None:
            homecoming.attach(report, self.folder, case_id, with_files=self.is_worker)
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self, report):
        if not self.is_worker:
            homecoming.receive(report, self.folder, self.run_info)
        return (yield from self._aside())

    # -- end -------------------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if self.poller is not None:
            self.poller.stop()
        elif self.lines is not None:
            self.lines.clear()
        if self.is_worker:
            if self.sink is not None:
                self.sink.close()  # on another host no controller removes it
            return
        shutil.rmtree(self.folder.progress_dir, ignore_errors=True)
