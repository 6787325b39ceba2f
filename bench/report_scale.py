"""How ``report.html`` scales with the number of rows (issue #22): build time, size per row and,
where a headless Chromium is installed, the time the page takes to open, for 10, 100 and 1,000
rows. Nothing trains: rows and predictions files are synthesised into a temporary run folder the
way the tests write them (``RunFolder.write_row``), then the report is built by
:func:`resnet_harness.report.build_report`, the function the plugin's controller calls.

Rows are ``--cases`` paper cases times as many seeds as make up each size (10 cases: 1, 10 and
100 seeds), each with a per-epoch ``history`` (loss, accuracy and their validation figures) of
``--epochs`` epochs. Run: ``python bench/report_scale.py`` (``--sizes 10,100,1000``,
``--cases 10``, ``--epochs 20``, ``--test 160``, ``--keep DIR`` to keep the reports).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from resnet_harness.report import build_report, curves  # noqa: E402
from resnet_harness.storage.rundir import RunFolder  # noqa: E402
from resnet_harness.studies.paper import CASES  # noqa: E402
from resnet_harness.training.metrics import compute_metrics  # noqa: E402

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome",
            "google-chrome-stable")
RUN_INFO = {"command_line": "bench/report_scale.py", "scale": "reduced", "seed": 0,
            "started_at": "2026-11-27T00:00:00+00:00", "device": "CPU", "git_commit": "bench"}


def history(rng: np.random.Generator, epochs: int) -> dict[str, list[float]]:
    """A plausible learning curve: loss falling and accuracy rising with noise, the validation
    figures trailing them."""
    t = np.arange(1, epochs + 1)
    rate = rng.uniform(0.08, 0.3)
    loss = 2.3 * np.exp(-rate * t) + 0.3 + rng.normal(0, 0.03, epochs)
    val_loss = loss + 0.15 + rng.normal(0, 0.05, epochs)
    accuracy = np.clip(1 - loss / 2.6, 0, 1)
    val_accuracy = np.clip(accuracy - 0.06 + rng.normal(0, 0.02, epochs), 0, 1)
    return {"accuracy": accuracy.tolist(), "loss": loss.tolist(),
            "val_accuracy": val_accuracy.tolist(), "val_loss": val_loss.tolist(),
            "epoch_seconds": rng.uniform(40, 60, epochs).tolist()}


def seeded_row(case, seed: int, epochs: int, test: int) -> tuple[dict, dict]:
    """A passed row of ``case`` with seed ``seed`` (id ``<case>-seed<seed>``), its metrics
    computed from random class-leaning predictions on ``test`` images, and those predictions."""
    rng = np.random.default_rng(seed * 1000 + CASES.index(case))
    y_true = np.repeat(np.arange(10), test // 10)
    proba = rng.dirichlet(np.ones(10), size=len(y_true))
    proba[np.arange(len(y_true)), y_true] += rng.uniform(0, 0.6, size=len(y_true))
    proba /= proba.sum(axis=1, keepdims=True)
    reduced = [0, 1, 2] if case.imbalanced else []
    row = {
        "case_id": f"{case.id}-seed{seed}", "table": case.table, "dataset": case.dataset,
        "balance": case.balance, "split": case.split, "regularization": case.regularization,
        "scale": "reduced", "seed": seed, "status": "passed", "error": None,
        "metrics": compute_metrics(y_true, proba, 10),
        "train_time_s": 900.0 + seed, "test_time_s": 12.5, "peak_rss_mb": 2100.5,
        "steady_train_time_s": 880.0 + seed, "rss_added_mb": 300.25, "peak_gpu_mb": None,
        "train_counts": [290 if k in reduced else 320 for k in range(10)],
        "test_counts": [test // 10] * 10, "counts_before_imbalance": [320] * 10,
        "reduced_classes": reduced, "class_names": [f"class{k}" for k in range(10)],
        "config": {"epochs": epochs, "weights": "none", "batch_size": 32, "augment": True,
                   "head": {"dense_units": None, "dropout": case.head.dropout}},
        "paper": dict(case.paper.as_dict(), source=case.paper.source),
        "bounds": {"violations": []}, "history": history(rng, epochs),
        "provenance": {"device": "CPU", "git_commit": "bench", "worker": "gw0",
                       "finished_at": "2026-11-27T01:00:00+00:00"},
    }
    return row, {"y_true": y_true, "proba": proba, "y_pred": proba.argmax(axis=1)}


def write_run(path: Path, rows: int, cases: int, epochs: int, test: int) -> RunFolder:
    folder = RunFolder(path).create(dict(RUN_INFO))
    seeds = max(1, math.ceil(rows / cases))
    picked = [(case, seed) for seed in range(1, seeds + 1) for case in CASES[:cases]][:rows]
    for case, seed in picked:
        folder.write_row(*seeded_row(case, seed, epochs, test))
    return folder


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def open_seconds(browser: str, page: Path, repeats: int = 3) -> float:
    """Median wall time for a headless browser to load ``page``, lay it out and paint one
    screenshot, less the same for an empty page (the browser's own start-up)."""
    def once(target: Path) -> float:
        with tempfile.TemporaryDirectory() as profile:
            start = time.perf_counter()
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                            f"--user-data-dir={profile}", "--window-size=1280,900",
                            f"--screenshot={profile}/shot.png", target.resolve().as_uri()],
                           check=True, capture_output=True, timeout=300)
            return time.perf_counter() - start

    blank = page.with_name("blank.html")
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    base = statistics.median(once(blank) for _ in range(repeats))
    return max(0.0, statistics.median(once(page) for _ in range(repeats)) - base)


