"""Image folders: reading each file once, converting its pixels exactly to what the model expects,
and the content key of the decoded-image cache.

Exact conversions (anything else is a one-line :class:`DataError` naming the file and its mode):

=================  ===================================================================
mode               to uint8 RGB (cifar10) / uint8 L (fashion_mnist)
=================  ===================================================================
RGB, L             as they are (the fast path); L -> RGB replicates the gray value,
                   RGB -> L only when every pixel has R == G == B (then that value)
1                  0 / 255
P, PA              through the palette (and its transparency) to RGBA, then as RGBA
RGBA, LA, RGBa,    only when alpha is 255 everywhere (then alpha is dropped); a tRNS
La, + tRNS key     colour key in an L, RGB, 1 or 16-bit image counts as alpha too
RGBX               the padding byte is dropped
I;16, I;16B/L/N    16-bit gray to 8 bits as round(v * 255 / 65535) = (v + 128) // 257,
I (0..65535)       which gives an 8-bit image saved as 16 bits (v = 257 * x) back exactly
=================  ===================================================================

Refused by name: CMYK, YCbCr, LAB, HSV, F (float), I outside 0..65535, 16-bit RGB, RGBA and
gray+alpha PNGs (Pillow would keep only the high byte of each channel) and any mode not listed.

The cache key is a digest of every file's *content* (with its split, class folder, name and
label), so a changed, swapped or renamed image never serves another image's pixels or label. To
avoid reading 60,000 files on every load, a per-folder memo remembers each file's digest together
with its ``(st_dev, st_ino, size, mtime_ns, ctime_ns)``: a file whose stat is unchanged is not
read again. ``mv`` keeps a file's size and mtime but not its inode under the old name, and any
write moves ctime, which no tool can set back; so the memo is only trusted where it must be right.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import numpy as np

from resnet_harness.storage.atomic import atomic_write_bytes
from resnet_harness.training.data.common import NATIVE_SHAPE, DataError

# Part of every cache key: bump it when an image decodes to other pixels than before (the exact
# mode handling above changed 16-bit PNGs, for one), so caches written by older code are not read.
CACHE_FORMAT = 2
# A file changed this recently may change again within the same timestamp tick (FAT stamps to
# 2 s) without its stat changing; its digest is not memoised, so the next load reads it again.
RACY_NS = 2_000_000_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FIX = "save it as an 8-bit RGB or grayscale PNG or JPEG, or remove it"
_REFUSED = {
    "CMYK": "print colours, whose RGB values depend on an ink profile",
    "YCbCr": "video colour space, whose RGB values depend on the conversion matrix",
    "LAB": "CIE Lab colours, whose RGB values depend on the white point",
    "HSV": "hue/saturation/value, which is not RGB",
    "F": "32-bit float pixels, whose scale to 0-255 is unknown",
}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
_ALPHA = {"RGBA": "RGB", "RGBa": "RGB", "LA": "L", "La": "L"}

Files = list[tuple[str, int, str]]  # (split/class folder/file name, label, path)


# ---------------------------------------------------------------------------------------------
# Pixels


def to_model_array(image, target: str, path: Path | str) -> np.ndarray:
    """``image`` (a PIL image) as uint8 pixels of ``target`` mode: ``(H, W, 3)`` for ``"RGB"``,
    ``(H, W)`` for ``"L"``, converted only where the conversion is exact (see the module's
    table); anything else raises a one-line :class:`DataError` naming ``path`` and the mode."""
    mode = image.mode
    transparency = image.info.get("transparency")
    if mode == target and transparency is None:
        return np.asarray(image)  # the common case, an 8-bit JPEG or PNG: no copy, no check
    if mode in _REFUSED:
        raise DataError(f"image {path} has PIL mode {mode} ({_REFUSED[mode]}), which has no "
                        f"exact {target} equivalent; {_FIX}")
    if mode in _SIXTEEN_BIT or mode == "I":
        array, mode = _sixteen_to_eight(np.asarray(image), mode, transparency, path), "L"
    elif transparency is not None or mode in ("P", "PA"):
        # Pillow applies the palette and a tRNS key exactly when converting to RGBA.
        array, mode = np.asarray(image.convert("RGBA")), "RGBA"
    elif mode == "1":
        array, mode = np.asarray(image.convert("L")), "L"  # 0 / 255
    else:
        array = np.asarray(image)
    if mode in _ALPHA:
        opaque = array[..., -1] == 255
        if not opaque.all():
            raise DataError(f"image {path} (PIL mode {image.mode}) has "
                            f"{opaque.size - int(opaque.sum())} transparent or translucent "
                            "pixels, whose colour the model would see without the background "
                            f"they were meant for; flatten it onto a background and {_FIX}")
        array, mode = array[..., :-1], _ALPHA[mode]
        if mode == "L":
            array = array[..., 0]
    elif mode == "RGBX":
        array, mode = array[..., :3], "RGB"
    if mode not in ("L", "RGB"):
        raise DataError(f"image {path} has PIL mode {image.mode}, which the harness cannot "
                        f"convert exactly to {target}; {_FIX}")
    if mode == target:
        return array
    if target == "RGB":
        return np.repeat(array[..., None], 3, axis=2)
    if not ((array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all()):
        raise DataError(f"image {path} is colour (PIL mode {image.mode}, channels differ) but "
                        "the data set is grayscale, and no RGB -> gray formula is exact; save "
                        "it as a grayscale (mode L) PNG or JPEG, or remove it")
    return array[..., 0]


def _sixteen_to_eight(array: np.ndarray, mode: str, transparency, path) -> np.ndarray:
    values = array.astype(np.int64)
    if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(f"image {path} has 32-bit integer pixels (PIL mode I) in "
                        f"[{values.min()}, {values.max()}], outside the 16-bit range 0-65535 "
                        f"that has an exact 8-bit scale; {_FIX}")
    if transparency is not None and np.any(values == transparency):
        raise DataError(f"image {path} (PIL mode {mode}) has transparent pixels (tRNS value "
                        f"{transparency}), whose colour the model would see without the "
                        f"background they were meant for; flatten it onto a background and {_FIX}")
    return ((values + 128) // 257).astype(np.uint8)


def decode_image(data: bytes, path: Path | str, dataset: str) -> np.ndarray:
    """One image file's bytes as the uint8 ``(H, W, C)`` array of ``dataset``'s native shape;
    :class:`DataError` when it cannot be decoded, has another size or no exact conversion."""
    from PIL import Image, UnidentifiedImageError

    height, width, channels = NATIVE_SHAPE[dataset]
    if data[:8] == PNG_SIGNATURE and len(data) > 25 and data[24] == 16 and data[25] in (2, 4, 6):
        kind = {2: "RGB", 4: "gray+alpha", 6: "RGBA"}[data[25]]  # the IHDR's colour type
        raise DataError(f"image {path} is a 16-bit {kind} PNG, whose channels Pillow cuts to "
                        f"their high byte (not an exact scale); {_FIX}")
    if data[:8] == PNG_SIGNATURE:
        bad = _png_bad_chunk(data)
        if bad:
            raise DataError(f"cannot decode image {path}: its PNG {bad} chunk fails its CRC "
                            "check (the file is damaged); remove or replace the file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.size != (width, height):
                raise DataError(f"image {path} is {image.size[0]}x{image.size[1]}, expected "
                                f"{width}x{height} for {dataset}")
            array = to_model_array(image, "RGB" if channels == 3 else "L", path)
    except UnidentifiedImageError:
        raise DataError(f"cannot decode image {path}: not an image Pillow can read (JPEG, PNG, "
                        "BMP); remove or replace the file") from None
    except (OSError, SyntaxError, EOFError, ValueError) as exc:
        raise DataError(f"cannot decode image {path}: {_first_line(exc)}; remove or replace the "
                        "file") from None
    return array.reshape(height, width, channels)


def _png_bad_chunk(data: bytes) -> str | None:
    """The type of the first PNG chunk whose CRC does not match its bytes (Pillow checks the
    image data's only on ``verify()``), or None."""
    import zlib

    at = 8
    while at + 12 <= len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        end = at + 8 + length
        if end + 4 > len(data):
            return None  # truncated: Pillow names that itself
        kind = data[at + 4:at + 8]
        if zlib.crc32(data[at + 4:end]) != int.from_bytes(data[end:end + 4], "big"):
            return kind.decode("latin-1")
        if kind == b"IEND":
            return None
        at = end + 4
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Files, their digests and the cache key


def read_file(path: Path | str) -> tuple[tuple[int, ...], bytes]:
    """The stat signature (taken before reading, so a write during the read changes it) and the
    bytes of ``path``; :class:`DataError` when it cannot be read."""
    try:
        with open(path, "rb", buffering=0) as handle:
            stat = os.fstat(handle.fileno())
            data = handle.readall()
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror or exc}; check the file's "
                        "permissions or remove it") from None
    return _signature(stat), data


