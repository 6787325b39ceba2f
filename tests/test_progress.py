"""Live progress: the option, the line and its fitting, the cadence in logs, the session's ETA,
the workers' channels, and pytest runs in one process and under xdist."""

from __future__ import annotations

import argparse
import io
from types import SimpleNamespace

import pytest

from helpers import FAST
from resnet_harness.plugin.progress import (DROP_ORDER, TAG, CaseProgress, ProgressPoller,
                                            SessionProgress, StatusLines, TerminalSink, fit,
                                            format_duration, parse_progress, progress_callback,
                                            progress_mode, running_figures)
from resnet_harness.plugin.relay import ChannelSink, Inbox

CIFAR_TABLE7 = ("-k", "table7 and cifar10")
CASE = "table7-cifar10-imbalanced-split_orig-reg_none"


class FakeClock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _writer(width=60):
    from _pytest._io import TerminalWriter

    writer = TerminalWriter(io.StringIO())
    writer.fullwidth = width
    return writer


def _state(**changes) -> CaseProgress:
    values = dict(case_id=CASE, epoch=2, epochs=3, step=40, steps=94, loss=1.23456,
                  accuracy=0.4561, images_per_s=212.0, eta_s=65)
    return CaseProgress(**{**values, **changes})


def _session(done=2, total=21, seconds=100.0) -> SessionProgress:
    clock = FakeClock()
    session = SessionProgress(clock)
    session.total = total
    for index in range(done):
        session.start(f"t{index}")
        clock.now += seconds
        session.finish(f"t{index}")
    return session


# -- the option -----------------------------------------------------------------------------------
def test_parse_progress_accepts_auto_off_and_seconds():
    assert parse_progress("auto") == "auto" and parse_progress("OFF") == "off"
    assert parse_progress("2.5") == 2.5 and parse_progress("0") == 0.0
    for bad in ("-1", "often", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError, match="auto, off or a number"):
            parse_progress(bad)


def test_progress_mode_quiet_terminal_and_pipes():
    assert progress_mode("auto", -1, True)[0] is False  # -q
    assert progress_mode(1.0, -1, True) == (True, False, 1.0)  # asked for: -q does not win
    assert progress_mode("off", 0, True)[0] is False
    assert progress_mode("auto", 0, True) == (True, True, 0.5)
    assert progress_mode("auto", 0, False) == (True, False, 30.0)
    assert progress_mode(5.0, 0, True) == (True, False, 5.0)


# -- the line and its fitting ---------------------------------------------------------------------
FULL = ("resnet-harness: 2/21 done, ETA 31:40 | case " + CASE
        + " epoch 2/3 step 40/94 loss 1.235 acc 0.456 212 img/s ETA 1:05")


def _line(session=None, state=None):
    session = session or _session()
    return [TAG, session.field(bar=True), *(state or _state()).fields()]


def test_full_line_shows_session_case_loss_accuracy_speed_and_eta():
    assert fit(_line(), None) == FULL
    assert format_duration(65) == "1:05" and format_duration(3725) == "1:02:05"


@pytest.mark.parametrize("width, expected", [
    (200, FULL),
    (120, "resnet-harness: 2/21 done, ETA 31:40 | epoch 2/3 step 40/94 loss 1.235 acc 0.456 "
          "212 img/s ETA 1:05"),  # the case id goes first
    (95, "resnet-harness: 2/21 done, ETA 31:40 | epoch 2/3 step 40/94 loss 1.235 acc 0.456 "
         "ETA 1:05"),  # then images/s
    (79, "2/21 done, ETA 31:40 | epoch 2/3 step 40/94 loss 1.235 acc 0.456 ETA 1:05"),  # tag
    (70, "2/21 done, ETA 31:40 | epoch 2/3 step 40/94 loss 1.235 ETA 1:05"),  # accuracy
    (60, "2/21 done, ETA 31:40 | epoch 2/3 step 40/94 ETA 1:05"),  # loss
    (45, "2/21 done, ETA 31:40 | step 40/94 ETA 1:05"),  # epoch
    (30, "step 40/94 ETA 1:05"),  # the session
    (10, "ETA 1:05"),  # the step
    (5, ""),  # nothing rather than a cut field
])
def test_fit_drops_whole_fields_in_the_stated_order(width, expected):
    assert fit(_line(), width) == expected


