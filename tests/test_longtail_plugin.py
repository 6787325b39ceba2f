"""The long-tail study end to end: pytest inside pytest on synthetic data and the tiny backbone."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers import CONFTEST, EXPERIMENTS, FAST, LONGTAIL_EXPERIMENTS

# Imported before pytester snapshots sys.modules (it pulls in scipy through the comparisons):
# the snapshot's restore after one in-process run would make the next run re-import numpy's C
# extensions, which fails ("cannot load module more than once per process") when this file runs
# alone.
import resnet_harness.studies.longtail  # noqa: E402,F401


@pytest.fixture
def studies(pytester: pytest.Pytester) -> pytest.Pytester:
    # Not "test_longtail": in-process runs would clash with tests/test_longtail.py.
    pytester.makepyfile(test_study=EXPERIMENTS, test_longtail_study=LONGTAIL_EXPERIMENTS,
                        conftest=CONFTEST)
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    return pytester


def test_paper_cases_and_ids_unchanged_and_markers_select(studies):
    from resnet_harness.studies.paper import CASES

    plain = studies.runpytest("--collect-only", "-q")  # the study runs only when named
    plain.stdout.fnmatch_lines(["*21/147 tests collected (126 deselected)*"])
    assert "longtail" not in plain.stdout.str().replace("deselected", "")
    result = studies.runpytest("--collect-only", "-q", "-m", "not longtail")
    result.stdout.fnmatch_lines(["*21/147 tests collected (126 deselected)*"])
    ids = sorted(line.split("[", 1)[1].rstrip("]") for line in result.outlines
                 if line.startswith("test_study.py::"))
    assert ids == sorted(case.id for case in CASES)
    result = studies.runpytest("--collect-only", "-q", "-m", "longtail", "-k",
                               "cifar10 and exp100")
    result.stdout.fnmatch_lines(["*18/147 tests collected*"])  # both recipes
    result = studies.runpytest("--collect-only", "-q", "-m", "longtail and literature", "-k",
                               "exp100")
    result.stdout.fnmatch_lines(["*test_longtail[[]longtail-cifar10-exp100-ce-lit[]]",
                                 "*9/147 tests collected*"])
    result = studies.runpytest("--collect-only", "-q", "-m",
                               "longtail and exp10 and la_loss and not literature")
    result.stdout.fnmatch_lines(["*test_longtail[[]longtail-cifar10-exp10-la_loss[]]",
                                 "*2/147 tests collected*"])


def test_posthoc_without_its_ce_row_fails_with_one_line(studies):
    result = studies.runpytest_subprocess(*FAST, "-m", "longtail and cifar10 and step10 and posthoc_la and not literature")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*longtail-cifar10-step10-posthoc_la transforms the finished "
                                 "predictions of longtail-cifar10-step10-ce in this run folder*"])


def test_every_method_runs_and_rows_hold_the_profile_counts(studies):
    from resnet_harness.studies.profiles import PROFILES

    result = studies.runpytest_subprocess(*FAST, "-m", "longtail and cifar10 and exp10 and not literature",
                                          "--seed", "2",
                                          "--max-train-samples", "1000")
    result.assert_outcomes(passed=9)
    (run_dir,) = sorted((studies.path / "reports" / "runs").iterdir())
    rows = {p.stem: json.loads(p.read_text()) for p in (run_dir / "cases").glob("*.json")}
    assert len(rows) == 9
    for row in rows.values():
        # 1000 capped -> 100 per class; exp rho = 10: 100 ... 10, recomputed from the formula.
        assert row["counts_before_imbalance"] == [100] * 10
        assert row["train_counts"] == PROFILES["exp10"].counts(row["counts_before_imbalance"])
        assert row["train_counts"][0] / row["train_counts"][-1] == 10
        assert row["test_counts"] == [16] * 10  # the test set stays balanced
        # Every row carries its intervals, the post-hoc arm's (no training) included.
        assert set(row["intervals"]) == {"accuracy", "balanced_accuracy", "f1_macro"}
        assert row["long_tail"]["groups"]["tail"] == [7, 8, 9]
        assert 0.0 <= row["tail_accuracy"] <= 1.0
        assert row["config"]["long_tail"]["cb_beta"] == 0.9999
    posthoc = rows["longtail-cifar10-exp10-posthoc_la"]
    assert posthoc["long_tail"]["source_case"] == "longtail-cifar10-exp10-ce"
    assert posthoc["train_time_s"] == 0.0
    frame = pd.read_csv(run_dir / "results.csv")
    assert {"head_accuracy", "middle_accuracy", "tail_accuracy"} <= set(frame.columns)
    html = (run_dir / "report.html").read_text()
    assert "The long-tail study" in html and "per-class recall against class size" in html
    assert "ResNet-32" not in html  # the published anchors are for exp100 only


def test_literature_rows_hold_the_best_epochs_test_accuracy_beside_the_last(studies):
    """The published long-tail figures are a chosen epoch's: a -lit row scores the test set at
    every epoch and records the best epoch by the test set (optimistic) and by the validation
    set (the published way), beside the last epoch's reported figures."""
    result = studies.runpytest_subprocess(
        *FAST, "-m", "longtail and literature", "-k", "cifar10 and exp100 and ce-lit",
        "--epochs", "3", "--validation-split", "0.3", "--max-train-samples", "2000",
        "--progress", "off")
    result.assert_outcomes(passed=1)
    run = (studies.path / "reports" / "latest").resolve()
    (row,) = [json.loads(p.read_text()) for p in (run / "cases").glob("*.json")]
    curve = row["history"]["test_accuracy"]
    assert len(curve) == 3 and all(0 <= v <= 1 for v in curve)
    assert row["test_accuracy_best_epoch"] == max(curve)
    assert curve[row["test_best_epoch"] - 1] == max(curve)
    watched = row["history"]["val_loss"]
    assert row["test_accuracy_at_validation_best"] == curve[watched.index(min(watched))]
    assert row["history"]["test_accuracy"][-1] == pytest.approx(
        row["metrics_as_trained"]["accuracy"] if row.get("metrics_as_trained")
        else row["metrics"]["accuracy"], abs=1e-9)  # the last epoch's is the reported model's
    frame = pd.read_csv(run / "results.csv")
    assert frame["test_accuracy_best_epoch"].iloc[0] == row["test_accuracy_best_epoch"]
    # The report compares like with like: the best test epoch with the published (best test
    # epoch) figure of the same recipe; another recipe's figure is named, not compared.
    page = (run / "report.html").read_text()
    assert "ours %, best test epoch (optimistic)" in page
    expected = f"{100 * row['test_accuracy_best_epoch'] - 70.4:+.1f} (ours best test epoch"
    assert expected in page
    assert "not compared: Menon et al.&#x27;s own network and 1,241-epoch schedule" in page
