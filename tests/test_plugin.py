"""The plugin end to end: pytest inside pytest on the synthetic source and the tiny backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import CONFTEST, FAST





def _run_dirs(root: Path) -> list[Path]:
    return sorted((root / "reports" / "runs").iterdir())


def test_collects_the_21_cases_and_k_selects_cifar_imbalanced(study):
    result = study.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*21 tests collected*"])
    result = study.runpytest("--collect-only", "-q", "-k", "cifar and imbalanced")
    result.stdout.fnmatch_lines(["*test_case[[]table7-cifar10-imbalanced-split_orig-reg_none[]]",
                                 "*1/21 tests collected*"])
    result = study.runpytest("--collect-only", "-q", "-m", "balanced and table7")
    result.stdout.fnmatch_lines(["*2/21 tests collected*"])


def test_smoke_cases_write_rows_predictions_and_report(study):
    result = study.runpytest_subprocess(*FAST, "-k", "table7 or split90", "--seed", "3")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*= resnet-harness =*", "case*status*acc*auc*",
                                 "table7-cifar10-imbalanced-split_orig-reg_none *passed*",
                                 "report: *report.html"])
    (run_dir,) = _run_dirs(study.path)
    rows = {p.stem: json.loads(p.read_text()) for p in (run_dir / "cases").glob("*.json")}
    assert len(rows) == 6
    imbalanced = rows["table7-cifar10-imbalanced-split_orig-reg_none"]
    assert imbalanced["status"] == "passed" and imbalanced["seed"] == 3
    assert imbalanced["reduced_classes"] == [0, 1, 2]
    # smoke caps: 320 train (32 per class), 10% of classes 0-2 removed, 160 test.
    assert imbalanced["train_counts"] == [29, 29, 29] + [32] * 7
    assert imbalanced["test_counts"] == [16] * 10
    assert imbalanced["config"]["epochs"] == 1 and imbalanced["config"]["weights"] == "none"
    assert imbalanced["paper"]["accuracy"] == 0.73
    split = rows["table9-fashion_mnist-balanced-split90_10-reg_none"]
    assert (split["train_samples"], split["test_samples"]) == (432, 48)
    import numpy as np

    with np.load(run_dir / imbalanced["predictions_file"]) as saved:
        assert saved["proba"].shape == saved["proba_as_trained"].shape == (160, 10)
        assert np.array_equal(saved["y_pred"], saved["proba"].argmax(axis=1))
        accuracy = float((saved["y_pred"] == saved["y_true"]).mean())
    assert accuracy == pytest.approx(imbalanced["metrics"]["accuracy"], abs=1e-12)
    # BatchNorm re-estimation is on at smoke scale (auto); both results are kept.
    assert imbalanced["config"]["bn_recalibrate"] is True and imbalanced["bn_recalibrated"]
    assert imbalanced["bn_recalibration"]["layers"] == 1
    assert set(imbalanced["metrics_as_trained"]) == set(imbalanced["metrics"])
    for key in ("train_loss", "train_accuracy", "train_inference_accuracy",
                "train_inference_accuracy_as_trained", "steady_train_time_s", "rss_added_mb"):
        assert isinstance(imbalanced[key], float), key
    assert imbalanced["train_inference_samples"] == 160 and imbalanced["warnings"] == []
    assert imbalanced["steady_train_time_s"] < imbalanced["train_time_s"]
    # the learning curve: one value per epoch of every figure fit logged, and each epoch's time
    history = imbalanced["history"]
    assert set(history) == {"loss", "accuracy", "epoch_seconds"}
    assert history["loss"] == [imbalanced["train_loss"]]
    assert history["accuracy"] == [imbalanced["train_accuracy"]]
    assert 0 < history["epoch_seconds"][0] <= imbalanced["train_time_s"]
    result.stdout.fnmatch_lines(["smoke scale: these figures check the pipeline*"])
    frame = pd.read_csv(run_dir / "results.csv")
    assert sorted(frame["case_id"]) == sorted(rows)
    assert set(frame["epochs_run"]) == {1}
    assert (study.path / "reports" / "latest").resolve() == run_dir.resolve()


def test_bad_option_is_a_one_line_usage_error(study):
    result = study.runpytest("--scale", "huge")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--scale: unknown scale 'huge'; use one of: smoke, reduced, paper"])


def test_bad_ini_value_is_a_usage_error(study):
    study.makeini("[pytest]\nharness_seed = minus-one\n")
    result = study.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini key harness_seed: seed 'minus-one' is not an integer*"])


def test_unusable_data_dir_stops_before_training(study, tmp_path):
    empty = tmp_path / "cifar"
    empty.mkdir()
    result = study.runpytest_subprocess("--backbone", "tiny", "--data-dir", f"cifar10={empty}",
                                        "-k", "table7-cifar10-balanced")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*is not a known cifar10 layout; expected the Keras cache*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert not (study.path / "reports" / "runs").exists()


def test_corrupt_data_file_stops_before_training(study, tmp_path):
    from helpers import write_idx_folder

    folder = tmp_path / "fashion"
    write_idx_folder(folder, gz=True)
    images = folder / "train-images-idx3-ubyte.gz"
    import gzip

    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-100]))
    result = study.runpytest_subprocess("--backbone", "tiny", "--data-dir",
                                        f"fashion_mnist={folder}", "-k", "table7-fashion")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*train-images-idx3-ubyte.gz holds * bytes but its header "
                                 "promises *; the file is truncated, download it again*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert not (study.path / "reports" / "runs").exists()


FAIL_INSIDE_A_CASE = r"""
import resnet_harness.training.runner as runner

_real = runner.run_case