def test_fit_never_cuts_a_field_at_any_width():
    fields = _line()
    texts = [field.text for field in fields]
    for width in range(0, len(FULL) + 2):
        line = fit(fields, width)
        assert len(line) <= width
        kept = [text for text in texts if f" {text} " in f" {line} "]
        assert " ".join(kept) == line, width
    assert DROP_ORDER[-2:] == ("step", "eta")


def test_in_place_line_fits_the_terminal_and_plain_log_lines_are_whole():
    for width in (80, 100, 200):
        writer = _writer(width)
        lines = StatusLines(writer, in_place=True)
        TerminalSink(lines, interval=0, session=_session()).publish(_state(), False)
        drawn = writer._file.getvalue().split("\x1b[2K")[1].split("\x1b[")[0]
        assert drawn == fit(_line(), width - 1) and len(drawn) < width
    writer = _writer(80)  # a log: no terminal, no width
    TerminalSink(StatusLines(writer, in_place=False), interval=0,
                 session=_session()).publish(_state(), False)
    assert writer._file.getvalue() == FULL + "\n"
    writer = _writer(80)  # --progress SECONDS on a terminal: plain lines, fitted
    TerminalSink(StatusLines(writer, in_place=False, on_terminal=True), interval=5,
                 session=_session()).publish(_state(), False)
    assert writer._file.getvalue() == fit(_line(), 79) + "\n"


def test_status_lines_in_place_go_below_and_return_to_pytests_column():
    writer = _writer()
    writer.write("test_study.py ..")
    lines = StatusLines(writer, in_place=True)
    assert lines.width == 59
    lines.show(["first", "second"])
    out = writer._file.getvalue()
    assert out.endswith("\n\r\x1b[2Kfirst\n\r\x1b[2Ksecond\x1b[2A\r\x1b[16C")
    lines.show(["third"])  # one line now: the second is erased
    assert writer._file.getvalue()[len(out):] == (
        "\n\r\x1b[2Kthird\n\r\x1b[2K\x1b[2A\r\x1b[16C")
    lines.clear()
    assert writer._file.getvalue().endswith("\n\r\x1b[2K\x1b[1A\r\x1b[16C")
    assert writer.width_of_current_line == len("test_study.py ..")


def test_status_lines_plain_have_no_carriage_returns():
    writer = _writer()
    writer.write("test_study.py .")
    lines = StatusLines(writer, in_place=False)
    assert lines.width is None
    lines.show(["resnet-harness: one"])
    lines.clear()
    assert writer._file.getvalue() == "test_study.py .\nresnet-harness: one\n"


# -- cadence in a log -----------------------------------------------------------------------------
class Recorder:
    def __init__(self, interval):
        self.interval = interval
        self.seen: list[tuple] = []

    def publish(self, state, force):
        self.seen.append((state.epoch, state.step, force, state.loss, state.accuracy))

    def finish(self, state):
        self.seen.append(("finish", state.done))


def _train(callback, clock, *, epochs, steps, step_s):
    """Drive ``callback`` as ``fit`` does, one step every ``step_s`` seconds of ``clock``;
    returns the time of each step and epoch end."""
    callback.set_params({"epochs": epochs, "steps": steps})
    callback.on_train_begin()
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch)
        for batch in range(steps):
            clock.now += step_s
            callback.on_train_batch_end(batch, {"loss": 2.0 - clock.now / 100, "accuracy": 0.1})
        callback.on_epoch_end(epoch, {"loss": 1.5, "accuracy": 0.25, "val_accuracy": 0.9})
    callback.on_train_end()


def test_log_lines_every_interval_and_at_each_epoch_end_when_epochs_are_short():
    # 3 s epochs, a line due every 5 s, 24 s of training (the bug: 1 line in 25 s).
    clock, writer = FakeClock(), _writer(80)
    stamps = []
    sink = TerminalSink(StatusLines(writer, in_place=False), interval=5.0)
    publish = sink.publish
    sink.publish = lambda state, force: (stamps.append((clock.now, force)), publish(state, force))
    _train(progress_callback(sink, "case-a", batch_size=4, clock=clock), clock,
           epochs=8, steps=3, step_s=1.0)
    lines = writer._file.getvalue().splitlines()
    where = [line.split(" loss")[0].split("case-a ")[1] for line in lines]
    assert where == ["epoch 1/8 step 3/3", "epoch 2/8 step 2/3", "epoch 2/8 step 3/3",
                     "epoch 3/8 step 3/3", "epoch 4/8 step 1/3", "epoch 4/8 step 3/3",
                     # at 15 s the periodic line is the 5th epoch's last step: not repeated
                     "epoch 5/8 step 3/3", "epoch 6/8 step 3/3", "epoch 7/8 step 2/3",
                     "epoch 7/8 step 3/3", "epoch 8/8 step 3/3"]
    assert [t for t, force in stamps if not force] == [5.0, 10.0, 15.0, 20.0]
    assert [t for t, force in stamps if force] == [3.0 * n for n in range(1, 9)]


