"""What the controller sees: the hooks of live progress, rows coming home from xdist workers and
MLflow tracking. Each concern lives in its own module (``progress``, ``homecoming``,
``tracking``); this plugin object only wires them to pytest's hooks."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

import resnet_harness.plugin.homecoming as homecoming
from resnet_harness.plugin.progress import (FileSink, ProgressPoller, StatusLines, TerminalSink, progress_callback,
                       progress_mode)

class Watch:
    """Registered next to the controller or worker in every process. Its collaborators are
    passed in: the run ``folder``, ``run_info()`` (``run.json``'s content) and
    ``report_paths()`` (the report written at the end, for the MLflow parent run)."""

    def __init__(self, config: pytest.Config, folder, *, run_info=dict,
                 report_paths=lambda: None, progress=None, mlflow_uri: str | None = None):
        self.config = config
        self.folder, self.run_info, self.report_paths = folder, run_info, report_paths
        self.is_worker = hasattr(config, "workerinput")
        self.worker = config.workerinput["workerid"] if self.is_worker else None
        self.distributed = (not self.is_worker
                            and getattr(config.option, "dist", "no") not in (None, "no")
                            and (getattr(config.option, "tx", None)
                                 or getattr(config.option, "numprocesses", None)))
        self.mlflow_uri = None if self.is_worker else mlflow_uri
        self.tracker = None
        self.total: int | None = None
        self.started = 0
        self.done = 0
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
        enabled, in_place, interval = progress_mode(
            setting, self.config.get_verbosity(), bool(getattr(writer, "hasmarkup", False))
            and bool(getattr(reporter, "isatty", False)))
        if not enabled:
            return
        self.lines = StatusLines(writer, in_place)
        self.interval = interval
        if not self.distributed:
            self.sink = TerminalSink(self.lines,
                                     self.config.pluginmanager.get_plugin("capturemanager"),
                                     interval)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput["resnet_harness_progress"] = self.lines is not None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = sum(1 for item in session.items
                         if "harness" in getattr(item, "fixturenames", ()))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        self.total = len(ids)

    def case_started(self, case, batch_size: int) -> list:
        """Keras callbacks for the case that starts now (and note it for its report)."""
        self.started += 1
        if self.sink is None:
            return []
        return [progress_callback(self.sink, case.id, batch_size=batch_size,
                                  index=self.started if not self.is_worker else None,
                                  total=self.total if not self.is_worker else None,
                                  worker=self.worker)]

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
                                         lambda: (self.done, self.total)).start()
        if self.mlflow_uri:
            from resnet_harness.plugin.tracking import MlflowTracker

            try:
                self.tracker = MlflowTracker(self.mlflow_uri, self.run_info(), self.folder.path)
            except Exception as exc:  # noqa: BLE001 - one line, then stop
                pytest.exit(f"resnet-harness: --mlflow {self.mlflow_uri}: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                            returncode=pytest.ExitCode.USAGE_ERROR)

    # pytest writes on the terminal in these hooks; the status lines step aside first.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self, nodeid, location):
        return (yield from self._aside())

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logfinish(self, nodeid, location):
        if not self.is_worker:
            self.done += 1
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
            case_id = homecoming.receive(report, self.folder, self.run_info)
            if case_id is not None and self.tracker is not None:
                self.tracker.log_case(self.folder, case_id)
        return (yield from self._aside())

    # -- end -------------------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        # trylast: after the controller built the report that goes to the parent run.
        if self.poller is not None:
            self.poller.stop()
        elif self.lines is not None:
            self.lines.clear()
        if self.is_worker:
            return
        shutil.rmtree(self.folder.progress_dir, ignore_errors=True)
        if self.tracker is not None:
            self.tracker.finish(self.report_paths(), failed=exitstatus != 0)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.tracker is None:
            return
        terminalreporter.write_line(
            f"mlflow: {len(self.tracker.logged)} case runs under parent run "
            f"{self.tracker.parent} in {self.tracker.uri}")
        for error in self.tracker.errors:
            terminalreporter.write_line(f"mlflow: not logged: {error}", red=True)
