"""The GPU checks, as one short script for a lent GPU machine (a few minutes of device time).

Not a test. It runs the harness end to end (``pytest experiments ...`` in fresh subprocesses) and
prints one JSON line per check, also written to ``OUT/gpu_check.jsonl``:

``throughput``  the paper-scale CIFAR-10 balanced case (ResNet50, batch 32, 32x32x3, augmented)
                for ``--train`` images and one epoch, once per setting: float32, ``--xla on``,
                ``--mixed-precision on``, both. Reports steady training images/s (first step
                excluded), the first step (tracing, XLA compilation), test images/s and TF's peak
                GPU memory. Ratios are against float32 from the same run. The rows fail the
                paper-scale accuracy floors (one epoch, random init): only the speed counts.
``workers``     ``pytest -n 2`` on two cases, then which GPU each worker was pinned to, read
                from the rows' ``device`` field (``CUDA_VISIBLE_DEVICES`` as the worker saw it).

The lent machines reach no network, so the data is the harness's synthetic stand-in
(``--data-source synthetic``, same shapes and dtype as CIFAR-10; images/s does not depend on
pixel values) and the weights are random (``--weights none``).

    python bench/gpu_check.py --out "$OUT"                        # on the device, ~5 min
    python bench/gpu_check.py --train 64 --backbone tiny --out /tmp/g   # wiring check on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASE = "table7-cifar10-balanced-split_orig-reg_none"
SETTINGS = {"float32": ("off", "off"), "xla": ("on", "off"), "mixed": ("off", "on"),
            "xla+mixed": ("on", "on")}


def _pytest(args: list[str], report_dir: Path, timeout_s: float) -> tuple[int, float, str]:
    cmd = [sys.executable, "-m", "pytest", "experiments", "-p", "no:cacheprovider", "-q",
           "--report-dir", str(report_dir), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                          check=False)
    return proc.returncode, time.perf_counter() - t0, (proc.stdout + proc.stderr)[-2000:]


def _rows(report_dir: Path) -> list[dict]:
    from resnet_harness.storage.rundir import RunFolder

    return [row for folder in RunFolder.runs(report_dir) for row in folder.rows()]


def throughput(args) -> list[dict]:
    """One fresh process per setting; ratios against float32 of the same run."""
    out = []
    for name, (xla, mixed) in SETTINGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            code, wall, tail = _pytest(
                ["-k", CASE, "--scale", "paper", "--weights", "none", "--data-source",
                 "synthetic", "--epochs", "1", "--max-train-samples", str(args.train),
                 "--max-test-samples", str(args.test), "--backbone", args.backbone,
                 "--xla", xla, "--mixed-precision", mixed],
                Path(tmp), args.timeout)
            rows = _rows(Path(tmp))
        row = rows[0] if rows else {}
        result = {"check": "throughput", "setting": name, "exit": code, "wall_s": round(wall, 1),
                  **{k: row.get(k) for k in ("status", "error", "train_images_per_s",
                                             "first_step_s", "train_time_s",
                                             "test_images_per_s", "peak_gpu_mb", "peak_rss_mb",
                                             "train_samples")},
                  "device": (row.get("provenance") or {}).get("device")}
        if not rows:
            result["log_tail"] = tail
        out.append(result)
        _emit(args, result)
    base = out[0].get("train_images_per_s")
    for result in out[1:]:
        if base and result.get("train_images_per_s"):
            result["train_ips_ratio_vs_float32"] = round(result["train_images_per_s"] / base, 3)
            _emit(args, {"check": "ratio", "setting": result["setting"],
                         "train_ips_ratio_vs_float32": result["train_ips_ratio_vs_float32"]})
    return out


def workers(args) -> dict:
    """``-n 2`` on two cases: each row names the GPU its worker was pinned to."""
    with tempfile.TemporaryDirectory() as tmp:
        code, wall, tail = _pytest(
            ["-n", "2", "-m", "table7 and cifar10", "--scale", "smoke", "--data-source",
             "synthetic", "--backbone", args.backbone], Path(tmp), args.timeout)
        rows = _rows(Path(tmp))
    result = {"check": "workers", "exit": code, "wall_s": round(wall, 1),
              "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
              "rows": [{"case": r["case_id"], "status": r.get("status"),
                        "worker": (r.get("provenance") or {}).get("worker"),
                        "device": (r.get("provenance") or {}).get("device")} for r in rows]}
    if len(rows) != 2:
        result["log_tail"] = tail
    _emit(args, result)
    return result


def _emit(args, record: dict) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    with open(Path(args.out) / "gpu_check.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder for gpu_check.jsonl (default .)")
    parser.add_argument("--train", type=int, default=6400,
                        help="training images of the throughput runs (default 6400: 200 steps)")
    parser.add_argument("--test", type=int, default=3200, help="test images (default 3200)")
    parser.add_argument("--backbone", default="resnet50", choices=("resnet50", "tiny"))
    parser.add_argument("--checks", default="throughput,workers",
                        help="comma-separated: throughput, workers")
    parser.add_argument("--timeout", type=float, default=240, help="seconds per subprocess")
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    _emit(args, {"check": "machine", "nvidia_smi": _nvidia_smi(), "python": sys.version.split()[0],
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    checks = {c.strip() for c in args.checks.split(",") if c.strip()}
    if "throughput" in checks:
        throughput(args)
    if "workers" in checks:
        workers(args)
    return 0


def _nvidia_smi() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20,
                              check=False).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
