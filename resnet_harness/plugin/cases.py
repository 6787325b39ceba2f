"""Running one case for a test: the part the controller (without xdist) and every xdist worker
share. Loads data once per process, keeps built models, judges the row against its bounds and
baseline and persists it before the test learns the outcome."""

from __future__ import annotations

import os
import traceback
from typing import Any

import pytest

from resnet_harness import study
from resnet_harness.analysis.baseline import with_overrides
from resnet_harness.analysis.verdict import judge
from resnet_harness.plugin.interrupts import writing_rows
from resnet_harness.storage.rundir import RunFolder
from resnet_harness.storage.schema import RowError
from resnet_harness.training import provenance, rows
import resnet_harness.training.config as cfg_module
from resnet_harness.training.config import CaseConfig, RunConfig


def activate_process(run: RunConfig, host_slot: int | None = None) -> None:
    """Prepare this process for harness work before TensorFlow loads: its settings and this
    worker's GPU (``host_slot``: its place among its host's workers)."""
    from resnet_harness.training.devices import pin_worker

    # oneDNN kernels are off by default on CPUs without AVX-512, and ResNet50's backward pass
    # at 32x32 then runs ~5x slower (see docs/speed.md).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pin_worker(slot=host_slot)


def run_description(run: RunConfig, resolved) -> dict[str, Any]:
    """What ``run.json`` records: host, scale, seed, time, versions, commit, the registered
    studies and every option's effective value with where it came from."""
    return dict(provenance.host(), scale=run.scale, seed=None if run.seeds else run.seed,
                seeds=str(run.seeds) if isinstance(run.seeds, cfg_module.AutoSeeds)
                else list(run.seeds) if run.seeds else None, started_at=provenance.now(),
                environment=provenance.environment(with_gpus=False),
                versions=provenance.versions(), git_commit=provenance.git_commit(),
                studies={s.name: s.module for s in study.studies()},
                options=resolved.provenance(run))


