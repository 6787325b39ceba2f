"""Verdicts that can be trusted: options reach every output, identical seeds cannot give
certainty, degenerate arms and partial runs decide nothing, resources pair like with like on a
log scale, every inconclusive comparison says how many seeds would decide it, claims come from
saved rows anywhere, and the sequential design keeps its error rate."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from resnet_harness import study
from resnet_harness.analysis import claims, comparisons, sequential, stats
from resnet_harness.report import claims_section
from resnet_harness.studies.paper import case_id

study.load_builtin()
BAL, IMB = case_id("table7", "fashion_mnist"), case_id("table7", "fashion_mnist", "imbalanced")


def _row(case: str, seed: int, acc: float, *, interval=0.02, reused=None, time_s=None,
         single_class=False, reduced=(), auc=0.8):
    metrics = {"accuracy": acc, "balanced_accuracy": acc, "f1_macro": acc,
               "roc_auc_ovr_macro": auc, "per_class": {"recall": [acc] * 10}}
    if single_class:
        metrics["confusion_matrix"] = [[100 if k == 0 else 0 for k in range(10)]
                                       for _ in range(10)]
    row = {"case_id": f"{case}-seed{seed}", "seed": seed, "scale": "reduced",
           "status": "passed", "metrics": metrics, "reduced_classes": list(reduced),
           "test_counts": [100] * 10, "config": {},
           "intervals": {m: [acc - interval, acc + interval]
                         for m in ("accuracy", "balanced_accuracy", "f1_macro")}}
    if time_s is not None:
        row.update(steady_train_time_s=time_s, rss_added_mb=100.0, model_reused=reused)
    return row


def _result(results, measure, case=IMB):
    (found,) = [r for r in results if r.measure == measure and r.comparison.treatment == case]
    return found


def test_identical_seeds_do_not_give_certainty():
    """Two seeds 0.0125 apart in both: the spread between them is 0, the test sets' is not."""
    rows = [_row(BAL, s, 0.5) for s in (0, 1)] + [_row(IMB, s, 0.4875) for s in (0, 1)]
    result = _result(comparisons.compare(rows), "accuracy")
    assert result.p_value > 0.05 and result.low < 0 < result.high
    assert result.verdict == "inconclusive" and result.floored
    # Without the floor the same pair would have been "certain" (the bug this replaces).
    bare = stats.paired_difference([0.5, 0.5], [0.4875, 0.4875])
    assert bare.se == 0.0 and math.isnan(bare.p_value)  # nothing known, not "certain"
    # The floor is what one run's bootstrap interval says: (0.02 / 1.96)^2 per arm.
    assert result.se == pytest.approx(math.sqrt(2 * (0.02 / 1.959963984540054) ** 2 / 2))


def test_runs_with_the_same_predictions_are_one_figure_not_two_samples():
    """Early stopping that kept the last epoch: each seed's two arms predicted bit for bit the
    same, so their difference is 0 with no test-set uncertainty; counted as two independent
    samples the same rows were 'inconclusive' at 3 seeds."""
    def rows(digests):
        return [dict(_row(case, s, 0.5 + 0.01 * s),
                     **({"predictions_digest": f"d{s}"} if digests else {}))
                for case in (BAL, IMB) for s in (0, 1, 2)]

    same = _result(comparisons.compare(rows(True)), "accuracy")
    assert (same.mean, same.se) == (0.0, 0.0) and math.isnan(same.low)
    # Arms that never differed say nothing about how much they can differ: not equivalent.
    assert same.verdict == "inconclusive" and "identical predictions in 3 of 3 seeds" in same.note
    assert "no interval" in same.note
    unknown = _result(comparisons.compare(rows(False)), "accuracy")  # rows made before digests
    assert unknown.verdict == "inconclusive" and unknown.low < 0 < unknown.high
    # the same digest with another figure (another partner's classes) is not the same figure
    assert comparisons._test_set_variance(
        "accuracy", ((rows(True)[0], None), (dict(rows(True)[0], metrics={"accuracy": 0.6}),
                                             None)), (-1, 1))[1] is False


