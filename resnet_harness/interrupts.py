"""SIGTERM handled like Ctrl-C.

CI runners and batch schedulers stop a job with SIGTERM (then SIGKILL after a grace period).
Python's default for SIGTERM is to die at once, which skips pytest's session finish: no report, no
CSV. Raising ``KeyboardInterrupt`` instead makes pytest stop as after Ctrl-C: the case running is
interrupted, finished rows stay on disk, and the report and CSV are written before the exit.
"""

from __future__ import annotations

import signal
import threading


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


def install_sigterm_handler():
    """Make SIGTERM raise ``KeyboardInterrupt`` in the main thread; returns the previous handler
    (for :func:`restore_sigterm_handler`), or None when nothing was installed."""
    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers can only be set from the main thread
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        return None  # the parent asked us to ignore SIGTERM (nohup-like): keep that
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return previous


def restore_sigterm_handler(previous) -> None:
    """Put back the handler :func:`install_sigterm_handler` replaced."""
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
