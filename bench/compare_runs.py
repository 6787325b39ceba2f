"""Compare two run folders row by row: metrics, intervals, counts, config and predictions, bit for bit.

Usage: python bench/compare_runs.py RUN_A RUN_B  (exit status 1 when any row differs)

Configs are compared as the identity reads them (``storage.identity.comparable_config``: a
setting renamed since under its new name, a setting now recorded only by the studies that have
it dropped where it held its "says nothing" value); where the stored configs differ only so,
the row counts as identical and the renamed or dropped keys are listed.
"""
import json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from resnet_harness.storage.identity import comparable_config
a, b = Path(sys.argv[1]), Path(sys.argv[2])
keys = ("metrics", "metrics_as_trained", "intervals", "train_counts", "test_counts",
        "counts_before_imbalance", "reduced_classes", "train_loss", "train_accuracy",
        "train_inference_accuracy", "head_accuracy", "middle_accuracy", "tail_accuracy", "status", "config", "data_fingerprint")
ra = sorted((a / "cases").glob("*.json")); rb = sorted((b / "cases").glob("*.json"))
assert [p.name for p in ra] == [p.name for p in rb], ([p.name for p in ra], [p.name for p in rb])
same = 0
for pa, pb in zip(ra, rb):
    x, y = json.loads(pa.read_text()), json.loads(pb.read_text())
    for k in keys:
        if k == "config" and x.get(k) != y.get(k) and \
                comparable_config(x.get(k)) == comparable_config(y.get(k)):
            only = sorted(set(x[k]) ^ set(y[k]))
            print(f"config of {pa.stem}: equal as the identity reads it; stored keys "
                  f"differ: {only}")
            continue
        if x.get(k) != y.get(k):
            print("DIFF", pa.stem, k, str(x.get(k))[:200], "|", str(y.get(k))[:200])
            break
    else:
        na, nb = np.load(a / "cases" / f"{pa.stem}.npz"), np.load(b / "cases" / f"{pb.stem}.npz")
        assert set(na.files) == set(nb.files)
        assert all(np.array_equal(na[f], nb[f]) for f in na.files), pa.stem
        same += 1
        print(f"identical: {pa.stem} accuracy={x['metrics']['accuracy']!r} auc={x['metrics']['roc_auc_ovr_macro']!r}")
print(f"{same}/{len(ra)} rows identical (metrics, intervals, counts, config, predictions)")
sys.exit(0 if same == len(ra) else 1)