def test_a_difference_cancels_only_the_runs_that_did_not_change():
    """(b - b_minus) - (a - a_minus) with b == a: their test-set variances cancel, the other
    two runs' remain."""
    def run(case, acc, digest):
        return dict(_row(case, 0, acc, interval=0.0196), predictions_digest=digest)

    a, a_minus, b, b_minus = (run(IMB, 0.45, "same"), run(BAL, 0.5, "x"),
                              run(IMB, 0.45, "same"), run(BAL, 0.52, "y"))
    partners = ((a, a_minus), (a_minus, a), (b, b_minus), (b_minus, b))
    within, cancelled = comparisons._test_set_variance("accuracy", partners, (-1, 1, 1, -1))
    one = comparisons.sampling_variance(a_minus, "accuracy")
    assert cancelled and within == pytest.approx(2 * one)
    b_changed = dict(b, predictions_digest="other")
    partners = ((a, a_minus), (a_minus, a), (b_changed, b_minus), (b_minus, b_changed))
    assert comparisons._test_set_variance("accuracy", partners, (-1, 1, 1, -1)) == (
        pytest.approx(4 * one), False)


def test_a_degenerate_arm_is_never_equivalent_and_never_supports_a_claim():
    rows = ([_row(BAL, s, 0.0, interval=0.0, single_class=True) for s in (0, 1, 2)]
            + [_row(IMB, s, 0.0, interval=0.0, single_class=True, reduced=(0, 1, 2))
               for s in (0, 1, 2)])
    recall = _result(claims.evaluate(rows)[1], "reduced_recall")
    assert recall.verdict != "equivalent" and "degenerate" in recall.note
    verdicts = {c.claim.key: c.verdict for c in claims.evaluate(rows)[0]}
    assert verdicts["reduced-classes-keep-recall"] != "supported"


def test_a_claim_with_a_check_not_run_is_incomplete_and_names_it():
    rows = ([_row(BAL, s, 0.5, time_s=10.0, reused=True) for s in range(3)]
            + [_row(IMB, s, 0.5, time_s=10.0, reused=True) for s in range(3)])
    (costs,) = [c for c in claims.evaluate(rows)[0] if c.claim.key == "imbalanced-costs-more"]
    assert costs.verdict == "incomplete"
    assert costs.missing and all("cifar10" in m for m in costs.missing)


def test_resources_pair_like_with_like_on_a_log_scale():
    times = [(10.0, 1.0), (10.0, 0.9), (10.0, 1.1)]  # a 90% cut, wildly uneven in ratio terms
    rows = ([_row(BAL, s, 0.5, time_s=a, reused=True) for s, (a, _) in enumerate(times)]
            + [_row(IMB, s, 0.5, time_s=b, reused=True) for s, (_, b) in enumerate(times)])
    result = _result(comparisons.compare(rows), "train_time")
    assert -1 < result.low <= result.mean <= result.high  # never below -100%
    assert result.mean == pytest.approx(math.expm1(np.mean(np.log([0.1, 0.09, 0.11]))))
    mixed = ([_row(BAL, s, 0.5, time_s=10.0, reused=False) for s in range(3)]
             + [_row(IMB, s, 0.5, time_s=9.0, reused=True) for s in range(3)])
    result = _result(comparisons.compare(mixed), "memory")
    assert result.verdict == "not comparable" and "model_reused False vs True" in result.note


def test_seeds_needed_match_an_independent_power_computation():
    # Reference: statsmodels 0.14 TTestPower().solve_power(effect_size=d, alpha=a, power=0.8)
    # gives 9.94 (d=1, a=0.05) and 786.8 (d=0.1); ceil -> 10 and 787.
    assert stats.seeds_needed(1.0, 0.05) == 10
    assert stats.seeds_needed(0.1, 0.05) == 787
    assert stats.seeds_needed(0.0, 0.05) == math.inf
    # And the power itself against a simulation of the paired t-test.
    rng = np.random.default_rng(0)
    from scipy import stats as sps
    x = rng.normal(1.0, 1.0, size=(4000, 10))
    p = 2 * sps.t.sf(np.abs(x.mean(1) / (x.std(1, ddof=1) / np.sqrt(10))), 9)
    assert np.mean(p < 0.05) == pytest.approx(stats.power(10, 1.0, 0.05), abs=0.02)
    assert stats.detectable(10, 1.0, 0.05) == pytest.approx(0.996, abs=0.002)


