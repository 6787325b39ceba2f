"""Live progress of the case that is training: case i of N, epoch, step, images/s and time left.

Three parts:

- :func:`progress_callback`, a Keras callback that measures and hands a :class:`CaseProgress` to a
  sink at most every ``interval`` seconds (a clock read per batch otherwise, so training speed is
  unchanged; see README "Watching progress" for the measured cost);
- sinks: :class:`TerminalSink` (one process: draws on the terminal through pytest's terminal
  writer, with output capture suspended for the write) and :class:`FileSink` (an xdist worker,
  which cannot write to the controller's terminal: ``<run>/progress/<worker>.json``, replaced
  atomically);
- :class:`StatusLines`, the drawing: on a terminal, lines below pytest's current line redrawn in
  place; otherwise a plain line now and then (CI logs get no carriage returns), and
  :class:`ProgressPoller`, the controller's thread that reads the workers' files and draws them.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

PLAIN_INTERVAL_S = 30.0  # a plain line at most this often when the output is not a terminal
TTY_INTERVAL_S = 0.5  # in-place redraws
FILE_INTERVAL_S = 1.0  # progress files of xdist workers
MAX_WORKER_LINES = 8


def parse_progress(text: str | float) -> str | float:
    """``auto`` (in place on a terminal, a line every 30 s otherwise), ``off``, or SECONDS
    between plain lines (``0``: at every step)."""
    value = str(text).strip().lower()
    if value in ("auto", "off"):
        return value
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(
            f"progress must be auto, off or a number of seconds >= 0, got {text!r}")
    return seconds


@dataclass
class CaseProgress:
    """Where one case's training stands."""

    case_id: str
    index: int | None = None  # 1-based position among this process's cases
    total: int | None = None
    epoch: int = 0  # 1-based, 0 before the first epoch
    epochs: int = 0
    step: int = 0
    steps: int | None = None
    images_per_s: float | None = None
    eta_s: float | None = None  # training time left in this case
    worker: str | None = None
    done: bool = False

    def describe(self) -> str:
        where = f"case {self.index}/{self.total} " if self.index and self.total else "case "
        text = f"{where}{self.case_id} epoch {self.epoch}/{self.epochs}"
        text += f" step {self.step}/{self.steps}" if self.steps else f" step {self.step}"
        if self.images_per_s:
            text += f" {self.images_per_s:,.0f} img/s"
        if self.eta_s is not None:
            text += f" ETA {format_duration(self.eta_s)}"
        return text


def format_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours
            else f"{rest // 60}:{rest % 60:02d}")


def progress_callback(sink, case_id: str, *, batch_size: int, index: int | None = None,
                      total: int | None = None, worker: str | None = None):
    """A Keras callback that hands :class:`CaseProgress` snapshots of one case to ``sink``.

    ``sink.interval`` (seconds) throttles the snapshots; ``sink.publish(state, force)`` and
    ``sink.finish(state)`` receive them.
    """
    import keras

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            params = self.params or {}
            self.state = CaseProgress(case_id, index=index, total=total,
                                      epochs=int(params.get("epochs") or 0),
                                      steps=params.get("steps"), worker=worker)
            self.last_emit = time.perf_counter()  # the first line after one interval
            self.window = None  # (time, global step) after the first step (tracing excluded)
            self.global_step = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.state.epoch, self.state.step = epoch + 1, 0

        def on_train_batch_end(self, batch, logs=None):
            self.state.step = batch + 1
            self.global_step += 1
            now = time.perf_counter()
            if self.window is None:
                self.window = (now, self.global_step)
            if now - self.last_emit >= sink.interval:
                self._emit(now, force=False)

        def on_epoch_end(self, epoch, logs=None):
            self._emit(time.perf_counter(), force=True)

        def on_train_end(self, logs=None):
            self.state.done = True
            try:
                sink.finish(self.state)
            except Exception:  # noqa: BLE001 - progress must never fail a case
                pass

        def _emit(self, now: float, force: bool) -> None:
            start, first = self.window or (now, self.global_step)
            state = self.state
            if now > start and self.global_step > first:
                steps_per_s = (self.global_step - first) / (now - start)
                state.images_per_s = steps_per_s * batch_size
                if state.steps:
                    left = (state.steps - state.step) + state.steps * (state.epochs - state.epoch)
                    state.eta_s = left / steps_per_s
            self.last_emit = now
            try:
                sink.publish(state, force)
            except Exception:  # noqa: BLE001 - progress must never fail a case
                self.last_emit = float("inf")  # and a broken sink is not tried again

    return Progress()


