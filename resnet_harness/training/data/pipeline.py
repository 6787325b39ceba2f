"""The tf.data input pipeline: uint8 images stay uint8 in memory until a batch is drawn; each batch
is scaled to [0, 1], resized to 32x32x3 when needed (Fashion-MNIST) and, for augmented training
sets, rotated, shifted and flipped by Keras preprocessing layers."""

from __future__ import annotations

import numpy as np

INPUT_SHAPE = (32, 32, 3)
ROTATION_DEGREES = 20  # Tables 3 and 5: rotation_range=20
SHIFT_FRACTION = 0.2  # Tables 3 and 5: width/height shift range 0.2
# Batch of every inference pass (test set, diagnostics, validation). Inference-mode outputs do
# not depend on the batch; larger batches use the CPU better (bench/inference_speed.py).
INFERENCE_BATCH = 256


def augmentation(seed: int, hflip: bool = True):
    """The paper's augmentation as Keras layers. ``fill_mode="nearest"`` is the default of the
    ``ImageDataGenerator`` the paper used (Keras layers default to "reflect")."""
    import keras

    layers = [
        keras.layers.RandomRotation(ROTATION_DEGREES / 360, fill_mode="nearest", seed=seed),
        keras.layers.RandomTranslation(SHIFT_FRACTION, SHIFT_FRACTION, fill_mode="nearest",
                                       seed=seed + 1),
    ]
    if hflip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 2))
    return layers


def crop_flip(seed: int):
    """The CIFAR literature's augmentation (LDAM-DRW, ``RandomCrop(32, padding=4)`` then
    ``RandomHorizontalFlip``): zero-pad 4 pixels, crop a random 32x32 window of each image
    (:func:`per_image_crop`), flip."""
    import keras

    return [keras.layers.ZeroPadding2D(4), per_image_crop(32, 32, seed),
            keras.layers.RandomFlip("horizontal", seed=seed + 2)]


def per_image_crop(height: int, width: int, seed: int):
    """``keras.layers.RandomCrop`` with an offset drawn for each image, as torchvision's
    ``RandomCrop`` crops each image of a batch on its own. Keras 3's layer draws one offset per
    batch: 128 copies of one image came out as 2 distinct images (the flip's two)."""
    import keras

    class PerImageCrop(keras.layers.RandomCrop):
        def get_random_transformation(self, data, training=True, seed=None):
            images = data["images"] if isinstance(data, dict) else data
            shape = self.backend.shape(images)
            if not training or len(images.shape) != 4 or shape[1] <= self.height \
                    or shape[2] <= self.width:
                return super().get_random_transformation(data, training, seed)
            seed = seed if seed is not None else self._get_seed_generator(
                self.backend._backend)
            starts = []
            for size, target in ((shape[1], self.height), (shape[2], self.width)):
                starts.append(self.backend.cast(self.backend.random.uniform(
                    (shape[0],), 0, maxval=float(size - target + 1), seed=seed), "int32"))
            return tuple(starts)

        def transform_images(self, images, transformation, training=True):
            rows, cols = transformation
            if not training or isinstance(rows, int) or len(rows.shape) != 1:
                return super().transform_images(images, transformation, training)
            ops = self.backend.numpy
            images = self.backend.cast(images, self.compute_dtype)
            batch, channels = self.backend.shape(images)[0], images.shape[3]
            # Each image's own window: its rows, then its columns, gathered per image.
            index = rows[:, None] + ops.arange(self.height, dtype="int32")[None, :]
            index = ops.broadcast_to(index[:, :, None, None],
                                     (batch, self.height, images.shape[2], channels))
            images = ops.take_along_axis(images, index, axis=1)
            index = cols[:, None] + ops.arange(self.width, dtype="int32")[None, :]
            index = ops.broadcast_to(index[:, None, :, None],
                                     (batch, self.height, self.width, channels))
            return ops.take_along_axis(images, index, axis=2)

    return PerImageCrop(height, width, seed=seed)


def class_balanced_indices(y: np.ndarray, seed: int, weights=None):
    """An epoch of ``len(y)`` sample indices drawn by class: each draw picks a class with
    probability 1/C, or ``weights[c]`` when given (``sample_from_datasets``), then the next index
    of that class's reshuffled, repeated list. The epoch keeps the training set's size; small
    classes recur within it."""
    import tensorflow as tf

    y = np.asarray(y)
    classes = np.unique(y)
    if weights is not None:
        chosen = np.asarray(weights, np.float64)[classes]
        weights = (chosen / chosen.sum()).tolist()
    per_class = [tf.data.Dataset.from_tensor_slices(np.flatnonzero(y == c).astype(np.int64))
                 .shuffle(int(np.sum(y == c)), seed=seed + 1 + int(c),
                          reshuffle_each_iteration=True).repeat() for c in classes]
    return tf.data.Dataset.sample_from_datasets(
        per_class, weights=weights or [1.0 / len(classes)] * len(classes), seed=seed,
        rerandomize_each_iteration=True).take(len(y))