def _failing(cfg, *args, **kwargs):
    if cfg.case.id == "table7-cifar10-imbalanced-split_orig-reg_none":
        raise RuntimeError("injected failure\nsecond line")
    return _real(cfg, *args, **kwargs)


runner.run_case = _failing
"""


def test_failure_inside_a_case_is_that_case_failing_with_a_row(study):
    study.makeconftest(CONFTEST + FAIL_INSIDE_A_CASE)
    result = study.runpytest_subprocess(*FAST, "-k", "table7-cifar10")
    result.assert_outcomes(passed=1, failed=1)
    assert "INTERNALERROR" not in result.stdout.str()
    (run_dir,) = _run_dirs(study.path)
    frame = pd.read_csv(run_dir / "results.csv").set_index("case_id")
    row = frame.loc["table7-cifar10-imbalanced-split_orig-reg_none"]
    assert row["status"] == "error" and row["error"] == "RuntimeError: injected failure"
    assert frame.loc["table7-cifar10-balanced-split_orig-reg_none", "status"] == "passed"


def test_xdist_workers_write_one_merged_run(study):
    result = study.runpytest_subprocess(*FAST, "-n", "2", "-k", "table7")
    result.assert_outcomes(passed=4)
    (run_dir,) = _run_dirs(study.path)
    frame = pd.read_csv(run_dir / "results.csv")
    assert len(frame) == 4 and set(frame["status"]) == {"passed"}
    rows = [json.loads(p.read_text()) for p in (run_dir / "cases").glob("*.json")]
    workers = {row["provenance"]["worker"] for row in rows}
    assert workers <= {"gw0", "gw1"} and len(workers) == 2
    result.stdout.fnmatch_lines(["report: *report.html"])
    # Each row records what the user typed (the controller's line), not the worker's "-c".
    typed = json.loads((run_dir / "run.json").read_text())["command_line"]
    assert "-k table7" in typed and "-n 2" in typed
    assert {row["provenance"]["command_line"] for row in rows} == {typed}


INTERRUPT_SECOND_CASE = """
import resnet_harness.training.runner as runner

_real = runner.run_case
_calls = []


def _interrupting(*args, **kwargs):
    _calls.append(1)
    if len(_calls) == 2:
        raise KeyboardInterrupt
    return _real(*args, **kwargs)


runner.run_case = _interrupting
"""


def test_interrupted_run_keeps_finished_rows_and_marks_the_rest(study):
    study.makeconftest(CONFTEST + INTERRUPT_SECOND_CASE)
    result = study.runpytest_subprocess(*FAST, "-k", "table7")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (run_dir,) = _run_dirs(study.path)
    frame = pd.read_csv(run_dir / "results.csv")
    status = dict(zip(frame["case_id"], frame["status"]))
    assert status == {"table7-cifar10-balanced-split_orig-reg_none": "passed",
                      "table7-cifar10-imbalanced-split_orig-reg_none": "unfinished",
                      "table7-fashion_mnist-balanced-split_orig-reg_none": "not_run",
                      "table7-fashion_mnist-imbalanced-split_orig-reg_none": "not_run"}
    html = (run_dir / "report.html").read_text()
    assert "unfinished" in html and "Not run (2)" in html


def test_pytest_html_rows_carry_metrics_and_confusion_matrix(study):
    pytest.importorskip("pytest_html")
    result = study.runpytest_subprocess(*FAST, "-k", "table7-cifar10-balanced",
                                        "--html", "page.html")
    result.assert_outcomes(passed=1)
    page = (study.path / "page.html").read_text()
    assert "harness-metrics" in page and "roc_auc_ovr_macro" in page
    assert "confusion matrix" in page


KILL_INSIDE_A_CASE = """
import os, signal
import resnet_harness.training.runner as runner

_real = runner.run_case


def _killing(cfg, *args, **kwargs):
    if cfg.case.id == "table7-cifar10-imbalanced-split_orig-reg_none":
        os.kill(os.getpid(), signal.SIGKILL)
    return _real(cfg, *args, **kwargs)


runner.run_case = _killing
"""


def test_worker_killed_mid_run_loses_no_finished_row(study):
    study.makeconftest(CONFTEST + KILL_INSIDE_A_CASE)
    result = study.runpytest_subprocess(*FAST, "-n", "2", "-k", "table7")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*crashed while running*table7-cifar10-imbalanced*"])
    (run_dir,) = _run_dirs(study.path)
    frame = pd.read_csv(run_dir / "results.csv")
    status = dict(zip(frame["case_id"], frame["status"]))
    assert status.pop("table7-cifar10-imbalanced-split_orig-reg_none") == "unfinished"
    assert sorted(status.values()) == ["passed"] * 3
    assert not list(run_dir.rglob("*.tmp"))


def test_same_seed_gives_identical_metrics_with_determinism(study):
    for _ in range(2):
        study.runpytest_subprocess(*FAST, "-k", "table7-cifar10-balanced", "--deterministic",
                                   "--seed", "11").assert_outcomes(passed=1)
    first, second = _run_dirs(study.path)
    rows = [json.loads((d / "cases" / "table7-cifar10-balanced-split_orig-reg_none.json")
                       .read_text()) for d in (first, second)]
    assert rows[0]["metrics"] == rows[1]["metrics"]
    import numpy as np

    probas = [np.load(d / "cases" / "table7-cifar10-balanced-split_orig-reg_none.npz")["proba"]
              for d in (first, second)]
    assert np.array_equal(*probas)


def test_tests_that_only_parametrize_over_cases_load_no_data(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    pytester.makepyfile(test_other="""
import pytest
from resnet_harness.studies.paper import CASES


@pytest.mark.parametrize("case", CASES[:2])
def test_uses_a_case_but_not_the_harness(case):
    assert case.id
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