# -- drawing -------------------------------------------------------------------------------------
class StatusLines:
    """Status lines under pytest's current output line.

    In place (a terminal): the lines are drawn below the cursor and the cursor is put back where
    pytest left it, so its dots and percentages keep going on their own line; :meth:`clear`
    erases them before pytest writes. Plain: :meth:`show` writes whole lines through the terminal
    writer (no carriage returns).
    """

    def __init__(self, terminal_writer, in_place: bool):
        self.tw = terminal_writer
        self.in_place = in_place
        self.drawn = 0
        self.lock = threading.RLock()

    def _raw(self, text: str) -> None:
        handle = getattr(self.tw, "_file", None)
        if handle is None:
            return
        handle.write(text)
        handle.flush()

    def _back(self, count: int) -> str:
        column = self.tw.width_of_current_line
        return f"\x1b[{count}A\r" + (f"\x1b[{column}C" if column else "")

    def show(self, lines: list[str]) -> None:
        with self.lock:
            if not self.in_place:
                if lines and self.tw.width_of_current_line:
                    self.tw.line()
                for line in lines:
                    self.tw.line(line)
                return
            width = max(20, self.tw.fullwidth - 1)
            count = max(len(lines), self.drawn)
            padded = [line[:width] for line in lines] + [""] * (count - len(lines))
            if count:
                self._raw("".join(f"\n\r\x1b[2K{line}" for line in padded) + self._back(count))
            self.drawn = len(lines)

    def clear(self) -> None:
        with self.lock:
            if self.in_place and self.drawn:
                self._raw("\n\r\x1b[2K" * self.drawn + self._back(self.drawn))
            self.drawn = 0


class TerminalSink:
    """Progress of the cases of this process, drawn on the terminal."""

    def __init__(self, lines: StatusLines, capture_manager=None, interval: float | None = None):
        self.lines = lines
        self.capman = capture_manager
        self.interval = interval if interval is not None else (
            TTY_INTERVAL_S if lines.in_place else PLAIN_INTERVAL_S)

    def _write(self, action: Callable[[], None]) -> None:
        # pytest captures fd 1 and 2 while a test runs; suspend that for the one write.
        if self.capman is None:
            action()
            return
        with self.capman.global_and_fixture_disabled():
            action()

    def publish(self, state: CaseProgress, force: bool) -> None:
        if force and not self.lines.in_place and self.interval > 0:
            return  # plain lines only when the interval is due, not at every epoch's end
        self._write(lambda: self.lines.show([f"resnet-harness: {state.describe()}"]))

    def finish(self, state: CaseProgress) -> None:
        if self.lines.in_place:
            self._write(self.lines.clear)


class FileSink:
    """Progress of an xdist worker's cases as ``<folder>/<worker>.json`` (replaced atomically)."""

    interval = FILE_INTERVAL_S

    def __init__(self, folder: Path, worker: str):
        self.path = Path(folder) / f"{worker}.json"

    def publish(self, state: CaseProgress, force: bool) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(dict(asdict(state), updated=time.time())))
            os.replace(tmp, self.path)  # no fsync: a lost progress file costs nothing
        except OSError:
            pass

    def finish(self, state: CaseProgress) -> None:
        self.publish(state, True)


def read_progress(folder: Path) -> list[CaseProgress]:
    """The workers' progress files in ``folder`` (unreadable ones skipped), by worker."""
    states = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            data.pop("updated", None)
            states.append(CaseProgress(**data))
        except (OSError, ValueError, TypeError):
            continue
    return states


class ProgressPoller:
    """The xdist controller's thread: reads the workers' progress files and draws them.

    Workers on other machines write their files there, so only their finished count shows here.
    """

    def __init__(self, folder: Path, lines: StatusLines, interval: float,
                 counts: Callable[[], tuple[int, int | None]]):
        self.folder = Path(folder)
        self.lines = lines
        self.interval = interval
        self.counts = counts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resnet-harness-progress",
                                        daemon=True)
        self._last: list[str] | None = None

    def start(self) -> "ProgressPoller":
        self._thread.start()
        return self

    def render(self) -> list[str]:
        done, total = self.counts()
        states = [s for s in read_progress(self.folder) if not s.done][:MAX_WORKER_LINES]
        if not states:
            return []
        head = f"resnet-harness: {done}/{total} tests done" if total else \
            f"resnet-harness: {done} tests done"
        return [head] + [f"  [{s.worker}] {s.describe()}" for s in states]

    def _run(self) -> None:
        poll = min(max(self.interval, 0.2), 1.0) if self.lines.in_place else \
            max(self.interval, 0.2)
        while not self._stop.wait(poll):
            try:
                lines = self.render()
            except Exception:  # noqa: BLE001 - progress must never break a run
                continue
            if self.lines.in_place or lines != self._last:
                self.lines.show(lines)
                self._last = lines

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.lines.clear()


def progress_mode(setting: Any, verbosity: int, isatty: bool) -> tuple[bool, bool, float]:
    """``(enabled, in_place, interval)`` from ``--progress``, pytest's verbosity and the
    terminal."""
    if setting == "off" or verbosity < 0:
        return False, False, 0.0
    if setting in (None, "auto"):
        return True, isatty, TTY_INTERVAL_S if isatty else PLAIN_INTERVAL_S
    return True, False, float(setting)