def test_an_inconclusive_comparison_says_how_many_seeds_would_decide_it():
    rows = ([_row(BAL, s, 0.50 + e) for s, e in enumerate((0.01, -0.01, 0.0))]
            + [_row(IMB, s, 0.49 + e) for s, e in enumerate((0.0, 0.01, -0.01))])
    result = _result(comparisons.compare(rows), "accuracy")
    assert result.verdict == "inconclusive"
    assert result.seeds_at_delta > 3 and result.seeds_at_observed > 3
    assert result.detectable > abs(result.mean)
    record = result.as_dict()
    assert record["family_size"] == 4  # the four scores these rows have; no time, memory
    # Holm's first step over the family of four: the interval is at the level it is tested at.
    assert record["delta"] == 0.01 and record["family_alpha"] == 0.05
    assert record["alpha"] == pytest.approx(0.05 / 4)
    assert "seeds to decide" in claims.describe(result)


def test_the_delta_of_run_json_reaches_claims_csv_and_the_report(tmp_path):
    stored = [{"options": {"equivalence_delta": {"value": 0.05, "from": "--equivalence-delta"}}}]
    assert claims.delta_of(stored) == 0.05
    assert claims.delta_of([{"options": {"equivalence_delta": 0.02}}]) == 0.02  # older runs
    rows = [_row(BAL, s, 0.5 + 0.001 * s) for s in range(3)] + \
        [_row(IMB, s, 0.5 - 0.001 * s, interval=0.001) for s in range(3)]
    analysis = claims.analyse(rows, 0.05)
    paths = claims.write_claims(rows, tmp_path, analysis)
    table = pd.read_csv(paths["claims"])
    assert set(table["delta"]) == {0.05} and set(table["alpha"]) == {0.05}
    assert "±δ = 0.05" in claims_section.html_section(rows, analysis)


