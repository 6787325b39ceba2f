"""Every figure of the report, each returned as PNG bytes (embedded later as a data URI).

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas directly, not
through ``pyplot``: that touches no global backend or figure registry, so it works headless, from
pytest workers and next to whatever backend the caller chose, and nothing needs ``plt.close``.
"""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 80  # small images: 21 cases x 2 figures must keep the HTML at a few MB
MEASURED, PAPER, REDUCED = "#2f6db5", "#9a9a9a", "#e07b20"
DATASET_COLORS = {"cifar10": "#2f6db5", "fashion_mnist": "#c0392b"}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # No "Software" text chunk: it names a URL, and the report must hold no external address.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()  # drop artists now rather than at garbage collection
    return buffer.getvalue()


def _short(names: Sequence[str], width: int = 9) -> list[str]:
    return [n if len(n) <= width else n[: width - 1] + "…" for n in names]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def confusion_png(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                  title: str = "") -> bytes:
    """Confusion-matrix heat map: colour is the share of the true class (row), text the count.

    No colour bar: the counts are printed in the cells, and a second axes doubles the drawing time.
    """
    counts = [[int(v) for v in row] for row in matrix]
    shares = [[v / (sum(row) or 1) for v in row] for row in counts]
    # Fixed margins instead of a layout engine: per-case figures are drawn 21 times and the
    # constrained layout doubles their cost.
    fig = Figure(figsize=(3.9, 3.9))
    fig.subplots_adjust(left=0.22, bottom=0.22, right=0.97, top=0.93)
    ax = fig.add_subplot()
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            if value:
                color = "white" if shares[i][j] > 0.6 else "#222222"
                ax.text(j, i, str(value), ha="center", va="center", fontsize=6, color=color)
    ticks = range(len(counts))
    names = _short(class_names)
    ax.set_xticks(ticks, names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(ticks, names, fontsize=7)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title or "confusion matrix (shade: share of true class)", fontsize=8)
    return _png(fig)


def recall_png(recall: Sequence[float | None], class_names: Sequence[str],
               reduced: Sequence[int] = (), title: str = "") -> bytes:
    """Per-class recall bars; the classes the imbalance reduced are drawn in orange."""
    values = [v if _finite(v) else 0.0 for v in recall]
    colors = [REDUCED if k in set(reduced) else MEASURED for k in range(len(values))]
    fig = Figure(figsize=(4.4, 3.0))
    fig.subplots_adjust(left=0.12, bottom=0.27, right=0.98, top=0.85)
    ax = fig.add_subplot()
    ax.bar(range(len(values)), values, color=colors)
    mean = sum(values) / len(values) if values else 0.0
    if values:
        ax.axhline(mean, color="#444444", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(values)), _short(class_names), rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    label = f"per-class recall, dashed: macro {mean:.2f}" + (
        "\norange: reduced classes" if reduced else "")
    ax.set_title(title or label, fontsize=9)
    return _png(fig)


def split_png(table9: pd.DataFrame) -> bytes | None:
    """Test accuracy against train fraction per data set, the paper's Table 9 as dashed lines."""
    if table9.empty:
        return None
    fig = Figure(figsize=(5.6, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for dataset, part in table9.groupby("dataset", sort=False):
        color = DATASET_COLORS.get(str(dataset), MEASURED)
        part = part.sort_values("split")
        measured = part.dropna(subset=["accuracy_measured"])
        if not measured.empty:
            ax.plot(measured["split"], measured["accuracy_measured"], marker="o", color=color,
                    label=f"{dataset} measured")
        ax.plot(part["split"], part["accuracy_paper"], marker="s", linestyle="--", color=color,
                alpha=0.55, label=f"{dataset} paper")
    ax.set_xlabel("train fraction of pooled data", fontsize=8)
    ax.set_ylabel("test accuracy", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("Table 9: accuracy vs train/test split", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return _png(fig)


def regularization_png(table10: pd.DataFrame) -> bytes | None:
    """Table 10 / Figure 4: accuracy and AUC per regularization, measured beside the paper."""
    if table10.empty:
        return None
    fig = Figure(figsize=(7.2, 3.2), layout="constrained")
    labels = list(table10["regularization"])
    positions = range(len(labels))
    for index, (key, name) in enumerate((("accuracy", "accuracy"), ("roc_auc", "ROC AUC"))):
        ax = fig.add_subplot(1, 2, index + 1)
        ax.bar([p - 0.2 for p in positions], table10[f"{key}_measured"].fillna(0), width=0.4,
               color=MEASURED, label="measured")
        ax.bar([p + 0.2 for p in positions], table10[f"{key}_paper"].fillna(0), width=0.4,
               color=PAPER, label="paper")
        ax.set_xticks(list(positions), labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1.22)  # headroom for the legend above bars that reach 1
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_title(f"Table 10: {name}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)
    return _png(fig)


def _case_label(case_id: str) -> str:
    # The defaults ("split_orig", "reg_none") say nothing on a crowded axis.
    for noise in ("-split_orig", "-reg_none"):
        case_id = case_id.replace(noise, "")
    return case_id.replace("table", "t", 1)


def resources_png(frame: pd.DataFrame) -> bytes | None:
    """Table 8-like bars: train time and peak memory per case, the paper's figure as a dot."""
    data = frame[frame["status"] != "unfinished"]
    if data.empty:
        return None
    several_scales = data["scale"].nunique() > 1
    labels = [_case_label(c) + (f" [{s}]" if several_scales else "")
              for c, s in zip(data["case_id"], data["scale"])]
    fig = Figure(figsize=(8.0, 1.2 + 0.22 * len(labels)), layout="constrained")
    panels = (("train_time_s", "paper_train_time_s", "train time (s)"),
              ("peak_rss_mb", "paper_memory_mb", "peak RSS (MB)"))
    for index, (column, paper_column, name) in enumerate(panels):
        ax = fig.add_subplot(1, 2, index + 1)
        rows = list(range(len(labels)))
        ax.barh(rows, data[column].fillna(0), color=MEASURED, label="measured")
        ax.scatter(data[paper_column], rows, color="black", s=12, zorder=3, label="paper")
        values = pd.concat([data[column], data[paper_column]]).dropna()
        values = values[values > 0]
        # Smoke runs take seconds while the paper reports thousands: a linear axis would hide them.
        if len(values) and values.max() / values.min() > 100:
            ax.set_xscale("log")
        ax.set_yticks(rows, labels if index == 0 else [""] * len(rows), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return _png(fig)
