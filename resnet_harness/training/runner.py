"""Run one case: build its data variant and model, train, predict, measure, and make the result row.

This module knows nothing about pytest; the plugin calls :func:`run_case` and decides what a result
means for the test.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resnet_harness.storage.outcomes import test_set_digest
from resnet_harness.training import provenance, rows
from resnet_harness.training.calibration import recalibrated_validation
from resnet_harness.training.config import CaseConfig
from resnet_harness.training.data import Variant, make_variant
from resnet_harness.training.data.pipeline import INFERENCE_BATCH, make_dataset, steps_per_epoch

# What a study's ``on_batches`` hook may set (keywords of ``make_dataset``).
BATCH_KEYWORDS = ("class_balanced", "augmentation_kind", "class_weights")
from resnet_harness.training.evaluation import calibration_set, evaluate
from resnet_harness.training.model import BACKBONES, ModelCache, seed_everything
from resnet_harness.training.metrics import INTERVAL_METHOD, run_intervals


class PeakMemory:
    """Samples this process's resident memory in a thread; ``peak_mb`` is the largest value seen.

    psutil is used directly: memory_profiler's sampler forks a process, which is unsafe once
    TensorFlow's thread pools exist.
    """

    def __init__(self, interval_s: float = 0.02):
        import psutil

        self._process = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_bytes = self.start_bytes = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> "PeakMemory":
        self.start_bytes = self.peak_bytes = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    def current_mb(self) -> float:
        """The process's resident memory now."""
        return self._process.memory_info().rss / 2**20

    @property
    def start_mb(self) -> float:
        """The process's resident memory when sampling started."""
        return self.start_bytes / 2**20


def _gpu_peak_mb(reset: bool = False) -> float | None:
    """TensorFlow's peak GPU memory since the last reset, or None on a CPU. ``reset=True``
    starts a new peak and returns the memory in use at that moment."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    if reset:
        tf.config.experimental.reset_memory_stats("GPU:0")
        return tf.config.experimental.get_memory_info("GPU:0")["current"] / 2**20
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


@dataclass
class CaseOutcome:
    """A finished run: its result row and the arrays saved beside it."""

    row: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    variant: Variant | None = None


class _StepClock:
    """A Keras callback that notes when the first training batch ends (graph tracing included)
    and when each epoch ends."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start, self.first_batch_end, self.steps = time.perf_counter(), None, 0
                self.epoch_ends: list[float] = []

            def on_epoch_end(self, epoch, logs=None):
                self.epoch_ends.append(time.perf_counter())

            def on_train_batch_end(self, batch, logs=None):
                self.steps += 1
                if self.first_batch_end is None:
                    self.first_batch_end = time.perf_counter()

        return Clock()


