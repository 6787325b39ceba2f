"""Data: raw sources (``sources``), the study's variants (``variants``) and the tf.data input
pipeline (``pipeline``)."""

from __future__ import annotations

from pathlib import Path

from resnet_harness.training.data.sources import (CLASS_NAMES, DEBIAN_FASHION_MNIST, DataError, RawData, load_keras,
                      load_local, synthetic)
from resnet_harness.training.data.variants import Variant, expected_train_counts, make_variant

__all__ = ["CLASS_NAMES", "DataError", "RawData", "Variant", "default_cache_dir",
           "expected_train_counts", "load_raw", "make_variant", "synthetic"]


def default_cache_dir() -> Path:
    """Where decoded image folders are cached: ``$RESNET_HARNESS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/resnet-harness`` (``~/.cache/resnet-harness``)."""
    import os

    base = os.environ.get("RESNET_HARNESS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "resnet-harness")
    return Path(base)


def load_raw(dataset: str, *, data_source: str = "auto", data_dir: Path | None = None,
             cache_dir: Path | None = None, seed: int = 0,
             synthetic_size: tuple[int, int] = (60, 20)) -> RawData:
    """Load ``dataset`` from the first source that applies.

    ``synthetic`` makes a small learnable stand-in; ``auto`` uses ``data_dir`` when given (an
    error if it is unusable), then Debian's Fashion-MNIST package, then Keras (cache, download).
    """
    if data_source == "synthetic":
        return synthetic(dataset, *synthetic_size, seed=seed)
    with _prepare_lock(cache_dir, dataset):
        if data_dir is not None:
            return load_local(Path(data_dir), dataset, cache_dir)
        if dataset == "fashion_mnist" and DEBIAN_FASHION_MNIST.is_dir():
            return load_local(DEBIAN_FASHION_MNIST, dataset, cache_dir)
        return load_keras(dataset)


def _prepare_lock(cache_dir: Path | None, dataset: str):
    """A lock across processes (xdist workers) while a data set is prepared: Keras unpacks the
    CIFAR-10 archive into the same folder on every load, and the image-folder cache is written
    once; the second worker waits, then reads what the first prepared."""
    import contextlib

    if cache_dir is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    except OSError:
        return contextlib.nullcontext()  # a read-only cache location: no sharing to guard
    return FileLock(str(Path(cache_dir) / f"{dataset}.lock"))