def digest(data: bytes) -> bytes:
    """The content digest of one file's bytes."""
    return hashlib.blake2b(data, digest_size=16).digest()


def _signature(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class StatMemo:
    """The content digest of each file of one image folder, valid while the file's stat
    signature ``(st_dev, st_ino, size, mtime_ns, ctime_ns)`` is unchanged; stored as ``.npz``
    arrays in listing order, so that an unchanged folder is checked with a few array compares."""

    def __init__(self, path: Path | None):
        self.path = path
        self.now = time.time_ns()
        self.changed = False
        self.old_names: list[str] = []
        self.old_ids = np.zeros((0, 2), np.uint64)
        self.old_times = np.zeros((0, 3), np.int64)
        self.old_digests = b""
        self.names: list[str] = []
        self.ids, self.times = self.old_ids, self.old_times
        self.digests: list[bytes | None] = []
        self._index: dict[str, int] | None = None
        if path is not None and path.is_file():
            try:
                self._load(path)
            except (OSError, ValueError, KeyError, UnicodeError):
                pass  # a corrupt or foreign memo only costs reading the files once

    def _load(self, path: Path) -> None:
        with np.load(path) as data:
            names = data["names"].tobytes().decode("utf-8", "surrogateescape")
            ids, times = data["ids"], data["times"]
            digests = data["digests"].tobytes()
        names = names.split("\0") if names else []
        if (ids.dtype != np.uint64 or times.dtype != np.int64 or ids.shape != (len(names), 2)
                or times.shape != (len(names), 3) or len(digests) != 16 * len(names)):
            raise ValueError("inconsistent memo")
        self.old_names, self.old_ids, self.old_times, self.old_digests = names, ids, times, digests

    def lookup(self, names: list[str], signatures: list[tuple[int, ...]]) -> list[bytes | None]:
        """The memoised digest of each file whose signature is unchanged, else None; ``names``
        and ``signatures`` become the listing that :meth:`put` and :meth:`save` work on."""
        ids = np.array([s[:2] for s in signatures], np.uint64).reshape(-1, 2)
        times = np.array([s[2:] for s in signatures], np.int64).reshape(-1, 3)
        if names == self.old_names:
            rows = np.arange(len(names))
        else:
            self.changed = True
            index = {name: i for i, name in enumerate(self.old_names)}
            rows = np.array([index.get(name, -1) for name in names], np.int64)
        hit = (rows >= 0) & (ids[:, 1] != 0)  # inode 0: no inode numbers, nothing to trust
        if len(self.old_names):
            rows = np.where(hit, rows, 0)
            same_ids = (self.old_ids[rows] == ids).all(axis=1)
            hit &= same_ids & (self.old_times[rows] == times).all(axis=1)
        else:
            hit[:] = False
        old = self.old_digests
        self.digests = [old[16 * r:16 * r + 16] if h else None
                        for r, h in zip(rows.tolist(), hit.tolist())]
        self.names, self.ids, self.times, self._index = list(names), ids, times, None
        return list(self.digests)

    def put(self, name: str, signature: tuple[int, ...], content: bytes) -> None:
        """Remember ``content``'s digest for ``name`` of the looked-up listing, unless the file is
        too fresh to trust its stat or its file system has no inode numbers."""
        if not signature[1] or self.now - max(signature[3], signature[4]) < RACY_NS:
            return
        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.names)}
        i = self._index.get(name)
        if i is not None:
            self.ids[i], self.times[i] = signature[:2], signature[2:]
            self.digests[i] = content
            self.changed = True

    def save(self) -> None:
        """Write the memo of the listing looked up (atomically), when it changed."""
        if self.path is None or not self.changed:
            return
        ids = self.ids.copy()
        ids[[d is None for d in self.digests], 1] = 0  # not memoised: never a hit
        names = "\0".join(self.names).encode("utf-8", "surrogateescape")
        digests = b"".join(d or bytes(16) for d in self.digests)
        buffer = io.BytesIO()
        np.savez(buffer, names=np.frombuffer(names, np.uint8), ids=ids, times=self.times,
                 digests=np.frombuffer(digests, np.uint8))
        try:
            atomic_write_bytes(self.path, buffer.getvalue())
        except OSError:
            pass  # a read-only cache only costs reading the files again next run


