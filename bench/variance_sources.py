"""Where the error of a comparison comes from, and what removing each source buys, from rows.

    python bench/variance_sources.py RESULTS [--without RESULTS] [--sizes 1000,5000,10000]

``RESULTS``: a ``results.csv`` (or run folder) of a sequential run whose rows carry
``test_outcomes`` on the whole test set (this wave's Table 7 controlled run:
``docs/claims/table7-controlled-crn-10k/results.csv``). Prints, from those rows alone:

1. **Per look**: every score comparison as the sequential design decides it after 3, 6, 9 and
   12 seeds: the interval's half-width at its verdict's level and at a plain 95%, the verdict,
   and the measured CPU time (train + evaluation seconds of every row up to that look).
2. **Test-set size**: each run's predictions restricted to the stratified test subset the
   harness would have drawn at ``--max-test-samples K`` (the same images, seed by seed: per-seed
   subsets below the whole test set), at each K of ``--sizes``: the per-seed paired test-set
   variance, the seeds' spread, the standard error and 95% half-width at the seeds run, the
   seeds needed at delta and the cost to decide, with the evaluation's cost scaled to K (its
   test pass in proportion, the rest as measured). Which K minimises the cost to decide is the
   reduced scale's default.
3. **Pairing**: the paired test-set variance of a difference against the sum of the two runs'
   variances, per comparison.
4. With ``--without RESULTS`` (rows of the same cases under ``--batch-order shuffle``): the
   spread of the per-seed accuracy differences with common random numbers (``RESULTS``) and
   without (each seed's balanced arm from ``RESULTS`` against the imbalanced arm trained on its
   own shuffle), on the seeds both have.

Changes nothing; the figures in docs/results.md ("Table 7 decided") come from this script.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402

SCORES = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr_macro", "reduced_recall")


def load(path: str) -> list[dict]:
    from resnet_harness.report import load_rows

    return load_rows([Path(path)])[0]


def _scores(results, measures=SCORES):
    return [r for r in results if r.measure in measures and r.n]


def per_look(rows, delta: float) -> None:
    from resnet_harness.analysis.comparisons import compare, seed_cost, usable_rows
    from resnet_harness.analysis.sequential import Design, looked

    design = Design(12)
    seeds = sorted({int(r["seed"]) for r in rows})
    print("1. per look (sequential auto:12; half-width at the verdict's level / at 95%)")
    decided: dict = {}
    for look in design.looks:
        if len(seeds) < look:
            break
        kept = [r for r in rows if int(r["seed"]) in seeds[:look]]
        results, _ = looked(kept, delta, design)
        cpu = sum(seed_cost([row]) for row in usable_rows(kept).values())
        print(f"  {look} seeds, {cpu / 3600:.2f} h of train + evaluation time so far")
        plain = {(r.comparison.key, r.measure): r for r in compare(kept, delta)}
        for r in _scores(results):
            half = (r.high - r.low) / 2
            key = (r.comparison.key, r.measure)
            p95 = plain[key]
            half95 = (p95.ci95_high - p95.ci95_low) / 2
            first = decided.setdefault(key, look if r.verdict in ("better", "worse",
                                                                   "equivalent") else None)
            print(f"    {r.comparison.name[:40]:<40} {r.measure:<18} {r.mean:+.4f} "
                  f"+-{half:.4f} ({r.alpha:.4g}) / +-{half95:.4f}  {r.verdict}"
                  + (f" (since {first} seeds)" if first and first < look else ""))


def _subset(row: dict, positions: np.ndarray, name: str) -> dict:
    """``row`` as if scored on the test images at ``positions`` only."""
    from resnet_harness.analysis import pairing
    from resnet_harness.storage import outcomes
    from resnet_harness.training.metrics import confusion, confusion_scores

    y_true, y_pred = pairing.decoded(row)
    y_true, y_pred = y_true[positions], y_pred[positions]
    k = len(row.get("test_counts") or []) or 10
    counts = confusion(y_true, y_pred, k)
    scores = confusion_scores(counts)
    support = counts.sum(axis=1)
    recall = [float(counts[c, c] / support[c]) if support[c] else 0.0 for c in range(k)]
    out = {key: value for key, value in row.items() if key not in ("intervals",)}
    out["metrics"] = {name_: float(scores[name_]) for name_ in scores}
    out["metrics"]["per_class"] = {"recall": recall}
    out["test_counts"] = np.bincount(y_true, minlength=k).tolist()
    out["test_outcomes"] = outcomes.encode(y_true, y_pred)
    out["test_set"] = name
    out["predictions_digest"] = None
    return out


def test_size(rows, delta: float, sizes: list[int]) -> None:
    from resnet_harness.analysis import pairing
    from resnet_harness.analysis.comparisons import ALPHA, compare
    from resnet_harness.analysis.stats import seeds_needed
    from resnet_harness.training.data.variants import stratified_subset

    print("\n2. test-set size (the same trained models, scored on the subset the harness would "
          "draw)")
    print("  measured: the seeds' spread of the accuracy difference on those images; expected: "
          "the training part of the whole test set's spread plus that size's test-set term")
    print(f"  {'comparison':<40} {'K':>6} {'test var/seed':>13} {'seed SD':>8} {'95% half':>8} "
          f"{'expected SD':>11} {'seeds@δ':>7} {'h/seed':>6} {'h to decide':>11}")
    seeds = sorted({int(r["seed"]) for r in rows})
    found: dict = {}
    for size in sizes:
        subset = []
        for row in rows:
            y_true, _ = pairing.decoded(row)
            if size >= len(y_true):
                positions, name = np.arange(len(y_true)), row["test_set"]
            else:
                positions = stratified_subset(y_true, size, int(row["seed"]))
                name = f"{row['test_set']}:{size}:{row['seed']}"
            scaled = dict(row)
            # The evaluation's test pass scales with the images; the rest stays.
            fixed = float(row["evaluation_s"]) - float(row["test_time_s"])
            scaled["evaluation_s"] = fixed + float(row["test_time_s"]) * len(positions) / len(
                y_true)
            subset.append(_subset(scaled, positions, name))
        for r in compare(subset, delta):
            if r.measure == "accuracy" and r.n:
                found[r.comparison.name, size] = (r, float(np.std(_diffs(subset, r), ddof=1)),
                                                  _mean_within(subset, r))
    largest = max(sizes)
    for (name, size), (r, spread, within) in sorted(found.items()):
        _, whole_spread, whole_within = found[name, largest]
        training = max(whole_spread ** 2 - whole_within, 0.0)  # what no test set removes
        expected = math.sqrt(training + within)
        alpha = ALPHA / max(r.family_size, 1)
        needed = seeds_needed(delta / expected, alpha)
        per_seed = r.seed_cost_s / 3600
        print(f"  {name[:40]:<40} {size:>6} {within:>13.2e} {spread:>8.4f} "
              f"{(r.ci95_high - r.ci95_low) / 2:>8.4f} {expected:>11.4f} {needed:>7.0f} "
              f"{per_seed:>6.3f} {needed * per_seed:>11.1f}")
    print(f"  ({len(seeds)} seeds; seeds@δ: 80% power at δ = {delta} at Holm's strictest level, "
          "from the expected SD; h: measured train + evaluation hours of one seed of both arms, "
          "each case run beside another on 2 cores)")


def _pairs(rows, result):
    from resnet_harness.analysis.comparisons import usable_rows

    table = usable_rows(rows)
    for seed in result.seeds:
        yield table[result.comparison.baseline, seed], table[result.comparison.treatment, seed]


def _diffs(rows, result):
    from resnet_harness.analysis.comparisons import value

    return [value(b, result.measure, a) - value(a, result.measure, b)
            for a, b in _pairs(rows, result)]


def _mean_within(rows, result):
    from resnet_harness.analysis import pairing

    values = []
    for a, b in _pairs(rows, result):
        draws = pairing.replicates(result.measure, [(a, b, -1), (b, a, 1)])
        values.append(pairing.finite_variance(draws))
    return float(np.nanmean(values))


def pairing_gain(rows, delta: float) -> None:
    from resnet_harness.analysis import pairing
    from resnet_harness.analysis.comparisons import compare

    print("\n3. pairing: paired test-set variance of a difference / the two runs' variances "
          "summed (mean over seeds)")
    for r in _scores(compare(rows, delta), ("accuracy", "balanced_accuracy", "f1_macro",
                                            "reduced_recall")):
        ratios = []
        for a, b in _pairs(rows, r):
            paired = pairing.replicates(r.measure, [(a, b, -1), (b, a, 1)])
            alone = [pairing.replicates(r.measure, [(x, y, 1)]) for x, y in ((a, b), (b, a))]
            total = sum(pairing.finite_variance(v) for v in alone)
            ratios.append(pairing.finite_variance(paired) / total)
        print(f"  {r.comparison.name[:40]:<40} {r.measure:<18} {np.mean(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f})")


def common_numbers(rows, without, delta: float) -> None:
    from resnet_harness.analysis.comparisons import compare, usable_rows, value

    print("\n4. common random numbers: SD of the per-seed accuracy difference")
    table, other = usable_rows(rows), usable_rows(without)
    for r in _scores(compare(rows, delta), ("accuracy",)):
        comp = r.comparison
        seeds = [s for s in r.seeds if (comp.treatment, s) in other]
        if len(seeds) < 2:
            continue
        common = [value(table[comp.treatment, s], "accuracy") -
                  value(table[comp.baseline, s], "accuracy") for s in seeds]
        apart = [value(other[comp.treatment, s], "accuracy") -
                 value(table[comp.baseline, s], "accuracy") for s in seeds]
        n = len(seeds)
        sd_c, sd_a = np.std(common, ddof=1), np.std(apart, ddof=1)
        ratio = (sd_c / sd_a) ** 2
        low, high = (ratio / sps.f.ppf(0.975, n - 1, n - 1), ratio / sps.f.ppf(0.025, n - 1, n - 1))
        print(f"  {comp.name[:40]:<40} {n} seeds: common order {sd_c:.4f}, own shuffle "
              f"{sd_a:.4f}; variance ratio {ratio:.2f} [95%: {low:.2f}, {high:.2f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--without", help="rows of the same cases under --batch-order shuffle")
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--delta", type=float, default=0.01)
    args = parser.parse_args()
    from resnet_harness import study

    study.load_builtin()
    rows = [r for r in load(args.results) if r.get("status") in ("passed", "failed")]
    per_look(rows, args.delta)
    test_size(rows, args.delta, [int(s) for s in args.sizes.split(",")])
    pairing_gain(rows, args.delta)
    if args.without:
        common_numbers(rows, [r for r in load(args.without)
                              if r.get("status") in ("passed", "failed")], args.delta)


if __name__ == "__main__":
    main()