def curve_formats(epochs: int, seeds: int) -> str:
    """One case's learning curves as the report draws them (inline SVG) against the same two
    panels' lines drawn by matplotlib (without the seeds' band, which only adds to the PNG) as
    a base64 PNG at 60 and 80 dpi: bytes and milliseconds."""
    import base64
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(0)
    histories = [history(rng, epochs) for _ in range(seeds)]
    start = time.perf_counter()
    svg = curves.case_svg(histories)
    found = [f"SVG {len(svg) / 1e3:.1f} KB in {1e3 * (time.perf_counter() - start):.1f} ms"]
    for dpi in (60, 80):
        start = time.perf_counter()
        fig = Figure(figsize=(4.75, 1.5), layout="constrained")
        FigureCanvasAgg(fig)
        for index, name in enumerate(("loss", "accuracy")):
            ax = fig.add_subplot(1, 2, index + 1)
            for key, style in ((name, "-"), (f"val_{name}", "--")):
                stats = curves.mean_curve(histories)[key] if seeds > 1 else histories[0][key]
                ax.plot(range(1, epochs + 1), stats, style, color=curves.color(0), linewidth=1)
            ax.set_title(name, fontsize=7)
            ax.tick_params(labelsize=6)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
        size = len(base64.b64encode(buffer.getvalue()))
        found.append(f"PNG at {dpi} dpi {size / 1e3:.1f} KB as base64 in "
                     f"{1e3 * (time.perf_counter() - start):.0f} ms")
    return f"one case's curves ({epochs} epochs, {seeds} seeds): " + ", ".join(found)


def measure(size: int, args: argparse.Namespace, browser: str | None, keep: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = write_run(Path(tmp) / "run", size, args.cases, args.epochs, args.test)
        out = Path(tmp) / "out"
        start = time.perf_counter()
        paths = build_report([run.path], out)
        build = time.perf_counter() - start
        page = paths["html"]
        text = page.read_text(encoding="utf-8")
        found = {"rows": size, "cases": min(size, args.cases), "bytes": page.stat().st_size,
                 "bytes_per_row": page.stat().st_size / size, "build_s": build,
                 "build_ms_per_row": 1000 * build / size, "images": text.count("<img"),
                 "svgs": text.count("<svg"), "heat_maps": text.count('<table class="cm"')}
        if browser:
            found["open_s"] = open_seconds(browser, page)
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(page, keep / f"report-{size}.html")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="row counts, comma-separated")
    parser.add_argument("--cases", type=int, default=10, help="distinct cases (seeds fill up)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each row's history")
    parser.add_argument("--test", type=int, default=160, help="test images per row (of 10)")
    parser.add_argument("--keep", type=Path, help="copy each report.html into this folder")
    parser.add_argument("--json", type=Path, help="append the figures as JSON lines here")
    args = parser.parse_args(argv)
    for seeds in (1, 100):
        print(curve_formats(args.epochs, seeds))
    browser = find_browser()
    if browser is None:
        print("no headless browser found (" + ", ".join(BROWSERS) + "): open time not measured")
    print(f"{'rows':>6} {'cases':>5} {'MB':>7} {'KB/row':>7} {'build s':>8} {'ms/row':>7} "
          f"{'open s':>7} {'img':>5} {'svg':>5} {'cm':>5}")
    for size in (int(s) for s in args.sizes.split(",")):
        found = measure(size, args, browser, args.keep)
        opened = f"{found['open_s']:7.2f}" if "open_s" in found else f"{'—':>7}"
        print(f"{size:>6} {found['cases']:>5} {found['bytes'] / 1e6:7.2f} "
              f"{found['bytes_per_row'] / 1e3:7.1f} {found['build_s']:8.2f} "
              f"{found['build_ms_per_row']:7.1f} {opened} {found['images']:>5} "
              f"{found['svgs']:>5} {found['heat_maps']:>5}", flush=True)
        if args.json:
            with args.json.open("a") as handle:
                handle.write(json.dumps(found) + "\n")


if __name__ == "__main__":
    main()