class CaseRunner:
    """Runs cases into one run folder: data loaded once, models reused, rows judged and saved."""

    def __init__(self, run: RunConfig, folder: RunFolder, *, baseline=None,
                 baseline_path: str | None = None, tolerances: dict[str, float] | None = None,
                 resume: bool = False, mismatch: str = "refuse", run_info=None):
        self.run, self.folder = run, folder
        self.mismatch = mismatch  # --resume-mismatch: what to do with rows made another way
        self.baseline, self.baseline_path = baseline, baseline_path
        self.tolerances = tolerances or {}
        self.resume = resume
        self.run_info = run_info or (lambda: {})
        self.watch = None  # set by the plugin: live progress callbacks per case
        self.selection: list[str] = []  # the session's case ids (a sequential design reads them)
        self._raw: dict[str, Any] = {}
        self._models = None
        self._tf_ready = False

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
        from resnet_harness.training.data import default_cache_dir, load_raw

        if dataset not in self._raw:
            self._raw[dataset] = load_raw(
                dataset, data_source=self.run.data_source,
                data_dir=self.run.data_dir_for(dataset), cache_dir=default_cache_dir(),
                seed=self.run.seed, synthetic_size=self.run.synthetic_size())
        return self._raw[dataset]

    def check_selection(self, cases) -> None:
        """Load (so validate) the data and variants of ``cases`` before anything trains; a
        ``DataError`` names the first problem."""
        from resnet_harness.training.data.sources import DataError
        from resnet_harness.training.data.variants import check_variant

        for case in cases:
            case_cfg = self.run.for_case(case)
            if case_cfg.backbone == "tiny" and case_cfg.weights != "none":
                raise DataError(f"{case.id} would load {case_cfg.weights!r} weights but "
                                "--backbone tiny has none; pass --weights none")
            plain = cfg_module.weights_for(self.run.weights, "")  # the one for every case
            if (case_cfg.backbone != "resnet50" and case_cfg.weights == plain
                    and case_cfg.weights not in ("imagenet", "none")):
                # A plain --weights PATH was checked as a ResNet50 file.
                raise DataError(f"{case.id} trains {case_cfg.backbone} but --weights "
                                f"{case_cfg.weights} is a ResNet50 file; pass --weights "
                                "resnet50=PATH to give it to the ResNet50 cases only, or "
                                f"--weights {case_cfg.backbone}=PATH for a file of that backbone")
            check_variant(self.raw_data(case.dataset), case_cfg)

    def run_case(self, case, marker_tolerances=()) -> dict[str, Any]:
        """Run ``case``, judge it and persist its row (atomically, before returning it).

        ``marker_tolerances``: the test's ``tolerance`` marker kwargs, farthest first. A failure
        inside the case is written as a row with status "error" and fails the test; so does a
        fault while writing its files (the session goes on).
        """
        from resnet_harness.training.data import DataError
        from resnet_harness.training.model import ModelCache, ModelError
        from resnet_harness.training.runner import run_case

        case_cfg: CaseConfig = self.run.for_case(case)
        try:
            tolerances, failure = with_overrides(self.tolerances, marker_tolerances, case.id), None
        except ValueError as exc:
            tolerances, failure = {}, str(exc)
        if failure:
            pytest.fail(failure, pytrace=False)
        if self.resume:
            self._skip_if_finished(case_cfg)
        self._skip_if_decided(case)
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
            self._write_error(case_cfg, failure, trace)
            raise
        if failure is not None:  # failed outside the except: pytest shows the one line, once
            self._write_error(case_cfg, failure, trace)
            pytest.fail(failure, pytrace=False)
        row = self._judge(case_cfg, outcome.row, tolerances)
        with writing_rows(case.id, self.folder.path):
            self.folder.write_row(row, outcome.arrays)
        return row

    def _write_error(self, case_cfg: CaseConfig, failure: str, trace: str | None) -> None:
        with writing_rows(case_cfg.case.id, self.folder.path, also=failure):
            self.folder.write_row(rows.error_row(case_cfg, failure, trace, dict(
                provenance.host(), finished_at=provenance.now())))

    def _judge(self, case_cfg: CaseConfig, row: dict[str, Any], tolerances) -> dict[str, Any]:
        case = case_cfg.case
        match = self.baseline.match(row) if self.baseline else None
        expected = case_cfg.hooks.expected_train_counts(row["counts_before_imbalance"])
        verdict = judge(row, floors=case.bounds.floors(case_cfg.scale),
                        imbalanced=case.imbalanced, expected_counts=expected,
                        baseline_row=match.row if match else None,
                        baseline_path=self.baseline_path, tolerances=tolerances,
                        not_compared=match.reason if match else None,
                        across_environments=() if match is None or match.same_environment
                        else match.differences)
        return verdict.apply(row)

    def _skip_if_decided(self, case) -> None:
        """Under ``--seeds auto``: before a case of a later round runs, wait for the rounds
        before it and skip it when they decided every claim the selection touches."""
        from resnet_harness.analysis.claims import evaluate
        from resnet_harness.analysis.sequential import design_for, undecided

        design = design_for(self.run.seeds)
        if design is None or case.seed is None:
            return
        order = list(self.run.seeds.seeds)
        look = design.round_of(order.index(case.seed))
        if look == 0:
            return
        done = set(order[:design.looks[look - 1]])
        earlier = [cid for cid in self.selection if study.split_seed(cid)[1] in done]
        rows = self._wait_for_rows(earlier)
        results, _ = evaluate(rows, self.run.equivalence_delta, design=design)
        selected = {study.split_seed(cid)[0] for cid in self.selection}
        if not undecided(results, selected):
            pytest.skip(f"decided after {len(done)} seeds: every claim of this selection is "
                        f"supported or contradicted (sequential design {design.as_text()})")

    def _wait_for_rows(self, case_ids: list[str], patience_s: float = 7200.0) -> list[dict]:
        """The rows of ``case_ids``, once each exists (xdist workers may still be running the
        round before); gives up on the missing ones when no new row came for ``patience_s``."""
        import time

        last, seen = time.monotonic(), -1
        while True:
            present = [cid for cid in case_ids if self.folder.row_path(cid).is_file()]
            if len(present) == len(case_ids) or time.monotonic() - last > patience_s:
                break
            if len(present) != seen:
                last, seen = time.monotonic(), len(present)
            time.sleep(1.0)
        rows = []
        for cid in present:
            try:
                rows.append(self.folder.row(cid))
            except RowError:
                continue  # an unreadable row counts as missing
        return [r for r in rows if r is not None]

    def to_submit(self, cases) -> list[str]:
        """The ids of ``cases`` a SLURM array must run (``--slurm``): all of them, or under
        ``--resume`` those without a passed row of the same meaning (case, settings, data).
        Code, libraries and environment are checked by the task itself, on its node."""
        from resnet_harness.storage import identity

        out = []
        for case in cases:
            try:
                row = self.folder.row(case.id) if self.resume else None
            except RowError:
                row = None
            if row is None or row.get("status") != "passed":
                out.append(case.id)
                continue
            expected = rows.expected_identity(self.run.for_case(case),
                                              self.raw_data(case.dataset))
            if identity.differences(expected, identity.parts(row), identity.MEANING):
                out.append(case.id)
        return out

    def _skip_if_finished(self, case_cfg: CaseConfig) -> None:
        """Skip a case whose row in the resumed folder passed and has the identity this session
        would give it (``storage.identity``: settings, data content, code, libraries and
        environment; the last three may differ under ``--resume-mismatch keep``). A row made
        another way is set aside and the case runs again."""
        from resnet_harness.plugin.resume import reusable

        case_id = case_cfg.case.id
        if not self.folder.row_path(case_id).is_file():
            return
        self._prepare_tensorflow()  # the GPUs a row records are known once TensorFlow is up
        expected = rows.expected_identity(case_cfg, self.raw_data(case_cfg.case.dataset))
        reuse, why = reusable(self.folder, case_id, expected, self.mismatch)
        if reuse:
            pytest.skip(f"resumed: {case_id} already passed in {self.folder.path}"
                        + ("" if why == "same" else f" ({why})"))


def harness_cases(items) -> list:
    """The study cases among collected ``items`` (tests that use the ``harness`` fixture)."""
    return [item.callspec.params["case"] for item in items
            if "harness" in getattr(item, "fixturenames", ()) and hasattr(item, "callspec")
            and isinstance(item.callspec.params.get("case"), study.Case)]
