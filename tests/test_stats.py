"""Seeds, intervals, comparisons and claims on hand-made rows (no training).

Every interval and p-value is also recomputed here by other means: ``scipy.stats.bootstrap`` and a
plain NumPy bootstrap for the per-run intervals, a t table value and the closed-form Student t CDF
for 4 degrees of freedom for the seed intervals and paired tests, Holm by hand.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
from scipy import stats as sps

from resnet_harness.analysis import claims
from resnet_harness.report import claims_section
from resnet_harness.analysis import comparisons
from resnet_harness.analysis import stats
from resnet_harness.training import metrics
from resnet_harness.training import config as cfg
from resnet_harness.training import values
from resnet_harness.studies.paper import CASES, CLAIMS
from resnet_harness.study import find_case, split_seed

from helpers import find_case as case_of

CIFAR_BAL = case_of("table7", "cifar10")
CIFAR_IMB = case_of("table7", "cifar10", "imbalanced")
FASHION_BAL = case_of("table7", "fashion_mnist")
FASHION_IMB = case_of("table7", "fashion_mnist", "imbalanced")


def make_row(case, seed: int, score: float, *, run=cfg.RunConfig(scale="reduced"),
             recall=None, train_time=100.0, rss=1000.0, status="passed"):
    """A result row as the runner writes it, every score equal to ``score``."""
    case_cfg = run.for_case(case)
    recall = recall if recall is not None else [score] * 10
    return {"case_id": f"{case.id}-seed{seed}", "table": case.table, "dataset": case.dataset,
            "balance": case.balance, "split": case.split, "regularization": case.regularization,
            "scale": run.scale, "seed": seed, "status": status, "config": case_cfg.as_dict(),
            "metrics": {"accuracy": score, "balanced_accuracy": score, "f1_macro": score,
                        "roc_auc_ovr_macro": min(1.0, score + 0.2),
                        "per_class": {"recall": list(recall)}},
            "reduced_classes": [0, 1, 2] if case.imbalanced else [],
            "train_time_s": train_time, "peak_rss_mb": rss, "model_reused": True}


def planted(shift: float, noise: float = 0.005, seeds=range(5), rng_seed: int = 0,
            pair=(CIFAR_BAL, CIFAR_IMB)):
    rng = np.random.default_rng(rng_seed)
    rows = []
    for seed in seeds:
        common = 0.6 + rng.normal(0, 0.02)  # seed-to-seed variation both arms share
        rows.append(make_row(pair[0], seed, common + rng.normal(0, noise)))
        rows.append(make_row(pair[1], seed, common + shift + rng.normal(0, noise)))
    return rows


def _result(results, case_a, case_b, measure="accuracy"):
    (found,) = [r for r in results if (r.comparison.baseline, r.comparison.treatment, r.measure)
                == (case_a.id, case_b.id, measure)]
    return found


# -- --seeds and the case ids -----------------------------------------------------------------
def test_parse_seeds_lists_ranges_and_errors():
    assert values.parse_seeds("0,1,2,3,4") == (0, 1, 2, 3, 4)
    assert values.parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert values.parse_seeds("0-2,7") == (0, 1, 2, 7)
    for bad, text in (("3-1", "not a seed or a range"), ("a", "not a seed"), ("1,1", "twice"),
                      ("", "not a seed"), ("-1", "not a seed"), ("²", "not a seed"),
                      ("auto:²", "'²' is not a number of seeds; use auto or auto:12"),
                      ("auto:x", "not a number of seeds")):
        with pytest.raises(argparse.ArgumentTypeError, match=text):
            values.parse_seeds(bad)


def test_seeded_cases_have_the_seed_in_id_and_config():
    run = cfg.RunConfig(seed=9, seeds=(0, 3))
    cases = run.cases(CASES)
    assert len(cases) == 2 * len(CASES)
    seeded = [c for c in cases if c.base_id == CIFAR_IMB.id]
    assert [c.id for c in seeded] == [f"{CIFAR_IMB.id}-seed0", f"{CIFAR_IMB.id}-seed3"]
    assert [run.for_case(c).seed for c in seeded] == [0, 3]
    assert run.for_case(CIFAR_IMB).seed == 9  # without --seeds: --seed, id unchanged
    assert cfg.RunConfig().cases(CASES) == list(CASES)
    assert split_seed(seeded[1].id) == (CIFAR_IMB.id, 3)
    assert find_case(seeded[1].id) == seeded[1] and find_case(CIFAR_IMB.id) is CIFAR_IMB


def test_controlled_comparison_gives_imbalanced_arm_the_balanced_recipe():
    study, controlled = cfg.RunConfig(), cfg.RunConfig(study_options={"comparison": "controlled"})
    f_study, f_ctl = study.for_case(FASHION_IMB), controlled.for_case(FASHION_IMB)
    assert f_study.case.comparison == "study" and f_study.case.head.dense_units == 1024
    assert f_ctl.case.comparison == "controlled" and f_ctl.as_dict()["comparison"] == "controlled"
    balanced = controlled.for_case(FASHION_BAL)
    assert (f_ctl.case.head, f_ctl.epochs, f_ctl.augment) == (
        balanced.case.head, balanced.epochs, balanced.augment)
    assert f_ctl.case.id == FASHION_IMB.id and f_ctl.imbalance is not None
    assert controlled.for_case(FASHION_BAL).as_dict() == study.for_case(FASHION_BAL).as_dict()
    # CIFAR-10's imbalanced arm differs from its balanced one in augmentation only.
    assert controlled.for_case(CIFAR_IMB).augment and not study.for_case(CIFAR_IMB).augment


# -- per run: bootstrap intervals ---------------------------------------------------------------
def _predictions(n, accuracy, seed=0):
    rng = np.random.default_rng(seed)
    y_true = np.arange(n) % 10
    y_pred = np.where(rng.random(n) < accuracy, y_true, rng.integers(0, 10, n))
    return y_true, y_pred


def test_run_intervals_match_scipy_bootstrap_and_a_numpy_bootstrap():
    y_true, y_pred = _predictions(600, 0.7)
    ours = metrics.run_intervals(y_true, y_pred, seed=1)
    correct = (y_true == y_pred).astype(float)
    scipy_ci = sps.bootstrap((correct,), np.mean, method="percentile", n_resamples=4000,
                             random_state=np.random.default_rng(2)).confidence_interval
    rng = np.random.default_rng(3)
    index = rng.integers(0, len(y_true), size=(4000, len(y_true)))
    f1 = [_f1_macro(y_true[i], y_pred[i]) for i in index[:1000]]
    for (lo, hi), (ref_lo, ref_hi) in (
            (ours["accuracy"], (scipy_ci.low, scipy_ci.high)),
            (ours["accuracy"], np.percentile(correct[index].mean(axis=1), [2.5, 97.5])),
            (ours["f1_macro"], np.percentile(f1, [2.5, 97.5]))):
        # Monte-Carlo error of a 95% end point with these resamples: well under 0.01 here.
        assert lo == pytest.approx(ref_lo, abs=0.01) and hi == pytest.approx(ref_hi, abs=0.01)
    accuracy = correct.mean()
    assert ours["accuracy"][0] < accuracy < ours["accuracy"][1]
    # Normal approximation of a proportion: half-width 1.96 * sqrt(p(1-p)/n).
    half = 1.96 * math.sqrt(accuracy * (1 - accuracy) / len(correct))
    assert (ours["accuracy"][1] - ours["accuracy"][0]) / 2 == pytest.approx(half, rel=0.1)
    assert metrics.run_intervals(y_true, y_pred, seed=1) == ours  # seeded


def _f1_macro(y_true, y_pred):
    scores = []
    for k in range(10):
        tp = np.sum((y_true == k) & (y_pred == k))
        denominator = np.sum(y_true == k) + np.sum(y_pred == k)
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


def test_confusion_scores_equal_the_row_metrics():
    from resnet_harness.training.metrics import compute_metrics

    y_true, y_pred = _predictions(300, 0.5, seed=4)
    y_pred[y_pred == 9] = 8  # a class never predicted: F1 0 there
    proba = np.eye(10)[y_pred] * 0.9 + 0.01
    row_metrics = compute_metrics(y_true, proba, 10)
    scores = metrics.confusion_scores(metrics.confusion(y_true, y_pred))
    for name in metrics.INTERVAL_METRICS:
        assert float(scores[name]) == pytest.approx(row_metrics[name], abs=1e-12)


def test_run_intervals_are_fast_for_10000_images():
    import time

    y_true, y_pred = _predictions(10_000, 0.73)
    metrics.run_intervals(y_true, y_pred)
    started = time.perf_counter()
    metrics.run_intervals(y_true, y_pred)
    assert time.perf_counter() - started < 0.5  # measured 0.06 s on the shared 2-core machine


# -- over seeds ---------------------------------------------------------------------------------
T_975_4 = 2.7764451051977987  # Student t quantile, 0.975, 4 degrees of freedom (tables)


def _t4_two_sided_p(t):
    x = abs(t) / math.sqrt(t * t + 4)  # closed-form CDF of Student t with 4 degrees of freedom
    return 2 * (1 - (0.5 + 0.75 * x - 0.25 * x ** 3))


def test_seed_summary_and_paired_difference_recomputed_by_hand():
    values = [0.61, 0.64, 0.58, 0.66, 0.60]
    summary = stats.seed_summary(values)
    mean = sum(values) / 5
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
    assert (summary.n, summary.mean, summary.std) == (5, pytest.approx(mean), pytest.approx(std))
    assert summary.low == pytest.approx(mean - T_975_4 * std / math.sqrt(5))
    assert summary.high == pytest.approx(mean + T_975_4 * std / math.sqrt(5))
    other = [0.63, 0.67, 0.58, 0.70, 0.61]
    paired = stats.paired_difference(values, other)
    d = np.subtract(other, values)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    assert paired.mean == pytest.approx(d.mean())
    assert paired.p_value == pytest.approx(_t4_two_sided_p(t), rel=1e-9)
    assert paired.p_value == pytest.approx(sps.ttest_rel(other, values).pvalue, rel=1e-9)
    assert paired.low == pytest.approx(d.mean() - T_975_4 * d.std(ddof=1) / math.sqrt(5))
    one = stats.seed_summary([0.5])
    assert one.n == 1 and math.isnan(one.low)
    same = stats.paired_difference([0.5, 0.6], [0.5, 0.6])  # no spread, no floor: unknown
    assert same.se == 0 and math.isnan(same.p_value) and math.isnan(same.low)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 of m=3 -> 0.03, 0.06, max(0.06, 0.04) = 0.06
    assert stats.holm([0.04, 0.01, 0.03, math.nan])[:3] == pytest.approx([0.06, 0.03, 0.06])
    assert math.isnan(stats.holm([0.04, 0.01, 0.03, math.nan])[3])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]


def test_case_summaries_over_seeds():
    rows = planted(0.0)
    summary = comparisons.case_summaries(rows)[CIFAR_BAL.id]["accuracy"]
    values = [r["metrics"]["accuracy"] for r in rows if r["case_id"].startswith(CIFAR_BAL.id)]
    assert summary.n == 5 and summary.mean == pytest.approx(np.mean(values))


# -- comparisons ---------------------------------------------------------------------------------
def test_planted_difference_is_better_and_its_p_value_recomputes():
    rows = planted(0.05)
    results = comparisons.compare(rows)
    result = _result(results, CIFAR_BAL, CIFAR_IMB)
    assert result.verdict == "better" and result.n == 5 and result.seeds == (0, 1, 2, 3, 4)
    acc = {(r["balance"], r["seed"]): r["metrics"]["accuracy"] for r in rows}
    d = np.array([acc["imbalanced", s] - acc["balanced", s] for s in range(5)])
    assert result.mean == pytest.approx(d.mean())
    t = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    assert result.p_value == pytest.approx(_t4_two_sided_p(t), rel=1e-9)
    # The Table 7 score family here: 4 scores measured (reduced_recall too) on CIFAR-10.
    family = [r for r in results if r.comparison.family == "table7"
              and not comparisons.MEASURES[r.measure].resource and r.n]
    by_hand = stats.holm([r.p_value for r in family])
    assert [r.p_holm for r in family] == pytest.approx(by_hand)
    worse = _result(comparisons.compare(planted(-0.05)), CIFAR_BAL, CIFAR_IMB)
    assert worse.verdict == "worse"


@pytest.mark.parametrize("rng_seed", range(5))
def test_no_difference_is_never_better(rng_seed):
    result = _result(comparisons.compare(planted(0.0, noise=0.002, rng_seed=rng_seed)),
                     CIFAR_BAL, CIFAR_IMB)
    assert result.verdict == "equivalent"
    noisy = _result(comparisons.compare(planted(0.0, noise=0.03, rng_seed=rng_seed)),
                    CIFAR_BAL, CIFAR_IMB)
    assert noisy.verdict == "inconclusive"


def test_false_positive_rate_under_no_difference_stays_near_alpha():
    a = np.random.default_rng(0).normal(0.6, 0.02, size=(400, 5))
    b = np.random.default_rng(1).normal(0.6, 0.02, size=(400, 5))
    significant = [stats.paired_difference(x, y).p_value < 0.05 for x, y in zip(a, b)]
    assert np.mean(significant) < 0.08  # a 5% test; 400 draws: 0.05 +- 0.022


def test_one_seed_is_inconclusive_and_time_is_relative():
    rows = [make_row(CIFAR_BAL, 0, 0.6, train_time=100),
            make_row(CIFAR_IMB, 0, 0.7, train_time=150)]
    results = comparisons.compare(rows)
    assert _result(results, CIFAR_BAL, CIFAR_IMB).verdict == "inconclusive"
    time = _result(results, CIFAR_BAL, CIFAR_IMB, "train_time")
    assert time.mean == pytest.approx(0.5) and time.verdict == "inconclusive"


def test_steady_state_figures_win_over_raw_ones():
    a, b = make_row(CIFAR_BAL, 0, 0.6), make_row(CIFAR_IMB, 0, 0.6)
    a["steady_train_time_s"], b["steady_train_time_s"] = 10.0, 12.0
    assert comparisons.value(a, "train_time", b) == 10.0
    del b["steady_train_time_s"]
    assert comparisons.value(a, "train_time", b) == 100.0  # only when both arms have it
    rows = []
    for seed in range(3):
        rows += [make_row(CIFAR_BAL, seed, 0.6), make_row(CIFAR_IMB, seed, 0.6)]
        rows[-2]["rss_added_mb"], rows[-1]["rss_added_mb"] = 100.0, 120.0 + seed
    memory = _result(comparisons.compare(rows), CIFAR_BAL, CIFAR_IMB, "memory")
    # A ratio: the geometric mean of 1.20, 1.21, 1.22, minus 1 (a t interval of log ratios).
    assert memory.fields == ("rss_added_mb",)
    assert memory.mean == pytest.approx(np.expm1(np.mean(np.log([1.20, 1.21, 1.22]))))


def test_confounds_of_table7_fashion_study_and_controlled():
    study = [make_row(FASHION_BAL, 0, 0.6), make_row(FASHION_IMB, 0, 0.6)]
    found = comparisons.confounds(study[0], study[1], "balance")
    # Reduced scale: the frozen-base arm keeps the paper's 7 epochs, and neither arm augments.
    assert "epochs: 3 -> 7" in found
    assert any(f.startswith("head.dense_units: none -> 1024") for f in found)
    assert any(f.startswith("head.freeze_base: False -> True") for f in found)
    assert not any(f.startswith("augment") for f in found)
    assert not any(f.startswith(("balance", "imbalance", "comparison", "seed")) for f in found)
    controlled = cfg.RunConfig(scale="reduced", study_options={"comparison": "controlled"})
    rows = [make_row(FASHION_BAL, 0, 0.6, run=controlled),
            make_row(FASHION_IMB, 0, 0.6, run=controlled)]
    assert comparisons.confounds(rows[0], rows[1], "balance") == []
    # Rows stored before the paper's arm choice was renamed (config "recipe"), alone or beside
    # new ones, and a long-tail-style row that still holds the core's old "imbalance": None:
    # nothing of it is a confound.
    older = [dict(r, config={**{k: v for k, v in r["config"].items() if k != "comparison"},
                             "recipe": r["config"]["comparison"]}) for r in rows]
    assert comparisons.confounds(older[0], older[1], "balance") == []
    assert comparisons.confounds(older[0], rows[1], "balance") == []
    assert comparisons.confounds(rows[0], older[1], "balance") == []
    assert comparisons.confounds(dict(rows[1], config={**rows[1]["config"], "imbalance": None}),
                                 dict(rows[1], config={k: v for k, v in rows[1]["config"].items()
                                                       if k != "imbalance"}), "dataset") == []
    paper = cfg.RunConfig(scale="paper")
    rows = [make_row(FASHION_BAL, 0, 0.6, run=paper), make_row(FASHION_IMB, 0, 0.6, run=paper)]
    assert {"epochs: 5 -> 7", "augment: True -> False"} <= set(
        comparisons.confounds(rows[0], rows[1], "balance"))


# -- claims --------------------------------------------------------------------------------------
def _claim(results, key):
    (found,) = [c for c in results if c.claim.key == key]
    return found


def test_claims_not_run_without_their_cases_and_supported_with_a_planted_effect(tmp_path):
    verdicts, _ = claims.evaluate([], claims=CLAIMS)
    assert {c.verdict for c in verdicts} == {"not run"}
    assert claims.evaluate([]) == ([], [])  # no rows: no study's claims
    rows = planted(0.05)
    verdicts, _ = claims.evaluate(rows)
    cifar = _claim(verdicts, "imbalanced-beats-balanced-cifar10")
    assert cifar.verdict == "supported"
    # At reduced scale neither CIFAR-10 arm augments, so they differ in their data only (at
    # paper scale the balanced arm augments: test_confounds_of_table7_fashion_study_and_controlled).
    assert cifar.confounds == []
    assert _claim(verdicts, "imbalanced-beats-balanced-fashion_mnist").verdict == "not run"
    # Only CIFAR-10 ran: the claim about both data sets is incomplete, whatever CIFAR-10 says.
    costs = _claim(verdicts, "imbalanced-costs-more")
    assert costs.verdict == "incomplete" and len(costs.missing) == 2
    assert all("fashion_mnist" in m for m in costs.missing)
    for row in rows:
        if row["balance"] == "imbalanced":
            row["train_time_s"], row["peak_rss_mb"] = 150.0 + row["seed"], 1500.0 - row["seed"]
    verdicts, _ = claims.evaluate(rows)
    costs = _claim(verdicts, "imbalanced-costs-more")
    assert costs.verdict == "incomplete"  # holds on CIFAR-10; Fashion-MNIST not run
    assert [o for _, _, o in costs.checks] == ["holds", "holds", "not run", "not run"]
    assert "[peak_rss_mb: peak RSS of the whole process: grows with run order]" in \
        costs.evidence()
    assert _claim(verdicts, "l2-beats-l1").verdict == "not run"
    equal = claims.evaluate(planted(0.0, noise=0.002))[0]
    assert _claim(equal, "imbalanced-beats-balanced-cifar10").verdict == "contradicted"
    paths = claims.write_claims(rows, tmp_path, claims.analyse(rows))
    import pandas as pd

    table = pd.read_csv(paths["claims"])
    assert len(table) == len(CLAIMS) and "not run" in set(table["verdict"])
    assert table.set_index("claim").loc["imbalanced-beats-balanced-cifar10", "verdict"] == \
        "supported"
    compared = pd.read_csv(paths["comparisons"])
    line = compared[(compared["treatment"] == CIFAR_IMB.id)
                    & (compared["measure"] == "accuracy")].iloc[0]
    assert line["verdict"] == "better" and line["n_seeds"] == 5
    seeds = pd.read_csv(paths["seeds"]).set_index(["case", "measure"])
    expected = stats.seed_summary([r["metrics"]["accuracy"] for r in rows
                                   if r["balance"] == "balanced"])
    assert seeds.loc[(CIFAR_BAL.id, "accuracy"), "n"] == 5
    assert seeds.loc[(CIFAR_BAL.id, "accuracy"), "low"] == pytest.approx(expected.low)


def test_reduced_recall_claim_uses_the_reduced_classes():
    rows = []
    for seed in range(5):
        rows.append(make_row(FASHION_BAL, seed, 0.8, recall=[0.8] * 10))
        low = [0.5 + 0.01 * seed] * 3 + [0.8] * 7
        rows.append(make_row(FASHION_IMB, seed, 0.8, recall=low))
    verdicts, _ = claims.evaluate(rows)
    claim = _claim(verdicts, "reduced-classes-keep-recall")
    assert claim.verdict == "contradicted"
    assert any("dense_units" in c for c in claim.confounds)


def test_html_section_and_terminal_lines_say_confounded():
    rows = []
    for seed in range(3):
        rows += [make_row(FASHION_BAL, seed, 0.6 + seed / 100),
                 make_row(FASHION_IMB, seed, 0.7 + seed / 100)]
    html = claims_section.html_section(rows, claims.analyse(rows))
    assert 'id="claims"' in html and "confounded" in html and "head.dense_units" in html
    assert "Per case over seeds" in html
    lines = claims.summary_lines(claims.analyse(rows))
    index = next(i for i, line in enumerate(lines) if "fashion_mnist" in line
                 and "imbalanced-beats" in line)
    own = next((i for i in range(index + 1, len(lines)) if not lines[i].startswith("    ")),
               len(lines))  # the claim's own lines, up to the next claim
    assert any(line.strip().startswith("confounded:") for line in lines[index + 1:own])
    # Every seed moved by exactly 0.1 and these rows carry no test-set figures: nothing bounds
    # the difference's uncertainty, so nothing is decided (it was "better" with p = 0).
    assert any("inconclusive" in line for line in lines[index + 1:own])
    assert claims.delta_of([{"options": {"equivalence_delta": 0.02}}]) == 0.02


def test_paper_tables_show_the_mean_over_seeds():
    from resnet_harness.analysis import table
    from resnet_harness.studies.paper_report import table7_frame

    rows = planted(0.05)
    frame = table7_frame(table.case_frame(rows))
    line = frame[(frame["dataset"] == "cifar10") & (frame["metric"] == "accuracy")].iloc[0]
    expected = np.mean([r["metrics"]["accuracy"] for r in rows if r["balance"] == "balanced"])
    assert line["balanced_measured"] == pytest.approx(expected)
