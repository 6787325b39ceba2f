"""One pytest session's harness state: the run folder, loaded data, cached models, and the
end-of-run report. The plugin's hooks only call into :class:`HarnessSession`."""

from __future__ import annotations

import datetime as _dt
import os
import traceback
import uuid
from pathlib import Path
from typing import Any

import pytest

from . import provenance
from .config import CaseConfig, RunConfig
from .matrix import Case
from .results import RunFolder

RUN_DIR_KEY = "resnet_harness_run_dir"


def _cache_dir() -> Path:
    base = os.environ.get("RESNET_HARNESS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "resnet-harness")
    return Path(base)


class HarnessSession:
    """Runs cases for the tests and gathers their rows into one run folder and report."""

    def __init__(self, config: pytest.Config, run: RunConfig, *, baseline=None,
                 tolerances: dict[str, float] | None = None, resume: Path | None = None):
        self.config = config
        self.run = run
        self.baseline = baseline
        self.baseline_path = (config.getoption("harness_baseline", None)
                              if baseline is not None else None)
        self.tolerances = tolerances or {}
        self.resume = resume
        self.is_worker = hasattr(config, "workerinput")
        if self.is_worker:
            self.folder = RunFolder(config.workerinput[RUN_DIR_KEY])
        elif resume is not None:
            self.folder = RunFolder(resume)
        else:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            self.folder = RunFolder(Path(run.report_dir) / "runs"
                                    / f"{stamp}-{run.scale}-{uuid.uuid4().hex[:6]}")
        self.report_paths: dict[str, Path] | None = None
        self.report_error: str | None = None
        self.current_item = None
        self._raw: dict[str, Any] = {}
        self._models = None
        self._tf_ready = False
        self.ran_cases = False
        self.watch = None  # resnet_harness.watch.Watch: progress, rows home, MLflow

    # -- xdist -----------------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput[RUN_DIR_KEY] = str(self.folder.path)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Load (and so validate) the data of the selected cases before anything trains.

        A missing folder, an unknown layout, a corrupt or truncated file or labels out of range
        stop the run with one line. xdist workers skip this (an exit there would look like a
        crash); they report the same problems as failures of the cases concerned.
        """
        from .data.sources import DataError

        if self.is_worker or session.config.option.collectonly:
            return
        datasets = {item.callspec.params["case"].dataset for item in session.items
                    if "harness" in getattr(item, "fixturenames", ())
                    and hasattr(item, "callspec")
                    and isinstance(item.callspec.params.get("case"), Case)}
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

    def _run_info(self) -> dict[str, Any]:
        return dict(provenance.host(), scale=self.run.scale, seed=self.run.seed,
                    started_at=provenance.now(), versions=provenance.versions(),
                    git_commit=provenance.git_commit(), options=self.run.as_dict())

    def raw_data(self, dataset: str):
        """The raw data set, loaded once per process."""
        from .data import load_raw

        if dataset not in self._raw:
            self._raw[dataset] = load_raw(
                dataset, data_source=self.run.data_source,
                data_dir=self.run.data_dir_for(dataset), cache_dir=_cache_dir(),
                seed=self.run.seed, synthetic_size=_synthetic_size(self.run))
        return self._raw[dataset]

    def run_case(self, case: Case):
        """Run ``case`` and persist its row; returns ``(row, violations)``.

        The row is on disk (atomically) before this returns; a failure inside the case is written
        as a row with status "error" and re-raised.
        """
        from . import bounds
        from .data import DataError
        from .model import BACKBONES, ModelCache, ModelError
        from .runner import run_case

        case_cfg: CaseConfig = self.run.for_case(case)
        if self.resume is not None:
            self._skip_if_finished(case_cfg)
        if not self.folder.path.exists():
            self.folder.create(self._run_info())
        self.ran_cases = True
        self.folder.mark_started(case.id, {"started_at": provenance.now(), "scale": self.run.scale,
                                           "seed": self.run.seed,
                                           "worker": provenance.host()["worker"]})
        callbacks = self.watch.case_started(case, case.batch_size) if self.watch else []
        try:
            self._prepare_tensorflow()
            if self._models is None:
                self._models = ModelCache()
            outcome = run_case(case_cfg, self.raw_data(case.dataset), self._models,
                               backbone=BACKBONES[case_cfg.backbone], callbacks=callbacks)
        except (DataError, ModelError) as exc:
            self._write_error(case_cfg, str(exc))
            pytest.fail(str(exc), pytrace=False)
        except Exception as exc:
            self._write_error(case_cfg, f"{type(exc).__name__}: {exc}".splitlines()[0],
                              traceback.format_exc())
            raise
        row = outcome.row
        violations = bounds.check(row, case, case_cfg.scale)
        violations += self._against_baseline(row, case)
        row["status"] = "failed" if violations else "passed"
        row["error"] = "; ".join(violations) or None
        row["bounds"] = {"violations": violations,
                         "floors": case.bounds.floors(case_cfg.scale)}
        self.folder.write_row(row, outcome.arrays)
        if self.current_item is not None:
            self.current_item.stash[ROW_KEY] = row
        return row, violations

    def _skip_if_finished(self, case_cfg: CaseConfig) -> None:
        path = self.folder.cases_dir / f"{case_cfg.case.id}.json"
        if not path.is_file():
            return
        import json

        try:
            row = json.loads(path.read_text())
        except ValueError:
            return  # a corrupt row is run again
        same = (row.get("status") == "passed" and row.get("scale") == case_cfg.scale
                and row.get("seed") == case_cfg.seed
                and _comparable(row.get("config")) == _comparable(case_cfg.as_dict()))
        if same:
            pytest.skip(f"resumed: {case_cfg.case.id} already passed in {self.folder.path}")

    def _against_baseline(self, row: dict[str, Any], case: Case) -> list[str]:
        """Regressions against the baseline row of the same case and scale (stored in the row)."""
        if self.baseline is None:
            return []
        from .baseline import DEFAULT_TOLERANCES, SCORES, compare, expand_tolerances

        base = self.baseline.get((case.id, row["scale"]))
        if base is None:
            row["baseline"] = {"path": self.baseline_path, "missing": True}
            return []
        tolerances = dict(self.tolerances)
        if self.current_item is not None:
            for mark in reversed(list(self.current_item.iter_markers("tolerance"))):
                unknown = set(mark.kwargs) - set(DEFAULT_TOLERANCES) - {SCORES}
                if unknown:
                    pytest.fail(f"{case.id}: tolerance marker names unknown metrics "
                                f"{sorted(unknown)}; use {SCORES}, "
                                f"{', '.join(DEFAULT_TOLERANCES)}", pytrace=False)
                tolerances.update(expand_tolerances(sorted(
                    mark.kwargs.items(), key=lambda item: item[0] != SCORES)))
        comparisons = compare(row, base, tolerances)
        regressions = [c.describe() for c in comparisons if c.verdict == "regression"]
        row["baseline"] = {
            "path": self.baseline_path, "tolerances": tolerances,
            "regressions": regressions,
            "improvements": [c.describe() for c in comparisons if c.verdict == "improvement"],
            "values": {c.metric: c.baseline for c in comparisons},
        }
        return [f"regression against baseline: {text}" for text in regressions]

    def _write_error(self, case_cfg: CaseConfig, message: str, trace: str | None = None) -> None:
        from .runner import base_row

        row = dict(base_row(case_cfg), status="error", error=message, traceback=trace,
                   provenance=dict(provenance.host(), finished_at=provenance.now()))
        self.folder.write_row(row)

    def check(self, case: Case) -> dict[str, Any]:
        """Run ``case`` and fail the test, naming metric, value and bound, if a bound is broken."""
        row, violations = self.run_case(case)
        if violations:
            pytest.fail(f"{case.id}: " + "; ".join(violations), pytrace=False)
        return row

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        row = item.stash.get(ROW_KEY, None)
        # pytest-html registers itself whenever it is installed; build extras only for --html.
        if (report.when != "call" or row is None or not item.config.pluginmanager.hasplugin("html")
                or not item.config.getoption("htmlpath", None)):
            return
        from .report.extras import pytest_html_extras

        report.extras = list(getattr(report, "extras", [])) + pytest_html_extras(row)

    # -- end of run ------------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker or not (self.folder.path / "started").is_dir():
            return
        try:
            from .report import build_report, update_latest_link

            self.report_paths = build_report([self.folder.path], self.folder.path)
            update_latest_link(Path(self.run.report_dir), self.folder.path)
        except Exception as exc:  # noqa: BLE001 - rows are safe on disk; the report can be rebuilt
            self.report_error = f"{type(exc).__name__}: {exc}"

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.is_worker or not (self.folder.path / "started").is_dir():
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


ROW_KEY = pytest.StashKey[dict]()


# Settings added after rows were first written; a stored config without them had these values.
_LATER_SETTINGS = {"xla": False, "mixed_precision": False}


def _comparable(config: dict[str, Any] | None) -> Any:
    """A config as stored in JSON (tuples become lists), for equality checks."""
    import json

    if isinstance(config, dict):
        config = {**_LATER_SETTINGS, **config}
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def _synthetic_size(run: RunConfig) -> tuple[int, int]:
    """Per-class train/test sizes of the synthetic stand-in: enough for the requested caps."""
    train = max(60, -(-(run.max_train_samples or 0) // 10) + 2)
    test = max(20, -(-(run.max_test_samples or 0) // 10) + 2)
    if run.scale != "smoke" and not run.max_train_samples:
        train, test = 500, 100
    return train, test
