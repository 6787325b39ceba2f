"""The long-tail study's methods on the Keras side: class weights, one loss for every method,
the deferred re-weighting callback, and post-hoc logit adjustment of saved predictions.

Every trained long-tail case compiles :class:`LongTailLoss`, whose three knobs are variables
(focal ``gamma``, per-class ``alpha``, logit-adjustment ``tau`` with the log-prior), so all of
them share one traced model -- as the paper's Table 10 heads share one graph -- and each case only
assigns its settings (the study's ``on_fit_start`` hook). With gamma = 0, alpha = 1 and tau = 0 the loss is plain
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

from typing import Sequence

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


def _reference_class():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable("resnet_harness")
    class ReferenceLoss(keras.losses.Loss):
        """The literature recipe's losses, on logits, as their reference code computes them.

        ``kind="softmax"`` (LDAM-DRW ``cifar_train.py``/``losses.py``): per sample
        ``l = w_y * CE(z + shift, y)``; with ``gamma`` > 0 LDAM-DRW's ``FocalLoss``,
        ``(1 - exp(-l)) ** gamma * l``; the batch's loss is the mean of ``l``, or with
        ``normalize`` (a weighted cross-entropy: PyTorch's ``F.cross_entropy(weight=w)``)
        ``sum(l) / sum(w_y)``. ``kind="sigmoid"`` (Cui et al. 2019, ``class_balanced_loss``):
        sigmoid focal loss over the C one-vs-rest logits, each sample's terms weighted by its
        class's weight, summed and divided by the batch size. ``gamma``, ``alpha`` (the class
        weights w), ``shift`` (tau log prior) and ``normalize`` are variables set per case."""

        def __init__(self, kind: str = "softmax", num_classes: int = 10,
                     name: str = "reference_loss", **kwargs):
            super().__init__(name=name, **kwargs)
            if kind not in ("softmax", "sigmoid"):
                raise ValueError(f"unknown reference loss {kind!r}; use softmax or sigmoid")
            self.kind, self.num_classes = kind, num_classes
            self.gamma = keras.Variable(0.0, trainable=False, name="gamma")
            self.alpha = keras.Variable(np.ones(num_classes, np.float32), trainable=False,
                                        name="alpha")
            self.shift = keras.Variable(np.zeros(num_classes, np.float32), trainable=False,
                                        name="logit_shift")
            self.normalize = keras.Variable(0.0, trainable=False, name="normalize")

        def call(self, y_true, y_pred):
            labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
            logits = ops.cast(y_pred, "float32") + self.shift
            onehot = ops.one_hot(labels, self.num_classes, dtype="float32")
            weight = ops.take(self.alpha, labels)  # each sample's class weight
            if self.kind == "sigmoid":
                bce = ops.relu(logits) - logits * onehot + ops.softplus(-ops.abs(logits))
                modulator = ops.exp(-self.gamma * onehot * logits
                                    - self.gamma * ops.softplus(-logits))
                return ops.sum(weight[:, None] * modulator * bce, axis=-1)
            ce = -ops.sum(onehot * ops.log_softmax(logits, axis=-1), axis=-1)
            loss = weight * ce
            # The floor keeps the power's gradient finite where a sample's loss is exactly 0.
            loss = ops.power(ops.maximum(1.0 - ops.exp(-loss), 1e-12), self.gamma) * loss
            batch = ops.cast(ops.shape(loss)[0], "float32")
            # Keras divides the returned values by the batch size; PyTorch's weighted mean
            # divides by the sum of the samples' weights instead.
            scale = self.normalize * batch / ops.sum(weight) + (1.0 - self.normalize)
            return loss * scale

        def get_config(self):
            return {"kind": self.kind, "num_classes": self.num_classes, "name": self.name}

        def configure(self, *, gamma: float = 0.0, alpha=None, shift=None,
                      normalize: bool = False) -> None:
            """Set this case's knobs (None: all ones / all zeros)."""
            self.gamma.assign(float(gamma))
            self.alpha.assign(np.ones(self.num_classes, np.float32) if alpha is None
                              else np.asarray(alpha, np.float32))
            self.shift.assign(np.zeros(self.num_classes, np.float32) if shift is None
                              else np.asarray(shift, np.float32))
            self.normalize.assign(1.0 if normalize else 0.0)

    return ReferenceLoss


_LOSS = None
_REFERENCE = None


def reference_loss(kind: str, num_classes: int = 10):
    """A new :class:`ReferenceLoss` of ``kind`` ("softmax" or "sigmoid")."""
    global _REFERENCE
    if _REFERENCE is None:
        _REFERENCE = _reference_class()
    return _REFERENCE(kind, num_classes)


# -- the literature recipe (LDAM-DRW's cifar_train.py) ------------------------------------------

LITERATURE_LR = 0.1
LITERATURE_MOMENTUM = 0.9
LITERATURE_WEIGHT_DECAY = 2e-4
LITERATURE_BATCH = 128
LITERATURE_EPOCHS = 200
REFERENCE_BETA = 0.9999  # LDAM-DRW's DRW and re-sampler: fixed, whatever --cb-beta says


def literature_lr(epoch: int, epochs: int = LITERATURE_EPOCHS,
                  base: float = LITERATURE_LR) -> float:
    """LDAM-DRW's ``adjust_learning_rate`` for 0-based ``epoch`` of a schedule of ``epochs``:
    linear warm-up over the first 5 of 200 epochs, then ``base``, x0.01 after epoch 160 and
    x0.0001 after 180. Another schedule length scales it in proportion (warm-up 2.5%, steps at
    80% and 90%); the long-tail study always uses 200, and a shorter run is its first epochs."""
    e = epoch + 1
    warm = 5.0 * epochs / LITERATURE_EPOCHS
    if e <= warm:
        return base * e / warm
    if e > 0.9 * epochs:
        return base * 1e-4
    if e > 0.8 * epochs:
        return base * 0.01
    return base


def literature_schedule(epochs: int):
    """The Keras callback that sets :func:`literature_lr` at each epoch's start."""
    import keras

    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: literature_lr(epoch, epochs))


def resampling_weights(counts: Sequence[int], beta: float = REFERENCE_BETA) -> np.ndarray:
    """LDAM-DRW's ``ImbalancedDatasetSampler``: each image drawn with probability proportional
    to its class's effective-number weight, so class c with probability ``n_c w_c`` (normalised):
    near uniform, a little more of the largest classes."""
    counts = np.asarray(counts, dtype=np.float64)
    per_class = counts * (1.0 - beta) / (1.0 - np.power(beta, counts))
    return per_class / per_class.sum()


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
