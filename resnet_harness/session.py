"""One pytest session's harness state: options, the run folder, loaded data, cached models and
the end-of-run report. The plugin's hooks only call into :class:`HarnessSession`; it keeps no
per-test state."""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

import pytest

from . import options, provenance
from .config import CaseConfig, comparable_config
from .matrix import Case
from .results import RowError, RunFolder

RUN_DIR_KEY = "resnet_harness_run_dir"


class SessionError(Exception):
    """Bad session-level input (baseline, resume folder); one line with the fix."""


class HarnessSession:
    """Runs cases for the tests and gathers their rows into one run folder and report."""

    def __init__(self, config: pytest.Config, resolved: options.Resolved):
        from .baseline import BaselineError, expand_tolerances, load_baseline

        self.config, self.resolved = config, resolved
        self.run = options.run_config(resolved)
        values, origins = resolved.values, resolved.origins
        self.baseline_path = str(values["baseline"]) if values["baseline"] else None
        try:
            self.baseline = load_baseline(values["baseline"]) if self.baseline_path else None
        except BaselineError as exc:
            raise SessionError(f"{origins['baseline']}: {exc}") from None
        self.tolerances = expand_tolerances(values["tolerance"] or [])
        self.resume = values["resume"]
        self.is_worker = hasattr(config, "workerinput")
        self._lock = None
        if self.is_worker:
            self.folder = RunFolder(config.workerinput[RUN_DIR_KEY])
        elif self.resume is not None:
            if not RunFolder.is_run_folder(self.resume):
                raise SessionError(f"{origins['resume']}: {self.resume} is not a run folder (no "
                                   "cases/ inside); pass a folder under reports/runs/")
            self.folder = RunFolder(self.resume)
            self._lock_folder()
        else:
            self.folder = RunFolder.new(self.run.report_dir, self.run.scale)
        self.report_paths: dict[str, Path] | None = None
        self.report_error: str | None = None
        self._raw: dict[str, Any] = {}
        self._models = None
        self._tf_ready = False
        self.active = False
        if resolved.given:
            self.activate()

    def _lock_folder(self) -> None:
        from filelock import Timeout

        self._lock = self.folder.lock()
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise SessionError(f"run folder {self.folder.path} is in use by another pytest "
                               "session; wait for it to end or resume another folder") from None

    def activate(self) -> None:
        """Prepare this process for TensorFlow: called once the session has harness work."""
        if self.active:
            return
        self.active = True
        from .devices import pin_worker

        # Before TensorFlow loads: oneDNN kernels are off by default on CPUs without AVX-512,
        # and ResNet50's backward pass at 32x32 then runs ~5x slower (see bench/README.md).
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        pin_worker()

    # -- xdist -----------------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput[RUN_DIR_KEY] = str(self.folder.path)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Activate when experiment cases were collected, and load (so validate) their data
        before anything trains: a missing folder, a corrupt file or bad labels stop the run with
        one line. xdist workers skip the check (an exit there would look like a crash); they
        report the same problems as failures of the cases concerned."""
        from .data.sources import DataError

        datasets = {item.callspec.params["case"].dataset for item in session.items
                    if "harness" in getattr(item, "fixturenames", ())
                    and hasattr(item, "callspec")
                    and isinstance(item.callspec.params.get("case"), Case)}
        if datasets:
            self.activate()
        if self.is_worker or session.config.option.collectonly:
            return
        for dataset in sorted(datasets):
            try:
                self.raw_data(dataset)
            except DataError as exc:
                pytest.exit(f"resnet-harness: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)

    # -- running a case --------------------------------------------------------------------------
    def _prepare_tensorflow(self) -> None:
        if self._tf_ready:
            return
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
        if self.run.deterministic:
            tf.config.experimental.enable_op_determinism()
        self._tf_ready = True

    def raw_data(self, dataset: str):
        """The raw data set, loaded once per process."""
        from .data import default_cache_dir, load_raw

        if dataset not in self._raw:
            self._raw[dataset] = load_raw(
                dataset, data_source=self.run.data_source,
                data_dir=self.run.data_dir_for(dataset), cache_dir=default_cache_dir(),
                seed=self.run.seed, synthetic_size=self.run.synthetic_size())
        return self._raw[dataset]

    def run_case(self, case: Case, marker_tolerances=()) -> dict[str, Any]:
        """Run ``case``, judge it and persist its row (atomically, before returning it).

        ``marker_tolerances``: the test's ``tolerance`` marker kwargs, farthest first. A failure
        inside the case is written as a row with status "error" and fails the test.
        """
        from . import schema
        from .baseline import with_overrides
        from .data import DataError
        from .model import ModelCache, ModelError
        from .runner import run_case
        from .verdict import judge

        case_cfg: CaseConfig = self.run.for_case(case)
        try:
            tolerances, problem = with_overrides(self.tolerances, marker_tolerances, case.id), None
        except ValueError as exc:
            tolerances, problem = {}, str(exc)
        if problem:
            pytest.fail(problem, pytrace=False)
        if self.resume is not None:
            self._skip_if_finished(case_cfg)
        if not self.folder.has_started():
            self.folder.create(dict(provenance.host(), scale=self.run.scale, seed=self.run.seed,
                                    started_at=provenance.now(), versions=provenance.versions(),
                                    git_commit=provenance.git_commit(),
                                    options=self.resolved.provenance()))
        self.folder.mark_started(case.id, {"started_at": provenance.now(), "scale": self.run.scale,
                                           "seed": self.run.seed,
                                           "worker": provenance.host()["worker"]})
        try:
            self._prepare_tensorflow()
            self._models = self._models or ModelCache()
            outcome = run_case(case_cfg, self.raw_data(case.dataset), self._models, self.folder)
        except (DataError, ModelError) as exc:
            self.folder.write_row(schema.error_row(case_cfg, str(exc), provenance=_finished()))
            pytest.fail(str(exc), pytrace=False)
        except Exception as exc:
            self.folder.write_row(schema.error_row(
                case_cfg, f"{type(exc).__name__}: {exc}".splitlines()[0], traceback.format_exc(),
                provenance=_finished()))
            raise
        base = self.baseline.get((case.id, case_cfg.scale)) if self.baseline else None
        verdict = judge(outcome.row, floors=case.bounds.floors(case_cfg.scale),
                        imbalanced=case.imbalanced, baseline_row=base,
                        baseline_path=self.baseline_path, tolerances=tolerances)
        row = verdict.apply(outcome.row)
        self.folder.write_row(row, outcome.arrays)
        return row

    def _skip_if_finished(self, case_cfg: CaseConfig) -> None:
        try:
            row = self.folder.row(case_cfg.case.id)
        except RowError:
            return  # a corrupt row is run again
        if row is not None and row["status"] == "passed" and row.get("scale") == case_cfg.scale \
                and row.get("seed") == case_cfg.seed \
                and comparable_config(row.get("config")) == comparable_config(case_cfg.as_dict()):
            pytest.skip(f"resumed: {case_cfg.case.id} already passed in {self.folder.path}")

    # -- end of run ------------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker or not self.folder.has_started():
            return
        try:
            from .report import build_report

            self.report_paths = build_report([self.folder.path], self.folder.path)
            self.folder.link_latest(self.run.report_dir)
        except Exception as exc:  # noqa: BLE001 - rows are safe on disk; the report can be rebuilt
            self.report_error = f"{type(exc).__name__}: {exc}"

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._lock is not None:
            self._lock.release()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.is_worker or not self.folder.has_started():
            return
        from .summary import summary_lines

        terminalreporter.section("resnet-harness")
        for line in summary_lines(self.folder):
            terminalreporter.write_line(line)
        if self.report_paths:
            terminalreporter.write_line(f"report: {self.report_paths['html']}")
            terminalreporter.write_line(f"csv:    {self.report_paths['csv']}")
        if self.report_error:
            terminalreporter.write_line(
                f"report not written ({self.report_error}); rebuild it with: python -m "
                f"resnet_harness report {self.folder.path}", red=True)


def _finished() -> dict[str, Any]:
    return dict(provenance.host(), finished_at=provenance.now())
