"""The report's overview figures, each returned as PNG bytes (embedded later as a data URI).

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas directly, not
through ``pyplot``: that touches no global backend or figure registry, so it works headless, from
pytest workers and next to whatever backend the caller chose, and nothing needs ``plt.close``.
"""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from resnet_harness.report.cells import MEASURED  # one home for the report's "measured" colour
from resnet_harness.storage.identity import split_seed

DPI = 80  # small images keep the HTML at a few hundred KB
PAPER = "#9a9a9a"
DATASET_COLORS = {"cifar10": MEASURED, "fashion_mnist": "#c0392b"}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # No "Software" text chunk: it names a URL, and the report must hold no external address.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()  # drop artists now rather than at garbage collection
    return buffer.getvalue()


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


def _per_case(data: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One line per case and scale: a case's seeds as their mean, ``<column>_low`` and
    ``_high`` their range, ``seeds`` their number (one bar per case, not per seed)."""
    # A new frame of the few columns needed: assigning into the wide results frame (hundreds
    # of columns added one by one) makes pandas warn that it is fragmented.
    keyed = pd.DataFrame({"_base": data["case_id"].map(lambda c: split_seed(str(c))[0]),
                          "_scale": data["scale"].fillna(""),
                          **{column: data[column] for column in columns}})
    grouped = keyed.groupby(["_base", "_scale"], sort=False)[columns]
    low, high = grouped.min().add_suffix("_low"), grouped.max().add_suffix("_high")
    out = pd.concat([grouped.mean(), low, high], axis=1)
    out["seeds"] = grouped.size()
    return out.reset_index()


def resources_png(frame: pd.DataFrame) -> bytes | None:
    """Table 8-like bars: train time and peak memory per case, the paper's figure as a dot; a
    case run with several seeds is one bar, their mean, with their range as a whisker."""
    data = frame[frame["status"] != "unfinished"]
    if data.empty:
        return None
    # The order-independent figures (see metrics.PAPER_METRIC).
    panels = (("steady_train_time_s", "paper_train_time_s", "train time, steady (s)"),
              ("rss_added_mb", "paper_memory_mb", "RSS added by the case (MB)"))
    data = _per_case(data, [c for panel in panels for c in panel[:2]])
    several_scales = data["_scale"].nunique() > 1
    labels = [_case_label(c) + (f" [{s}]" if several_scales else "")
              + (f" ×{n}" if n > 1 else "")
              for c, s, n in zip(data["_base"], data["_scale"], data["seeds"])]
    fig = Figure(figsize=(8.0, 1.2 + 0.22 * len(labels)), layout="constrained")
    for index, (column, paper_column, name) in enumerate(panels):
        ax = fig.add_subplot(1, 2, index + 1)
        rows = list(range(len(labels)))
        ax.barh(rows, data[column].fillna(0), color=MEASURED, label="measured")
        spread = data["seeds"] > 1
        if spread.any():
            mean = data[column][spread]
            ax.errorbar(mean, [r for r, s in zip(rows, spread) if s],
                        xerr=[mean - data[f"{column}_low"][spread],
                              data[f"{column}_high"][spread] - mean],
                        fmt="none", ecolor="#333333", elinewidth=0.8, capsize=2)
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


def longtail_recall_png(lines: list[tuple[str, list[float], list[float]]],
                        title: str) -> bytes | None:
    """Per-class recall against the class's training count (log axis), one line per method.

    ``lines``: ``(method, train_counts, recall)`` per method of one data set and profile.
    """
    lines = [line for line in lines if line[1] and line[2]]
    if not lines:
        return None
    fig = Figure(figsize=(5.6, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for method, counts, recall in lines:
        order = sorted(range(len(counts)), key=lambda c: counts[c])
        ax.plot([counts[c] for c in order], [recall[c] for c in order], marker="o",
                markersize=3, linewidth=1, label=method)
    if max(max(c) for _, c, _ in lines) / max(1, min(min(c) for _, c, _ in lines)) > 5:
        ax.set_xscale("log")
    ax.set_xlabel("training images of the class", fontsize=8)
    ax.set_ylabel("test recall of the class", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="best", ncol=2)
    ax.grid(alpha=0.3)
    return _png(fig)


VERDICT_COLORS = {"better": "#17632a", "worse": "#a4261b", "equivalent": "#555555",
                  "inconclusive": "#c58a00"}


def forest_png(entries: list[tuple[str, float, float, float, str, str]], delta: float,
               title: str, percent: bool = False) -> bytes | None:
    """A forest plot: one line per comparison, its mean difference and 95% interval, coloured
    by verdict, the ``±delta`` equivalence band shaded, and ``note`` (seeds needed) beside it.

    ``entries``: ``(label, mean, low, high, verdict, note)``; ``percent``: relative figures.
    """
    entries = [e for e in entries if e[1] == e[1]]  # drop NaN means (not run)
    if not entries:
        return None
    fig = Figure(figsize=(7.2, 0.9 + 0.32 * len(entries)), layout="constrained")
    ax = fig.add_subplot()
    scale = 100.0 if percent else 1.0
    ax.axvspan(-delta * scale, delta * scale, color="#e6e6e6", zorder=0)
    ax.axvline(0, color="#888888", linewidth=0.8)
    for row, (label, mean, low, high, verdict, note) in enumerate(entries):
        color = VERDICT_COLORS.get(verdict, "#333333")
        if low == low and high == high:
            ax.plot([low * scale, high * scale], [row, row], color=color, linewidth=2)
        ax.plot([mean * scale], [row], "o", color=color, markersize=4)
        if note:
            ax.annotate(note, (1.0, row), xycoords=("axes fraction", "data"), xytext=(4, 0),
                        textcoords="offset points", fontsize=6.5, va="center", color=color)
    ax.set_yticks(range(len(entries)), [e[0] for e in entries], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("difference, %" if percent else "difference (treatment - baseline)",
                  fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def confusion_png(matrix: list[list[int]], class_names: list[str], title: str = "") -> bytes:
    """A case's confusion matrix as a PNG (an MLflow case run's ``confusion.png``): true
    classes down, shade the share of the true class, counts written in the cells."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(counts)
    names = list(class_names) if len(class_names) == k else [str(i) for i in range(k)]
    fig = Figure(figsize=(0.45 * k + 2.2, 0.45 * k + 1.6))
    ax = fig.add_subplot()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, f"{counts[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return _png(fig)
