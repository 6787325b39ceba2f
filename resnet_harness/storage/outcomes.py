"""Each test image's label and predicted class, packed into one text cell of a row.

Two runs scored on the same test images can be compared image by image: the test-set noise of
their difference is the variance of the per-image difference, not the sum of two runs'
variances (``analysis.pairing``). For that the analysis needs, per run, which class each test
image has and which one the run predicted. A row keeps them as ``test_outcomes`` (labels then
predictions, one byte each, zlib, base64: about 3-7 KB for 10,000 images) and names its test
images by ``test_set`` (a digest of their indices into the data set and of the data's
fingerprint), so ``results.csv`` alone pairs runs exactly as the run folder does.
"""

from __future__ import annotations

import base64
import hashlib
import zlib

import numpy as np

PREFIX = "z1:"
MAX_CLASSES = 256  # one byte per label and prediction


class OutcomeError(ValueError):
    """A ``test_outcomes`` cell that cannot be decoded; the message says what is wrong."""


def encode(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """``test_outcomes`` of a run: its test labels and predicted classes, in test-set order."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise OutcomeError(f"labels {y_true.shape} and predictions {y_pred.shape} must be two "
                           "vectors of one length")
    both = np.concatenate([y_true, y_pred]).astype(np.int64)
    if len(both) and (both.min() < 0 or both.max() >= MAX_CLASSES):
        raise OutcomeError(f"class numbers must lie in 0..{MAX_CLASSES - 1}")
    # Labels first, then predictions: two streams compress better than interleaved pairs (the
    # labels of a class-ordered test set take ~100 bytes).
    packed = zlib.compress(both.astype(np.uint8).tobytes(), 9)
    return PREFIX + base64.b64encode(packed).decode("ascii")


def decode(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_pred)`` of a ``test_outcomes`` cell; :class:`OutcomeError` when damaged."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise OutcomeError(f"test_outcomes must start with {PREFIX!r}")
    try:
        raw = zlib.decompress(base64.b64decode(text[len(PREFIX):], validate=True))
    except (ValueError, zlib.error) as exc:
        raise OutcomeError(f"test_outcomes cannot be decoded ({type(exc).__name__})") from None
    if len(raw) % 2:
        raise OutcomeError("test_outcomes holds an odd number of bytes")
    both = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    half = len(both) // 2
    return both[:half], both[half:]


def test_set_digest(indices: np.ndarray, fingerprint: str | None) -> str:
    """The name of a test set: its images' indices into the data set and the data's
    fingerprint. Two rows with the same name were scored on the same images in the same
    order."""
    digest = hashlib.sha256(f"{fingerprint or ''};".encode())
    digest.update(np.ascontiguousarray(np.asarray(indices, dtype=np.int64)).tobytes())
    return digest.hexdigest()[:24]


def predicted_classes(y_pred: np.ndarray, classes: int) -> int:
    """How many classes a run predicted at least once (1: a degenerate run)."""
    return int(np.count_nonzero(np.bincount(np.asarray(y_pred, dtype=np.int64),
                                            minlength=classes)))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """The ``(num_classes, num_classes)`` confusion matrix, true classes down."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    return np.bincount(y_true * num_classes + y_pred,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro F1 of confusion matrices ``(..., K, K)``.

    Same definitions as ``training.metrics.compute_metrics`` (scikit-learn's): balanced accuracy
    is the mean recall over the classes present; macro F1 averages all K classes, 0 where
    undefined.
    """
    counts = np.asarray(counts, dtype=np.float64)
    tp = np.diagonal(counts, axis1=-2, axis2=-1)
    support, predicted = counts.sum(axis=-1), counts.sum(axis=-2)
    total = support.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        return {"accuracy": tp.sum(axis=-1) / total,
                "balanced_accuracy": np.nanmean(recall, axis=-1),
                "f1_macro": f1.mean(axis=-1)}
