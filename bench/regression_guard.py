"""Prove the nightly regression guard both ways: clean re-runs pass against a baseline, and a
deliberately injected regression fails it.

    python bench/regression_guard.py --baseline baselines/reduced.csv -k "table7" \\
        --reruns 3 --inject labels:0.2 -- --data-dir cifar10=/data/cifar10-jpeg

Each run is ``pytest experiments --scale reduced --baseline B <tolerances> -k K`` in a fresh
subprocess (the nightly's command); the injected one also loads ``bench/inject_regression.py``.
It prints one line per run (exit status, regressions found) and a verdict, and exits 0 only when
every clean run passed and the injected run failed on a baseline regression.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The nightly's tolerances (.github/workflows/nightly.yml); keep them in step.
NIGHTLY_TOLERANCES = ("scores=0.03", "train_time_s=2", "test_time_s=2", "peak_rss_mb=1")


def run(args, extra: list[str], report_dir: Path, inject: str | None) -> tuple[int, list[str]]:
    env = dict(os.environ)
    command = [sys.executable, "-m", "pytest", "experiments", "--scale", "reduced", "-q",
               "-p", "no:cacheprovider", "--baseline", args.baseline, "-k", args.k,
               "--report-dir", str(report_dir)]
    command += [f"--tolerance={t}" for t in args.tolerance or NIGHTLY_TOLERANCES]
    if inject:
        env["HARNESS_INJECT"] = inject
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "bench"),
                                                           env.get("PYTHONPATH")]))
        command += ["-p", "inject_regression"]
    out = subprocess.run(command + extra, cwd=ROOT, env=env, capture_output=True, text=True)
    found = [line.strip() for line in out.stdout.splitlines()
             if "regression against baseline" in line]
    return out.returncode, found


def largest_differences(baseline: str, report_dir: Path) -> str:
    """Per score, the largest |run - baseline| over the run's cases (the same-seed spread)."""
    import pandas as pd

    from resnet_harness.analysis.baseline import baseline_key, load_baseline
    from spread import SCORES  # bench/spread.py: the headline scores

    base = load_baseline(baseline)
    from resnet_harness.storage.rundir import RunFolder

    runs = [f.csv_path for f in RunFolder.runs(report_dir) if f.csv_path.is_file()]
    if not runs:
        return "no results.csv"
    frame = pd.read_csv(runs[-1])
    worst = {}
    for line in frame.to_dict("records"):
        ref = base.get(baseline_key(line["case_id"], line["scale"], line.get("seed")))
        if ref is None:
            continue
        for name in SCORES:
            worst[name] = max(worst.get(name, 0.0), abs(float(line[name]) - float(ref[name])))
    return ", ".join(f"{name} {value:.4f}" for name, value in worst.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="results.csv or run folder")
    parser.add_argument("-k", default="table7", help="pytest -k selection of cases")
    parser.add_argument("--reruns", type=int, default=3, help="clean runs that must pass")
    parser.add_argument("--inject", default="labels:0.2", help="labels:F or lr:K")
    parser.add_argument("--tolerance", action="append", help="override the nightly's")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "guard"))
    args, extra = parser.parse_known_args(argv)
    extra = [e for e in extra if e != "--"]
    out = Path(args.out)
    ok = True
    for i in range(args.reruns):
        t0 = time.time()
        code, found = run(args, extra, out / f"clean{i}", None)
        print(f"clean run {i + 1}: exit {code}, {len(found)} regression lines "
              f"({time.time() - t0:.0f} s); largest |run - baseline|: "
              f"{largest_differences(args.baseline, out / f'clean{i}')}", flush=True)
        for line in found:
            print("   ", line[:200])
        ok &= code == 0
    t0 = time.time()
    code, found = run(args, extra, out / "injected", args.inject)
    print(f"injected ({args.inject}): exit {code}, {len(found)} regression lines "
          f"({time.time() - t0:.0f} s); largest |run - baseline|: "
          f"{largest_differences(args.baseline, out / 'injected')}", flush=True)
    for line in found:
        print("   ", line[:200])
    ok &= code == 1 and bool(found)
    print("guard works both ways" if ok else "guard FAILED: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
