"""Operating characteristics of ``--seeds auto[:MAX]``: error rate, power and seeds used.

    python bench/sequential_design.py [--max-seeds 12] [--sims 40000]

Simulates studies whose per-seed paired differences are N(effect, 1) (effect in standard
deviations of one seed's difference) and runs the harness's own sequential analysis on them
(``analysis.sequential.simulate``: the calibrated Lan-DeMets O'Brien-Fleming boundary for t
statistics, Holm within a family). Prints, per effect: the family-wise rate of a better/worse
verdict under no difference (1 and 3 comparisons), the power, the mean seeds run, and the seeds
a fixed design needs for the same power. Also the union-bound design it replaced (each look at
its spent increment alone), on the same simulated differences. Changes nothing.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import stats as sps


def union_bound(design, effect: float, sims: int, seed: int) -> tuple[float, float]:
    """Power and mean seeds of the replaced design (one comparison)."""
    rng = np.random.default_rng(seed)
    diffs = rng.normal(effect, 1.0, (sims, design.max_seeds))
    decided = np.zeros(sims, dtype=bool)
    stop = np.full(sims, design.max_seeds)
    for look in design.looks:
        x = diffs[:, :look]
        t = x.mean(-1) / (x.std(-1, ddof=1) / math.sqrt(look))
        now = (2 * sps.t.sf(np.abs(t), look - 1) <= design.alpha_at(look)) & ~decided
        stop[now] = look
        decided |= now
    return float(decided.mean()), float(stop.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-seeds", type=int, default=12)
    parser.add_argument("--sims", type=int, default=40_000)
    args = parser.parse_args()

    from resnet_harness.analysis.sequential import Design, boundary, simulate

    design = Design(args.max_seeds)
    levels = boundary(design.looks, design.max_seeds, design.alpha)
    print(f"design auto:{design.max_seeds}, looks {design.looks}, alpha {design.alpha}")
    print("nominal level per look: "
          + ", ".join(f"{n}: {lv:.5f}" for n, lv in zip(design.looks, levels))
          + "  (union bound: " + ", ".join(f"{design.alpha_at(n):.5f}" for n in design.looks)
          + ")")
    for family in (1, 3):
        null = simulate(design, 0.0, family=family, sims=args.sims, seed=family)
        print(f"no difference, {family} comparison(s): family-wise error "
              f"{null['any_rejected']:.4f} (+-{2 * math.sqrt(0.05 * 0.95 / args.sims):.4f})")
    print(f"{'effect (SD)':>11} {'power':>6} {'mean seeds':>10} {'fixed, same power':>17} "
          f"{'union-bound power':>17} {'its mean seeds':>14}")
    for effect in (0.75, 1.0, 1.5):
        found = simulate(design, effect, sims=args.sims, seed=7)
        old_power, old_seeds = union_bound(design, effect, args.sims, 7)
        print(f"{effect:>11} {found['power']:>6.3f} {found['mean_seeds']:>10.2f} "
              f"{found['fixed_seeds_same_power']:>17} {old_power:>17.3f} {old_seeds:>14.2f}")


if __name__ == "__main__":
    main()
