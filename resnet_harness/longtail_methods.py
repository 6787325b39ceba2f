"""The long-tail study's methods on the Keras side: class weights, one loss for every method,
the deferred re-weighting callback, and post-hoc logit adjustment of saved predictions.

Every trained long-tail case compiles :class:`LongTailLoss`, whose three knobs are variables
(focal ``gamma``, per-class ``alpha``, logit-adjustment ``tau`` with the log-prior), so all of
them share one traced model -- as the paper's Table 10 heads share one graph -- and each case only
assigns its settings (:func:`prepare`). With gamma = 0, alpha = 1 and tau = 0 the loss is plain
cross-entropy.

Built-ins used where they fit: the focal term is Keras' own
``keras.losses.categorical_focal_crossentropy`` (it needs one-hot labels: the loss one-hots the
integer labels itself, per batch, so the pipeline, the ``accuracy`` metric and
``fit(class_weight=...)`` keep the integer labels every other case uses -- Keras has no sparse
focal loss, keras-team/keras#23442); class weights go through ``fit(class_weight=...)``; class-
balanced sampling is ``tf.data.Dataset.sample_from_datasets`` (in ``data.pipeline``). Written by
hand: the logit adjustment (the model ends in a softmax, so the loss works on log-probabilities:
``log p + tau log prior`` are logits up to a per-row constant, which the softmax cancels) and the
deferred re-weighting callback (Keras has no schedule for class weights).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .longtail import DRW_START, LongTailCase, Method, is_long_tail

LOSS_NAME = "longtail"  # ModelCache key: every long-tail case shares one compiled model
EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped to it before the log


# -- class weights (closed forms) --------------------------------------------------------------

def inverse_frequency_weights(counts: Sequence[int]) -> np.ndarray:
    """``N / (C n_c)``: scikit-learn's "balanced" weights; the mean weight per sample is 1."""
    counts = np.asarray(counts, dtype=np.float64)
    return counts.sum() / (len(counts) * counts)


def effective_number_weights(counts: Sequence[int], beta: float) -> np.ndarray:
    """Cui et al. 2019: ``(1 - beta) / (1 - beta ** n_c)``, normalised to sum to C (as in their
    code and LDAM-DRW's)."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return weights / weights.sum() * len(counts)


def class_weights(kind: str | None, counts: Sequence[int], beta: float) -> np.ndarray | None:
    """The per-class weights of ``kind`` ("inverse", "effective" or None)."""
    if kind is None:
        return None
    if kind == "inverse":
        return inverse_frequency_weights(counts)
    if kind == "effective":
        return effective_number_weights(counts, beta)
    raise ValueError(f"unknown class weighting {kind!r}; use inverse or effective")


def log_prior(counts: Sequence[int]) -> np.ndarray:
    """``log(n_c / N)``, the training label prior."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log(counts / counts.sum())


# -- the loss -----------------------------------------------------------------------------------

def _loss_class():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable("resnet_harness")
    class LongTailLoss(keras.losses.Loss):
        """Focal cross-entropy (Keras' own) of integer labels against the softmax of
        ``log p + tau * log_prior``; ``gamma``, ``alpha`` (C,) and ``tau * log_prior`` (C,) are
        variables set per case. gamma = 0, alpha = 1, shift = 0: cross-entropy."""

        def __init__(self, num_classes: int = 10, name: str = "longtail_loss", **kwargs):
            super().__init__(name=name, **kwargs)
            self.num_classes = num_classes
            self.gamma = keras.Variable(0.0, trainable=False, name="gamma")
            self.alpha = keras.Variable(np.ones(num_classes, np.float32), trainable=False,
                                        name="alpha")
            self.shift = keras.Variable(np.zeros(num_classes, np.float32), trainable=False,
                                        name="logit_shift")  # tau * log(prior)

        def call(self, y_true, y_pred):
            labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
            onehot = ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
            logits = ops.log(ops.clip(y_pred, EPSILON, 1.0)) + ops.cast(self.shift, y_pred.dtype)
            return keras.losses.categorical_focal_crossentropy(
                onehot, logits, alpha=ops.cast(self.alpha, y_pred.dtype),
                gamma=ops.cast(self.gamma, y_pred.dtype), from_logits=True)

        def get_config(self):
            return {"num_classes": self.num_classes, "name": self.name}

        def configure(self, *, gamma: float = 0.0, alpha=None, shift=None) -> None:
            """Set this case's knobs (None: all ones / all zeros)."""
            self.gamma.assign(float(gamma))
            self.alpha.assign(np.ones(self.num_classes, np.float32) if alpha is None
                              else np.asarray(alpha, np.float32))
            self.shift.assign(np.zeros(self.num_classes, np.float32) if shift is None
                              else np.asarray(shift, np.float32))

    return LongTailLoss


