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
from .baseline import baseline_key
from .config import CaseConfig, comparable_config
from .interrupts import install_sigterm_handler, one_line, restore_sigterm_handler, writing_rows
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
        self._lock = self._sigterm = None
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
        self.selected: list[str] = []  # case ids collected, to name those that never started
        self.report_paths: dict[str, Path] | None = None
        self.report_error = self.latest_error = None
        self.report_problems: list[str] = []  # files the report named and skipped
        self._raw: dict[str, Any] = {}
        self._models = None
        self._tf_ready = self.active = False
        self.watch = None  # resnet_harness.watch.Watch: progress, rows home, MLflow
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
        """Prepare this process for harness work (called once the session has some): TensorFlow's
        settings and this worker's GPU before TensorFlow loads; SIGTERM handled like Ctrl-C in
        the process that writes the report."""
        if self.active:
            return
        self.active = True
        from .devices import pin_worker

        # oneDNN kernels are off by default on CPUs without AVX-512, and ResNet50's backward pass
        # at 32x32 then runs ~5x slower (see bench/README.md).
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        pin_worker()
        if not self.is_worker:
            self._sigterm = install_sigterm_handler()

    # -- collection ------------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput[RUN_DIR_KEY] = str(self.folder.path)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        """Under xdist only the workers collect; the controller learns the selected cases here
        (to list those never started as "not run")."""
        found = {nodeid.rpartition("[")[2].rstrip("]") for nodeid in ids if "[" in nodeid}
        from .longtail import find_any_case

        cases = {case_id for case_id in found if find_any_case(case_id) is not None}
        if cases:
            self.activate()
        self.selected = sorted(set(self.selected) | cases)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Activate when experiment cases were collected, and load (so validate) their data and
        variants before anything trains: a missing folder, a corrupt file, bad labels or caps
        that would change what a case means stop the run with one line. xdist workers skip the
        check (an exit there would look like a crash); they fail the cases concerned instead."""
        from .data.sources import DataError
        from .data.variants import check_variant

        cases = [item.callspec.params["case"] for item in session.items
                 if "harness" in getattr(item, "fixturenames", ()) and hasattr(item, "callspec")
                 and isinstance(item.callspec.params.get("case"), Case)]
        if cases:
            self.activate()
        self.selected = [case.id for case in cases]
        if self.is_worker or session.config.option.collectonly:
            return
        try:
            for case in cases:
                case_cfg = self.run.for_case(case)
                if case_cfg.backbone == "tiny" and case_cfg.weights != "none":
                    raise DataError(f"{case.id} would load {case_cfg.weights!r} weights but "
                                    "--backbone tiny has none; pass --weights none")
                check_variant(self.raw_data(case.dataset), case_cfg)
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

    def run_info(self) -> dict[str, Any]:
        """What ``run.json`` records: host, scale, seed, time, versions, commit and every
        option's effective value with where it came from."""
        return dict(provenance.host(), scale=self.run.scale, seed=self.run.seed,
                    started_at=provenance.now(), versions=provenance.versions(),
                    git_commit=provenance.git_commit(),
                    options=self.resolved.provenance(self.run))

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
        inside the case is written as a row with status "error" and fails the test; so does a
        fault while writing its files (the session goes on).
        """
        from . import schema
        from .baseline import with_overrides
        from .data import DataError
        from .model import ModelCache, ModelError
        from .runner import run_case
        from .verdict import judge

        case_cfg: CaseConfig = self.run.for_case(case)
        try:
            tolerances, failure = with_overrides(self.tolerances, marker_tolerances, case.id), None
        except ValueError as exc:
            tolerances, failure = {}, str(exc)
        if failure:
            pytest.fail(failure, pytrace=False)
        if self.resume is not None:
            self._skip_if_finished(case_cfg)
        with writing_rows(case.id, self.folder.path):
            if not self.folder.has_started():
                self.folder.create(self.run_info())
            self.folder.mark_started(case.id, {
                "started_at": provenance.now(), "scale": self.run.scale, "seed": case_cfg.seed,
                "worker": provenance.host()["worker"]})
        callbacks = self.watch.case_started(case, case.batch_size) if self.watch else []
        try:
            self._prepare_tensorflow()
            self._models = self._models or ModelCache()
            outcome = run_case(case_cfg, self.raw_data(case.dataset), self._models,
                               callbacks=callbacks, folder=self.folder)
        except (DataError, ModelError) as exc:
            failure, trace = str(exc), None
        except Exception as exc:
            failure, trace = f"{type(exc).__name__}: {exc}".splitlines()[0], traceback.format_exc()
            with writing_rows(case.id, self.folder.path, also=failure):
                self.folder.write_row(schema.error_row(case_cfg, failure, trace, _finished()))
            raise
        if failure is not None:  # failed outside the except: pytest shows the one line, once
            with writing_rows(case.id, self.folder.path, also=failure):
                self.folder.write_row(schema.error_row(case_cfg, failure, trace, _finished()))
            pytest.fail(failure, pytrace=False)
        base = (self.baseline.get(baseline_key(case.id, case_cfg.scale, case_cfg.seed))
                if self.baseline else None)
        if base is not None and isinstance(base.get("recipe"), str) \
                and base["recipe"] != case_cfg.recipe:
            base = None  # --comparison controlled changed this case's recipe: not comparable
        verdict = judge(outcome.row, floors=case.bounds.floors(case_cfg.scale),
                        imbalanced=case.imbalanced, baseline_row=base,
                        baseline_path=self.baseline_path, tolerances=tolerances)
        row = verdict.apply(outcome.row)
        with writing_rows(case.id, self.folder.path):
            self.folder.write_row(row, outcome.arrays)
        return row

    def _skip_if_finished(self, case_cfg: CaseConfig) -> None:
        """Skip a case whose row in the resumed folder passed with everything that can change
        its result equal: scale, seed, configuration and the data's fingerprint."""
        try:
            row = self.folder.row(case_cfg.case.id)
        except RowError:
            return  # a corrupt row is run again
        if row is None or row["status"] != "passed":
            return
        stored = (row.get("scale"), row.get("seed"), comparable_config(row.get("config")),
                  row.get("data_fingerprint"))
        wanted = (case_cfg.scale, case_cfg.seed, comparable_config(case_cfg.as_dict()),
                  self.raw_data(case_cfg.case.dataset).fingerprint)
        if stored == wanted:
            pytest.skip(f"resumed: {case_cfg.case.id} already passed in {self.folder.path}")

    # -- end of run ------------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker or not self.folder.has_started():
            return
        from .report import build_report

        try:
            self.folder.record_selected(self.selected)
            self.report_paths = build_report([self.folder.path], self.folder.path,
                                             problems=self.report_problems)
        except Exception as exc:  # noqa: BLE001 - rows are safe on disk; the report can be rebuilt
            self.report_error = one_line(exc)
            # CI must not read a run without its report as a success.
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        try:
            self.folder.link_latest(self.run.report_dir)
        except OSError as exc:  # the report exists; only the shortcut to it is stale
            self.latest_error = one_line(exc)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        restore_sigterm_handler(self._sigterm)
        if self._lock is not None:
            self._lock.release()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.is_worker or not self.folder.has_started():
            return
        from .summary import summary_lines

        terminalreporter.section("resnet-harness")
        for line in summary_lines(self.folder, self.run.equivalence_delta):
            terminalreporter.write_line(line)
        for problem in self.report_problems:
            terminalreporter.write_line(f"warning: {problem}", yellow=True)
        if self.report_paths:
            terminalreporter.write_line(f"report: {self.report_paths['html']}")
            terminalreporter.write_line(f"csv:    {self.report_paths['csv']}")
        if self.report_error:
            terminalreporter.write_line(
                f"report not written ({self.report_error}); the rows are safe in "
                f"{self.folder.cases_dir}; rebuild it with: python -m resnet_harness report "
                f"{self.folder.path}", red=True)
        if self.latest_error:
            terminalreporter.write_line(
                f"{Path(self.run.report_dir) / 'latest'} not updated ({self.latest_error}); "
                f"the report is in {self.folder.path}", yellow=True)


def _finished() -> dict[str, Any]:
    return dict(provenance.host(), finished_at=provenance.now())
