"""How much a reduced-scale figure moves between runs, and the floors and tolerances sized from it.

    python bench/spread.py RUN_DIR [RUN_DIR ...]          # run folders or results.csv files

Reads the result rows of the given runs and prints, per data set and score:

- **across seeds**: each case's mean and sample standard deviation over its seeds, and the pooled
  within-case standard deviation (root mean of the per-case variances);
- **re-runs of one seed**: where the same case and seed ran in more than one run folder, the
  largest absolute difference between two of its runs and the pooled standard deviation;
- the **reduced-scale floors** that follow: the lowest case mean minus ``--k`` (default 3) pooled
  seed standard deviations, rounded down to 0.01, with how far the lowest single run sits above
  it. The floors in ``matrix.REDUCED_FLOORS`` were set with this script;
- the **nightly tolerance** that follows: ``--k`` standard deviations of the difference of two
  runs (sqrt(2) x the pooled re-run standard deviation), rounded up to 0.01.

It changes nothing; paste its output into ``baselines/README.md`` when refreshing either.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

SCORES = ("accuracy", "f1_macro", "roc_auc_ovr_macro")


def _frame(path: Path) -> pd.DataFrame:
    from resnet_harness.storage.rundir import RunFolder

    frame = pd.read_csv(RunFolder.results_csv(path))
    frame = frame[frame["status"].isin(["passed", "failed"])].copy()
    frame["run"] = str(path)
    frame["case"] = frame["case_id"].str.replace(r"-seed\d+$", "", regex=True)
    return frame


def _pooled(variances: list[float]) -> float:
    variances = [v for v in variances if not math.isnan(v)]
    return math.sqrt(sum(variances) / len(variances)) if variances else math.nan


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--k", type=float, default=3.0, help="standard deviations of margin")
    args = parser.parse_args(argv)
    frame = pd.concat([_frame(p) for p in args.runs], ignore_index=True)
    print(f"{len(frame)} rows from {len(args.runs)} run(s); k = {args.k:g}\n")
    for dataset, part in frame.groupby("dataset"):
        print(f"== {dataset}: {part['case'].nunique()} cases, seeds "
              f"{sorted(part['seed'].unique().tolist())}")
        for score in SCORES:
            # Across seeds: one value per (case, seed); re-runs of a seed are averaged first.
            per_seed = part.groupby(["case", "seed"])[score].mean().reset_index()
            stats = per_seed.groupby("case")[score].agg(["mean", "std", "count", "min"])
            seed_sd = _pooled([s ** 2 for s in stats["std"] if not math.isnan(s)])
            reruns = part.groupby(["case", "seed"])[score].agg(["var", "count", "min", "max"])
            reruns = reruns[reruns["count"] > 1]
            rerun_sd = _pooled(reruns["var"].tolist())
            worst = stats["mean"].idxmin()
            floor = math.floor(100 * (stats["mean"].min() - args.k * seed_sd)) / 100
            print(f"  {score}: case means {stats['mean'].min():.3f}-{stats['mean'].max():.3f} "
                  f"(lowest {worst}); pooled seed sd {seed_sd:.4f}; lowest single run "
                  f"{per_seed[score].min():.3f}")
            if not math.isnan(floor):
                print(f"    floor = {stats['mean'].min():.3f} - {args.k:g} x {seed_sd:.4f} "
                      f"-> {floor:.2f} (lowest run {per_seed[score].min() - floor:+.3f} above)")
            if len(reruns):
                spread = (reruns["max"] - reruns["min"]).max()
                tolerance = math.ceil(100 * args.k * math.sqrt(2) * rerun_sd) / 100
                print(f"    re-runs of one seed: {len(reruns)} case-seeds, largest difference "
                      f"{spread:.3f}, pooled sd {rerun_sd:.4f} -> tolerance {tolerance:.2f}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