_LOSS = None


def longtail_loss(num_classes: int = 10):
    """A new :class:`LongTailLoss` (the class is made on first use: Keras loads lazily)."""
    global _LOSS
    if _LOSS is None:
        _LOSS = _loss_class()
    return _LOSS(num_classes)


def keras_loss(name: str):
    """The loss ``build_model`` compiles for loss ``name`` (Keras' names pass through)."""
    return longtail_loss() if name == LOSS_NAME else name


def model_kwargs(case) -> dict[str, Any]:
    """Extra ``ModelCache.get`` arguments of ``case``: the shared loss for long-tail cases."""
    return {"loss": LOSS_NAME} if is_long_tail(case) else {}


def resamples(case) -> bool:
    """Whether ``case`` trains on class-balanced batches."""
    return is_long_tail(case) and case.method_spec.resample


def drw_start_epoch(epochs: int) -> int:
    """The first re-weighted epoch (0-based): epoch 160 of 200 in LDAM-DRW; 2 of 3; 0 of 1."""
    return int(DRW_START * epochs)


def _drw_callback(loss, weights: np.ndarray, start: int):
    import keras

    class DeferredReweighting(keras.callbacks.Callback):
        """Uniform class weights until epoch ``start``, then ``weights`` (inside the loss)."""

        def on_epoch_begin(self, epoch, logs=None):
            loss.alpha.assign(np.asarray(weights if epoch >= start else np.ones_like(weights),
                                         np.float32))

    return DeferredReweighting()


def prepare(cfg, model, train_counts: Sequence[int]) -> dict[str, Any]:
    """Configure ``model``'s loss for ``cfg.case``'s method and return extra ``fit`` arguments
    (``class_weight``, ``callbacks``); ``{}`` for the paper's cases."""
    case = cfg.case
    if not is_long_tail(case):
        return {}
    method: Method = case.method_spec
    beta, tau = cfg.cb_beta, cfg.la_tau
    loss = model.loss
    alpha = class_weights(method.alpha, train_counts, beta)
    shift = tau * log_prior(train_counts) if method.tau else None
    loss.configure(gamma=method.gamma, alpha=alpha, shift=shift)
    weights = class_weights(method.class_weight, train_counts, beta)
    if weights is None or method.alpha:
        return {}
    if method.deferred:
        return {"callbacks": [_drw_callback(loss, weights, drw_start_epoch(cfg.epochs))]}
    return {"class_weight": {c: float(w) for c, w in enumerate(weights)}}


# -- post-hoc logit adjustment -----------------------------------------------------------------

def posthoc_adjust(proba: np.ndarray, counts: Sequence[int], tau: float) -> np.ndarray:
    """Menon et al. 2021, post-hoc: ``softmax(log p - tau log prior)``, row-normalised."""
    logits = np.log(np.clip(np.asarray(proba, np.float64), 1e-12, 1.0)) - tau * log_prior(counts)
    logits -= logits.max(axis=1, keepdims=True)
    adjusted = np.exp(logits)
    return adjusted / adjusted.sum(axis=1, keepdims=True)


