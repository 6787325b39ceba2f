"""Live progress: tests done of N and the session's ETA, then the training case's epoch, step,
loss, accuracy, images/s and time left.

Four parts:

- :func:`progress_callback`, a Keras callback that hands a :class:`CaseProgress` to a sink every
  ``interval`` seconds and at each epoch's end (a clock read per batch otherwise, so training
  speed is unchanged; ``bench/progress_cost.py`` measures it);
- :class:`SessionProgress`, the controller's count of finished tests and its session ETA;
- sinks: :class:`TerminalSink` (one process: draws on the terminal through pytest's terminal
  writer, with output capture suspended for the write); an xdist worker, which cannot write to
  the controller's terminal, sends its snapshots home (``relay.ChannelSink``);
- :class:`StatusLines`, the drawing: on a terminal, lines below pytest's current line redrawn in
  place and fitted to the width by :func:`fit`; otherwise a plain line now and then (CI logs get
  no carriage returns), and :class:`ProgressPoller`, the controller's thread that draws the
  workers' latest snapshots.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

PLAIN_INTERVAL_S = 30.0  # a plain line this often (and at each epoch end) when not a terminal
TTY_INTERVAL_S = 0.5  # in-place redraws
MAX_WORKER_LINES = 8

# Which fields a line too wide for the terminal loses, first to go first. The case id goes
# first because it is long (~45 characters) and "k/N done" already says where the session
# stands; the step and the case's ETA are what a glance at a progress line is for.
DROP_ORDER = ("case", "speed", "tag", "accuracy", "loss", "epoch", "session", "worker", "step",
              "eta")


class Field(NamedTuple):
    """One whole field of a progress line; ``kind`` is its name in :data:`DROP_ORDER`."""

    kind: str
    text: str


TAG = Field("tag", "resnet-harness:")


def fit(fields: list[Field | None], width: int | None) -> str:
    """``fields`` joined by spaces, dropping whole fields in :data:`DROP_ORDER` until the line
    fits in ``width`` columns (``None``: no limit). A field is never cut: when even the last
    ones do not fit, the line is empty."""
    kept = [field for field in fields if field is not None]
    for kind in (None, *DROP_ORDER):
        if kind is not None:
            kept = [field for field in kept if field.kind != kind]
        text = " ".join(field.text for field in kept)
        if width is None or len(text) <= width:
            return text
    return ""


def parse_progress(text: str | float) -> str | float:
    """``auto`` (in place on a terminal, a line every 30 s and at each epoch end otherwise),
    ``off``, or SECONDS between plain lines (``0``: at every step)."""
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
    epoch: int = 0  # 1-based, 0 before the first epoch
    epochs: int = 0
    step: int = 0
    steps: int | None = None
    loss: float | None = None  # running mean over the epoch so far, as Keras logs it
    accuracy: float | None = None
    images_per_s: float | None = None
    eta_s: float | None = None  # training time left in this case
    epochs_done: int = 0  # lets the controller see an epoch's end between two polls
    worker: str | None = None
    done: bool = False

    def fields(self) -> list[Field]:
        """The case's part of a progress line."""
        steps = f"{self.step}/{self.steps}" if self.steps else f"{self.step}"
        fields = [Field("case", f"case {self.case_id}"),
                  Field("epoch", f"epoch {self.epoch}/{self.epochs}"),
                  Field("step", f"step {steps}")]
        if self.loss is not None:
            fields.append(Field("loss", f"loss {self.loss:.4g}"))
        if self.accuracy is not None:
            fields.append(Field("accuracy", f"acc {self.accuracy:.3f}"))
        if self.images_per_s:
            fields.append(Field("speed", f"{self.images_per_s:,.0f} img/s"))
        if self.eta_s is not None:
            fields.append(Field("eta", f"ETA {format_duration(self.eta_s)}"))
        return fields


def format_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours
            else f"{rest // 60}:{rest % 60:02d}")


