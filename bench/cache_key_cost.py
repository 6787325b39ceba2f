"""What keying the decoded-image cache by content costs (README "Cache key cost"), on the
CIFAR-10 JPEG folders: each candidate key, warm and cold-ish, against a full decode and against
loading the cached ``.npz``, side by side as ratios; the decode before and after exact mode
handling; and which keys notice two class folders swapped with ``mv``.

"Cold-ish": every image's pages are first evicted from the page cache with
``posix_fadvise(DONTNEED)`` (inodes and directory entries stay cached; dropping those needs root
and a quiet machine). Run: ``python bench/cache_key_cost.py [--data-dir DIR] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from resnet_harness.training.data import images  # noqa: E402
from resnet_harness.training.data.sources import (IMAGE_SUFFIXES, NATIVE_SHAPE,  # noqa: E402
                                                  image_folder_files, load_image_folders)


# ---------------------------------------------------------------------------------------------
# The candidate keys; each takes the file listing of load_image_folders.


def key_listing(folder: Path, files) -> str:
    """The key before this change: the folder's path and, per class folder, its file count and
    first and last names (``sources._listing_key`` as it was)."""
    digest = hashlib.sha256(os.fsencode(folder.resolve()))
    for split in ("train", "test"):
        for class_dir in sorted((folder / split).iterdir()):
            if class_dir.is_dir():
                names = sorted(os.listdir(class_dir))
                digest.update(f"{split}/{class_dir.name}:{len(names)}:{names[:1]}{names[-1:]}"
                              .encode())
    return digest.hexdigest()[:16]


def key_stat(folder: Path, files) -> str:
    """Per file: name, size, mtime_ns (what ``mv`` keeps)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, _, path in files:
        st = os.stat(path)
        digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def key_stat_inode(folder: Path, files) -> str:
    """Per file: name, device, inode, size, mtime_ns, ctime_ns (the memo's signature alone)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, _, path in files:
        st = os.stat(path)
        digest.update(f"{name}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:"
                      f"{st.st_ctime_ns}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def key_content(folder: Path, files) -> str:
    """Every file read and hashed (no memo): what a first load, or one after a copy, pays."""
    return images.content_key(files, images.file_digests(files, images.StatMemo(None))[0],
                              "cifar10")


def key_memo(memo_path: Path):
    """The chosen key: content digests, taken from the stat memo where the stat is unchanged."""
    def key(folder: Path, files) -> str:
        memo = images.StatMemo(memo_path)
        digests, _ = images.file_digests(files, memo)
        memo.save()
        return images.content_key(files, digests, "cifar10")
    return key


def hit_before(folder: Path, cache: Path) -> list[np.ndarray]:
    """A cache hit before this change: the class folders listed as sorted Paths (the name
    checks), the listing key, the ``.npz`` loaded."""
    for split in ("train", "test"):
        for class_dir in sorted(p for p in (folder / split).iterdir()
                                if p.is_dir() and not p.name.startswith(".")):
            sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    key_listing(folder, None)
    with np.load(cache) as data:
        return [data[k] for k in ("x_train", "y_train", "x_test", "y_test")]


# ---------------------------------------------------------------------------------------------
# Decoders


def decode_before(files, dataset: str) -> np.ndarray:
    """The decode loop before this change: ``Image.open(path).convert(mode)`` per file."""
    from PIL import Image

    height, width, channels = NATIVE_SHAPE[dataset]
    mode = "RGB" if channels == 3 else "L"
    out = []
    for _, _, path in files:
        with Image.open(path) as image:
            out.append(np.asarray(image.convert(mode), dtype=np.uint8).reshape(height, width,
                                                                              channels))
    return np.stack(out)


def decode_after(files, dataset: str) -> np.ndarray:
    """The decode loop now: read once, hash, exact mode conversion (``images.decode_files``)."""
    return images.decode_files(files, dataset)[0]


# ---------------------------------------------------------------------------------------------


def evict(files) -> None:
    for _, _, path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def swap_check(keys) -> dict[str, bool]:
    """Which keys change when two class folders' files are swapped with ``mv`` (names, counts,
    sizes and mtimes of every file stay the same: each image is a constant colour)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers import write_image_folders

    seen = {}
    racy, images.RACY_NS = images.RACY_NS, -10**18
    with tempfile.TemporaryDirectory() as tmp:
        # The memo trusts even these fresh files: the swap must be seen by the stat signature,
        # not by reading files too new to memoise.
        folder = write_image_folders(Path(tmp) / "data", "cifar10")
        for _, _, path in _all(folder):  # one mtime for all, as an unpacked archive has
            os.utime(path, ns=(1_554_000_000 * 10**9,) * 2)
        old = {name: key(folder, _all(folder)) for name, key in keys.items()}
        # Equal sizes as well as names: constant-colour PNGs of one size compress alike.
        train = folder / "train"
        os.rename(train / "cat", train / "tmp")
        os.rename(train / "dog", train / "cat")
        os.rename(train / "tmp", train / "dog")
        for name, key in keys.items():
            seen[name] = key(folder, _all(folder)) != old[name]
    images.RACY_NS = racy
    return seen


