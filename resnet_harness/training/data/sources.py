"""Where the raw images come from: local folders (three layouts), Debian's package, Keras, or a
synthetic generator.

Every loader returns a :class:`RawData` of uint8 ``NHWC`` images and int64 labels, in the data set's
own train/test split. Problems with the data become :class:`DataError`, a one-line message that
says what was looked for and how to fix it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnet_harness.storage.atomic import atomic_write_bytes

# The shared names live in common.py (the image decoder needs them too); imported from here
# by most of the package, so they are re-exported.
from resnet_harness.training.data.common import (  # noqa: F401
    CLASS_NAMES, DATASETS, DEBIAN_FASHION_MNIST, IDX_FILES, IMAGE_SUFFIXES, NATIVE_SHAPE,
    NUM_CLASSES, DataError, printable)


@dataclass
class RawData:
    """One data set in its own split: uint8 images ``(N, H, W, C)`` and int64 labels ``(N,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where it came from, for the result row

    @property
    def fingerprint(self) -> str:
        """A digest of every image and label (and the split's shapes), computed once: two runs
        with the same fingerprint trained and tested on the same data (~0.2 s for CIFAR-10)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            digest = hashlib.blake2b(digest_size=16)
            for array in (self.x_train, self.y_train, self.x_test, self.y_test):
                digest.update(repr((array.dtype.str, array.shape)).encode())
                digest.update(np.ascontiguousarray(array).data)
            cached = self.__dict__["_fingerprint"] = digest.hexdigest()
        return cached

    def validate(self, dataset: str) -> "RawData":
        """Check dtypes, shapes and label range; raise :class:`DataError` naming the problem."""
        shape = NATIVE_SHAPE[dataset]
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if y.ndim != 1 or y.dtype.kind not in "iu":
                raise DataError(f"{dataset} {part} labels from {self.source} have dtype "
                                f"{y.dtype} and shape {y.shape}; expected integers of shape "
                                "(N,), one class index per image: the label file is corrupt or "
                                "not a label file, re-create or download it again")
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != shape:
                raise DataError(f"{dataset} {part} images from {self.source} have dtype "
                                f"{x.dtype} and shape {x.shape}; expected uint8 (N, "
                                f"{', '.join(map(str, shape))})")
            if len(x) != len(y) or len(x) == 0:
                raise DataError(f"{dataset} {part} from {self.source} has {len(x)} images and "
                                f"{len(y)} labels; the files are truncated or mismatched")
            if y.min() < 0 or y.max() >= NUM_CLASSES:
                raise DataError(f"{dataset} {part} labels from {self.source} lie in "
                                f"[{y.min()}, {y.max()}], outside [0, {NUM_CLASSES}); "
                                "the label file is corrupt or belongs to another data set")
            missing = sorted(set(range(NUM_CLASSES)) - set(np.unique(y).tolist()))
            if missing:
                raise DataError(f"{dataset} {part} labels from {self.source} cover "
                                f"{NUM_CLASSES - len(missing)} of the {NUM_CLASSES} classes "
                                f"(none of class {', '.join(map(str, missing))}); the label file "
                                "is corrupt, truncated or of another data set, and per-class "
                                "metrics (ROC-AUC) need every class")
        return self


# ---------------------------------------------------------------------------------------------
# Layout: the original IDX files (Fashion-MNIST; also what Keras caches and Debian installs)


def _open_maybe_gz(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read {path}: {exc}; the file is corrupt or truncated, "
                        "download it again") from None


def read_idx(path: Path, ndims: tuple[int, ...] | None = None) -> np.ndarray:
    """Parse one IDX file (optionally gzipped) into a uint8 array, checking its header (and that
    it has one of ``ndims`` dimensions, when given)."""
    data = _open_maybe_gz(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number); "
                        "the file is corrupt or not an IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} holds {len(data)} bytes, less than its {ndim}-dimension header "
                        "needs; the file is truncated, download it again")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if ndims is not None and ndim not in ndims:
        raise DataError(f"{path} holds an array of shape {dims}, expected "
                        f"{' or '.join(f'{n} dimensions' for n in ndims)} "
                        f"({'one label per image' if ndims == (1,) else 'N images of H x W'}); "
                        "the file is corrupt or another file under its name, re-create or "
                        "download it again")
    expected = header + math.prod(dims)  # Python integers: a corrupt header cannot overflow
    if len(data) != expected:
        raise DataError(f"{path} holds {len(data)} bytes but its header promises {expected} "
                        f"(shape {dims}); the file is truncated, download it again")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz",
                 stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def is_idx_layout(folder: Path) -> bool:
    return _find_idx(folder, IDX_FILES["x_train"]) is not None


def load_idx_folder(folder: Path) -> RawData:
    """Load the four IDX files of a folder (``train-images-idx3-ubyte[.gz]`` ...)."""
    arrays = {}
    for key, stem in IDX_FILES.items():
        path = _find_idx(folder, stem)
        if path is None:
            raise DataError(f"{folder} has no {stem}[.gz]; an IDX folder needs all four files "
                            f"({', '.join(IDX_FILES.values())})")
        arrays[key] = read_idx(path, (1,) if key.startswith("y") else (3, 4))
    for part in ("train", "test"):
        x = arrays[f"x_{part}"]
        arrays[f"x_{part}"] = x[..., None] if x.ndim == 3 else x
        arrays[f"y_{part}"] = arrays[f"y_{part}"].astype(np.int64)
    return RawData(**arrays, source=printable(f"idx:{folder}"))


# ---------------------------------------------------------------------------------------------
# Layout: Keras' CIFAR-10 cache (cifar-10-batches-py/data_batch_1..5, test_batch)


def _cifar_batches_dir(folder: Path) -> Path | None:
    for candidate in (folder, folder / "cifar-10-batches-py"):
        if (candidate / "data_batch_1").is_file():
            return candidate
    return None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as handle:
            # The CIFAR-10 batches are pickles by design; only local files are read.
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    except FileNotFoundError:
        raise DataError(f"missing {path}; the CIFAR-10 batch folder needs data_batch_1..5 and "
                        "test_batch") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise DataError(f"cannot read CIFAR-10 batch {path} ({type(exc).__name__}: {exc}); "
                        "the file is corrupt or truncated, download it again") from None
    return images, labels


def load_cifar_batches(folder: Path) -> RawData:
    """Load Keras' cached ``cifar-10-batches-py`` folder."""
    base = _cifar_batches_dir(folder)
    parts = [_read_cifar_batch(base / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _read_cifar_batch(base / "test_batch")
    return RawData(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                   x_test, y_test, source=printable(f"cifar-batches:{base}"))


# ---------------------------------------------------------------------------------------------
# Layout: image folders train/<class>/*.jpg|png and test/<class>/...


def is_image_folder_layout(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def _class_index(dataset: str, names: list[str], folder: Path) -> dict[str, int]:
    """Each class folder's label, from its name or its index; anything else is refused, because
    a guessed mapping (alphabetical, say) would silently train images under the wrong labels."""
    expected = CLASS_NAMES[dataset]
    digits = sorted(n for n in names if n.isdigit())
    if digits and len(digits) < len(names):
        raise DataError(f"{folder} mixes class folders named by index ({', '.join(digits)}) "
                        "with folders named by class; name every class folder by its class "
                        f"name ({', '.join(n.replace('/', '_') for n in expected)}) or every "
                        "one by its index 0-9")
    if all(n.isdigit() for n in names):
        known = {str(i): i for i in range(NUM_CLASSES)}
        index = {n: known.get(n.lstrip("0") or "0") for n in names}
    else:
        known = {_norm(n): i for i, n in enumerate(expected)}
        index = {n: known.get(_norm(n)) for n in names}
    unknown = sorted(n for n, label in index.items() if label is None)
    expected_text = (f"expected the {dataset} class names "
                     f"({', '.join(n.replace('/', '_') for n in expected)}) or the indices 0-9")
    if unknown:
        raise DataError(f"{folder} has class folders that are not {dataset} classes: "
                        f"{', '.join(unknown)}; {expected_text}; rename or remove them")
    labels = list(index.values())
    twice = sorted({expected[label] for label in labels if labels.count(label) > 1})
    if twice:
        raise DataError(f"{folder} has more than one folder for the classes {', '.join(twice)}; "
                        f"keep one folder per class ({expected_text})")
    missing = [expected[label] for label in range(NUM_CLASSES) if label not in labels]
    if missing:
        raise DataError(f"{folder} has no class folder for {', '.join(missing)}; every class "
                        f"needs one ({expected_text})")
    return index


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _image_files(class_dir: Path) -> list[str]:
    """The image files of a class folder; anything else in it (but hidden files, tools' litter)
    is refused, naming it: an image silently left out changes the data set."""
    names = []
    with os.scandir(class_dir) as entries:  # d_type: no stat per file
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                raise DataError(f"class folder {class_dir} holds a sub-folder {entry.name!r}; "
                                "images must lie directly in their class folder: move them up "
                                "or remove it")
            if os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{class_dir / entry.name} is not an image the harness reads "
                                f"({', '.join(sorted(IMAGE_SUFFIXES))}); convert or remove it")
            names.append(entry.name)
    # Names, not Paths: sorting 60,000 Paths takes a second, 60,000 strings a few milliseconds.
    return sorted(names)


def _class_dirs(folder: Path, dataset: str) -> list[tuple[Path, int, list[str]]]:
    """The class folders of one split with their labels and image files, checked (names, one
    per class, none empty) without decoding anything."""
    if not folder.is_dir():
        raise DataError(f"{folder} is missing; image folders need train/<class>/ and "
                        "test/<class>/")
    # Hidden folders (.ipynb_checkpoints, .git) are tools' litter, not classes.
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    index = _class_index(dataset, [p.name for p in class_dirs], folder)
    found = []
    for class_dir in class_dirs:
        files = _image_files(class_dir)
        if not files:
            raise DataError(f"class folder {class_dir} holds no images "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))}); every class needs images, "
                            "add them or fix the folder")
        found.append((class_dir, index[class_dir.name], files))
    return found


