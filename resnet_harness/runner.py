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

from . import longtail_methods, provenance, schema
from .config import CaseConfig
from .data import Variant, make_variant
from .data.pipeline import make_dataset
from .matrix import NUM_CLASSES
from .metrics import compute_metrics, normalize_proba
from .model import BACKBONES, ModelCache, predict


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
        self.peak_bytes = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> "PeakMemory":
        self.peak_bytes = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def _gpu_peak_mb(reset: bool = False) -> float | None:
    """TensorFlow's peak GPU memory since the last reset, or None on a CPU."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    if reset:
        tf.config.experimental.reset_memory_stats("GPU:0")
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


@dataclass
class CaseOutcome:
    """A finished run: its result row and the arrays saved beside it."""

    row: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    variant: Variant | None = None


class _StepClock:
    """A Keras callback that notes when the first training batch ends (graph tracing included)."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start, self.first_batch_end, self.steps = time.perf_counter(), None, 0

            def on_train_batch_end(self, batch, logs=None):
                self.steps += 1
                if self.first_batch_end is None:
                    self.first_batch_end = time.perf_counter()

        return Clock()


def make_inputs(cfg: CaseConfig, raw) -> tuple[Variant, Any, Any]:
    """The case's data variant and its training and test ``tf.data`` pipelines."""
    case = cfg.case
    variant = make_variant(raw, cfg)
    train = make_dataset(variant.x_train, variant.y_train, batch_size=case.batch_size,
                         training=True, seed=cfg.seed, augment=cfg.augment, hflip=cfg.hflip,
                         class_balanced=longtail_methods.resamples(case))
    test = make_dataset(variant.x_test, variant.y_test, batch_size=case.batch_size,
                        training=False, seed=cfg.seed)
    return variant, train, test


def model_for(cfg: CaseConfig, models: ModelCache):
    """The case's compiled model, as freshly built (from ``models`` when one can be reused)."""
    case = cfg.case
    return models.get(case.head, weights=cfg.weights, seed=cfg.seed,
                      learning_rate=case.learning_rate, jit_compile=cfg.xla,
                      mixed_precision=cfg.mixed_precision, backbone=BACKBONES[cfg.backbone],
                      **longtail_methods.model_kwargs(case))


def run_case(cfg: CaseConfig, raw, models: ModelCache, folder=None) -> CaseOutcome:
    """Train and evaluate one case on ``raw`` data; returns the row (status not yet decided).

    ``folder``: the run folder, which a post-hoc long-tail arm reads its source predictions from.
    """
    case = cfg.case
    if longtail_methods.is_posthoc(case):  # trains nothing: adjusts the ce arm's predictions
        return longtail_methods.run_posthoc(cfg, raw, folder)
    started = provenance.now()
    variant, train, test = make_inputs(cfg, raw)
    model = model_for(cfg, models)
    fit_extras = longtail_methods.prepare(cfg, model, variant.train_counts)  # {}: paper cases
    # No keras.utils.set_random_seed here: it calls tf.random.set_seed, which clears TensorFlow's
    # kernel cache and costs a reused model 12-15 s on its next first step. Every random choice
    # of a case is already seeded: the model's init and generator states (ModelCache restores
    # them), the shuffle and the augmentation layers (explicit seeds in the pipeline).
    clock = _StepClock()
    _gpu_peak_mb(reset=True)
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        model.fit(train, epochs=cfg.epochs, verbose=0, shuffle=False,
                  callbacks=[clock, *fit_extras.pop("callbacks", [])], **fit_extras)
        train_time = time.perf_counter() - t0
    peak_gpu = _gpu_peak_mb()
    t0 = time.perf_counter()
    raw_proba = predict(model, test)
    test_time = time.perf_counter() - t0
    proba = normalize_proba(raw_proba)
    metrics = compute_metrics(variant.y_test, proba, NUM_CLASSES)
    n_train = len(variant.y_train)
    steady = (train_time - (clock.first_batch_end - clock.start)
              if clock.first_batch_end else None)
    images_after_first = n_train * cfg.epochs - min(case.batch_size, n_train)
    row = schema.measured_row(cfg, **{
        "metrics": metrics,
        "train_time_s": train_time, "test_time_s": test_time,
        "first_step_s": (clock.first_batch_end - clock.start) if clock.first_batch_end else None,
        "train_images_per_s": (images_after_first / steady) if steady and steady > 0 else None,
        "test_images_per_s": len(variant.y_test) / test_time if test_time > 0 else None,
        "peak_rss_mb": memory.peak_mb, "peak_gpu_mb": peak_gpu,
        "train_samples": n_train, "test_samples": len(variant.y_test),
        "train_counts": variant.train_counts, "test_counts": variant.test_counts,
        "counts_before_imbalance": variant.counts_before_imbalance,
        "reduced_classes": list(variant.reduced_classes),
        "removal_fraction": variant.removal_fraction,
        "data_source": variant.source,
        "provenance": dict(provenance.host(), versions=provenance.versions(),
                           device=provenance.device(), git_commit=provenance.git_commit(),
                           started_at=started, finished_at=provenance.now()),
        **longtail_methods.row_fields(cfg, variant.train_counts, metrics),
    })
    arrays = {"y_true": variant.y_test.astype(np.int64), "proba": proba,
              "y_pred": proba.argmax(axis=1)}
    return CaseOutcome(row, arrays, variant)
