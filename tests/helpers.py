"""Small builders shared by the unit tests: tiny IDX files, CIFAR-10 pickled batches, image
folders, raw data whose images encode their own sample id, and a tiny Keras backbone."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from resnet_harness.training.data.sources import CLASS_NAMES, IDX_FILES, RawData
from resnet_harness.training.data.sources import NUM_CLASSES


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x00 0x00 0x08 ndim, big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def fashion_arrays(n_train: int = 12, n_test: int = 10, seed: int = 0):
    """Tiny Fashion-MNIST-shaped arrays: (N, 28, 28) uint8 images and uint8 labels 0..9 (every
    class present in both splits, as the data check requires)."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    y_train = (np.arange(n_train) % NUM_CLASSES).astype(np.uint8)
    y_test = (np.arange(n_test) % NUM_CLASSES).astype(np.uint8)
    return x_train, y_train, x_test, y_test


def write_idx_folder(folder: Path, gz: bool = False, arrays=None) -> tuple[np.ndarray, ...]:
    """The four Fashion-MNIST IDX files in ``folder``; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = arrays if arrays is not None else fashion_arrays()
    for key, array in zip(("x_train", "y_train", "x_test", "y_test"), arrays):
        write_idx(folder / IDX_FILES[key], array, gz=gz)
    return arrays


def write_cifar_batches(folder: Path, per_batch: int = 4, n_test: int = 10, seed: int = 0):
    """Keras' CIFAR-10 cache layout (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``):
    each batch a pickled dict of ``b"data"`` (N, 3072) uint8 in CHW order and ``b"labels"``.
    Returns the (N, 3072) train/test data and labels written."""
    base = folder / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data, labels = [], []
    for i in range(1, 6):
        d = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        # Cycling labels: every class present once there are ten samples (the data check).
        lab = [(i * per_batch + j) % NUM_CLASSES for j in range(per_batch)]
        with (base / f"data_batch_{i}").open("wb") as handle:
            pickle.dump({b"data": d, b"labels": lab}, handle)
        data.append(d)
        labels.extend(lab)
    test = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_labels = [j % NUM_CLASSES for j in range(n_test)]
    with (base / "test_batch").open("wb") as handle:
        pickle.dump({b"data": test, b"labels": test_labels}, handle)
    return np.concatenate(data), np.asarray(labels), test, np.asarray(test_labels)


def class_value(label: int, index: int) -> int:
    """The fill value of image ``index`` of class ``label`` in :func:`write_image_folders`."""
    return 20 * label + index + 1


def write_image_folders(folder: Path, dataset: str = "cifar10", numeric: bool = False,
                        per_class: int = 2, size: tuple[int, int] | None = None) -> Path:
    """``train/<class>/*.png`` and ``test/<class>/*.png`` for all ten classes; every image is a
    constant of :func:`class_value` so that its label can be read back from its pixels."""
    from PIL import Image

    width, height = size or ((32, 32) if dataset == "cifar10" else (28, 28))
    mode = "RGB" if dataset == "cifar10" else "L"
    for split in ("train", "test"):
        for label, name in enumerate(CLASS_NAMES[dataset]):
            class_dir = folder / split / (str(label) if numeric else name.replace("/", "_"))
            class_dir.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                value = class_value(label, i)
                color = (value, value, value) if mode == "RGB" else value
                Image.new(mode, (width, height), color).save(class_dir / f"img{i}.png")
    return folder


def encode_id(ids: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 images of ``shape`` whose first two pixels hold ``id // 256`` and ``id % 256``."""
    images = np.zeros((len(ids),) + shape, dtype=np.uint8)
    flat = images.reshape(len(ids), -1)
    flat[:, 0] = ids // 256
    flat[:, 1] = ids % 256
    return images


def decode_id(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1).astype(np.int64)
    return flat[:, 0] * 256 + flat[:, 1]


def id_raw(dataset: str = "cifar10", train_per_class: int = 60,
           test_per_class: int = 20) -> RawData:
    """Raw data whose image ``i`` of the pooled train+test set encodes ``i``; labels ``i % 10``
    (so a label can be recomputed from an image's id)."""
    from resnet_harness.training.data.sources import NATIVE_SHAPE

    shape = NATIVE_SHAPE[dataset]
    n_train, n_test = train_per_class * NUM_CLASSES, test_per_class * NUM_CLASSES
    ids = np.arange(n_train + n_test)
    images = encode_id(ids, shape)
    labels = (ids % NUM_CLASSES).astype(np.int64)
    return RawData(images[:n_train], labels[:n_train], images[n_train:], labels[n_train:],
                   source=f"ids:{dataset}")


def tiny_backbone(weights: str):
    """A stand-in for ResNet50 with the same input shape: one Conv2D(4, 3)."""
    import keras

    inputs = keras.Input(shape=(32, 32, 3), name="image")
    outputs = keras.layers.Conv2D(4, 3, name="tiny_conv")(inputs)
    return keras.Model(inputs, outputs, name="tiny_backbone")


def find_case(table: str, dataset: str, balance: str = "balanced", split: float | None = None,
              regularization: str = "none"):
    """The matrix row with these attributes (independent of how case ids are spelled)."""
    from resnet_harness.studies.paper import CASES

    found = [c for c in CASES if (c.table, c.dataset, c.balance, c.split, c.regularization)
             == (table, dataset, balance, split, regularization)]
    assert len(found) == 1, (table, dataset, balance, split, regularization, found)
    return found[0]


# A project's root conftest.py loads the plugin (it is opt-in), as in this repository.
CONFTEST = 'pytest_plugins = ["resnet_harness.plugin"]\n'
# The experiments module as users have it, for pytester runs of the plugin end to end.
EXPERIMENTS = (Path(__file__).resolve().parents[1] / "experiments" / "test_study.py").read_text()
# Options that make such a run fast and offline: synthetic data, two-layer backbone.
FAST = ("--data-source", "synthetic", "--backbone", "tiny", "-p", "no:cacheprovider")


def bn_backbone(weights: str):
    """A stand-in for ResNet50 with two BatchNormalization layers (ResNet50 has 53), for the
    BatchNorm re-estimation tests: conv -> BN -> relu -> conv -> BN -> relu."""
    import keras

    inputs = keras.Input(shape=(32, 32, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="r1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, name="c2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    outputs = keras.layers.ReLU(name="r2")(x)
    return keras.Model(inputs, outputs, name="bn_backbone")


def write_resnet50_weights(path: Path, shapes=None, keras3: bool = False,
                           one_per_layer: bool = False) -> Path:
    """An HDF5 file in Keras' legacy weights layout (or with ``keras3`` the Keras 3
    ``layers/<name>/vars/<i>`` one) with ResNet50 notop's weight shapes (or ``shapes``); the
    datasets are never written, so the file stays a few hundred KB. ResNet50's arrays are
    grouped as its layers hold them (a convolution's kernel and bias, a batch norm's four);
    ``shapes`` given, or ``one_per_layer``, puts each array in a layer of its own."""
    import h5py

    from resnet_harness.training.weights import resnet50_notop_shapes

    grouped = shapes is None and not one_per_layer
    shapes = resnet50_notop_shapes() if shapes is None else shapes
    if keras3:
        with h5py.File(path, "w") as handle:
            for i, shape in enumerate(shapes):
                handle.create_dataset(f"layers/layer{i}/vars/0", shape=shape, dtype="float32")
        return path
    layers, i = [], 0
    while i < len(shapes):
        size = (2 if len(shapes[i]) == 4 else 4) if grouped else 1
        layers.append(shapes[i:i + size])
        i += size
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [f"layer{i}".encode() for i in range(len(layers))]
        for i, arrays in enumerate(layers):
            group = handle.create_group(f"layer{i}")
            group.attrs["weight_names"] = [f"layer{i}/w{j}".encode() for j in range(len(arrays))]
            for j, shape in enumerate(arrays):
                group.create_dataset(f"w{j}", shape=shape, dtype="float32")
    return path


# The long-tail study's experiments module, for pytester runs.
LONGTAIL_EXPERIMENTS = (Path(__file__).resolve().parents[1] / "experiments"
                        / "test_longtail.py").read_text()


def session(**settings):
    """A session's ``RunConfig`` from settings named as on the command line, the studies' own
    options included (``imbalance``, ``comparison``, ``cb_beta``, ...: into ``study_options``)."""
    from resnet_harness import study
    from resnet_harness.training.config import RunConfig

    study.load_builtin()
    dests = {option.dest for option in study.options()}
    options = {name: settings.pop(name) for name in list(settings) if name in dests}
    return RunConfig(**settings, study_options=options)