def run_posthoc(cfg, raw, folder):
    """The post-hoc arm: the ce arm's saved predictions in ``folder``, adjusted; no training.

    Refuses (``DataError``, one line) when that row is missing or ran with another scale, seed,
    data set variant or backbone.
    """
    import time

    import psutil

    from . import provenance, schema
    from .config import comparable_config
    from .data import DataError, make_variant
    from .matrix import NUM_CLASSES
    from .metrics import compute_metrics
    from .runner import CaseOutcome

    case: LongTailCase = cfg.case
    source = case.source_case()
    started = provenance.now()
    row = folder.row(source.id) if folder is not None else None
    fix = (f"select it too (-m \"{case.profile} and (ce or posthoc_la)\"; it runs first in "
           "one process) or --resume a run folder that has it")
    if row is None or row.get("status") not in ("passed", "failed"):
        raise DataError(f"post-hoc logit adjustment needs the finished row of {source.id} in "
                        f"this run folder; {fix}")
    mine = comparable_config(cfg.as_dict())
    theirs = comparable_config(row.get("config"))
    for key in ("epochs", "weights", "max_train_samples", "max_test_samples", "backbone",
                "data_source"):
        if mine.get(key) != theirs.get(key):
            raise DataError(f"{source.id} in this run folder ran with {key}={theirs.get(key)!r}, "
                            f"this case has {mine.get(key)!r}; {fix}")
    if (row.get("scale"), row.get("seed")) != (cfg.scale, cfg.seed):
        raise DataError(f"{source.id} in this run folder ran at scale {row.get('scale')} seed "
                        f"{row.get('seed')}, this case at {cfg.scale} seed {cfg.seed}; {fix}")
    variant = make_variant(raw, cfg)
    saved = folder.load_predictions(source.id)
    if not np.array_equal(saved["y_true"], variant.y_test):
        raise DataError(f"the saved test labels of {source.id} differ from this case's test set; "
                        f"{fix}")
    t0 = time.perf_counter()
    proba = posthoc_adjust(saved["proba"], variant.train_counts, cfg.la_tau)
    metrics = compute_metrics(variant.y_test, proba, NUM_CLASSES)
    adjust_time = time.perf_counter() - t0
    extra = row_fields(cfg, variant.train_counts, metrics)
    extra["long_tail"]["source_case"] = source.id
    out = schema.measured_row(cfg, **{
        "metrics": metrics, "train_time_s": 0.0, "test_time_s": adjust_time,
        "peak_rss_mb": psutil.Process().memory_info().rss / 2**20,
        "train_samples": len(variant.y_train), "test_samples": len(variant.y_test),
        "train_counts": variant.train_counts, "test_counts": variant.test_counts,
        "counts_before_imbalance": variant.counts_before_imbalance,
        "reduced_classes": list(variant.reduced_classes),
        "removal_fraction": variant.removal_fraction, "data_source": variant.source,
        "provenance": dict(provenance.host(), versions=provenance.versions(),
                           device=provenance.device(), git_commit=provenance.git_commit(),
                           started_at=started, finished_at=provenance.now()),
        **extra})
    arrays = {"y_true": variant.y_test.astype(np.int64), "proba": proba,
              "y_pred": proba.argmax(axis=1)}
    return CaseOutcome(out, arrays, variant)


def row_fields(cfg, train_counts: Sequence[int], metrics: dict[str, Any]) -> dict[str, Any]:
    """The long-tail part of a row: head/middle/tail accuracy and the ``long_tail`` record
    (profile, method, groups); ``{}`` for the paper's cases."""
    from .longtail import groups

    case = cfg.case
    if not is_long_tail(case):
        return {}
    recall = metrics["per_class"]["recall"]
    members = groups(train_counts)
    out: dict[str, Any] = {f"{name}_accuracy": float(np.mean([recall[c] for c in classes]))
                           for name, classes in members.items()}
    out["long_tail"] = dict(case.profile_spec.as_dict(), method=case.method, groups=members,
                            effective_rho=max(train_counts) / max(1, min(train_counts)))
    return out


def is_posthoc(case) -> bool:
    """Whether ``case`` is a post-hoc arm (no training)."""
    return is_long_tail(case) and case.method_spec.posthoc