def test_long_epochs_get_a_line_every_interval():
    clock, sink = FakeClock(), Recorder(interval=5.0)
    _train(progress_callback(sink, "case-a", batch_size=4, clock=clock), clock,
           epochs=1, steps=12, step_s=2.0)
    assert [(e, s, f) for e, s, f, *_ in sink.seen[:-1]] == [
        (1, 3, False), (1, 6, False), (1, 9, False), (1, 12, False), (1, 12, True)]
    assert sink.seen[-1] == ("finish", True)


def test_loss_and_accuracy_are_keras_running_values():
    clock, sink = FakeClock(), Recorder(interval=0.0)
    _train(progress_callback(sink, "case-a", batch_size=4, clock=clock), clock,
           epochs=1, steps=2, step_s=1.0)
    assert sink.seen[0][3:] == (pytest.approx(1.99), 0.1)  # batch logs at step 1
    assert sink.seen[2][3:] == (1.5, 0.25)  # the epoch's end: training figures, not val_
    assert running_figures({"loss": "n/a", "val_accuracy": 0.9}) == (None, None)
    assert running_figures({"loss": 1, "sparse_categorical_accuracy": 0.5}) == (1.0, 0.5)
    line = fit(_state(loss=0.012345, accuracy=0.5).fields(), None)
    assert "loss 0.01235 acc 0.500" in line


def test_a_real_fit_hands_its_loss_and_accuracy_to_the_line():
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    sink = Recorder(interval=0.0)
    history = model.fit(np.ones((8, 2)), np.arange(8) % 2, batch_size=4, epochs=2, verbose=0,
                        callbacks=[progress_callback(sink, "case-a", batch_size=4)])
    end = [seen for seen in sink.seen[:-1] if seen[2]]
    assert [seen[3] for seen in end] == pytest.approx(history.history["loss"])
    assert [seen[4] for seen in end] == pytest.approx(history.history["accuracy"])


def test_a_broken_sink_never_fails_training():
    import keras
    import numpy as np

    class Broken:
        interval = 0.0

        def publish(self, state, force):
            raise OSError("disk full")

        finish = publish

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    callback = progress_callback(Broken(), "case-a", batch_size=2)
    model.fit(np.zeros((4, 2)), np.zeros(4), batch_size=2, epochs=2, verbose=0,
              callbacks=[callback])
    assert callback.state.done and callback.state.epoch == 2


# -- the session ----------------------------------------------------------------------------------
def test_session_eta_is_mean_test_time_times_tests_left_over_workers():
    clock = FakeClock()
    session = SessionProgress(clock)
    session.total, session.workers = 10, 2
    assert session.field().text == "0/10 done"  # no ETA before a test has finished
    session.start("a")
    session.start("b")
    clock.now = 10.0
    session.finish("a")
    clock.now = 20.0
    session.finish("b")  # mean 15 s, 8 left, 2 workers: 60 s
    assert session.eta_s() == 60.0
    assert session.field(bar=True).text == "2/10 done, ETA 1:00 |"
    session.start("c")
    clock.now = 26.0  # c has run 6 s of its 15
    assert session.eta_s() == (15 * 8 - 6) / 2
    clock.now = 60.0  # c overran the mean: it counts as 15 s done, not 40
    assert session.eta_s() == (15 * 8 - 15) / 2
    session.finish("c")
    session.done = 9  # the last test runs on one worker, not split in two
    assert session.eta_s() == pytest.approx(70 / 3)
    session.done = 10
    assert session.eta_s() == 0.0
    session.total = None
    assert session.eta_s() is None and session.field().text == "10 done"


# -- xdist: the workers' channels and the controller -------------------------------------------
class FakeChannel:
    """An execnet channel as the worker sees it: what it sends reaches ``inbox`` as ``worker``."""

    def __init__(self, inbox, worker):
        self.inbox, self.worker, self.closed = inbox, worker, False

    def send(self, message):
        if self.closed:
            raise OSError("cannot send to a closed channel")
        self.inbox.receive(self.worker, message)

    def close(self):
        self.closed = True
        self.inbox.receive(self.worker, Inbox.CLOSED)


