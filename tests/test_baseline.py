"""Regression checks against a baseline: unit level, and end to end with pytester."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import CONFTEST, EXPERIMENTS, FAST

from resnet_harness.analysis.baseline import (BaselineError, compare, expand_tolerances, load_baseline,
                                     parse_tolerance, save_baseline)
from resnet_harness.storage.schema import SCORES as SCALAR_METRICS
from resnet_harness.__main__ import main

ROW = {"metrics": {"accuracy": 0.70, "roc_auc_ovr_macro": 0.90}, "train_time_s": 100.0,
       "peak_rss_mb": 1000.0}


def test_compare_flags_regressions_beyond_tolerance_and_reports_improvements():
    base = {"accuracy": 0.75, "roc_auc_ovr_macro": 0.80, "train_time_s": 40.0,
            "peak_rss_mb": 1000.0}
    verdicts = {c.metric: c.verdict for c in compare(ROW, base, {"accuracy": 0.02,
                                                                 "train_time_s": 1.0})}
    assert verdicts == {"accuracy": "regression", "roc_auc_ovr_macro": "improvement",
                        "train_time_s": "regression", "peak_rss_mb": "same"}
    within = {c.metric: c.verdict for c in compare(ROW, base, {"accuracy": 0.06,
                                                               "train_time_s": 1.5})}
    assert within["accuracy"] == "same" and within["train_time_s"] == "same"


def test_describe_names_metric_values_and_tolerance():
    (comparison,) = [c for c in compare(ROW, {"accuracy": 0.75}, {"accuracy": 0.02})]
    assert comparison.describe() == ("accuracy: measured 0.7, baseline 0.75, absolute "
                                     "tolerance 0.02")


@pytest.mark.parametrize("value, message", [
    ("accuracy", "must be METRIC=VALUE"), ("speed=1", "must be METRIC=VALUE"),
    ("accuracy=x", "'x' is not a number"), ("accuracy=-1", "must be a finite number >= 0"),
    ("accuracy=inf", "would switch the guard off"), ("scores=nan", "must be a finite number")])
def test_parse_tolerance_rejects_bad_values(value, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_tolerance(value)
    assert parse_tolerance("peak_rss_mb=0.3") == ("peak_rss_mb", 0.3)


def test_scores_tolerance_covers_every_quality_metric_and_later_entries_win():
    assert parse_tolerance("scores=0.15") == ("scores", 0.15)
    tolerances = expand_tolerances([parse_tolerance("scores=0.15"),
                                    parse_tolerance("roc_auc_ovr_macro=0.1"),
                                    parse_tolerance("train_time_s=2")])
    assert set(tolerances) == set(SCALAR_METRICS) | {"train_time_s"}
    assert tolerances["accuracy"] == tolerances["f1_weighted"] == 0.15
    assert tolerances["roc_auc_ovr_macro"] == 0.1 and tolerances["train_time_s"] == 2
    assert expand_tolerances([("accuracy", 0.1), ("scores", 0.2)])["accuracy"] == 0.2


def test_load_baseline_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(BaselineError, match="does not exist"):
        load_baseline(tmp_path / "nope.csv")
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(BaselineError, match="lacks the columns case_id, scale, status"):
        load_baseline(foreign)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x00\xff\xfe" * 10)
    with pytest.raises(BaselineError):
        load_baseline(binary)


def test_save_baseline_keeps_passed_rows_only(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"case_id": ["a", "b"], "scale": ["smoke", "smoke"],
                  "status": ["passed", "failed"], "accuracy": [0.5, 0.1]}).to_csv(
        run / "results.csv", index=False)
    assert main(["save-baseline", str(run), str(tmp_path / "base" / "b.csv")]) == 0
    assert list(load_baseline(tmp_path / "base" / "b.csv")) == [("a", "smoke", 0)]
    assert main(["save-baseline", str(tmp_path / "missing"), str(tmp_path / "x.csv")]) == 2


def test_doctored_baseline_fails_regressions_and_report_shows_them(pytester):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    first = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10")
    first.assert_outcomes(passed=2)
    baseline = pytester.path / "baseline.csv"
    save_baseline(pytester.path / "reports" / "latest", baseline)
    frame = pd.read_csv(baseline)
    doctored = frame["case_id"] == "table7-cifar10-balanced-split_orig-reg_none"
    frame.loc[doctored, "accuracy"] = frame.loc[doctored, "accuracy"] + 0.5
    # A better run's figures, not this one's outcomes (the reader refuses figures that do not
    # recompute from the outcomes beside them).
    frame.drop(columns="test_outcomes").to_csv(baseline, index=False)
    second = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10", "--baseline",
                                           str(baseline), "--tolerance", "train_time_s=100",
                                           "--tolerance", "test_time_s=100",
                                           "--tolerance", "peak_rss_mb=10")
    second.assert_outcomes(passed=1, failed=1)
    second.stdout.fnmatch_lines(["*regression against baseline: accuracy: measured *, baseline *"
                                 ", absolute tolerance 0.05*"])
    latest = pytester.path / "reports" / "latest"
    report = pd.read_csv(latest / "results.csv")
    row = report.set_index("case_id").loc["table7-cifar10-balanced-split_orig-reg_none"]
    assert row["status"] == "failed" and "accuracy" in row["baseline_regressions"]
    assert "accuracy: measured" in (latest / "report.html").read_text()


def test_bad_baseline_is_a_usage_error(pytester):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    result = pytester.runpytest("--baseline", str(pytester.path / "missing.csv"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--baseline: baseline *missing.csv does not exist; pass a "
                                 "results.csv or a run folder*"])


def test_resume_skips_finished_identical_cases(pytester):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    first = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10")
    first.assert_outcomes(passed=2)
    run_dir = (pytester.path / "reports" / "latest").resolve()
    (run_dir / "cases" / "table7-cifar10-imbalanced-split_orig-reg_none.json").unlink()
    again = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10", "--resume", str(run_dir))
    again.assert_outcomes(passed=1, skipped=1)
    rows = [json.loads(p.read_text()) for p in (run_dir / "cases").glob("*.json")]
    assert len(rows) == 2
    changed = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10", "--resume",
                                            str(run_dir), "--seed", "5")
    assert changed.ret == pytest.ExitCode.USAGE_ERROR  # one folder, one set of settings


LOOSE = ("--tolerance", "train_time_s=100", "--tolerance", "test_time_s=100",
         "--tolerance", "steady_train_time_s=100", "--tolerance", "peak_rss_mb=10")


def test_a_baseline_that_compares_nothing_fails_the_run_and_says_why(pytester):
    """A baseline of another scale: every case says "not compared: <reason>" in the terminal,
    results.csv and the report, and the run fails although every case passed."""
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10").assert_outcomes(passed=2)
    baseline = pytester.path / "baseline.csv"
    save_baseline(pytester.path / "reports" / "latest", baseline)
    frame = pd.read_csv(baseline)
    frame["scale"] = "reduced"
    frame.to_csv(baseline, index=False)
    second = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10", "--baseline",
                                           str(baseline), *LOOSE)
    assert second.ret == pytest.ExitCode.TESTS_FAILED
    second.stdout.fnmatch_lines([
        "*table7-cifar10-balanced-split_orig-reg_none: not compared: the baseline has no row of "
        "table7-cifar10-balanced-split_orig-reg_none seed 0 at scale smoke (only reduced)",
        "*compared no case; the run fails*"])
    latest = pytester.path / "reports" / "latest"
    statuses = set(pd.read_csv(latest / "results.csv")["baseline_status"])
    assert all(str(s).startswith("not compared: the baseline has no row of") for s in statuses)
    html = (latest / "report.html").read_text()
    assert "not compared: the baseline has no row of" in html and "compared no case" in html


def test_a_baseline_of_another_environment_is_not_judged_seed_by_seed(pytester):
    """Same settings and data, another CPU: no per-case verdict (figures differ like another
    seed's there); two cases are too few to pool, so the run fails naming the difference and
    the command that records a local baseline."""
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10").assert_outcomes(passed=2)
    baseline = pytester.path / "baseline.csv"
    save_baseline(pytester.path / "reports" / "latest", baseline)
    frame = pd.read_csv(baseline)
    env = json.loads(frame.loc[0, "environment"])
    frame["environment"] = json.dumps(dict(env, cpu="Other CPU", isa=["avx512f"]))
    frame["accuracy"] = 1.0  # seed by seed this would be a regression
    frame.drop(columns="test_outcomes").to_csv(baseline, index=False)
    second = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10", "--baseline",
                                           str(baseline), *LOOSE)
    second.assert_outcomes(passed=2)
    assert second.ret == pytest.ExitCode.TESTS_FAILED
    second.stdout.fnmatch_lines(["*recorded in another environment (environment.cpu: * here, "
                                 "Other CPU there;*) and 2 case(s) are too few*save-baseline*"])
    statuses = set(pd.read_csv(pytester.path / "reports" / "latest" / "results.csv")
                   ["baseline_status"])
    assert statuses == {"compared across environments"}


def test_the_same_baseline_compares_every_case(pytester):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10").assert_outcomes(passed=2)
    baseline = pytester.path / "baseline.csv"
    save_baseline(pytester.path / "reports" / "latest", baseline)
    second = pytester.runpytest_subprocess(*FAST, "-k", "table7-cifar10", "--baseline",
                                           str(baseline), *LOOSE)
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["*2 case(s) compared seed by seed in the same environment; "
                                 "0 regressed*"])


def test_resume_treats_rows_written_before_later_settings_as_their_defaults():
    from resnet_harness.training.config import RunConfig
    from resnet_harness.studies.paper import CASES
    from resnet_harness.training.config import comparable_config

    current = RunConfig().for_case(CASES[0]).as_dict()
    older = {k: v for k, v in current.items()
             if k not in ("xla", "mixed_precision", "deterministic")}
    # Rows made before the paper's "comparison" had it under "recipe".
    older["recipe"] = older.pop("comparison")
    assert comparable_config(older) == comparable_config(current)
    assert comparable_config(older) != comparable_config(
        RunConfig(xla=True).for_case(CASES[0]).as_dict())
    # A row that did not record its data source is never taken for a run on other data.
    no_source = {k: v for k, v in current.items() if k != "data_source"}
    assert comparable_config(no_source) != comparable_config(current)


def test_baseline_rows_match_on_case_scale_and_seed(tmp_path):
    from resnet_harness.analysis.baseline import baseline_key

    csv = tmp_path / "b.csv"
    pd.DataFrame({"case_id": ["x-seed0", "x-seed1", "y"], "scale": ["reduced"] * 3,
                  "seed": [0, 1, 2], "status": ["passed"] * 3, "accuracy": [0.5, 0.6, 0.7]}
                 ).to_csv(csv, index=False)
    rows = load_baseline(csv)
    # A --seeds run matches its own seed; a plain run with --seed 1 matches the seed-1 row.
    assert rows[baseline_key("x-seed1", "reduced", 1)]["accuracy"] == 0.6
    assert rows[baseline_key("x", "reduced", 0)]["accuracy"] == 0.5
    assert rows[baseline_key("y-seed2", "reduced", 2)]["accuracy"] == 0.7
    assert baseline_key("y", "reduced", 0) not in rows and baseline_key("x", "smoke") not in rows


GOOD = "case_id,scale,seed,status,accuracy,train_time_s\nx,smoke,0,passed,0.5,10\n"


# Every way a baseline file could switch the guard off is a one-line refusal naming the fix.
@pytest.mark.parametrize("text, message", [
    ("case_id,scale,seed,status,accuracy\n", "has a header but no rows"),
    ("case_id,scale,seed,status,accuracy\nx,smoke,0,failed,0.5\n", "has no passed row"),
    (GOOD + "x,smoke,0,passed,0.6,10\n", "holds x seed 0 at scale smoke twice (lines 2 and 3)"),
    (GOOD.replace("0.5", "nan"), "line 2 (x): accuracy is 'nan', not a share 0..1"),
    (GOOD.replace("0.5", "inf"), "accuracy is 'inf', not a share 0..1"),
    (GOOD.replace("0.5", "high"), "accuracy is 'high', not a share 0..1"),
    (GOOD.replace("0.5", "7.5"), "accuracy is '7.5', not a share 0..1"),
    (GOOD.replace(",10", ",-3"), "train_time_s is '-3', not a number >= 0"),
    ("", "is empty"),
])
def test_every_baseline_file_problem_is_refused(tmp_path, text, message):
    csv = tmp_path / "b.csv"
    csv.write_text(text)
    with pytest.raises(BaselineError) as exc:
        load_baseline(csv)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def _row(accuracy, **baseline):
    return {"case_id": "c", "status": "passed", "metrics": {"accuracy": accuracy},
            "baseline": {"path": "b.csv", **baseline}}


def test_guard_pools_rows_of_another_environment():
    """Across environments a row is not judged alone: the mean difference over the cases must
    stay within the tolerance (one-sided 95% bound); too few cases is "not compared"."""
    from resnet_harness.analysis.baseline import MIN_PAIRS, guard

    def across(shift, n=12):
        return [dict(_row(0.6 + shift + (0.01 if i % 2 else -0.01), values={"accuracy": 0.6},
                          tolerances={"accuracy": 0.03}, regressions=[],
                          across_environments=["environment.isa: a here, b there"]),
                     case_id=f"c{i}") for i in range(n)]

    same = guard(across(0.0))
    assert not same.failed and same.compared == 12
    assert any("accuracy: mean +0.0000" in line and "no regression" in line for line in same.lines)
    worse = guard(across(-0.04))
    assert worse.failed and any("REGRESSION" in line for line in worse.lines)
    few = guard(across(0.0, MIN_PAIRS - 1))
    assert few.failed and few.compared == 0
    assert "too few to compare across environments" in few.lines[0]
    assert "save-baseline" in few.lines[0]


def test_guard_that_compares_nothing_fails():
    from resnet_harness.analysis.baseline import guard

    found = guard([_row(0.6, not_compared="the baseline has no row of c seed 0")])
    assert found.failed and found.compared == 0
    assert "c: not compared: the baseline has no row of c seed 0" in found.lines
    assert "compared no case" in found.lines[-1]
    assert guard([{"case_id": "c", "status": "passed"}]) is None  # no --baseline: no verdict


def test_match_names_what_differs(tmp_path):
    """Same case and seed, other settings or data: not compared, saying why; other environment:
    compared across environments; same environment: compared seed by seed."""
    from resnet_harness.analysis.baseline import Baseline

    env = {"cpu": "X", "isa": ["avx2"], "onednn": "1", "onednn_max_isa": None, "gpus": []}
    base = {"case_id": "c", "scale": "smoke", "seed": 0, "status": "passed", "accuracy": 0.5,
            "config": {"epochs": 1}, "environment": env, "versions": {"tensorflow": "2.21.0"},
            "data_source": "synthetic", "data_fingerprint": "f1"}
    baseline = Baseline([base], "b.csv")
    row = {"case_id": "c", "scale": "smoke", "seed": 0, "config": {"epochs": 1},
           "data_source": "synthetic", "data_fingerprint": "f1",
           "provenance": {"environment": env, "versions": {"tensorflow": "2.21.0"}}}
    assert baseline.match(row).row is base and baseline.match(row).same_environment
    other_env = json.loads(json.dumps(row))
    other_env["provenance"]["environment"]["isa"] = ["avx2", "avx512f"]
    found = baseline.match(other_env)
    assert found.row is base and not found.same_environment
    assert found.differences == ('environment.isa: ["avx2", "avx512f"] here, ["avx2"] there',)
    assert "config.epochs: 2 here, 1 there" in baseline.match(
        dict(row, config={"epochs": 2})).reason
    assert "data.fingerprint" in baseline.match(dict(row, data_fingerprint="f2")).reason
    assert baseline.match(dict(row, scale="reduced")).reason == \
        "the baseline has no row of c seed 0 at scale reduced (only smoke)"
    assert baseline.match(dict(row, seed=4)).reason == "the baseline has no row of c seed 4"
    unrecorded = Baseline([{k: v for k, v in base.items() if k != "environment"}], "b.csv")
    assert unrecorded.match(row).differences == ("environment: not recorded by the baseline",)
    deterministic = dict(row, config={"epochs": 1, "deterministic": True})
    assert baseline.match(deterministic).differences == (
        "settings.config.deterministic: true here, false there",)


def test_committed_reduced_baseline_loads_and_names_known_cases():
    from resnet_harness.analysis.baseline import baseline_key
    from resnet_harness.studies.paper import CASES_BY_ID

    rows = load_baseline(Path(__file__).resolve().parents[1] / "baselines" / "reduced.csv")
    assert {scale for _, scale, _ in rows} == {"reduced"}
    assert {case for case, _, _ in rows} == set(CASES_BY_ID)  # the whole matrix ...
    assert {(case, 0) for case in CASES_BY_ID} <= {(c, s) for c, _, s in rows}  # ... at seed 0
    assert len(rows) % len(CASES_BY_ID) == 0  # every seed of it complete
    for row in rows.values():
        floors = CASES_BY_ID[baseline_key(row["case_id"], "reduced")[0]].bounds.floors("reduced")
        assert row["status"] == "passed"
        assert all(row[name] >= floor for name, floor in floors.items())  # a passed row
        assert row["train_samples"] > 0 and row["train_time_s"] > 0
