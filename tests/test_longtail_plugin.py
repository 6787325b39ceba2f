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
