"""What it costs to trust a stored figure: the checks every reader of rows runs, timed.

    python bench/row_checks.py [--test 10000] [--rows 1100]

Per row at ``--test`` test images: ``schema.validate_row`` with and without ``test_outcomes``
(decode, class counts, accuracy / balanced accuracy / macro F1 recomputed), and the predictions
file's check against its row (``rundir.predictions_problem``: read the ``.npz``, counts, digest).
Then ``table.read_results`` on a ``--rows``-row results.csv with and without the outcomes column.
All in one process, one after another, so the ratios compare on a shared machine. Changes
nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--rows", type=int, default=1100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import pandas as pd

    from resnet_harness.analysis import table
    from resnet_harness.storage import outcomes, schema
    from resnet_harness.storage.rundir import RunFolder, predictions_problem
    from resnet_harness.training.metrics import compute_metrics
    from test_schema import passed_row

    rng = np.random.default_rng(0)
    y_true = np.repeat(np.arange(10), args.test // 10)
    proba = rng.dirichlet(np.ones(10), size=len(y_true)).astype(np.float32)
    arrays = {"y_true": y_true, "proba": proba, "y_pred": proba.argmax(axis=1)}
    counts = np.bincount(y_true, minlength=10).tolist()
    row = passed_row(metrics=compute_metrics(y_true, proba, 10), test_counts=counts,
                     test_samples=len(y_true))
    bare = dict(row)
    with_outcomes = dict(row, test_outcomes=outcomes.encode(y_true, arrays["y_pred"]))

    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder(Path(tmp) / "run").create({})
        folder.write_row(row, arrays)
        stored = folder.row(row["case_id"])
        npz = folder.path / stored["predictions_file"]
        per_row = {
            "validate_row, no outcomes": _best(lambda: schema.validate_row(bare), args.repeats),
            "validate_row with outcomes": _best(lambda: schema.validate_row(with_outcomes),
                                                args.repeats),
            "predictions file vs row": _best(lambda: predictions_problem(npz, stored),
                                             args.repeats),
        }
        print(f"per row, {len(y_true)} test images ({npz.stat().st_size / 1e3:.0f} KB .npz):")
        for name, seconds in per_row.items():
            print(f"  {name:28s} {seconds * 1e3:8.2f} ms")

        line = table.flatten_row(stored)
        frame = pd.DataFrame([dict(line, seed=i, case_id=f"{row['case_id']}-seed{i}")
                              for i in range(args.rows)])
        full, slim = Path(tmp) / "full.csv", Path(tmp) / "slim.csv"
        frame.to_csv(full, index=False)
        frame.drop(columns="test_outcomes").to_csv(slim, index=False)
        read = {"read_results, no outcomes": _best(lambda: table.read_results(slim), 2),
                "read_results with outcomes": _best(lambda: table.read_results(full), 2)}
        print(f"results.csv of {args.rows} rows ({full.stat().st_size / 1e6:.1f} MB with "
              f"outcomes, {slim.stat().st_size / 1e6:.1f} MB without):")
        for name, seconds in read.items():
            print(f"  {name:28s} {seconds:8.2f} s")


if __name__ == "__main__":
    main()