class _EpochTestScores:
    """A Keras callback that scores the test set at every epoch's end (a study's
    ``Hooks.score_every_epoch``): ``test_accuracy`` and ``test_balanced_accuracy`` join the
    epoch's logs (so the history), with the model as ``fit`` leaves it at that epoch (no
    BatchNorm re-estimation). ``seconds`` holds each epoch's scoring time, which the training
    times leave out."""

    def __new__(cls, test, y_test: np.ndarray):
        import keras

        from resnet_harness.training.model import predict

        class Scores(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.seconds: list[float] = []

            def on_epoch_end(self, epoch, logs=None):
                t0 = time.perf_counter()
                predicted = predict(self.model, test).argmax(axis=1)
                right = predicted == y_test
                recall = [float(np.mean(right[y_test == c])) for c in np.unique(y_test)]
                if logs is not None:
                    logs["test_accuracy"] = float(np.mean(right))
                    logs["test_balanced_accuracy"] = float(np.mean(recall))
                self.seconds.append(time.perf_counter() - t0)

        return Scores()


def fit_history(history, clock, scoring_s: list[float] | None = None) -> dict[str, list]:
    """Every per-epoch figure ``fit`` logged (loss, accuracy, the validation figures when there
    are any, the per-epoch test scores, a study's own metrics) plus each epoch's seconds of
    training (``scoring_s``: the per-epoch test scoring, left out): the row's learning
    curve."""
    logged = getattr(history, "history", None) or {}
    out: dict[str, list] = {name: [_finite(v) for v in values]
                            for name, values in sorted(logged.items())}
    ends = [clock.start, *clock.epoch_ends]
    # An epoch's scoring runs after the clock noted its end: it is in the next epoch's span.
    spent = [0.0, *(scoring_s or [])] + [0.0] * len(ends)
    out["epoch_seconds"] = [b - a - spent[i] for i, (a, b) in enumerate(zip(ends, ends[1:]))]
    return out


def epoch_selection_fields(history: dict[str, list], monitor: str | None) -> dict[str, Any]:
    """From the per-epoch test scores: the best test accuracy over the epochs and its epoch
    (the test set chose it: optimistic), and the test accuracy at the epoch the validation
    set chose (``monitor``: the published way to pick an epoch). Empty without them."""
    scores = history.get("test_accuracy") or []
    finite = [(v, i) for i, v in enumerate(scores) if v is not None]
    if not finite:
        return {}
    best, at = max(finite, key=lambda pair: (pair[0], -pair[1]))  # the first of equal bests
    out: dict[str, Any] = {"test_accuracy_best_epoch": best, "test_best_epoch": at + 1}
    watched = history.get(monitor or "") or []
    chosen = [(v if monitor == "val_loss" else -v, i) for i, v in enumerate(watched)
              if v is not None and i < len(scores) and scores[i] is not None]
    if chosen:
        out["test_accuracy_at_validation_best"] = scores[min(chosen)[1]]
    return out


def validation_fields(history, variant: Variant, early_stopping: bool,
                      monitor: str = "val_loss") -> dict[str, Any]:
    """The validation set's class counts, and under early stopping the best epoch by
    ``monitor`` (1-based, the weights kept; the first of equal bests, as Keras keeps it) and
    the epochs actually run."""
    if variant.y_val is None:
        return {}
    out: dict[str, Any] = {"validation_counts": variant.validation_counts}
    values = (getattr(history, "history", None) or {}).get(monitor) or []
    finite = [(v if monitor == "val_loss" else -v, i)
              for i, v in enumerate(values) if np.isfinite(v)]
    if finite:
        out["best_epoch"] = min(finite)[1] + 1
    out["stopped_early"] = early_stopping and len(values) < history.params.get("epochs", 0)
    return out


def _finite(value) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


def make_inputs(cfg: CaseConfig, raw) -> tuple[Variant, Any, Any]:
    """The case's data variant and its training and test ``tf.data`` pipelines (the validation
    pipeline, under ``--validation-split``, is :func:`validation_inputs`)."""
    case = cfg.case
    variant = make_variant(raw, cfg)
    batches = dict(cfg.hooks.on_batches())
    unknown = sorted(set(batches) - set(BATCH_KEYWORDS))
    if unknown:
        raise ValueError(f"{case.id}: on_batches returned {', '.join(unknown)}; it may set "
                         f"{', '.join(BATCH_KEYWORDS)}")
    train = make_dataset(variant.x_train, variant.y_train, batch_size=case.batch_size,
                         training=True, seed=cfg.seed, augment=cfg.augment, hflip=cfg.hflip,
                         order_keys=(variant.train_index if cfg.batch_order == "common"
                                     else None), epochs=cfg.epochs, **batches)
    test = make_dataset(variant.x_test, variant.y_test, batch_size=INFERENCE_BATCH,
                        training=False, seed=cfg.seed)
    return variant, train, test


def validation_inputs(cfg: CaseConfig, variant: Variant) -> tuple[dict[str, Any], list]:
    """``fit``'s ``validation_data`` and the callbacks of the validation protocol, when the case
    has a validation set (``--validation-split``, ``--early-stopping``).

    When the case re-estimates BatchNorm statistics before testing (``bn_recalibrate``, smoke
    and reduced scale), validation does the same at every epoch's end
    (:func:`~resnet_harness.training.calibration.recalibrated_validation`) instead of Keras'
    own pass: measured at reduced scale, Keras' validation used moving statistics that lag the
    weights, so ResNet50's validation accuracy stayed at 0.10 every epoch while the test
    accuracy after re-estimation reached 0.29, and early stopping kept epoch 1 for that reason.
    """
    if variant.y_val is None:
        return {}, []
    import keras

    data = make_dataset(variant.x_val, variant.y_val, batch_size=cfg.case.batch_size,
                        training=False, seed=cfg.seed)
    callbacks, fit_kwargs = [], {"validation_data": data}
    if cfg.bn_recalibrate:
        callbacks.append(recalibrated_validation(calibration_set(variant, cfg), data))
        fit_kwargs = {}
    if cfg.early_stopping:
        # After the validation callback: it reads the val_* that callback wrote.
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=cfg.early_stopping_monitor, patience=cfg.early_stopping,
            mode="min" if cfg.early_stopping_monitor == "val_loss" else "max",
            restore_best_weights=True))
    return fit_kwargs, callbacks


