"""What is reproducible by default, and what needs ``--deterministic``: the same command run in
several fresh processes, with and without the flag, and the figures each run gave.

    python bench/reproducibility.py --runs 3
    python bench/reproducibility.py --runs 3 -k "table5 and cifar10" -- --backbone resnet50

Each run is ``pytest experiments -k K --scale smoke --data-source synthetic --seed 0`` (plus what
follows ``--``) in a fresh subprocess, its own report folder. For each selected case it prints
the distinct accuracy / macro-F1 / training-loss values over the runs, per setting: one value
means bit-identical across processes. The default selection is Table 7's CIFAR-10 arms: the
imbalanced one trains on augmented batches, the balanced one does not.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_K = "table7 and cifar10"
FIGURES = ("accuracy", "f1_macro", "train_loss")


def run_once(k: str, deterministic: bool, extra: list[str], out: Path) -> tuple[float, dict]:
    import pandas as pd

    command = [sys.executable, "-m", "pytest", "experiments", "-q", "-p", "no:cacheprovider",
               "-k", k, "--scale", "smoke", "--data-source", "synthetic", "--seed", "0",
               "--report-dir", str(out), *extra]
    if deterministic:
        command.append("--deterministic")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONHASHSEED="0"))
    wall = time.perf_counter() - start
    csv = out / "latest" / "results.csv"
    if not csv.is_file():
        sys.exit(f"no results.csv from {' '.join(command)}:\n{done.stdout[-2000:]}")
    frame = pd.read_csv(csv).set_index("case_id")
    return wall, {case: tuple(frame.loc[case, f] for f in FIGURES) for case in frame.index}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("-k", default=DEFAULT_K)
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"] or ["--backbone", "tiny"]
    print(f"{args.runs} fresh processes per setting; -k {args.k!r} {' '.join(extra)}")
    with tempfile.TemporaryDirectory() as tmp:
        for deterministic in (False, True):
            results, walls = [], []
            for index in range(args.runs):
                wall, figures = run_once(args.k, deterministic, extra,
                                         Path(tmp) / f"{deterministic}-{index}")
                results.append(figures)
                walls.append(wall)
            name = "--deterministic" if deterministic else "default"
            print(f"\n{name}: wall {min(walls):.1f}-{max(walls):.1f} s per process")
            for case in sorted(results[0]):
                values = [r[case] for r in results]
                distinct = sorted(set(values))
                verdict = "bit-identical" if len(distinct) == 1 else \
                    f"{len(distinct)} different results"
                print(f"  {case}: {verdict}")
                for figure, column in zip(FIGURES, zip(*distinct)):
                    print(f"    {figure}: {', '.join(f'{v:.6g}' for v in column)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
