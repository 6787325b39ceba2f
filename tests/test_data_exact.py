"""Data is exact or refused: the decoded-image cache is keyed by content (a swap of two class
folders is never served from the cache), every image mode is converted exactly or refused by
name, label files of the wrong shape or size and imbalances that reduce no class or every class
are refused in one line, and non-UTF-8 paths do not crash the loaders."""

from __future__ import annotations

import gzip
import os
import shutil
import time

import numpy as np
import pytest

from helpers import (session, CONFTEST, EXPERIMENTS, class_value, fashion_arrays, find_case, idx_bytes,
                     write_idx_folder, write_image_folders)
from resnet_harness.training.data import DataError, make_variant, synthetic
from resnet_harness.training.data import images
from resnet_harness.training.data.sources import (CLASS_NAMES, IDX_FILES, RawData, load_local,
                                                  printable)
from resnet_harness.training.data.variants import check_variant
from resnet_harness.studies.paper import get_case

T7_CIFAR_IMB = find_case("table7", "cifar10", "imbalanced")
ARCHIVE_TIME_NS = 1_554_000_000 * 10**9  # one mtime for every file, as an unpacked archive has


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, f"not a one-line message: {message!r}"
    message.encode("utf-8")  # printable and writable as UTF-8, whatever the path held
    return message


# ---------------------------------------------------------------------------------------------
# The decoded-image cache is keyed by content


@pytest.fixture
def trusted_memo(monkeypatch):
    """Memoise even files written a moment ago, so that an unchanged stat spares reading a file
    (without it, files younger than images.RACY_NS are read again on every load)."""
    monkeypatch.setattr(images, "RACY_NS", -10**18)


def _archive_like(folder):
    """Image folders whose files all share one mtime, as an unpacked archive's do; each image is
    a constant colour, so files of one size: a swap keeps every name, size and mtime."""
    for path in folder.rglob("*.png"):
        os.utime(path, ns=(ARCHIVE_TIME_NS, ARCHIVE_TIME_NS))
    return folder


def _class_folder(dataset, label):
    return CLASS_NAMES[dataset][label].replace("/", "_")


def _swap(first, second):
    """Swap two paths with three renames, as ``mv`` would."""
    parking = first.with_name(first.name + ".swap")
    os.rename(first, parking)
    os.rename(second, first)
    os.rename(parking, second)


def _data_files(cache, dataset):
    return sorted(p for p in cache.glob(f"{dataset}-*.npz"))


def _assert_same(raw, fresh):
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(raw, name), getattr(fresh, name), err_msg=name)


@pytest.mark.parametrize("memo", ["fresh-files", "trusted-memo"])
@pytest.mark.parametrize("what", ["class-folders", "files"])
@pytest.mark.parametrize("dataset", ["cifar10", "fashion_mnist"])
def test_swapped_images_are_not_served_from_the_cache(tmp_path, request, dataset, what, memo):
    if memo == "trusted-memo":
        request.getfixturevalue("trusted_memo")
    folder = _archive_like(write_image_folders(tmp_path / "data", dataset))
    cache = tmp_path / "cache"
    first = load_local(folder, dataset, cache_dir=cache)
    cat, dog = (folder / "train" / _class_folder(dataset, c) for c in (3, 5))
    sizes = [(cat / "img0.png").stat().st_size, (dog / "img0.png").stat().st_size]
    assert sizes[0] == sizes[1]  # the swap keeps names, counts, sizes and mtimes
    if what == "class-folders":
        _swap(cat, dog)
    else:
        for name in ("img0.png", "img1.png"):
            _swap(cat / name, dog / name)
    second = load_local(folder, dataset, cache_dir=cache)
    # The labels follow the new content: class 3's folder now holds class 5's pixels.
    _assert_same(second, load_local(folder, dataset))
    values = second.x_train[second.y_train == 3].reshape(2, -1)[:, 0]
    assert sorted(values.tolist()) == [class_value(5, 0), class_value(5, 1)]
    assert second.fingerprint != first.fingerprint
    assert len(_data_files(cache, dataset)) == 2


