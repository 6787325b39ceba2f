"""A pytest plugin of the test suite: when a session ends, however it ends (Ctrl-C included),
no process it started outlives it. Tests start pytest runs, sshd and SLURM clients as
subprocesses; a test interrupted while waiting on one would leave it running."""

from __future__ import annotations

import psutil

_BEFORE: set[int] = set()


def pytest_configure(config) -> None:
    _BEFORE.update(child.pid for child in psutil.Process().children(recursive=True))


def pytest_unconfigure(config) -> None:
    # Here, after pytest_sessionfinish: xdist has stopped its workers by now.
    left = [child for child in psutil.Process().children(recursive=True)
            if child.pid not in _BEFORE]
    for child in left:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(left, timeout=10)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
