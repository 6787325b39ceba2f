"""BatchNorm re-estimation before evaluation ("precise BN"), with no weight changed.

Why: after a few hundred steps of fast-changing weights (random init, 3 epochs), the moving
averages of BatchNorm (momentum 0.99, so ~100 steps of memory) describe activations that the
network no longer produces. Inference-mode predictions then collapse towards a few classes although
the model learned: an independent plain-Keras run at reduced scale measured test accuracy 0.375
(Fashion-MNIST) and 0.110 (CIFAR-10) as trained, 0.764 and 0.329 after re-estimating the
statistics (issue 10).

What: :func:`recalibrate_batchnorm` sets every *trainable* BatchNorm layer's ``moving_mean`` and
``moving_variance`` to the exact average, over a fixed set of batches, of the per-batch mean and
(biased) variance that the layer computes in training mode -- the estimator of pycls'
``compute_precise_bn_stats`` and fvcore/detectron2's ``update_bn_stats`` (the "mean of per-batch
variances", not the variance of the pooled activations: it is what the layer normalised by while
it trained). Each batch runs through the whole model in training mode, so every layer sees its
inputs normalised by batch statistics, as in training.

Frozen BatchNorm layers (``trainable=False``, Table 6's frozen base) are left alone: Keras 3 runs
them in inference mode during training too, so their moving statistics are exactly what training
used.

The batches are *not* augmented: they are training images with the test set's preprocessing, so
the statistics describe the inputs the model meets at evaluation. Augmentation (rotation, shifts
with nearest fill, flips) is a training regulariser; carrying it into the statistics would
describe a distribution that no test image comes from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

# 32 batches of the case's batch size (32): 1,024 images. pycls uses 8,192 images at ImageNet
# scale; on this project's CPU the forward pass costs about as much per image as ~1/3 of a
# training step, so 1,024 images keep the cost well below 10% of a reduced-scale training run
# (measured in bench/README.md) while averaging out the per-batch noise of 32-image batches.
DEFAULT_BATCHES = 32


@dataclass(frozen=True)
class Recalibration:
    """What :func:`recalibrate_batchnorm` did: layers updated, layers left frozen, batches,
    images, seconds in all and of the first batch (which includes tracing the step the first
    time a model is recalibrated)."""

    layers: int
    frozen_layers: int
    batches: int
    images: int
    seconds: float
    first_batch_s: float | None = None

    def as_dict(self) -> dict:
        return {"layers": self.layers, "frozen_layers": self.frozen_layers,
                "batches": self.batches, "images": self.images, "seconds": self.seconds,
                "first_batch_s": self.first_batch_s}


def batchnorm_layers(model) -> tuple[list, list]:
    """``(trainable, frozen)`` BatchNormalization layers of ``model``, nested models included."""
    import keras

    found = [layer for layer in model._flatten_layers(include_self=False)  # noqa: SLF001
             if isinstance(layer, keras.layers.BatchNormalization)]
    return ([layer for layer in found if layer.trainable],
            [layer for layer in found if not layer.trainable])


def calibration_indices(n_train: int, batch_size: int, batches: int, seed: int) -> np.ndarray:
    """A seeded random choice of ``batches * batch_size`` training indices (whole batches only;
    every index once at most; all whole batches of a smaller training set)."""
    whole = (n_train // batch_size) * batch_size or n_train
    size = min(batches * batch_size, whole)
    rng = np.random.default_rng([seed, 10])  # its own stream: independent of subsets and splits
    return np.sort(rng.choice(n_train, size=size, replace=False))


def _functions(model, layers):
    """The model's traced step and assign functions, made once per model and reused by every case
    (tracing ResNet50's training-mode forward pass takes seconds on a CPU)."""
    import tensorflow as tf

    cached = getattr(model, "_harness_bn_functions", None)
    if cached is not None and cached[0] == [id(layer) for layer in layers]:
        return cached[1], cached[2]
    spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)

    @tf.function(input_signature=[spec])
    def step(images):
        # Momentum 0 (set around every call, read when this is traced): each training-mode call
        # leaves exactly this batch's mean and variance in the moving statistics.
        model(images, training=True)
        return ([tf.identity(layer.moving_mean) for layer in layers],
                [tf.identity(layer.moving_variance) for layer in layers])

    @tf.function
    def assign(means, variances):
        for layer, mean, variance in zip(layers, means, variances):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)

    model._harness_bn_functions = ([id(layer) for layer in layers], step, assign)  # noqa: SLF001
    return step, assign


def recalibrate_batchnorm(model, dataset) -> Recalibration:
    """Set every trainable BatchNorm layer's moving mean and variance to the average of its
    per-batch statistics over ``dataset`` (batches of images, or of ``(images, labels)``).

    No trainable weight changes; frozen BatchNorm layers keep their statistics. Layers such as
    dropout run in training mode during this pass, their outputs unused. The layers' momentum is
    restored afterwards, also when a batch fails.
    """
    import tensorflow as tf

    start = time.perf_counter()
    layers, frozen = batchnorm_layers(model)
    if not layers:
        return Recalibration(0, len(frozen), 0, 0, time.perf_counter() - start)
    momenta = [layer.momentum for layer in layers]
    step, assign = None, None
    sums_mean = [np.zeros(layer.moving_mean.shape, np.float64) for layer in layers]
    sums_var = [np.zeros(layer.moving_variance.shape, np.float64) for layer in layers]
    batches = images = 0
    first_batch_s = None
    try:
        for layer in layers:
            layer.momentum = 0.0
        step, assign = _functions(model, layers)
        for batch in dataset:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            means, variances = step(tf.cast(x, tf.float32))
            for k in range(len(layers)):
                sums_mean[k] += means[k].numpy()
                sums_var[k] += variances[k].numpy()
            batches += 1
            images += int(x.shape[0])
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - start
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if batches == 0:
        raise ValueError("BatchNorm recalibration got no batches; pass a non-empty data set")
    assign([tf.constant(s / batches, tf.float32) for s in sums_mean],
           [tf.constant(s / batches, tf.float32) for s in sums_var])
    return Recalibration(len(layers), len(frozen), batches, images, time.perf_counter() - start,
                         first_batch_s)


def recalibrated_validation(calibration, validation):
    """A Keras callback for ``fit``: at each epoch's end, re-estimate BatchNorm statistics on
    ``calibration`` (:func:`recalibrate_batchnorm`) and write the model's loss and metrics on
    ``validation`` into the epoch's logs as ``val_<name>``, where ``fit(validation_data=...)``
    puts them: EarlyStopping, the history and the progress line read them from there.

    A training step uses each batch's own statistics, so the updates are those of a run
    validated by Keras, except that the re-estimation pass (training mode) advances dropout's
    random stream: with dropout in the head the run differs as another draw would. The moving
    statistics carry on from the re-estimated ones.
    """
    import keras

    class RecalibratedValidation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            recalibrate_batchnorm(self.model, calibration)
            scores = self.model.evaluate(validation, verbose=0, return_dict=True)
            if logs is not None:
                logs.update({f"val_{name}": float(value) for name, value in scores.items()})

    return RecalibratedValidation()
