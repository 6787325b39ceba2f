"""Device placement for xdist workers: one GPU per worker, chosen before TensorFlow loads."""

from __future__ import annotations

import os
import shutil
import subprocess


def count_gpus() -> int:
    """NVIDIA GPUs on this machine per ``nvidia-smi -L`` (0 when it is absent or fails).

    TensorFlow cannot be asked: importing it would fix the visible devices before pinning.
    """
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def worker_index(worker_id: str | None) -> int | None:
    """``gw3`` -> 3; None for the controller or a run without xdist."""
    if not worker_id or not worker_id.startswith("gw"):
        return None
    try:
        return int(worker_id[2:])
    except ValueError:
        return None


def gpu_for_worker(index: int, visible: str | None, gpu_count: int) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` value worker ``index`` should use, or None to leave it.

    Indexes into the caller's own ``CUDA_VISIBLE_DEVICES`` list when one is set (so ``"2,3"``
    gives workers GPUs 2 and 3), otherwise into ``0..gpu_count-1``; round-robin when there are
    more workers than GPUs.
    """
    if visible is not None:
        devices = [d.strip() for d in visible.split(",") if d.strip()]
        if not devices or devices == ["-1"]:
            return None  # the caller hid every GPU on purpose
        return devices[index % len(devices)]
    if gpu_count <= 0:
        return None
    return str(index % gpu_count)


def pin_worker(env: os._Environ | dict | None = None, slot: int | None = None) -> str | None:
    """Pin this xdist worker to its GPU and turn on memory growth; returns the device chosen.

    ``slot``: the worker's place among the workers of its own host (0 for a host's first
    worker, see ``plugin/hosts.py``), so that each host spreads its workers over its own GPUs;
    without one, the worker's global number ``gwN`` is used."""
    env = os.environ if env is None else env
    index = worker_index(env.get("PYTEST_XDIST_WORKER"))
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if index is None:
        return None
    if slot is not None:
        index = slot
    visible = env.get("CUDA_VISIBLE_DEVICES")
    choice = gpu_for_worker(index, visible, 0 if visible is not None else count_gpus())
    if choice is not None:
        env["RESNET_HARNESS_PARENT_CUDA_VISIBLE_DEVICES"] = visible or ""
        env["CUDA_VISIBLE_DEVICES"] = choice
    return choice
