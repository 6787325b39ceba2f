"""Evaluate a trained case: test predictions as trained, BatchNorm re-estimation when the case
asks for it (``CaseConfig.bn_recalibrate``), test predictions again, and the learning diagnostics.

The runner calls :func:`evaluate` right after ``fit``; everything it returns goes into the row
(``metrics`` are the reported ones, re-estimated when re-estimation ran; ``metrics_as_trained``
are the model's as ``fit`` left it) and into the ``.npz`` (``proba`` reported,
``proba_as_trained``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from resnet_harness.training import diagnostics as diag
from resnet_harness.training.calibration import DEFAULT_BATCHES, calibration_indices, recalibrate_batchnorm
from resnet_harness.training.config import CaseConfig
from resnet_harness.training.data.pipeline import INFERENCE_BATCH, make_dataset
from resnet_harness.training.data.sources import NUM_CLASSES
from resnet_harness.training.metrics import compute_metrics, normalize_proba
from resnet_harness.training.model import predict


# Test images the as-trained model is scored on when BatchNorm statistics are re-estimated
# before testing (its figures are a diagnostic; the reported ones use the whole test set).
AS_TRAINED_TEST_SAMPLES = 1000


def _dataset(x: np.ndarray, y: np.ndarray, cfg: CaseConfig, index: np.ndarray,
             batch_size: int | None = None):
    # The test set's preprocessing: no shuffle, no augmentation.
    return make_dataset(x[index], y[index], batch_size=batch_size or INFERENCE_BATCH,
                        training=False, seed=cfg.seed)


def calibration_set(variant, cfg: CaseConfig):
    """The training batches BatchNorm statistics are re-estimated on, before testing and (under
    a validation set) at every epoch's end: one definition, so that validation sees the
    statistics the test will use."""
    index = calibration_indices(len(variant.y_train), cfg.case.batch_size, DEFAULT_BATCHES,
                                cfg.seed)
    # Batches of the training batch size: their statistics are what is averaged.
    return _dataset(variant.x_train, variant.y_train, cfg, index, cfg.case.batch_size)


def evaluate(model, variant, cfg: CaseConfig, test, history) -> tuple[dict[str, Any],
                                                                    dict[str, np.ndarray]]:
    """``(row fields, arrays)`` of a trained model on ``variant``'s test set ``test``.

    Row fields: ``metrics``, ``metrics_as_trained`` (on ``as_trained_test_samples`` test
    images: at most :data:`AS_TRAINED_TEST_SAMPLES` when re-estimation runs, saved as
    ``as_trained_index``), ``test_time_s`` (the reported prediction),
    ``bn_recalibration`` (None when off), the diagnostics ``train_loss``, ``train_accuracy``,
    ``train_inference_accuracy`` (+ ``_as_trained``), ``train_inference_samples``,
    ``warnings``, and ``evaluation_s`` (the time of all of it).
    """
    start = time.perf_counter()
    sample = diag.sample_indices(variant.y_train, min(diag.SAMPLE_SIZE, len(variant.y_test)),
                                 cfg.seed)
    sample_set = _dataset(variant.x_train, variant.y_train, cfg, sample)
    y_sample = variant.y_train[sample]
    n_test = len(variant.y_test)
    # Before re-estimation the model is only looked at, not reported: a stratified part of the
    # test set shows the as-trained collapse as well as the whole would, at a tenth of the cost
    # of a 10,000-image test set.
    part = (diag.sample_indices(variant.y_test, AS_TRAINED_TEST_SAMPLES, cfg.seed)
            if cfg.bn_recalibrate else np.arange(n_test))
    whole = len(part) == n_test

    def timed(dataset):
        t0 = time.perf_counter()
        return normalize_proba(predict(model, dataset)), time.perf_counter() - t0

    proba_trained, test_time = timed(test if whole else
                                     _dataset(variant.x_test, variant.y_test, cfg, part))
    inference_trained = diag.accuracy(y_sample, predict(model, sample_set))
    proba, inference, recalibration = proba_trained, inference_trained, None
    if cfg.bn_recalibrate:
        info = recalibrate_batchnorm(model, calibration_set(variant, cfg))
        recalibration = info.as_dict()
        if info.layers or not whole:
            proba, test_time = timed(test)
        if info.layers:
            inference = diag.accuracy(y_sample, predict(model, sample_set))

    train_accuracy = diag.history_last(history, "accuracy")
    warnings = diag.learning_warnings(train_accuracy, inference)
    metrics = compute_metrics(variant.y_test, proba, NUM_CLASSES)
    same = proba is proba_trained
    fields = {
        "metrics": metrics,
        "metrics_as_trained": metrics if same else compute_metrics(variant.y_test[part],
                                                                   proba_trained, NUM_CLASSES),
        "as_trained_test_samples": int(len(part)),
        "test_time_s": test_time,
        "bn_recalibrated": recalibration is not None and recalibration["layers"] > 0,
        "bn_recalibration": recalibration,
        "bn_recalibration_s": recalibration["seconds"] if recalibration else None,
        "train_loss": diag.history_last(history, "loss"),
        "train_accuracy": train_accuracy,
        "train_inference_accuracy": inference,
        "train_inference_accuracy_as_trained": inference_trained,
        "train_inference_samples": int(len(sample)),
        "inference_gap_margin": diag.GAP_MARGIN,
        "warnings": warnings,
        # All of this function: the reported test prediction plus what the diagnostics and the
        # re-estimation add (the as-trained test prediction, two predictions of the sample).
        "evaluation_s": time.perf_counter() - start,
    }
    arrays = {"y_true": variant.y_test.astype(np.int64), "proba": proba,
              "y_pred": proba.argmax(axis=1), "proba_as_trained": proba_trained}
    if not whole:
        arrays["as_trained_index"] = part.astype(np.int64)
    return fields, arrays
