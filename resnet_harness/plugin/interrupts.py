"""Interruptions and write faults: SIGTERM handled like Ctrl-C, and an ``OSError`` while a case
writes its files turned into that case's one-line failure.

CI runners and batch schedulers stop a job with SIGTERM (then SIGKILL after a grace period).
Python's default for SIGTERM is to die at once, which skips pytest's session finish: no report, no
CSV. Raising ``KeyboardInterrupt`` instead makes pytest stop as after Ctrl-C: the case running is
interrupted, finished rows stay on disk, and the report and CSV are written before the exit.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

import pytest


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


def one_line(exc: BaseException) -> str:
    """``Type: message file`` on one line (an ``OSError``'s strerror and file name)."""
    text = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or ""
    where = f" {exc.filename}" if isinstance(exc, OSError) and exc.filename else ""
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}{where}"


@contextlib.contextmanager
def writing_rows(case_id: str, folder: Path, also: str | None = None):
    """Turn an ``OSError`` while writing a case's files (disk full, folder gone, read-only) into
    a one-line failure of that case (after ``also``, the case's own error); the session goes on
    with the next case."""
    reason = None
    try:
        yield
    except OSError as exc:
        reason = one_line(exc)
    if reason is not None:
        prefix = f"{also}; and it " if also else ""
        try:
            pytest.fail(f"{case_id}: {prefix}cannot write its row to {folder} ({reason}); "
                        "free disk space or pass a writable --report-dir", pytrace=False)
        except pytest.fail.Exception as failed:
            # Raised while the with statement handles the OSError: without "from None"
            # pytest would print the OSError and "During handling..." above the one line.
            raise failed from None