def test_claims_from_a_committed_results_csv(tmp_path):
    """``python -m resnet_harness claims baselines/reduced.csv`` regenerates the documented
    whole-matrix verdicts from committed rows."""
    from pathlib import Path

    baseline = Path(__file__).resolve().parents[1] / "baselines" / "reduced.csv"
    done = subprocess.run([sys.executable, "-m", "resnet_harness", "claims", str(baseline),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "claims.csv").set_index("claim")
    assert table.loc["fashion_mnist-beats-cifar10-every-split", "verdict"] == "supported"
    comparisons_csv = pd.read_csv(tmp_path / "comparisons.csv")
    assert (comparisons_csv["n_seeds"] == 3).any()
    assert (tmp_path / "claims.html").read_text().count("data:image/png;base64") >= 3
    bad = subprocess.run([sys.executable, "-m", "resnet_harness", "claims",
                          str(tmp_path / "nothing.csv"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "does not exist" in bad.stderr


# -- the sequential design ---------------------------------------------------------------------

def _simulate(effect: float, design: sequential.Design, family: int, sims: int, seed: int):
    """Per simulated study: the seeds the design ran and whether it called any comparison
    better/worse, with the harness's own sequential analysis on rows of ``family`` comparisons
    (each seed's difference ~ N(effect, 1) in units of 0.02 accuracy)."""
    rng = np.random.default_rng(seed)
    control = case_id("table10", "fashion_mnist")
    arms = [case_id("table10", "fashion_mnist", reg=r)
            for r in ("l1", "l2", "dropout0.1", "dropout0.3", "dropout0.5")][:family]
    stops, errors = [], 0
    for _ in range(sims):
        base = rng.normal(0.6, 0.02, design.max_seeds)
        diffs = rng.normal(effect * 0.02, 0.02, (family, design.max_seeds))
        rows = [_row(control, s, base[s], interval=0.0, auc=None)
                for s in range(design.max_seeds)]
        rows += [_row(arm, s, base[s] + diffs[k, s], interval=0.0, auc=None)
                 for k, arm in enumerate(arms) for s in range(design.max_seeds)]
        results, took = sequential.looked(rows, 0.0001, design)
        ours = [r for r in results if r.comparison.family == "table10-control"
                and r.measure == "accuracy" and r.n]
        decided = all(r.verdict in ("better", "worse") for r in ours)
        # The run stops at the look where its last comparison was decided (else at MAX).
        stops.append(max(took[(r.comparison.baseline, r.comparison.treatment, r.measure)]
                         for r in ours) if decided else design.max_seeds)
        errors += any(r.verdict in ("better", "worse") for r in ours)
    return np.mean(stops), errors / sims


def test_sequential_design_keeps_the_family_wise_rate_under_no_difference():
    design = sequential.Design(12)
    assert sum(design.alpha_at(n) for n in design.looks) == pytest.approx(0.05)
    _, rate = _simulate(0.0, design, family=3, sims=200, seed=1)
    assert rate <= 0.05 + 0.03  # 0.05 plus Monte-Carlo error of 200 studies (2 sd)


def test_sequential_design_stops_earlier_than_a_fixed_design_of_equal_power():
    design = sequential.Design(12)
    mean_seeds, power = _simulate(1.5, design, family=1, sims=200, seed=2)
    fixed = next(n for n in range(2, 100) if stats.power(n, 1.5, 0.05) >= power)
    assert power >= 0.9 and mean_seeds < fixed


# -- a check with its own margin -----------------------------------------------------------------

def _margin_verdicts(mu: float, expect: str, sims: int, seed: int, n: int = 6,
                     margin: float = 0.05) -> dict[str, float]:
    """Share of simulated studies (n seeds, each seed's difference ~ N(mu, 0.02)) whose claim,
    one check with its own ``margin``, came out supported / contradicted / inconclusive."""
    control = case_id("table10", "fashion_mnist")
    arm = case_id("table10", "fashion_mnist", reg="l2")
    claim = study.Claim("own-margin", "l2 costs less than 5 points", "test",
                        (study.Check(control, arm, "accuracy", expect, margin=margin),))
    rng = np.random.default_rng(seed)
    counts = {"supported": 0, "contradicted": 0, "inconclusive": 0}
    for _ in range(sims):
        base = rng.normal(0.6, 0.02, n)
        diffs = rng.normal(mu, 0.02, n)
        rows = [_row(control, s, base[s], interval=0.0, auc=None) for s in range(n)]
        rows += [_row(arm, s, base[s] + diffs[s], interval=0.0, auc=None) for s in range(n)]
        (verdict,), _ = claims.evaluate(rows, 0.01, claims=[claim])
        counts[verdict.verdict] += 1
    return {k: v / sims for k, v in counts.items()}


def test_a_checks_own_margin_errs_at_most_half_its_level_at_the_margin():
    """At a true cost of exactly the margin, "costs less than 5 points" is supported in at most
    2.5% of studies (the two-sided 95% interval's one side), plus Monte-Carlo error; a cost of
    twice the margin contradicts it nearly always; no cost supports it nearly always."""
    at_margin = _margin_verdicts(-0.05, "not lower", sims=400, seed=3)
    assert at_margin["supported"] <= 0.025 + 2 * math.sqrt(0.025 * 0.975 / 400)
    assert _margin_verdicts(0.0, "not lower", sims=200, seed=4)["supported"] >= 0.95
    assert _margin_verdicts(-0.10, "not lower", sims=200, seed=5)["contradicted"] >= 0.95
    # Equivalence within the margin: errs at most at the level on either edge.
    edge = _margin_verdicts(0.05, "equivalent", sims=400, seed=6)
    assert edge["supported"] <= 0.025 + 2 * math.sqrt(0.025 * 0.975 / 400)
    assert _margin_verdicts(0.0, "equivalent", sims=200, seed=7)["supported"] >= 0.9


def test_a_margin_needs_two_seeds_whose_arms_differ():
    control = case_id("table10", "fashion_mnist")
    arm = case_id("table10", "fashion_mnist", reg="l2")
    claim = study.Claim("own-margin", "s", "test",
                        (study.Check(control, arm, "accuracy", "not lower", margin=0.05),))
    same = [_row(c, s, 0.6, interval=0.0, auc=None) for c in (control, arm) for s in range(4)]
    (verdict,), _ = claims.evaluate(same, 0.01, claims=[claim])
    assert verdict.verdict == "inconclusive"  # identical runs bound nothing
    with pytest.raises(ValueError, match="margin -1 must be a number > 0"):
        study.Check(control, arm, "accuracy", "not lower", margin=-1)
    with pytest.raises(ValueError, match="expect 'above' is not one of"):
        study.Check(control, arm, "accuracy", "above")