def image_folder_files(folder: Path, dataset: str) -> dict[str, list[tuple[str, int, str]]]:
    """Per split, every image file as ``(split/class folder/file name, label, path)``, in a fixed
    order; the folder names are checked first (:class:`DataError`)."""
    return {split: [(f"{split}/{class_dir.name}/{name}", label, f"{class_dir}/{name}")
                    for class_dir, label, names in _class_dirs(folder / split, dataset)
                    for name in names]
            for split in ("train", "test")}


def load_image_folders(folder: Path, dataset: str, cache_dir: Path | None) -> RawData:
    """Decode ``train/<class>/*`` and ``test/<class>/*``; cache the arrays as one ``.npz``.

    Decoding 60,000 JPEGs takes a while, so the decoded arrays are cached under ``cache_dir``,
    keyed by the content of every file with its class folder and name (``images.content_key``);
    a memo of each file's stat spares reading unchanged files again. Both are written
    atomically, so concurrent xdist workers at worst decode twice and never read a half-written
    file.
    """
    from resnet_harness.training.data import images

    source = printable(f"image-folders:{folder}")
    # Names first: a cache made before this check proves nothing.
    files = image_folder_files(folder, dataset)
    every = files["train"] + files["test"]
    if cache_dir is None:
        arrays = [images.decode_files(files[split], dataset)[:2] for split in ("train", "test")]
        return RawData(*arrays[0], *arrays[1], source=source)
    path_id = hashlib.blake2b(os.fsencode(folder.resolve()), digest_size=8).hexdigest()
    memo = images.StatMemo(cache_dir / f"{dataset}-{path_id}.stats")
    digests, read = images.file_digests(every, memo)
    cache = cache_dir / f"{dataset}-{images.content_key(every, digests, dataset)}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as data:
                raw = RawData(*(data[k] for k in ("x_train", "y_train", "x_test", "y_test")),
                              source=source)
            memo.save()
            return raw
        except (OSError, ValueError, KeyError):
            cache.unlink(missing_ok=True)  # a stale or foreign file: decode again
    x_train, y_train, decoded = images.decode_files(files["train"], dataset, read, memo)
    x_test, y_test, decoded_test = images.decode_files(files["test"], dataset, read, memo)
    del read
    # Keyed by the bytes actually decoded: a file changed since the key above was computed
    # must not leave its new pixels under its old content's key.
    key = images.content_key(every, decoded + decoded_test, dataset)
    cache = cache_dir / f"{dataset}-{key}.npz"
    buffer = io.BytesIO()
    np.savez(buffer, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    try:
        atomic_write_bytes(cache, buffer.getvalue())
    except OSError:
        pass  # a read-only cache only costs the decoding time next run
    memo.save()
    return RawData(x_train, y_train, x_test, y_test, source=source)


# ---------------------------------------------------------------------------------------------
# Dispatch


def detect_layout(folder: Path, dataset: str) -> tuple[str, Path]:
    """Which layout ``folder`` holds for ``dataset`` and the folder to read it from, without
    loading anything; :class:`DataError` when it is none of them."""
    if not folder.is_dir():
        raise DataError(f"{dataset} data dir {folder} does not exist; pass --data-dir "
                        f"{dataset}=PATH with an existing folder")
    if dataset == "cifar10" and _cifar_batches_dir(folder) is not None:
        return "cifar-batches", folder
    for candidate in (folder, folder / "fashion-mnist"):
        if is_idx_layout(candidate):
            return "idx", candidate
    if is_image_folder_layout(folder):
        return "image-folders", folder
    subs = [p for p in folder.iterdir() if p.is_dir()]
    if len(subs) == 1 and (is_image_folder_layout(subs[0]) or is_idx_layout(subs[0])):
        return detect_layout(subs[0], dataset)  # e.g. the unpacked cifar10-jpeg/ folder
    raise DataError(
        f"{folder} is not a known {dataset} layout; expected the Keras cache "
        "(cifar-10-batches-py/ or the four *-idx*-ubyte.gz files), IDX files, or image "
        "folders train/<class>/*.jpg + test/<class>/*.jpg")


def load_local(folder: Path, dataset: str, cache_dir: Path | None = None) -> RawData:
    """Load ``dataset`` from a local folder in any supported layout."""
    layout, folder = detect_layout(folder, dataset)
    if layout == "cifar-batches":
        raw = load_cifar_batches(folder)
    elif layout == "idx":
        raw = load_idx_folder(folder)
    else:
        raw = load_image_folders(folder, dataset, cache_dir)
    return raw.validate(dataset)


def load_keras(dataset: str) -> RawData:
    """Keras' own loader: the cache under ``$KERAS_HOME`` (``~/.keras``), else a download."""
    import keras

    loader = {"cifar10": keras.datasets.cifar10,
              "fashion_mnist": keras.datasets.fashion_mnist}[dataset]
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # noqa: BLE001 - network, HTTP and archive errors all mean "no data"
        keras_home = os.environ.get("KERAS_HOME", "~/.keras")
        raise DataError(
            f"cannot load {dataset}: no --data-dir given, "
            f"{'nothing at ' + str(DEBIAN_FASHION_MNIST) + ', ' if dataset == 'fashion_mnist' else ''}"
            f"not in the Keras cache ({keras_home}/datasets) and the download failed "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"pass --data-dir {dataset}=PATH (see README, 'Using local data') or "
            "--data-source synthetic") from None
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    return RawData(x_train, y_train.astype(np.int64).ravel(), x_test,
                   y_test.astype(np.int64).ravel(), source=f"keras:{dataset}").validate(dataset)


def synthetic(dataset: str, train_per_class: int = 60, test_per_class: int = 20,
              seed: int = 0) -> RawData:
    """A small learnable stand-in with the data set's native shape: each class is a fixed smooth
    random template plus per-image noise and brightness jitter."""
    height, width, channels = NATIVE_SHAPE[dataset]
    rng = np.random.default_rng([seed, NUM_CLASSES, height, channels])
    coarse = rng.uniform(0, 255, size=(NUM_CLASSES, 4, 4, channels))
    templates = np.kron(coarse, np.ones((1, height // 4 + 1, width // 4 + 1, 1)))
    templates = templates[:, :height, :width, :]

    def draw(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(NUM_CLASSES), per_class)
        noise = rng.normal(0, 40, size=(len(labels), height, width, channels))
        gain = rng.uniform(0.7, 1.1, size=(len(labels), 1, 1, 1))
        images = np.clip(templates[labels] * gain + noise, 0, 255).astype(np.uint8)
        order = rng.permutation(len(labels))
        return images[order], labels[order].astype(np.int64)

    x_train, y_train = draw(train_per_class)
    x_test, y_test = draw(test_per_class)
    return RawData(x_train, y_train, x_test, y_test, source=f"synthetic:{dataset}")
