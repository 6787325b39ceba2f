"""The long-tail study's methods on the Keras side: class weights, one loss for every method,
the deferred re-weighting callback, and post-hoc logit adjustment of saved predictions.

Every trained long-tail case compiles :class:`LongTailLoss`, whose three knobs are variables
(focal ``gamma``, per-class ``alpha``, logit-adjustment ``tau`` with the log-prior), so all of
them share one traced model -- as the paper's Table 10 heads share one graph -- and each case only
assigns its settings (the study's ``before_fit`` hook). With gamma = 0, alpha = 1 and tau = 0 the loss is plain
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

DRW_START = 0.8  # LDAM-DRW re-weights from epoch 160 of 200
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


def drw_start_epoch(epochs: int) -> int:
    """The first re-weighted epoch (0-based): epoch 160 of 200 in LDAM-DRW; 2 of 3; 0 of 1."""
    return int(DRW_START * epochs)


def drw_callback(loss, weights: np.ndarray, start: int):
    import keras

    class DeferredReweighting(keras.callbacks.Callback):
        """Uniform class weights until epoch ``start``, then ``weights`` (inside the loss)."""

        def on_epoch_begin(self, epoch, logs=None):
            loss.alpha.assign(np.asarray(weights if epoch >= start else np.ones_like(weights),
                                         np.float32))

    return DeferredReweighting()


# -- post-hoc logit adjustment -----------------------------------------------------------------

def posthoc_adjust(proba: np.ndarray, counts: Sequence[int], tau: float) -> np.ndarray:
    """Menon et al. 2021, post-hoc: ``softmax(log p - tau log prior)``, row-normalised."""
    logits = np.log(np.clip(np.asarray(proba, np.float64), 1e-12, 1.0)) - tau * log_prior(counts)
    logits -= logits.max(axis=1, keepdims=True)
    adjusted = np.exp(logits)
    return adjusted / adjusted.sum(axis=1, keepdims=True)