def model_for(cfg: CaseConfig, models: ModelCache):
    """The case's compiled model, as freshly built (from ``models`` when one can be reused)."""
    case = cfg.case
    return models.get(case.head, weights=cfg.weights, seed=cfg.seed,
                      learning_rate=case.learning_rate, jit_compile=cfg.xla,
                      mixed_precision=cfg.mixed_precision, backbone=BACKBONES[cfg.backbone],
                      loss_name=cfg.hooks.loss_name,
                      make_loss=cfg.hooks.on_build_loss if cfg.hooks.loss_name else None,
                      **cfg.hooks.on_build_model())


def run_case(cfg: CaseConfig, raw, models: ModelCache, *, callbacks=(),
             folder=None) -> CaseOutcome:
    """Train and evaluate one case on ``raw`` data; returns the row (status not yet decided).

    ``callbacks``: more Keras callbacks for ``fit`` (the live progress); ``folder``: the run
    folder, which a post-hoc case reads its source predictions from.
    """
    if cfg.hooks.predictions_from is not None:  # trains nothing: transforms saved predictions
        return run_posthoc(cfg, raw, folder)
    started = provenance.now()
    # Memory is sampled over the whole case. What it adds above the level just before it started
    # does not climb with what earlier cases left behind (peak_rss_mb does); the first case of an
    # architecture still adds the model it builds and traces (model_reused says which).
    with PeakMemory() as memory:
        gpu_before = _gpu_peak_mb(reset=True)  # a new peak per case, from what it found in use
        return _run(cfg, raw, models, started, memory, gpu_before, callbacks)


def _run(cfg: CaseConfig, raw, models: ModelCache, started: str, memory: "PeakMemory",
         gpu_before: float | None, callbacks) -> CaseOutcome:
    case = cfg.case
    # TensorFlow combines every op seed (the shuffle's, the augmentation's) with its global seed,
    # which the previous case's model build left at that case's seed (or unset, in a fresh
    # process). Set to this case's seed before the pipelines exist, a case computes the same
    # whatever ran before it in the process (measured before: the same case and seed gave
    # accuracy 0.526 run first and 0.477 run after another case).
    seed_everything(cfg.seed)
    variant, train, test = make_inputs(cfg, raw)
    model = model_for(cfg, models)
    reused = not models.built_last
    model_ready_mb = memory.current_mb()
    fit_extras = dict(cfg.hooks.on_fit_start(model))
    # seed_everything above reseeds TensorFlow only when the seed changes (tf.random.set_seed
    # clears its kernel cache: 12-15 s on a reused model's next first step); a new seed builds
    # a new model anyway. The model's init and generator states are restored by ModelCache.
    validation, stopping = validation_inputs(cfg, variant)
    clock = _StepClock()
    # Last: each epoch is scored as the other callbacks leave the model (a validation pass
    # re-estimates BatchNorm), so the last epoch's score is the as-trained model's. Its time
    # falls after the clock's epoch end and is taken out of the next epoch's seconds.
    scorer = [_EpochTestScores(test, variant.y_test)] if cfg.hooks.score_every_epoch else []
    t0 = time.perf_counter()
    history = model.fit(train, epochs=cfg.epochs, verbose=0, shuffle=False,
                        steps_per_epoch=steps_per_epoch(train),
                        callbacks=[clock, *callbacks, *fit_extras.pop("callbacks", []),
                                   *stopping, *scorer], **validation, **fit_extras)
    scoring_s = scorer[0].seconds if scorer else []
    train_time = time.perf_counter() - t0 - sum(scoring_s)
    fields, arrays = evaluate(model, variant, cfg, test, history)
    peak_gpu = _gpu_peak_mb()
    n_train = len(variant.y_train)
    # Steady state: the first step (graph tracing for the first case of an architecture, ~46 s
    # for ResNet50 on 2 cores, under a second for a reused model) is left out of both figures.
    steady = (train_time - (clock.first_batch_end - clock.start)
              if clock.first_batch_end else None)
    images_after_first = n_train * cfg.epochs - min(case.batch_size, n_train)
    test_time = fields["test_time_s"]
    curves = fit_history(history, clock, scoring_s)
    row = rows.measured_row(cfg, **fields, **{
        "intervals": run_intervals(variant.y_test, arrays["y_pred"], seed=cfg.seed),
        "interval_method": INTERVAL_METHOD,
        "train_time_s": train_time, "steady_train_time_s": steady,
        "first_step_s": (clock.first_batch_end - clock.start) if clock.first_batch_end else None,
        "train_images_per_s": (images_after_first / steady) if steady and steady > 0 else None,
        "test_images_per_s": len(variant.y_test) / test_time if test_time > 0 else None,
        "peak_rss_mb": memory.peak_mb, "peak_gpu_mb": peak_gpu,
        "rss_before_mb": memory.start_mb, "rss_added_mb": memory.peak_mb - memory.start_mb,
        "rss_model_ready_mb": model_ready_mb,
        "gpu_added_mb": (peak_gpu - gpu_before) if peak_gpu is not None else None,
        "model_reused": reused,
        "history": curves,
        **validation_fields(history, variant, bool(cfg.early_stopping),
                           cfg.early_stopping_monitor),
        **epoch_selection_fields(curves, cfg.early_stopping_monitor
                                 if variant.y_val is not None else None),
        "train_samples": n_train, "test_samples": len(variant.y_test),
        "train_counts": variant.train_counts, "test_counts": variant.test_counts,
        "counts_before_imbalance": variant.counts_before_imbalance,
        "reduced_classes": list(variant.reduced_classes),
        "removal_fraction": variant.removal_fraction,
        "data_source": variant.source, "data_fingerprint": raw.fingerprint,
        "test_set": test_set_digest(variant.test_index, raw.fingerprint),
        "provenance": rows.provenance_record(started),
        **cfg.hooks.on_row(fields["metrics"]),
    })
    return CaseOutcome(row, arrays, variant)