def file_digests(files: Files, memo: StatMemo) -> tuple[list[bytes], dict[str, bytes]]:
    """Every file's content digest, from ``memo`` where its stat is unchanged, else by reading
    it; also the bytes read, so that a cache miss decodes them without reading them again (the
    files of these data sets are a few kB each, 55 MB for all of CIFAR-10)."""
    signatures = []
    for _, _, path in files:
        try:
            signatures.append(_signature(os.stat(path)))
        except OSError:
            signatures.append((0, 0, 0, 0, 0))  # never a hit: read_file names the problem
    digests = memo.lookup([name for name, _, _ in files], signatures)
    read = {}
    for i, (name, _, path) in enumerate(files):
        if digests[i] is None:
            signature, data = read_file(path)
            digests[i] = digest(data)
            memo.put(name, signature, digests[i])
            read[name] = data
    return digests, read


def content_key(files: Files, digests: list[bytes], dataset: str) -> str:
    """The cache key of an image folder: a digest of the cache format, the data set and, per
    file, its split/class folder/name, label and content digest."""
    key = hashlib.blake2b(f"{CACHE_FORMAT}:{dataset}".encode(), digest_size=16)
    # Names hold no NUL, labels are < 256 and digests 16 bytes: the encoding is unambiguous.
    key.update(b"".join(os.fsencode(name) + b"\0" + bytes([label]) + content
                        for (name, label, _), content in zip(files, digests)))
    return key.hexdigest()


def decode_files(files: Files, dataset: str, read: dict[str, bytes] | None = None,
                 memo: StatMemo | None = None) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """Decode ``files`` (the bytes in ``read`` where given) into uint8 images and int64 labels;
    also each file's content digest, of exactly the bytes decoded, recorded in ``memo``."""
    read = read or {}
    images = np.empty((len(files),) + NATIVE_SHAPE[dataset], dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    digests = []
    for i, (name, label, path) in enumerate(files):
        data = read.get(name)
        if data is None:
            signature, data = read_file(path)
            digests.append(digest(data))
            if memo is not None:
                memo.put(name, signature, digests[-1])
        else:
            digests.append(digest(data))
        images[i] = decode_image(data, path, dataset)
        labels[i] = label
    return images, labels, digests