def _all(folder: Path):
    files = image_folder_files(folder, "cifar10")
    return files["train"] + files["test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/data/cifar10-jpeg"))
    parser.add_argument("--repeats", type=int, default=4,
                        help="decodes per decoder, alternating before/after (ABBA...)")
    args = parser.parse_args()
    folder, dataset = args.data_dir, "cifar10"
    files = _all(folder)
    print(f"{len(files)} files in {folder}; {os.cpu_count()} CPUs")

    work = Path(tempfile.mkdtemp(prefix="cache-key-cost-"))
    try:
        rows: dict[str, float] = {}
        # Decode first: it also warms the page cache for the warm figures below.
        # Wall and CPU time: on a shared machine the CPU time is the steadier comparison.
        before, after, before_cpu, after_cpu = [], [], [], []
        for i in range(args.repeats):
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                cpu = time.process_time()
                seconds, arrays = timed((decode_before, decode_after)[which], files, dataset)
                (before_cpu, after_cpu)[which].append(time.process_time() - cpu)
                (before, after)[which].append(seconds)
                if which == 0:
                    reference = arrays
                else:
                    same = np.array_equal(arrays, reference)
        rows["decode, before (Image.open + convert)"] = statistics.median(before)
        rows["decode, after (read + hash + exact modes)"] = statistics.median(after)
        rows["decode, before, CPU time"] = statistics.median(before_cpu)
        rows["decode, after, CPU time"] = statistics.median(after_cpu)
        decoded = images.decode_files(files, dataset)[0]

        cache = work / "cache.npz"
        buffer = io.BytesIO()
        np.savez(buffer, x_train=decoded[:50000], y_train=np.zeros(50000, np.int64),
                 x_test=decoded[50000:], y_test=np.zeros(len(decoded) - 50000, np.int64))
        cache.write_bytes(buffer.getvalue())
        del decoded, buffer

        def load_npz():
            with np.load(cache) as data:
                return [data[k] for k in ("x_train", "y_train", "x_test", "y_test")]
        timed(load_npz)  # the first read pays for the freshly written file's page cache
        rows["npz load (cache hit, the arrays)"] = min(timed(load_npz)[0] for _ in range(3))

        memo_path = work / "memo.stat.npz"
        keys = {"listing (old: names + counts)": key_listing,
                "stat (size, mtime)": key_stat,
                "stat + inode + ctime": key_stat_inode,
                "content, every file read + hashed": key_content,
                "memo (chosen): stat + memoised digests": key_memo(memo_path)}
        for name, key in keys.items():
            if name.startswith("memo"):
                # Fill the memo (the files are years old: nothing is too fresh to memoise).
                fill, _ = timed(key, folder, files)
                rows["memo, first fill (reads every file)"] = fill
            rows[f"key: {name}, warm"] = min(timed(key, folder, files)[0] for _ in range(3))
            if not name.startswith("listing"):
                evict(files)
                rows[f"key: {name}, cold-ish"] = timed(key, folder, files)[0]
        timed(key_content, folder, files)  # warm the pages again

        cache_dir = work / "harness-cache"
        load_image_folders(folder, dataset, cache_dir)  # decode + cache + memo
        rows["cache hit before (Path listing + listing key + npz)"] = min(
            timed(hit_before, folder, cache)[0] for _ in range(3))
        rows["cache hit now: load_image_folders (listing + memo key + npz)"] = min(
            timed(load_image_folders, folder, dataset, cache_dir)[0] for _ in range(3))
        swaps = swap_check({k: v for k, v in keys.items() if not k.startswith("memo")}
                           | {"memo (chosen): stat + memoised digests":
                              key_memo(work / "swap-memo.npz")})
    finally:
        shutil.rmtree(work, ignore_errors=True)

    npz = rows["npz load (cache hit, the arrays)"]
    decode = rows["decode, after (read + hash + exact modes)"]
    width = max(map(len, rows)) + 2
    print(f"\n{'what':<{width}}{'seconds':>9}{'x npz load':>12}{'x decode':>10}")
    for name, seconds in rows.items():
        print(f"{name:<{width}}{seconds:9.3f}{seconds / npz:12.2f}{seconds / decode:10.3f}")
    change = (rows["decode, after (read + hash + exact modes)"]
              / rows["decode, before (Image.open + convert)"] - 1)
    cpu_change = rows["decode, after, CPU time"] / rows["decode, before, CPU time"] - 1
    print(f"\ndecode after/before: wall {change:+.1%}, CPU {cpu_change:+.1%} (medians of "
          f"{args.repeats} each, alternated); identical arrays: {same}; wall: before "
          f"{', '.join(f'{s:.2f}' for s in before)} s, after {', '.join(f'{s:.2f}' for s in after)}"
          f" s; CPU: before {', '.join(f'{s:.2f}' for s in before_cpu)} s, after "
          f"{', '.join(f'{s:.2f}' for s in after_cpu)} s")
    print("\nkey changes when two class folders' files are swapped with mv:")
    for name, changed in swaps.items():
        print(f"  {name:<44}{'yes' if changed else 'NO (serves the old labels)'}")


if __name__ == "__main__":
    main()