def _mix(values: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: a fixed, well-mixed 64-bit hash of each value.
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def common_order(keys: np.ndarray, seed: int, epochs: int) -> np.ndarray:
    """Each epoch's order of the images named ``keys`` (their indices into the data set):
    ``(epochs, len(keys))`` positions.

    Each image gets a priority that depends only on the seed, the epoch and its own index, and
    the epoch visits the images by priority. Two training sets of one seed therefore see the
    images they share in the same relative order (common random numbers): Table 10's arms, which
    train on the same images, get the same batches; Table 7's imbalanced arm sees the balanced
    arm's order with its removed images left out.
    """
    keys = np.asarray(keys, dtype=np.int64)
    out = np.empty((epochs, len(keys)), dtype=np.int64)
    for epoch in range(epochs):
        base = _mix(np.array([seed * 1_000_003 + epoch], dtype=np.int64))[0]
        priority = _mix(keys.astype(np.uint64) ^ base)
        out[epoch] = np.argsort(priority, kind="stable")
    return out


AUGMENTATION_KINDS = ("rotate_shift_flip", "crop_flip")


def make_dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int, training: bool, seed: int,
                 augment: bool = False, hflip: bool = True, class_balanced: bool = False,
                 augmentation_kind: str = "rotate_shift_flip", class_weights=None,
                 order_keys: np.ndarray | None = None, epochs: int | None = None):
    """A batched ``tf.data.Dataset`` of ``(float32 images in [0, 1], int64 labels)``.

    ``class_balanced`` (training only): batches drawn by :func:`class_balanced_indices`, with
    ``class_weights`` as the classes' probabilities when given. ``augmentation_kind``:
    "rotate_shift_flip" (:func:`augmentation`, the paper's) or "crop_flip" (:func:`crop_flip`).

    ``order_keys`` and ``epochs`` (training, not class-balanced): the images' indices into the
    data set; the dataset then holds all ``epochs`` epochs in :func:`common_order` and must be
    fitted with ``steps_per_epoch=`` :func:`steps_per_epoch` of it (an epoch's batches never
    mix two epochs). Without them each epoch is a fresh ``shuffle`` of the images.

    Shuffling works on indices and each batch is gathered from the NumPy array itself, so neither
    a shuffle buffer nor a tensor copy holds a second copy of the images.
    """
    import tensorflow as tf

    x = np.ascontiguousarray(x, dtype=np.uint8)
    labels = tf.convert_to_tensor(np.asarray(y, dtype=np.int64))
    batch_shape = (None,) + tuple(x.shape[1:])

    def gather(index):
        images = tf.numpy_function(lambda i: x[i], [index], tf.uint8, stateful=False)
        images.set_shape(batch_shape)
        return images
    needs_resize = tuple(x.shape[1:3]) != INPUT_SHAPE[:2]
    gray = x.shape[-1] == 1
    if augmentation_kind not in AUGMENTATION_KINDS:
        raise ValueError(f"unknown augmentation {augmentation_kind!r}; use "
                         f"{' or '.join(AUGMENTATION_KINDS)}")
    layers = [] if not augment else crop_flip(seed) if augmentation_kind == "crop_flip" \
        else augmentation(seed, hflip)

    def load(index):
        batch = tf.cast(gather(index), tf.float32) / 255.0
        if needs_resize:
            batch = tf.image.resize(batch, INPUT_SHAPE[:2], method="bilinear")
        if gray:
            batch = tf.repeat(batch, INPUT_SHAPE[2], axis=-1)
        for layer in layers:
            batch = layer(batch, training=True)
        return batch, tf.gather(labels, index)

    dataset = tf.data.Dataset.range(len(x))
    steps = None
    if training and class_balanced:
        dataset = class_balanced_indices(y, seed, class_weights)
    elif training and order_keys is not None and epochs:
        if len(order_keys) != len(x):
            raise ValueError(f"{len(order_keys)} order keys for {len(x)} images")
        orders = tf.data.Dataset.from_tensor_slices(common_order(order_keys, seed, epochs))
        dataset = orders.flat_map(
            lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
        steps = -(-len(x) // batch_size)
    elif training:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    # Plain Python control flow only: skipping AutoGraph's conversion saves ~0.2 s per data set.
    load = tf.autograph.experimental.do_not_convert(load)
    if steps is None:
        dataset = dataset.batch(batch_size)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # tf.data's autotuning model is off, so AUTOTUNE above means TensorFlow's defaults (as many
    # parallel calls as cores). With it on, destroying an iterator at the end of ``fit`` or
    # ``predict`` waited for the tuner's next wake-up, which come at 5.1 s, 10.2 s, ... after the
    # start: 11 of the 21 smoke cases lost 0.4-5 s each, 35 s in all (measured, TF 2.21).
    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
    dataset._harness_steps_per_epoch = steps  # noqa: SLF001 - read by steps_per_epoch()
    return dataset


def steps_per_epoch(dataset) -> int | None:
    """The ``steps_per_epoch`` that ``fit`` needs for a dataset of :func:`make_dataset` that
    holds all its epochs (None: one pass of the dataset is one epoch)."""
    return getattr(dataset, "_harness_steps_per_epoch", None)
