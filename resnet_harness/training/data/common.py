"""What every data module shares: the data sets' names, shapes and classes, and the one-line
error a loader raises (kept apart from the loaders so that each may import it)."""

from __future__ import annotations

from pathlib import Path

CLASS_NAMES = {
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
}
DATASETS = tuple(CLASS_NAMES)
NUM_CLASSES = 10  # both data sets have ten classes
NATIVE_SHAPE = {"cifar10": (32, 32, 3), "fashion_mnist": (28, 28, 1)}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class DataError(Exception):
    """A data set cannot be loaded; the message is one line with the fix."""

    def __init__(self, message: str):
        super().__init__(printable(message))


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of a path (``os.fsdecode``'s surrogates) shown as
    ``\\xff``, so that a message or result row naming a non-UTF-8 path can be printed and
    written as UTF-8."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")
