"""The controller: the pytest process a user started. It owns the run folder (creates it, or
locks the one it resumes), tells xdist workers where it is, validates the selection before
anything trains, runs cases itself when there are no workers, and writes the report and the
terminal summary at the end (pytest-xdist's ``DSession`` is the model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resnet_harness import study
import resnet_harness.plugin.hosts as hosts
import resnet_harness.plugin.options as options
from resnet_harness.plugin.cases import (CaseRunner, activate_process, harness_cases,
                                         run_description)
from resnet_harness.plugin.interrupts import (install_sigterm_handler, one_line,
                                              restore_sigterm_handler)
from resnet_harness.plugin.closing import RunEnd
from resnet_harness.plugin.session import (COMMAND_LINE_KEY, RUN_DIR_KEY, SessionError,
                                            load_baseline)
from resnet_harness.storage.rundir import RunFolder

class Controller:
    """The main process's harness: one run folder, one report."""

    def __init__(self, config: pytest.Config, resolved: options.Resolved):
        from resnet_harness.analysis.baseline import expand_tolerances

        self.config, self.resolved = config, resolved
        self.run = options.run_config(resolved)
        origins, resume = resolved.origins, resolved.values["resume"]
        mismatch = resolved.values["resume_mismatch"] or "refuse"
        baseline, baseline_path = load_baseline(resolved)
        self._lock = self._sigterm = None
        self._created: list[Path] = []  # folders this session made for its lock
        self.resume_lines: list[str] = []  # what the resume check found, shown in the header
        if resume is not None:
            if not RunFolder.is_run_folder(resume):
                raise SessionError(f"{origins['resume']}: {resume} is not a run folder (no "
                                   "cases/ inside); pass a folder under reports/runs/")
            self.folder = RunFolder(resume)
            self._lock_folder()
            self._check_resume(mismatch)
        else:
            self.folder = RunFolder.new(self.run.report_dir, self.run.scale)
        self.runner = CaseRunner(self.run, self.folder, baseline=baseline,
                                 baseline_path=baseline_path,
                                 tolerances=expand_tolerances(resolved.values["tolerance"] or []),
                                 resume=resume is not None, mismatch=mismatch,
                                 run_info=self.run_info)
        self.selected: list[str] = []  # case ids collected, to name those that never started
        self.end = RunEnd(self.folder, self.run, lambda: self.selected,
                          bool(self.runner.baseline_path))
        self.active = False
        self.slurm = None  # under --slurm: the submission and its tally (plugin.submission)
        if resolved.values["slurm"]:
            from resnet_harness.plugin.slurm import refuse_with

            refusal = refuse_with(resolved.values, config)
            if refusal:
                raise SessionError(refusal)
        if resolved.given:
            self.activate()

    def _lock_folder(self) -> None:
        """Hold the run folder's lock for the whole session: a second session writing into the
        same folder (a fresh run's or a resumed one) is refused, whichever came first."""
        from filelock import Timeout

        if self._lock is not None:
            return
        try:
            lock = self.folder.lock()
            lock.acquire(timeout=0)
        except Timeout:
            raise SessionError(f"run folder {self.folder.path} is in use by another pytest "
                               "session; wait for it to end or resume another folder") from None
        except OSError as exc:
            raise SessionError(f"cannot lock run folder {self.folder.path} ({one_line(exc)}); "
                               "pass a --report-dir (or --resume a folder) on a writable file "
                               "system") from None
        self._lock = lock

    def _check_resume(self, mismatch: str) -> None:
        from resnet_harness.plugin.resume import ResumeError, check_folder

        current = {dest: entry["value"]
                   for dest, entry in self.resolved.provenance(self.run).items()}
        try:
            self.resume_lines = check_folder(self.folder, current, mismatch)
        except ResumeError as exc:
            self._lock.release()
            raise SessionError(f"{self.resolved.origins['resume']}: {exc}") from None

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        return self.resume_lines

    def activate(self) -> None:
        """Prepare this process (once it has harness work): TensorFlow settings, GPU, and
        SIGTERM handled like Ctrl-C so that the report is still written (under xdist passed on
        to the workers, whose cases stop within ``interrupts.STOP_GRACE_S``)."""
        if not self.active:
            self.active = True
            self._claim_folder()
            activate_process(self.run)
            self._sigterm = install_sigterm_handler(self.config)

    def _claim_folder(self) -> None:
        """Lock a fresh run folder as soon as the session has cases to run, before any worker
        writes into it; on failure the session stops with the one-line reason."""
        created = self.folder.missing_parents()
        try:
            self._lock_folder()
        except SessionError as exc:
            pytest.exit(f"resnet-harness: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        self._created = created

    def run_info(self) -> dict[str, Any]:
        """What ``run.json`` records (see :func:`~resnet_harness.plugin.cases.run_description`)."""
        return run_description(self.run, self.resolved)

    # -- collection ------------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs) -> None:
        hosts.setup_nodes(config)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        from resnet_harness.training.provenance import command_line

        node.workerinput[RUN_DIR_KEY] = str(self.folder.path)
        node.workerinput[COMMAND_LINE_KEY] = command_line()
        hosts.configure_node(node)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        """Under xdist only the workers collect; the controller learns the selected cases here
        (to list those never started as "not run")."""
        found = {nodeid.rpartition("[")[2].rstrip("]") for nodeid in ids if "[" in nodeid}
        cases = {case_id for case_id in found if study.find_case(case_id) is not None}
        if cases:
            self.activate()
        self.selected = sorted(set(self.selected) | cases)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Activate when study cases were collected, and validate their data and variants
        before anything trains: a missing folder, a corrupt file, bad labels or caps that would
        change what a case means stop the run with one line."""
        from resnet_harness.training.data.sources import DataError

        cases = harness_cases(session.items)
        if cases:
            self.activate()
        self.selected = self.runner.selection = [case.id for case in cases]
        if session.config.option.collectonly:
            return
        try:
            self.runner.check_selection(cases)
        except DataError as exc:
            pytest.exit(f"resnet-harness: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session):
        """Under ``--slurm``: the selected cases go to SLURM as one job array instead of
        running here (``plugin/submission.py``); the report is then built as after a local
        run."""
        if not self.resolved.values["slurm"] or session.config.option.collectonly:
            return None
        from resnet_harness.plugin.submission import SlurmRun

        self.slurm = SlurmRun(self)
        return self.slurm.run(session)

    # -- end of run: the report, the baseline's verdict, the terminal (plugin/closing.py) ---------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.folder.has_started():
            return
        if self.slurm is not None and self.slurm.tally is None:
            return  # submitted without waiting: `python -m resnet_harness attach` reports
        self.end.finish(session)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        restore_sigterm_handler(self._sigterm)
        if self._lock is not None:
            self._lock.release()
            self.folder.discard_if_empty(self._created)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.folder.has_started():
            self.end.summary(terminalreporter, self.resume_lines)