def test_channel_sink_round_trip_into_the_inbox():
    inbox = Inbox()
    sink = ChannelSink(FakeChannel(inbox, "gw1"), "gw1")
    sink.publish(CaseProgress("case-a", epoch=1, epochs=2, step=3, steps=4, loss=0.5,
                              worker="gw1"), False)
    (state,) = inbox.states()
    assert (state.case_id, state.worker, state.step, state.loss) == ("case-a", "gw1", 3, 0.5)
    inbox.receive("gw2", {"unknown": 1})  # a worker of another version: ignored
    sink.finish(CaseProgress("case-a", done=True, worker="gw1"))
    assert [s.done for s in inbox.states()] == [True]


def test_closing_a_workers_channel_takes_its_line_away():
    inbox = Inbox()
    gw0, gw1 = (ChannelSink(FakeChannel(inbox, w), w) for w in ("gw0", "gw1"))
    for sink in (gw0, gw1):
        sink.publish(CaseProgress("case-a", worker=sink.worker), False)
    writer = _writer(80)
    poller = ProgressPoller(inbox.states, StatusLines(writer, in_place=True), 0.5, _session())
    gw0.close()
    assert [(s.worker, s.done) for s in inbox.states()] == [("gw0", True), ("gw1", False)]
    assert [line.split()[0] for line in poller.render(
        [s for s in inbox.states() if not s.done])[1:]] == ["[gw1]"]
    gw1.close()
    assert all(s.done for s in inbox.states())
    gw1.close()  # twice: no error


def test_a_worker_sends_home_on_the_controllers_channel_and_closes_it(monkeypatch):
    import sys

    from resnet_harness.plugin import relay
    from resnet_harness.plugin.watch import WorkerWatch, watch_for

    config = SimpleNamespace(workerinput={"workerid": "gw0", "resnet_harness_progress": True},
                             option=SimpleNamespace())
    inbox = Inbox()
    channel = FakeChannel(inbox, "gw0")
    monkeypatch.setitem(sys.modules, relay.MODULE, SimpleNamespace(channel=channel))
    watch = watch_for(config, None, progress="auto")
    assert isinstance(watch, WorkerWatch)
    (callback,) = watch.case_started(SimpleNamespace(id="case-a"), batch_size=4)
    _train(callback, FakeClock(), epochs=1, steps=2, step_s=1.0)
    assert [(s.case_id, s.epochs_done) for s in inbox.states()] == [("case-a", 1)]
    watch.pytest_sessionfinish(None, 0)
    assert channel.closed and [s.done for s in inbox.states()] == [True]
    # No channel (a controller without progress): no progress, the case runs as ever.
    monkeypatch.delitem(sys.modules, relay.MODULE)
    assert watch_for(config, None, progress="auto").case_started(
        SimpleNamespace(id="case-a"), batch_size=4) == []


def _wait(condition, seconds=10.0):
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_the_channel_opens_on_a_real_gateway_before_the_next_task():
    """xdist's gateways run one task at a time on the main thread: the relay's task must be
    done when xdist sends its own, and what the worker sends must arrive."""
    execnet = pytest.importorskip("execnet")
    from resnet_harness.plugin import relay

    gateway = execnet.makegateway("execmodel=main_thread_only//popen")
    try:
        inbox = Inbox()
        assert relay.open_channel(gateway, inbox)
        task = gateway.remote_exec(
            "import sys\n"
            f"relay = sys.modules[{relay.MODULE!r}].channel\n"
            "relay.send(dict(case_id='case-a', epoch=1, epochs=3, worker='gw0'))\n"
            "channel.send('sent')\n"
            "channel.receive()\n"
            "relay.close()\n")
        assert task.receive(timeout=30) == "sent"
        _wait(lambda: inbox.states())  # delivered by execnet's receiver thread
        assert [(s.case_id, s.epochs) for s in inbox.states()] == [("case-a", 3)]
        task.send("close")
        task.waitclose(timeout=30)
        _wait(lambda: inbox.states()[0].done)
        assert inbox.states()[0].done  # the worker closed its channel: its line goes
    finally:
        gateway.exit()


