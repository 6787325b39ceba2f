"""The verdict is a pure function of (row, floors, baseline row, tolerances); tolerance markers
and the matrix's ``tolerances=`` reach it through the test item."""

from __future__ import annotations

import pytest

from helpers import CONFTEST, EXPERIMENTS, FAST
from resnet_harness.analysis.baseline import with_overrides
from resnet_harness.studies.paper import CASES
from resnet_harness.plugin import case_param
from resnet_harness.analysis.verdict import judge

from test_schema import passed_row


def test_a_sane_row_passes_and_records_its_floors():
    row = passed_row()
    verdict = judge(row, floors={}, imbalanced=False)
    assert (verdict.status, verdict.violations, verdict.baseline) == ("passed", [], None)
    applied = verdict.apply(row)
    assert applied["status"] == "passed" and applied["error"] is None
    assert applied["bounds"] == {"violations": [], "floors": {}}
    assert "bounds" not in row  # the input row is left alone


def test_floors_and_baseline_regressions_fail_with_their_figures():
    row = passed_row()
    accuracy = row["metrics"]["accuracy"]
    base = {"accuracy": accuracy + 0.2, "train_time_s": 1.0, "f1_macro": 0.0}
    verdict = judge(row, floors={"roc_auc_ovr_macro": 0.99}, imbalanced=False,
                    baseline_row=base, baseline_path="b.csv",
                    tolerances={"accuracy": 0.05, "train_time_s": 0.5})
    assert verdict.status == "failed"
    text = "; ".join(verdict.violations)
    assert "roc_auc_ovr_macro=" in text and "floor 0.99" in text
    assert f"accuracy: measured {accuracy:.4g}, baseline {accuracy + 0.2:.4g}" in text
    assert "train_time_s: measured 3.5, baseline 1, relative tolerance 0.5" in text
    assert verdict.baseline["path"] == "b.csv"
    assert any(i.startswith("f1_macro") for i in verdict.baseline["improvements"])


def test_a_case_missing_from_the_baseline_is_recorded_not_failed():
    verdict = judge(passed_row(), floors={}, imbalanced=False, baseline_path="b.csv")
    assert verdict.status == "passed"
    assert verdict.baseline == {"path": "b.csv",
                                "not_compared": "the baseline has no row of this case"}


def test_marker_overrides_apply_in_order_scores_first():
    merged = with_overrides({"accuracy": 0.05}, [{"scores": 0.2, "accuracy": 0.01},
                                                 {"f1_macro": 0.3}], "case")
    assert merged["accuracy"] == 0.01 and merged["f1_macro"] == 0.3
    assert merged["roc_auc_ovr_macro"] == 0.2
    with pytest.raises(ValueError, match="case: tolerance names unknown metrics"):
        with_overrides({}, [{"acuracy": 0.1}], "case")


def test_matrix_tolerances_become_the_cases_marker():
    from dataclasses import replace

    case = replace(CASES[0], tolerances=(("accuracy", 0.3),))
    (mark,) = [m for m in case_param(case).marks if m.name == "tolerance"]
    assert mark.kwargs == {"accuracy": 0.3}
    assert not [m for m in case_param(CASES[0]).marks if m.name == "tolerance"]


MARKED = EXPERIMENTS.replace(
    "def test_case(", "import pytest\n\n\n@pytest.mark.tolerance(scores=1.0)\ndef test_case(")
assert MARKED != EXPERIMENTS


def test_tolerance_marker_loosens_the_baseline_comparison(pytester):
    """A doctored baseline fails the case; the same baseline passes under a marker that
    tolerates any drop, and a marker naming an unknown metric fails with its name."""
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    first = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10-balanced")
    first.assert_outcomes(passed=1)
    (run_dir,) = (pytester.path / "reports" / "runs").iterdir()
    import pandas as pd

    frame = pd.read_csv(run_dir / "results.csv")
    frame["accuracy"] = 1.0  # nothing can reach this: a regression beyond 0.05
    # Time and memory stay out: on a loaded machine a re-run may take twice as long.
    frame[["train_time_s", "steady_train_time_s", "test_time_s", "peak_rss_mb"]] = float("nan")
    baseline = pytester.path / "baseline.csv"
    # another run's figures, not these outcomes (the reader checks figures against them)
    frame.drop(columns="test_outcomes").to_csv(baseline, index=False)
    strict = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10-balanced",
                                           "--baseline", str(baseline))
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*regression against baseline: accuracy: measured*"])
    pytester.makepyfile(test_study=MARKED)
    loose = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10-balanced",
                                          "--baseline", str(baseline))
    loose.assert_outcomes(passed=1)
    pytester.makepyfile(test_study=MARKED.replace("scores=1.0", "acuracy=1.0"))
    typo = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10-balanced",
                                         "--baseline", str(baseline))
    typo.assert_outcomes(failed=1)
    typo.stdout.fnmatch_lines(["*tolerance names unknown metrics [[]'acuracy'[]]; use scores*"])
    assert "During handling" not in typo.stdout.str()
