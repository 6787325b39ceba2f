"""Live progress: the option, the drawing, and pytest runs in one process and under xdist."""

from __future__ import annotations

import argparse
import io

import pytest

from helpers import EXPERIMENTS, FAST
from resnet_harness.plugin.progress import (CaseProgress, FileSink, StatusLines, format_duration,
                                     parse_progress, progress_mode, read_progress)

CIFAR_TABLE7 = ("-k", "table7 and cifar10")




def test_parse_progress_accepts_auto_off_and_seconds():
    assert parse_progress("auto") == "auto" and parse_progress("OFF") == "off"
    assert parse_progress("2.5") == 2.5 and parse_progress("0") == 0.0
    for bad in ("-1", "often", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError, match="auto, off or a number"):
            parse_progress(bad)


def test_progress_mode_quiet_terminal_and_pipes():
    assert progress_mode("auto", -1, True)[0] is False  # -q
    assert progress_mode("off", 0, True)[0] is False
    assert progress_mode("auto", 0, True) == (True, True, 0.5)
    assert progress_mode("auto", 0, False) == (True, False, 30.0)
    assert progress_mode(5.0, 0, True) == (True, False, 5.0)


def test_describe_and_durations():
    state = CaseProgress("case-a", index=2, total=5, epoch=3, epochs=10, step=40, steps=156,
                         images_per_s=812.4, eta_s=3725)
    assert state.describe() == ("case 2/5 case-a epoch 3/10 step 40/156 812 img/s ETA 1:02:05")
    assert format_duration(65) == "1:05"


def _writer(width=60):
    from _pytest._io import TerminalWriter

    writer = TerminalWriter(io.StringIO())
    writer.fullwidth = width
    return writer


def test_status_lines_in_place_go_below_and_return_to_pytests_column():
    writer = _writer()
    writer.write("test_study.py ..")
    lines = StatusLines(writer, in_place=True)
    lines.show(["first", "second"])
    out = writer._file.getvalue()
    assert out.endswith("\n\r\x1b[2Kfirst\n\r\x1b[2Ksecond\x1b[2A\r\x1b[16C")
    lines.show(["x" * 100])  # one line now: the second is erased, the first cut to the width
    assert writer._file.getvalue()[len(out):] == (
        "\n\r\x1b[2K" + "x" * 59 + "\n\r\x1b[2K\x1b[2A\r\x1b[16C")
    lines.clear()
    assert writer._file.getvalue().endswith("\n\r\x1b[2K\x1b[1A\r\x1b[16C")
    assert writer.width_of_current_line == len("test_study.py ..")


def test_status_lines_plain_have_no_carriage_returns():
    writer = _writer()
    writer.write("test_study.py .")
    lines = StatusLines(writer, in_place=False)
    lines.show(["resnet-harness: one"])
    lines.clear()
    assert writer._file.getvalue() == "test_study.py .\nresnet-harness: one\n"


def test_file_sink_round_trip(tmp_path):
    sink = FileSink(tmp_path / "progress", "gw1")
    sink.publish(CaseProgress("case-a", epoch=1, epochs=2, step=3, steps=4, worker="gw1"), False)
    (state,) = read_progress(tmp_path / "progress")
    assert (state.case_id, state.worker, state.step) == ("case-a", "gw1", 3)
    (tmp_path / "progress" / "gw2.json").write_text("{broken")
    assert len(read_progress(tmp_path / "progress")) == 1


def test_plain_lines_when_piped_and_quiet_with_q(study):
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "--progress", "0")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "resnet-harness: case 1/2 table7-cifar10-balanced-split_orig-reg_none epoch 1/1 "
        "step 1/10",
        "resnet-harness: case 1/2 table7-cifar10-balanced-split_orig-reg_none epoch 1/1 "
        "step 10/10 * img/s ETA 0:00",
        "resnet-harness: case 2/2 table7-cifar10-imbalanced-*"])
    assert "\r" not in result.stdout.str()
    # auto when piped: a line every 30 s, so none for these short cases
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7)
    assert "resnet-harness: case" not in result.stdout.str()
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "--progress", "0", "-q")
    result.assert_outcomes(passed=2)
    assert "resnet-harness: case" not in result.stdout.str()


def test_xdist_controller_shows_each_workers_case(study):
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "-n", "2", "--epochs", "20",
                                        "--progress", "0")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["resnet-harness: ?/2 tests done",
                                 "  [[]gw?[]] case table7-cifar10-* epoch */20 step */10*"])
    (run_dir,) = (study.path / "reports" / "runs").iterdir()
    assert not (run_dir / "progress").exists()  # the controller tidies the workers' files


def test_a_broken_sink_never_fails_training():
    import numpy as np
    import keras

    from resnet_harness.plugin.progress import progress_callback

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


def test_file_sink_finish_marks_the_case_done(tmp_path):
    sink = FileSink(tmp_path, "gw0")
    sink.finish(CaseProgress("case-a", done=True, worker="gw0"))
    assert read_progress(tmp_path)[0].done