def test_poller_draws_session_and_workers_every_interval_and_at_epoch_ends():
    clock, writer = FakeClock(), _writer(80)
    session = _session(done=1, total=5, seconds=40.0)
    session.workers = 2
    inbox = Inbox()
    poller = ProgressPoller(inbox.states, StatusLines(writer, in_place=False), 30.0, session,
                            clock)
    sink = ChannelSink(FakeChannel(inbox, "gw0"), "gw0")
    sink.publish(_state(case_id="case-a", epochs_done=0, worker="gw0"), False)
    clock.now = 10.0
    poller.poll()
    assert writer._file.getvalue() == ""  # nothing due yet
    sink.publish(_state(case_id="case-a", epochs_done=1, worker="gw0"), True)
    clock.now = 11.0
    poller.poll()  # an epoch ended: that worker's line
    worker = "  [gw0] case case-a epoch 2/3 step 40/94 loss 1.235 acc 0.456 212 img/s ETA 1:05"
    assert writer._file.getvalue().splitlines() == [worker]
    clock.now = 20.0
    poller.poll()  # same epoch, interval not over
    assert writer._file.getvalue().splitlines() == [worker]
    clock.now = 30.0
    poller.poll()  # the interval: every line, whatever happened
    assert writer._file.getvalue().splitlines() == [
        worker, "resnet-harness: 1/5 done, ETA 1:20", worker]


def test_a_cases_last_epoch_gets_its_line_though_it_finished_before_the_poll():
    """One-epoch cases end their epoch and their training within a millisecond: the poller,
    once a second, sees them done. Their epoch line is still written, once, and the worker
    whose session ended before the next poll gets it when the poller stops."""
    clock, writer = FakeClock(), _writer(80)
    inbox = Inbox()
    poller = ProgressPoller(inbox.states, StatusLines(writer, in_place=False), 30.0,
                            _session(done=0, total=2), clock)
    gw0, gw1 = (ChannelSink(FakeChannel(inbox, w), w) for w in ("gw0", "gw1"))
    gw0.publish(_state(case_id="case-a", epochs=1, epoch=1, epochs_done=1, worker="gw0"), True)
    gw0.finish(_state(case_id="case-a", epochs=1, epoch=1, epochs_done=1, worker="gw0",
                      done=True))
    clock.now = 1.0
    poller.poll()
    assert [line.split()[:2] for line in writer._file.getvalue().splitlines()] == [
        ["[gw0]", "case"]]
    clock.now = 2.0
    poller.poll()  # not twice
    assert len(writer._file.getvalue().splitlines()) == 1
    gw1.finish(_state(case_id="case-b", epochs=1, epoch=1, epochs_done=1, worker="gw1",
                      done=True))
    gw1.close()  # its session ended before the next poll
    poller.stop()
    assert [line.split()[:3] for line in writer._file.getvalue().splitlines()][1:] == [
        ["[gw1]", "case", "case-b"]]


def test_poller_fits_worker_lines_to_the_terminal():
    writer = _writer(60)
    poller = ProgressPoller(list, StatusLines(writer, in_place=True), 0.5, _session())
    lines = poller.render([_state(worker="gw1")])
    assert lines == ["resnet-harness: 2/21 done, ETA 31:40",
                     "  [gw1] epoch 2/3 step 40/94 loss 1.235 acc 0.456 ETA 1:05"]
    assert all(len(line) <= 59 for line in lines)


# -- pytest runs ----------------------------------------------------------------------------------
def test_plain_lines_when_piped_and_quiet_with_q(study):
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "--progress", "0")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "resnet-harness: 0/2 done | case table7-cifar10-balanced-split_orig-reg_none "
        "epoch 1/1 step 1/10 loss * acc *",
        "resnet-harness: 0/2 done | case table7-cifar10-balanced-split_orig-reg_none "
        "epoch 1/1 step 10/10 loss * acc * img/s ETA 0:00",
        "resnet-harness: 1/2 done, ETA *:* | case "
        "table7-cifar10-imbalanced-*"])
    assert "\r" not in result.stdout.str()
    # auto when piped: a line every 30 s and at each epoch's end, so one per 1-epoch case
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7)
    assert len([line for line in result.outlines if "resnet-harness: " in line
                and "epoch 1/1 step 10/10" in line]) == 2, result.stdout.str()
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "-q")
    result.assert_outcomes(passed=2)
    assert "| case" not in result.stdout.str()
    # an interval asked for beats -q
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "--progress", "0", "-q")
    assert "| case" in result.stdout.str()


def test_xdist_controller_shows_each_workers_case(study):
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "-n", "2", "--epochs", "20",
                                        "--progress", "0")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["resnet-harness: ?/2 done*",
                                 "  [[]gw?[]] case table7-cifar10-* epoch */20 step */10 loss *"])
    (run_dir,) = (study.path / "reports" / "runs").iterdir()
    assert not (run_dir / "progress").exists()  # progress travels on channels, not files