def test_in_place_rewrite_with_restored_mtime_is_seen(tmp_path, trusted_memo):
    folder = _archive_like(write_image_folders(tmp_path / "data", "cifar10"))
    cache = tmp_path / "cache"
    first = load_local(folder, "cifar10", cache_dir=cache)
    target = folder / "test" / "ship" / "img0.png"
    other = (folder / "test" / "ship" / "img1.png").read_bytes()
    assert len(other) == target.stat().st_size
    time.sleep(0.05)  # past the file system's timestamp tick: the write moves ctime
    with target.open("r+b") as handle:
        handle.write(other)
    os.utime(target, ns=(ARCHIVE_TIME_NS, ARCHIVE_TIME_NS))  # size and mtime as before
    second = load_local(folder, "cifar10", cache_dir=cache)
    _assert_same(second, load_local(folder, "cifar10"))
    assert second.fingerprint != first.fingerprint


def test_unchanged_folder_reads_no_image_again(tmp_path, monkeypatch, trusted_memo):
    import PIL.Image

    folder, cache = write_image_folders(tmp_path / "data", "cifar10"), tmp_path / "cache"
    first = load_local(folder, "cifar10", cache_dir=cache)
    assert len(list(cache.glob("cifar10-*.stats"))) == 1

    def no_reading(*args, **kwargs):
        raise AssertionError("read an image although neither its stat nor the cache changed")

    monkeypatch.setattr(images, "read_file", no_reading)
    monkeypatch.setattr(PIL.Image, "open", no_reading)
    _assert_same(load_local(folder, "cifar10", cache_dir=cache), first)


def test_fresh_files_are_read_again(tmp_path, monkeypatch):
    """Files changed within RACY_NS may change again without their stat changing: they are not
    memoised, so every load reads them (and still decodes nothing)."""
    import PIL.Image

    monkeypatch.setattr(images, "RACY_NS", 10**18)  # every file is fresh, however slow the test
    folder, cache = write_image_folders(tmp_path / "data", "cifar10"), tmp_path / "cache"
    first = load_local(folder, "cifar10", cache_dir=cache)
    reads = []
    real_read = images.read_file
    monkeypatch.setattr(images, "read_file", lambda path: reads.append(path) or real_read(path))
    monkeypatch.setattr(PIL.Image, "open", None)  # a decode would fail
    _assert_same(load_local(folder, "cifar10", cache_dir=cache), first)
    assert len(reads) == 40


def test_moved_folder_reuses_the_cache(tmp_path, monkeypatch):
    import PIL.Image

    folder, cache = write_image_folders(tmp_path / "data", "cifar10"), tmp_path / "cache"
    first = load_local(folder, "cifar10", cache_dir=cache)
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(folder, moved)
    monkeypatch.setattr(PIL.Image, "open", None)  # same content: no decode
    _assert_same(load_local(moved, "cifar10", cache_dir=cache), first)
    assert len(_data_files(cache, "cifar10")) == 1


def test_corrupt_memo_is_ignored(tmp_path, trusted_memo):
    folder, cache = write_image_folders(tmp_path / "data", "cifar10"), tmp_path / "cache"
    first = load_local(folder, "cifar10", cache_dir=cache)
    (memo,) = cache.glob("cifar10-*.stats")
    memo.write_bytes(b"garbage")
    _assert_same(load_local(folder, "cifar10", cache_dir=cache), first)
    _archive_like(folder)
    _swap(folder / "train" / "cat", folder / "train" / "dog")
    _assert_same(load_local(folder, "cifar10", cache_dir=cache), load_local(folder, "cifar10"))


def test_memo_round_trips_digests_ending_in_zero_bytes(tmp_path, trusted_memo):
    """Digests are stored as raw bytes: numpy's "S" strings would drop trailing NULs."""
    names = ["train/cat/a.png", "train/cat/" + os.fsdecode(b"\xff.png"), "test/dog/c.png"]
    signatures = [(1, 2, 3, 4, 5), (2**64 - 1, 2**63 - 1, 0, -5, 2**40), (1, 3, 3, 4, 5)]
    digests = [b"\x01" + b"\0" * 15, b"\0" * 16, b"\2" * 16]
    memo = images.StatMemo(tmp_path / "m.stats")
    assert memo.lookup(names, signatures) == [None] * 3
    for name, signature, content in zip(names, signatures, digests):
        memo.put(name, signature, content)
    memo.save()
    assert images.StatMemo(tmp_path / "m.stats").lookup(names, signatures) == digests
    moved = [(1, 2, 3, 4, 6)] + signatures[1:]  # ctime moved: not trusted
    assert images.StatMemo(tmp_path / "m.stats").lookup(names, moved) == [None] + digests[1:]
    # another listing (a file added, one gone, the order changed) still finds the rest
    other = images.StatMemo(tmp_path / "m.stats").lookup(
        ["test/dog/c.png", "new.png", names[1]], [signatures[2], (9, 9, 9, 9, 9), signatures[1]])
    assert other == [digests[2], None, digests[1]]