def run_posthoc(cfg: CaseConfig, raw, folder) -> CaseOutcome:
    """A case that trains nothing: its hooks' transform of the saved predictions of the case
    named by ``predictions_from`` (same seed) in ``folder``.

    Refuses (``DataError``, one line) when that row is missing or ran with another scale, seed,
    data set variant or backbone.
    """
    import psutil

    from resnet_harness.storage.identity import comparable_config
    from resnet_harness.training.data import DataError
    from resnet_harness.training.data.sources import NUM_CLASSES
    from resnet_harness.training.metrics import compute_metrics

    hooks = cfg.hooks
    source = hooks.predictions_from + ("" if cfg.case.seed is None
                                         else f"-seed{cfg.case.seed}")
    started = provenance.now()
    row = folder.row(source) if folder is not None else None
    fix = (f"select it too (-k {source}; it runs first in one process) or --resume a run "
           "folder that has it")
    if row is None or row.get("status") not in ("passed", "failed"):
        raise DataError(f"{cfg.case.id} transforms the finished predictions of {source} in "
                        f"this run folder; {fix}")
    mine = comparable_config(cfg.as_dict())
    theirs = comparable_config(row.get("config"))
    for key in ("epochs", "weights", "max_train_samples", "max_test_samples", "backbone",
                "data_source"):
        if mine.get(key) != theirs.get(key):
            raise DataError(f"{source} in this run folder ran with {key}={theirs.get(key)!r}, "
                            f"this case has {mine.get(key)!r}; {fix}")
    if (row.get("scale"), row.get("seed")) != (cfg.scale, cfg.seed):
        raise DataError(f"{source} in this run folder ran at scale {row.get('scale')} seed "
                        f"{row.get('seed')}, this case at {cfg.scale} seed {cfg.seed}; {fix}")
    variant = make_variant(raw, cfg)
    saved = folder.load_predictions(source)
    if not np.array_equal(saved["y_true"], variant.y_test):
        raise DataError(f"the saved test labels of {source} differ from this case's test set; "
                        f"{fix}")
    t0 = time.perf_counter()
    proba = hooks.on_predictions(saved["proba"])
    metrics = compute_metrics(variant.y_test, proba, NUM_CLASSES)
    adjust_time = time.perf_counter() - t0
    out = rows.measured_row(cfg, **{
        "metrics": metrics, "train_time_s": 0.0, "test_time_s": adjust_time,
        "intervals": run_intervals(variant.y_test, proba.argmax(axis=1), seed=cfg.seed),
        "interval_method": INTERVAL_METHOD,
        "peak_rss_mb": psutil.Process().memory_info().rss / 2**20,
        "train_samples": len(variant.y_train), "test_samples": len(variant.y_test),
        "train_counts": variant.train_counts, "test_counts": variant.test_counts,
        "counts_before_imbalance": variant.counts_before_imbalance,
        "reduced_classes": list(variant.reduced_classes),
        "removal_fraction": variant.removal_fraction, "data_source": variant.source,
        "data_fingerprint": raw.fingerprint, "provenance": rows.provenance_record(started),
        "test_set": test_set_digest(variant.test_index, raw.fingerprint),
        **hooks.on_row(metrics)})
    arrays = {"y_true": variant.y_test.astype(np.int64), "proba": proba,
              "y_pred": proba.argmax(axis=1)}
    return CaseOutcome(out, arrays, variant)
