"""Where a result came from: package versions, device, git commit, host, time."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from importlib import metadata

PACKAGES = ("resnet-harness", "tensorflow", "tensorflow-cpu", "keras", "numpy", "scikit-learn",
            "pandas", "pytest", "pytest-xdist")


def now() -> str:
    """The current UTC time, ISO 8601."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape a result (installed ones only)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@lru_cache(maxsize=1)
def git_commit(cwd: str | None = None) -> str | None:
    """The checked-out commit (with ``-dirty`` for local changes), or None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def device() -> str:
    """The device TensorFlow trains on, e.g. "GPU:0 (NVIDIA H100)" or "CPU (2 cores)"."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", "GPU")
        return f"GPU:0 ({name}; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')})"
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


_COMMAND_LINE: list[str] = []  # the session's command line, where this process's is not it


def set_command_line(text: str) -> None:
    """The command line this process's rows record: a worker's own ``sys.argv`` is xdist's
    ``-c`` (locally and over SSH) or submitit's, not what the user typed."""
    _COMMAND_LINE[:] = [text]


def command_line() -> str:
    """What the user typed to start the session (this process's, unless set)."""
    return _COMMAND_LINE[0] if _COMMAND_LINE else " ".join(
        [os.path.basename(sys.argv[0])] + sys.argv[1:])


def host() -> dict[str, str]:
    """Host name, worker id and the command line."""
    return {"hostname": socket.gethostname(),
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "command_line": command_line()}


# The CPU flags oneDNN dispatches its kernels on: two machines that differ here compute the same
# convolutions with different kernels, so a case's figures differ like another seed's do.
ISA_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512bw",
             "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
             "amx_bf16", "amx_int8")


@lru_cache(maxsize=1)
def cpu() -> tuple[str, tuple[str, ...]]:
    """The CPU model and which of :data:`ISA_FLAGS` it has (Linux' ``/proc/cpuinfo``; the
    platform's processor name and no flags elsewhere)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                name, _, text = line.partition(":")
                name = name.strip()
                if name == "model name" and text.strip():
                    model = text.strip()
                elif name in ("flags", "Features"):
                    flags = set(text.split())
                if flags and model:
                    break
    except OSError:
        pass
    return model, tuple(f for f in ISA_FLAGS if f in flags)


def gpus() -> list[str] | None:
    """The names of the GPUs TensorFlow sees; None when TensorFlow is not loaded in this process
    (the controller of an xdist session never loads it just to ask)."""
    import sys

    if "tensorflow" not in sys.modules:
        return None
    import tensorflow as tf

    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(str(details.get("device_name", gpu.name)))
    return names


def environment(with_gpus: bool = True) -> dict[str, object]:
    """What besides code, libraries and data shapes a figure: the CPU, its instruction sets and
    the CPUs this process may use, oneDNN's settings (``TF_ENABLE_ONEDNN_OPTS``, ``ONEDNN_MAX_CPU_ISA``) and the GPUs."""
    model, isa = cpu()
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    out: dict[str, object] = {
        # oneDNN splits work by thread count, and another split sums in another order
        # (bench/isa_determinism.txt: 2 threads against 1 gave other weights).
        "cpu": model, "isa": list(isa), "cpus": cpus,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1"),
        "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or None}
    if with_gpus:
        out["gpus"] = gpus() or []
    return out