class SessionProgress:
    """The controller's count of finished tests and when the session will end.

    Session ETA = (mean x tests left - time already spent in the running tests, each counted
    up to the mean) / min(workers, tests left), where mean is the wall time of the finished
    tests (``pytest_runtest_logstart`` to ``pytest_runtest_logfinish`` as the controller sees
    them, set-up and tear-down included) and tests left include the running ones: the workers
    share what is left, but one test is never split between them. Unknown until a test has
    finished.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.total: int | None = None
        self.done = 0
        self.workers = 1
        self._starts: dict[str, float] = {}
        self._timed = 0
        self._seconds = 0.0

    def start(self, nodeid: str) -> None:
        self._starts[nodeid] = self.clock()

    def finish(self, nodeid: str) -> None:
        self.done += 1
        start = self._starts.pop(nodeid, None)
        if start is not None:
            self._timed += 1
            self._seconds += self.clock() - start

    def eta_s(self) -> float | None:
        if not self.total or not self._timed:
            return None
        left = max(self.total - self.done, 0)
        if not left:
            return 0.0
        mean, now = self._seconds / self._timed, self.clock()
        # list(): the xdist poller's thread reads while pytest's hooks write.
        spent = sum(min(now - start, mean) for start in list(self._starts.values()))
        return max(mean * left - spent, 0.0) / min(max(self.workers, 1), left)

    def field(self, bar: bool = False) -> Field:
        """``k/N done, ETA m:ss`` (tests, and the session's ETA); ``bar`` ends it with `` |``
        (the case's own figures follow)."""
        text = f"{self.done}/{self.total} done" if self.total else f"{self.done} done"
        eta = self.eta_s()
        if eta is not None:
            text += f", ETA {format_duration(eta)}"
        return Field("session", text + (" |" if bar else ""))


def progress_callback(sink, case_id: str, *, batch_size: int, worker: str | None = None,
                      clock: Callable[[], float] = time.perf_counter):
    """A Keras callback that hands :class:`CaseProgress` snapshots of one case to ``sink``:
    every ``sink.interval`` seconds on its own clock, and at each epoch's end.

    ``sink.publish(state, force)`` receives them (``force``: an epoch's end) and
    ``sink.finish(state)`` the last one.
    """
    import keras

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            params = self.params or {}
            self.state = CaseProgress(case_id, epochs=int(params.get("epochs") or 0),
                                      steps=params.get("steps"), worker=worker)
            self.due = clock() + sink.interval  # the first periodic line after one interval
            self.window = None  # (time, global step) after the first step (tracing excluded)
            self.global_step = 0
            self.logs = None

        def on_epoch_begin(self, epoch, logs=None):
            self.state.epoch, self.state.step = epoch + 1, 0

        def on_train_batch_end(self, batch, logs=None):
            # Only a clock read per step: figures are worked out when a line is due.
            self.state.step = batch + 1
            self.global_step += 1
            self.logs = logs
            now = clock()
            if self.window is None:
                self.window = (now, self.global_step)
            if now >= self.due:
                self.due = now + sink.interval
                self._emit(now, force=False)

        def on_epoch_end(self, epoch, logs=None):
            # The periodic clock is left alone: resetting it here starved logs of lines
            # whenever epochs were shorter than the interval.
            self.state.epochs_done = epoch + 1
            self.logs = logs or self.logs
            self._emit(clock(), force=True)

        def on_train_end(self, logs=None):
            self.state.done = True
            try:
                sink.finish(self.state)
            except Exception:  # noqa: BLE001 - progress must never fail a case
                pass

        def _emit(self, now: float, force: bool) -> None:
            if self.due == float("inf"):
                return
            start, first = self.window or (now, self.global_step)
            state = self.state
            state.loss, state.accuracy = running_figures(self.logs)
            if now > start and self.global_step > first:
                steps_per_s = (self.global_step - first) / (now - start)
                state.images_per_s = steps_per_s * batch_size
                if state.steps:
                    left = (state.steps - state.step) + state.steps * (state.epochs - state.epoch)
                    state.eta_s = left / steps_per_s
            try:
                sink.publish(state, force)
            except Exception:  # noqa: BLE001 - progress must never fail a case
                self.due = float("inf")  # and a broken sink is not tried again

    return Progress()


def running_figures(logs: dict | None) -> tuple[float | None, float | None]:
    """``(loss, accuracy)`` from Keras' batch or epoch logs (validation figures ignored)."""
    logs = logs or {}
    names = [name for name in logs if not name.startswith("val_")]
    accuracy = next((name for name in ("accuracy", "acc") if name in logs), None) or next(
        (name for name in names if name.endswith("accuracy")), None)
    return _number(logs.get("loss")), _number(logs.get(accuracy)) if accuracy else None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# -- drawing -------------------------------------------------------------------------------------
class StatusLines:
    """Status lines under pytest's current output line.

    In place (a terminal): the lines are drawn below the cursor and the cursor is put back where
    pytest left it, so its dots and percentages keep going on their own line; :meth:`clear`
    erases them before pytest writes. Plain: :meth:`show` writes whole lines through the terminal
    writer (no carriage returns). ``on_terminal`` (default: ``in_place``): lines are fitted to
    :attr:`width`, plain ones too.
    """

    def __init__(self, terminal_writer, in_place: bool, on_terminal: bool | None = None):
        self.tw = terminal_writer
        self.in_place = in_place
        self.on_terminal = in_place if on_terminal is None else on_terminal
        self.drawn = 0
        self.lock = threading.RLock()

    @property
    def width(self) -> int | None:
        """Columns a line may take (pytest's terminal width), ``None`` when not a terminal."""
        # One column short: a line that fills the last one wraps on some terminals, and a
        # wrapped line breaks the in-place redraw's cursor arithmetic.
        return max(1, self.tw.fullwidth - 1) if self.on_terminal else None

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
        """Draw ``lines`` (already fitted, see :func:`fit`)."""
        with self.lock:
            if not self.in_place:
                if lines and self.tw.width_of_current_line:
                    self.tw.line()
                for line in lines:
                    self.tw.line(line)
                return
            count = max(len(lines), self.drawn)
            padded = list(lines) + [""] * (count - len(lines))
            if count:
                self._raw("".join(f"\n\r\x1b[2K{line}" for line in padded) + self._back(count))
            self.drawn = len(lines)

    def clear(self) -> None:
        with self.lock:
            if self.in_place and self.drawn:
                self._raw("\n\r\x1b[2K" * self.drawn + self._back(self.drawn))
            self.drawn = 0


class TerminalSink:
    """Progress of the cases of this process, drawn on the terminal as one line: the session
    (when given), then the case."""

    def __init__(self, lines: StatusLines, capture_manager=None, interval: float | None = None,
                 session: SessionProgress | None = None):
        self.lines = lines
        self.capman = capture_manager
        self.session = session
        self.interval = interval if interval is not None else (
            TTY_INTERVAL_S if lines.in_place else PLAIN_INTERVAL_S)
        self._printed: tuple | None = None

    def _write(self, action: Callable[[], None]) -> None:
        # pytest captures fd 1 and 2 while a test runs; suspend that for the one write.
        if self.capman is None:
            action()
            return
        with self.capman.global_and_fixture_disabled():
            action()

    def publish(self, state: CaseProgress, force: bool) -> None:
        if not self.lines.in_place:
            where = (state.case_id, state.epoch, state.step)
            if where == self._printed:
                return  # an epoch's end just after a periodic line at its last step
            self._printed = where
        session = self.session.field(bar=True) if self.session is not None else None
        line = fit([TAG, session, *state.fields()], self.lines.width)
        self._write(lambda: self.lines.show([line]))

    def finish(self, state: CaseProgress) -> None:
        if self.lines.in_place:
            self._write(self.lines.clear)


class ProgressPoller:
    """The xdist controller's thread: draws the workers' latest snapshots (``source()``, see
    ``relay.Inbox``) under a ``k/N done, ETA`` line (the session's), local and remote workers
    alike.

    In place it redraws at every poll; plain, it writes all lines every ``interval`` seconds and
    a worker's line whenever its case ended an epoch (seen at the next poll, at most a second
    later).
    """

    def __init__(self, source: Callable[[], list[CaseProgress]], lines: StatusLines,
                 interval: float, session: SessionProgress,
                 clock: Callable[[], float] = time.monotonic):
        self.source = source
        self.lines = lines
        self.interval = interval
        self.session = session
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resnet-harness-progress",
                                        daemon=True)
        self._last: list[str] | None = None
        self._due = clock() + interval
        self._epochs_done: dict[tuple, int] = {}

    def start(self) -> "ProgressPoller":
        self._thread.start()
        return self

    def render(self, states: list[CaseProgress]) -> list[str]:
        width = self.lines.width
        lines = [fit([TAG, self.session.field()], width)]
        for state in states[:MAX_WORKER_LINES]:
            line = fit([Field("worker", f"[{state.worker}]"), *state.fields()],
                       width - 2 if width else None)
            lines.append(f"  {line}" if line else "")
        return lines

    def poll(self) -> None:
        """Read the snapshots once and draw when a line is due."""
        latest = self.source()
        states = [state for state in latest if not state.done]
        lines = self.render(states)
        if self.lines.in_place:
            self.lines.show(lines)
            return
        now = self.clock()
        ended = []
        # A case whose last epoch ended since the last poll is done by now, most often: its
        # epoch's line is still due.
        for state in latest:
            key = (state.worker, state.case_id)
            if state.epochs_done > self._epochs_done.get(key, 0):
                ended.append(state)
            self._epochs_done[key] = state.epochs_done
        due = lines != self._last if self.interval <= 0 else now >= self._due
        if due:
            self._due = now + self.interval
            self.lines.show(lines + self.render([state for state in ended if state.done])[1:])
            self._last = lines
        elif ended:  # only the workers whose case ended an epoch: their lines say which
            self.lines.show(self.render(ended)[1:])

    def _run(self) -> None:
        # Plain lines poll at least once a second too, to catch epoch ends between intervals.
        period = min(max(self.interval, 0.2), 1.0)
        while not self._stop.wait(period):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - progress must never break a run
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if not self.lines.in_place:
            try:
                self.poll()  # an epoch that ended since the last poll still gets its line
            except Exception:  # noqa: BLE001 - progress must never break a run
                pass
        self.lines.clear()


def progress_mode(setting: Any, verbosity: int, isatty: bool) -> tuple[bool, bool, float]:
    """``(enabled, in_place, interval)`` from ``--progress``, pytest's verbosity and the
    terminal. ``-q`` silences ``auto``; a number of seconds asked for is kept under ``-q``."""
    if setting == "off" or (verbosity < 0 and setting in (None, "auto")):
        return False, False, 0.0
    if setting in (None, "auto"):
        return True, isatty, TTY_INTERVAL_S if isatty else PLAIN_INTERVAL_S
    return True, False, float(setting)