# ---------------------------------------------------------------------------------------------
# Every image mode: converted exactly, or refused by name


def _image(mode, array, transparency=None, palette=None):
    from PIL import Image

    array = np.asarray(array)
    if mode == "1":
        image = Image.fromarray(array.astype(bool))
    else:
        dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2", "I": "=i4",
                 "F": "=f4"}.get(mode, "u1")
        image = Image.frombytes(mode, (array.shape[1], array.shape[0]),
                                np.ascontiguousarray(array, dtype=dtype).tobytes())
    if palette is not None:
        image.putpalette(np.asarray(palette, np.uint8).ravel().tobytes())
    if transparency is not None:
        image.info["transparency"] = transparency
    return image


GRAY = np.array([[0, 7, 255], [128, 1, 254]])
COLOUR = np.stack([GRAY, 255 - GRAY, GRAY // 2], axis=-1)
GRAY3 = np.stack([GRAY] * 3, axis=-1)
OPAQUE = np.full(GRAY.shape, 255)
TRANSLUCENT = np.where(GRAY == 7, 254, 255)
INDEX = np.array([[0, 1, 2], [2, 1, 0]])
PALETTE = [(10, 20, 30), (200, 100, 50), (0, 255, 9)] + [(0, 0, 0)] * 253
GRAY_PALETTE = [(10, 10, 10), (200, 200, 200), (77, 77, 77)] + [(0, 0, 0)] * 253
SIXTEEN = np.array([[0, 128, 129], [257 * 7, 65535, 32768]])
SIXTEEN_AS_8 = np.array([[0, 0, 1], [7, 255, 128]])  # round(v * 255 / 65535)


def _rgb(gray):
    return np.stack([gray] * 3, axis=-1)


# id: (mode, pixels, image extras, data set, expected pixels or the error's pattern)
MODES = {
    "RGB-as-is": ("RGB", COLOUR, {}, "cifar10", COLOUR),
    "L-as-is": ("L", GRAY, {}, "fashion_mnist", GRAY),
    "L-to-RGB-replicates": ("L", GRAY, {}, "cifar10", GRAY3),
    "RGB-gray-to-L": ("RGB", GRAY3, {}, "fashion_mnist", GRAY),
    "RGB-colour-to-L-refused": ("RGB", COLOUR, {}, "fashion_mnist",
                                r"is colour \(PIL mode RGB, channels differ\)"),
    "1-to-L": ("1", GRAY > 100, {}, "fashion_mnist", np.where(GRAY > 100, 255, 0)),
    "1-to-RGB": ("1", GRAY > 100, {}, "cifar10", _rgb(np.where(GRAY > 100, 255, 0))),
    "P-to-RGB": ("P", INDEX, {"palette": PALETTE}, "cifar10", np.array(PALETTE)[INDEX]),
    "P-gray-to-L": ("P", INDEX, {"palette": GRAY_PALETTE}, "fashion_mnist",
                    np.array(GRAY_PALETTE)[INDEX][..., 0]),
    "P-colour-to-L-refused": ("P", INDEX, {"palette": PALETTE}, "fashion_mnist", r"is colour"),
    "P-transparent-refused": ("P", INDEX, {"palette": PALETTE, "transparency": 1}, "cifar10",
                              r"has 2 transparent or translucent pixels"),
    "P-transparency-unused": ("P", INDEX, {"palette": PALETTE, "transparency": 7}, "cifar10",
                              np.array(PALETTE)[INDEX]),
    "PA-opaque": ("PA", np.stack([INDEX, OPAQUE], -1), {"palette": PALETTE}, "cifar10",
                  np.array(PALETTE)[INDEX]),
    "PA-translucent-refused": ("PA", np.stack([INDEX, TRANSLUCENT], -1), {"palette": PALETTE},
                               "cifar10", r"PIL mode PA\) has 1 transparent or translucent"),
    "RGBA-opaque": ("RGBA", np.concatenate([COLOUR, OPAQUE[..., None]], -1), {}, "cifar10",
                    COLOUR),
    "RGBA-opaque-gray-to-L": ("RGBA", np.concatenate([GRAY3, OPAQUE[..., None]], -1), {},
                              "fashion_mnist", GRAY),
    "RGBA-translucent-refused": ("RGBA", np.concatenate([COLOUR, TRANSLUCENT[..., None]], -1),
                                 {}, "cifar10", r"PIL mode RGBA\) has 1 transparent"),
    "LA-opaque": ("LA", np.stack([GRAY, OPAQUE], -1), {}, "fashion_mnist", GRAY),
    "LA-opaque-to-RGB": ("LA", np.stack([GRAY, OPAQUE], -1), {}, "cifar10", GRAY3),
    "LA-translucent-refused": ("LA", np.stack([GRAY, TRANSLUCENT], -1), {}, "fashion_mnist",
                               r"PIL mode LA\) has 1 transparent"),
    "RGBa-opaque": ("RGBa", np.concatenate([COLOUR, OPAQUE[..., None]], -1), {}, "cifar10",
                    COLOUR),
    "La-opaque": ("La", np.stack([GRAY, OPAQUE], -1), {}, "fashion_mnist", GRAY),
    "RGBX-padding-dropped": ("RGBX", np.concatenate([COLOUR, GRAY[..., None]], -1), {},
                             "cifar10", COLOUR),
    "L-transparent-key-refused": ("L", GRAY, {"transparency": 7}, "fashion_mnist",
                                  r"has 1 transparent"),
    "L-transparent-key-unused": ("L", GRAY, {"transparency": 9}, "fashion_mnist", GRAY),
    "RGB-transparent-key-refused": ("RGB", COLOUR, {"transparency": (7, 248, 3)}, "cifar10",
                                    r"has 1 transparent"),
    "I;16-to-L": ("I;16", SIXTEEN, {}, "fashion_mnist", SIXTEEN_AS_8),
    "I;16B-to-L": ("I;16B", SIXTEEN, {}, "fashion_mnist", SIXTEEN_AS_8),
    "I;16L-to-L": ("I;16L", SIXTEEN, {}, "fashion_mnist", SIXTEEN_AS_8),
    "I;16N-to-L": ("I;16N", SIXTEEN, {}, "fashion_mnist", SIXTEEN_AS_8),
    "I;16-to-RGB": ("I;16", SIXTEEN, {}, "cifar10", _rgb(SIXTEEN_AS_8)),
    "I;16-8-bit-data-round-trips": ("I;16", GRAY * 257, {}, "fashion_mnist", GRAY),
    "I;16-transparent-refused": ("I;16", SIXTEEN, {"transparency": 129}, "fashion_mnist",
                                 r"has transparent pixels \(tRNS value 129\)"),
    "I-16-bit-range": ("I", SIXTEEN, {}, "fashion_mnist", SIXTEEN_AS_8),
    "I-negative-refused": ("I", SIXTEEN - 1, {}, "fashion_mnist",
                           r"PIL mode I\) in \[-1, 65534\], outside the 16-bit range"),
    "I-above-16-bit-refused": ("I", SIXTEEN + 1, {}, "cifar10", r"in \[1, 65536\], outside"),
    "CMYK-refused": ("CMYK", np.concatenate([COLOUR, GRAY[..., None]], -1), {}, "cifar10",
                     r"PIL mode CMYK \(print colours"),
    "YCbCr-refused": ("YCbCr", COLOUR, {}, "cifar10", r"PIL mode YCbCr \(video colour"),
    "LAB-refused": ("LAB", COLOUR, {}, "cifar10", r"PIL mode LAB \(CIE Lab"),
    "HSV-refused": ("HSV", COLOUR, {}, "cifar10", r"PIL mode HSV \(hue"),
    "F-refused": ("F", GRAY, {}, "fashion_mnist", r"PIL mode F \(32-bit float"),
}


@pytest.mark.parametrize("case", list(MODES))
def test_image_mode_is_exact_or_refused(case):
    mode, pixels, extras, dataset, expected = MODES[case]
    image = _image(mode, pixels, **extras)
    assert image.mode == mode
    target = "RGB" if dataset == "cifar10" else "L"
    if isinstance(expected, str):
        with pytest.raises(DataError, match=expected) as exc:
            images.to_model_array(image, target, "data/x.png")
        message = one_line(exc)
        assert message.startswith("image data/x.png ") and mode in message
        assert "save it as" in message  # and how to fix it
    else:
        array = images.to_model_array(image, target, "data/x.png")
        assert array.dtype == np.uint8
        np.testing.assert_array_equal(array, np.asarray(expected, np.uint8))


def test_unknown_mode_is_refused_by_name():
    class Odd:  # a mode Pillow may add one day
        mode, info = "BGR;15", {}

    with pytest.raises(DataError, match=r"has PIL mode BGR;15, which the harness cannot convert "
                                        r"exactly to RGB; save it as") as exc:
        images.to_model_array(Odd(), "RGB", "x.bmp")
    one_line(exc)


def test_fast_path_does_not_convert(monkeypatch):
    image = _image("RGB", COLOUR)
    monkeypatch.setattr(image, "convert", None)
    np.testing.assert_array_equal(images.to_model_array(image, "RGB", "x"), COLOUR)


def _encode(image, fmt="PNG"):
    import io

    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _png(width, height, bit_depth, colour_type, raw_rows):
    """A PNG written by hand, for what Pillow cannot write (16-bit colour)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = b"".join(b"\0" + row for row in raw_rows)
    return (images.PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(data))
            + chunk(b"IEND", b""))


def test_sixteen_bit_png_is_scaled_exactly_not_whitened(tmp_path):
    """Pillow's convert("L") clips a 16-bit PNG to 255 (almost white); each value v must give
    round(v * 255 / 65535), so an 8-bit image saved as 16 bits (v = 257 * x) comes back as x."""
    folder = write_image_folders(tmp_path / "data", "fashion_mnist")
    gray = np.arange(28 * 28, dtype=np.int64).reshape(28, 28) % 256
    path = folder / "train" / "Coat" / "img0.png"
    path.write_bytes(_encode(_image("I;16", gray * 257)))
    raw = load_local(folder, "fashion_mnist", cache_dir=tmp_path / "cache")
    coat = raw.x_train[raw.y_train == 4]
    np.testing.assert_array_equal(coat[0, ..., 0], gray)
    cifar = write_image_folders(tmp_path / "cifar", "cifar10")
    sixteen = np.arange(32 * 32, dtype=np.int64).reshape(32, 32) * 64
    (cifar / "test" / "cat" / "img0.png").write_bytes(_encode(_image("I;16", sixteen)))
    raw = load_local(cifar, "cifar10")
    np.testing.assert_array_equal(raw.x_test[raw.y_test == 3][0],
                                  _rgb((sixteen + 128) // 257))


# Files as written by Pillow (or by hand): what the decoder of a folder gives or refuses.
FILES = {
    "16-bit-gray-png": (lambda: _encode(_image("I;16", SIXTEEN)), "fashion_mnist", SIXTEEN_AS_8),
    "1-bit-png": (lambda: _encode(_image("1", GRAY > 100)), "cifar10",
                  _rgb(np.where(GRAY > 100, 255, 0))),
    "palette-png": (lambda: _encode(_image("P", INDEX, palette=PALETTE)), "cifar10",
                    np.array(PALETTE)[INDEX]),
    "rgba-png-translucent": (lambda: _encode(_image(
        "RGBA", np.concatenate([COLOUR, TRANSLUCENT[..., None]], -1))), "cifar10",
        r"has 1 transparent or translucent pixels"),
    "la-png-opaque": (lambda: _encode(_image("LA", np.stack([GRAY, OPAQUE], -1))),
                      "fashion_mnist", GRAY),
    "gray-jpeg-to-rgb": (lambda: _encode(_image("L", GRAY), "JPEG"), "cifar10", None),
    "cmyk-jpeg": (lambda: _encode(_image("CMYK", np.concatenate([COLOUR, GRAY[..., None]], -1)),
                                  "JPEG"), "cifar10", r"PIL mode CMYK"),
    "16-bit-rgb-png": (lambda: _png(3, 2, 16, 2, [np.full(9, 4000, ">u2").tobytes()] * 2),
                       "cifar10", r"is a 16-bit RGB PNG, whose channels Pillow cuts"),
    "16-bit-rgba-png": (lambda: _png(3, 2, 16, 6, [np.full(12, 65535, ">u2").tobytes()] * 2),
                        "cifar10", r"is a 16-bit RGBA PNG"),
    "16-bit-gray-alpha-png": (lambda: _png(3, 2, 16, 4, [np.full(6, 9, ">u2").tobytes()] * 2),
                              "fashion_mnist", r"is a 16-bit gray\+alpha PNG"),
}


@pytest.mark.parametrize("case", list(FILES))
def test_image_file_is_exact_or_refused(monkeypatch, case):
    import resnet_harness.training.data.sources as sources

    make, dataset, expected = FILES[case]
    # 3x2 images: the same dict as images.NATIVE_SHAPE
    monkeypatch.setitem(sources.NATIVE_SHAPE, dataset, (2, 3, 3 if dataset == "cifar10" else 1))
    data = make()
    if isinstance(expected, str):
        with pytest.raises(DataError, match=expected) as exc:
            images.decode_image(data, "data/train/cat/x.png", dataset)
        assert "data/train/cat/x.png" in one_line(exc)
        return
    array = images.decode_image(data, "x", dataset)
    assert array.dtype == np.uint8 and array.shape == (2, 3, 3 if dataset == "cifar10" else 1)
    if expected is None:  # a lossy JPEG: gray replicated into three equal channels
        assert (array == array[..., :1]).all()
    else:
        np.testing.assert_array_equal(array.reshape(np.shape(expected)), expected)


def test_refused_mode_in_a_folder_names_the_file(tmp_path):
    folder = write_image_folders(tmp_path / "data", "cifar10")
    bad = folder / "train" / "frog" / "img1.png"
    rgba = np.zeros((32, 32, 4), np.uint8)
    bad.write_bytes(_encode(_image("RGBA", rgba)))
    with pytest.raises(DataError, match="has 1024 transparent or translucent pixels") as exc:
        load_local(folder, "cifar10", cache_dir=tmp_path / "cache")
    assert str(bad) in one_line(exc)


def test_truncated_png_is_a_one_line_error(tmp_path):
    folder = write_image_folders(tmp_path / "data", "cifar10")
    path = folder / "train" / "frog" / "img1.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match="cannot decode image") as exc:
        load_local(folder, "cifar10")
    assert str(path) in one_line(exc)


def test_a_png_whose_image_data_fails_its_crc_is_refused(tmp_path):
    """One flipped byte inside IDAT: Pillow decodes it (to other pixels) without a word."""
    folder = write_image_folders(tmp_path / "data", "cifar10")
    path = folder / "train" / "frog" / "img1.png"
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT") + 8  # a byte of the compressed pixels
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="its PNG IDAT chunk fails its CRC check") as exc:
        load_local(folder, "cifar10")
    assert str(path) in one_line(exc)


# ---------------------------------------------------------------------------------------------
# Label files of the wrong shape or size


def _idx_header(dims, magic_type=0x08):
    return bytes([0, 0, magic_type, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def _labels():
    return fashion_arrays()[1]


# id: (file, its bytes, the error's pattern); fashion_arrays: 12 train / 10 test images
IDX_CASES = {
    "labels-N-by-1": ("y_train", lambda: idx_bytes(_labels()[:, None]),
                      r"holds an array of shape \(12, 1\), expected 1 dimensions \(one label"),
    "labels-N-by-2": ("y_test", lambda: idx_bytes(np.zeros((10, 2), np.uint8)),
                      r"shape \(10, 2\), expected 1 dimensions"),
    "labels-0-d": ("y_train", lambda: _idx_header(()) + b"\3", r"shape \(\), expected 1 dim"),
    "labels-dims-overflow": ("y_train", lambda: _idx_header((2**16,) * 4),
                             r"shape \(65536, 65536, 65536, 65536\), expected 1 dimensions"),
    "images-dims-overflow-to-zero": ("x_train", lambda: _idx_header((2**16,) * 4),
                                     r"header promises 18446744073709551636 \(shape \(65536, "
                                     r"65536, 65536, 65536\)\); the file is truncated"),
    "images-dims-overflow": ("x_test", lambda: _idx_header((2**32 - 1,) * 3) + b"\0" * 8,
                             r"promises 79228162458924105385300197391 \(shape"),
    "labels-header-truncated": ("y_test", lambda: _idx_header((10, 1, 1))[:9],
                                r"holds 9 bytes, less than its 3-dimension header needs"),
    "labels-fewer": ("y_train", lambda: idx_bytes(_labels()[:-1]),
                     r"fashion_mnist train .* has 12 images and 11 labels"),
    "labels-more": ("y_test", lambda: idx_bytes(np.arange(11) % 10),
                    r"fashion_mnist test .* has 10 images and 11 labels"),
    "labels-out-of-range": ("y_train", lambda: idx_bytes(np.where(_labels() == 4, 10,
                                                                  _labels())),
                            r"train labels .* lie in \[0, 10\], outside \[0, 10\)"),
    "labels-empty": ("y_test", lambda: _idx_header((0,)), r"has 10 images and 0 labels"),
    "images-flat": ("x_train", lambda: idx_bytes(fashion_arrays()[0].reshape(12, 784)),
                    r"shape \(12, 784\), expected 3 dimensions or 4 dimensions \(N images"),
    "images-wrong-size": ("x_test", lambda: idx_bytes(np.zeros((10, 28, 27), np.uint8)),
                          r"test images .* shape \(10, 28, 27, 1\); expected uint8 \(N, 28, 28"),
    "labels-signed-type": ("y_train", lambda: _idx_header((12,), 0x09) + bytes(12),
                           r"not an unsigned-byte IDX file"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("case", list(IDX_CASES))
def test_idx_file_of_wrong_shape_or_size_is_refused(tmp_path, case, gz):
    key, make, pattern = IDX_CASES[case]
    write_idx_folder(tmp_path, gz=gz)
    path = tmp_path / (IDX_FILES[key] + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(make()) if gz else make())
    with pytest.raises(DataError, match=pattern) as exc:
        load_local(tmp_path, "fashion_mnist")
    message = one_line(exc)
    assert IDX_FILES[key] in message or f"idx:{tmp_path}" in message


@pytest.mark.parametrize("labels", [np.zeros((20, 1), np.int64), np.zeros(20, np.float32),
                                    np.zeros((), np.int64)], ids=["N-by-1", "float", "0-d"])
def test_labels_of_another_shape_or_type_are_refused(labels):
    raw = synthetic("cifar10", 2, 2)
    bad = RawData(raw.x_train, raw.y_train, raw.x_test, labels, source="keras:cifar10")
    with pytest.raises(DataError, match=r"cifar10 test labels from keras:cifar10 have dtype "
                                        r".* expected integers of shape \(N,\)") as exc:
        bad.validate("cifar10")
    one_line(exc)


# ---------------------------------------------------------------------------------------------
# Paths that are not UTF-8


def _bytes_dir(parent, name: bytes):
    return parent / os.fsdecode(name)


def test_non_utf8_idx_folder_loads(tmp_path):
    folder = _bytes_dir(tmp_path, b"data-\xff")
    x_train = write_idx_folder(folder, gz=True)[0]
    raw = load_local(folder, "fashion_mnist")
    np.testing.assert_array_equal(raw.x_train[..., 0], x_train)
    assert raw.source.endswith("data-\\xff") and raw.source.encode("utf-8")


def test_non_utf8_image_folders_and_file_names_load_and_cache(tmp_path, monkeypatch,
                                                              trusted_memo):
    import PIL.Image

    folder = write_image_folders(_bytes_dir(tmp_path, b"\xff"), "cifar10")
    odd = _bytes_dir(folder / "train" / "cat", b"\xfe\xff.png")
    shutil.copy(folder / "train" / "cat" / "img0.png", odd)
    cache = _bytes_dir(tmp_path, b"cache-\xfd")
    first = load_local(folder, "cifar10", cache_dir=cache)
    assert len(first.y_train) == 21 and first.source.encode("utf-8")
    monkeypatch.setattr(images, "read_file", None)  # the second load: the memo and the cache
    monkeypatch.setattr(PIL.Image, "open", None)
    _assert_same(load_local(folder, "cifar10", cache_dir=cache), first)


@pytest.mark.parametrize("where", ["missing-folder", "class-folder", "broken-image"])
def test_non_utf8_path_in_an_error_is_one_printable_line(tmp_path, where):
    folder = _bytes_dir(tmp_path, b"d\xff")
    if where == "missing-folder":
        pattern = r"d\\xff does not exist"
    else:
        write_image_folders(folder, "cifar10")
        if where == "class-folder":
            _bytes_dir(folder / "train", b"c\xfe").mkdir()
            (_bytes_dir(folder / "train", b"c\xfe") / "x.png").write_bytes(b"")
            pattern = r"d\\xff/train has class folders that are not cifar10 classes: c\\xfe"
        else:
            _bytes_dir(folder / "test" / "cat", b"\xfe.png").write_bytes(b"not a png")
            pattern = r"cannot decode image .*d\\xff/test/cat/\\xfe.png"
    with pytest.raises(DataError, match=pattern) as exc:
        load_local(folder, "cifar10", cache_dir=tmp_path / "cache")
    one_line(exc)


def test_printable():
    assert printable("a" + os.fsdecode(b"\xff") + "b") == "a\\xffb"
    assert printable("caf\u00e9 \ud800") == "caf\u00e9 \\ud800"
    assert printable("plain") == "plain"


# ---------------------------------------------------------------------------------------------
# An imbalance that reduces no class or every class


def _cfg(**run):
    run.setdefault("data_source", "synthetic")
    run.setdefault("scale", "paper")
    return session(**run).for_case(get_case(T7_CIFAR_IMB.id))


# id: (RunConfig settings, the error's pattern)
IMBALANCES = {
    "every-class": ({"imbalance_classes": tuple(range(10))},
                    r"--imbalance-classes names every class \(0,1,2,3,4,5,6,7,8,9\), so removing "
                    r"10% of each leaves the imbalanced case's training set balanced"),
    "every-class-table4": ({"imbalance": "table4", "imbalance_classes": tuple(range(9, -1, -1))},
                           r"names every class"),
    "no-class": ({"imbalance_classes": ()}, r"asks for an imbalanced training set but its "
                                            r"imbalance reading text names no class"),
    "no-class-table4": ({"imbalance": "table4", "imbalance_classes": ()}, r"names no class"),
    "nothing-removed": ({"imbalance_fraction": 0.0}, r"reading text\+fraction removes 0 of "
                                                     r"each class, so it would train on balanced"),
}


@pytest.mark.parametrize("case", list(IMBALANCES))
def test_imbalance_reducing_no_class_or_every_class_is_refused(case):
    settings, pattern = IMBALANCES[case]
    cfg = _cfg(**settings)
    raw = synthetic("cifar10", 20, 5)
    for check in (check_variant, make_variant):  # refused before anything trains, and when made
        with pytest.raises(DataError, match=pattern) as exc:
            check(raw, cfg)
        assert one_line(exc).startswith(T7_CIFAR_IMB.id)


def test_imbalance_of_nine_classes_is_made():
    variant = make_variant(synthetic("cifar10", 20, 5), _cfg(imbalance_classes=tuple(range(9))))
    assert variant.train_counts == [18] * 9 + [20]


# ---------------------------------------------------------------------------------------------
# The same refusals stop a pytest run in one line, not an INTERNALERROR


def _run(pytester, *args):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    return pytester.runpytest_subprocess(str(pytester.path), *args)


@pytest.mark.parametrize("case", ["labels-N-by-1", "images-dims-overflow-to-zero"])
def test_bad_idx_file_stops_the_run_in_one_line(pytester, tmp_path, case):
    key, make, pattern = IDX_CASES[case]
    folder = tmp_path / "fm"
    write_idx_folder(folder, gz=True)
    (folder / (IDX_FILES[key] + ".gz")).write_bytes(gzip.compress(make()))
    result = _run(pytester, "--data-dir", f"fashion_mnist={folder}", "-k", "table7-fashion")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and "Traceback" not in output
    assert any(f"{folder}/{IDX_FILES[key]}.gz" in line for line in output.splitlines())


def test_imbalance_classes_naming_every_class_stop_the_run(pytester):
    result = _run(pytester, "--data-source", "synthetic", "--imbalance-classes",
                  "0,1,2,3,4,5,6,7,8,9", "-k", "table7-cifar10-imbalanced")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*table7-cifar10-imbalanced-*: --imbalance-classes names every "
                                 "class (0,1,2,3,4,5,6,7,8,9)*name fewer classes*"])
