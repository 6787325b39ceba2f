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


def host() -> dict[str, str]:
    """Host name, worker id and the command line."""
    return {"hostname": socket.gethostname(),
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "command_line": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])}
