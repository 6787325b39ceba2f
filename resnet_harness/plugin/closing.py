"""The end of the controller's session: the report built from the run folder, the baseline's
verdict over the session, the ``latest`` link, and the lines the terminal shows last. A run
whose report cannot be written keeps its rows and says how many are safe and where."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from resnet_harness.plugin.interrupts import one_line


class RunEnd:
    """What the controller does and says once its cases ran. ``selected()`` gives the case ids
    the session collected; ``guarded`` says whether a ``--baseline`` was given."""

    def __init__(self, folder, run, selected: Callable[[], list[str]], guarded: bool):
        self.folder, self.run, self.selected, self.guarded = folder, run, selected, guarded
        self.report_paths = None  # report.ReportPaths, with the analysis it rendered
        self.report_error: str | None = None
        self.latest_error: str | None = None
        self.report_problems: list[str] = []  # files the report named and skipped
        self.guard = None  # the baseline's verdict over the session (analysis.baseline.Guard)

    def finish(self, session: pytest.Session) -> None:
        """Build the report, judge the baseline, point ``latest`` at the folder; a failure to
        write the report fails the run (CI must not read a run without its report as a
        success) and is said in the summary."""
        from resnet_harness.report import build_report

        try:
            self.folder.record_selected(self.selected())
            self.report_paths = build_report([self.folder.path], self.folder.path,
                                             problems=self.report_problems)
            self._judge_baseline(session)
        except Exception as exc:  # noqa: BLE001 - rows are safe on disk; the report can be rebuilt
            self.report_error = one_line(exc)
            _fail(session)
            return
        try:
            self.folder.link_latest(self.run.report_dir)
        except OSError as exc:  # the report exists; only the shortcut to it is stale
            self.latest_error = one_line(exc)

    def _judge_baseline(self, session: pytest.Session) -> None:
        """The baseline's verdict over the session's rows, as the report judged it
        (``analysis.baseline.guard``): a pooled regression across environments, or a guard
        that compared no case, fails the run as a regression of one case does."""
        if not self.guarded:
            return
        self.guard = self.report_paths.guard
        if self.guard and self.guard.failed:
            _fail(session)

    def summary(self, terminalreporter, resume_lines: list[str]) -> None:
        """The "resnet-harness" section of pytest's terminal summary."""
        from resnet_harness.analysis.sequential import design_for
        from resnet_harness.report.summary import summary_lines

        write = terminalreporter.write_line
        terminalreporter.section("resnet-harness")
        # On a terminal the lines fit its width; piped (CI logs) they stay whole.
        width = terminalreporter._tw.fullwidth if getattr(terminalreporter, "isatty", False) \
            else None
        analysis = getattr(self.report_paths, "analysis", None)
        for line in summary_lines(self.folder, self.run.equivalence_delta,
                                  design_for(self.run.seeds), width, analysis):
            write(line)
        for line in resume_lines:  # the header's, which -q does not show
            write(line, yellow=True)
        for problem in self.report_problems:
            write(f"warning: {problem}", yellow=True)
        if self.guard is not None:
            for line in self.guard.lines:
                write(line, red=self.guard.failed)
        if self.report_paths:
            write(f"report: {self.report_paths['html']}")
            write(f"csv:    {self.report_paths['csv']}")
        if self.report_error:
            rows = len(list(self.folder.cases_dir.glob("*.json")))
            kept = (f"the {rows} row{'s are' if rows != 1 else ' is'} safe in "
                    f"{self.folder.cases_dir}; rebuild it with: python -m resnet_harness report "
                    f"{self.folder.path}" if rows else
                    f"no case wrote a row to {self.folder.cases_dir}, so there is nothing to "
                    "rebuild: free disk space or pass a writable --report-dir and run again")
            write(f"report not written ({self.report_error}); {kept}", red=True)
        if self.latest_error:
            write(f"{Path(self.run.report_dir) / 'latest'} not updated ({self.latest_error}); "
                  f"the report is in {self.folder.path}", yellow=True)


def _fail(session: pytest.Session) -> None:
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
