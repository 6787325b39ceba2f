"""The report's overview figures, each returned as PNG bytes (embedded later as a data URI).

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas directly, not
through ``pyplot``: that touches no global backend or figure registry, so it works headless, from
pytest workers and next to whatever backend the caller chose, and nothing needs ``plt.close``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from resnet_harness.report.cells import MEASURED  # one home for the report's "measured" colour
from resnet_harness.storage.identity import split_seed

DPI = 80  # small images keep the HTML at a few hundred KB
PUBLISHED = "#9a9a9a"  # a published figure beside a measured one


def png_bytes(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # No "Software" text chunk: it names a URL, and the report must hold no external address.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()  # drop artists now rather than at garbage collection
    return buffer.getvalue()


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
        ax.scatter(data[paper_column], rows, color="black", s=12, zorder=3, label="published")
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
    return png_bytes(fig)


VERDICT_COLORS = {"better": "#17632a", "worse": "#a4261b", "equivalent": "#555555",
                  "inconclusive": "#c58a00"}


@dataclass(frozen=True)
class ForestEntry:
    """One comparison's figure in a forest plot: its arms, the figure compared, the mean
    difference and the interval at ``level`` (the level its verdict was tested at), the
    verdict and a short note (seeds that would decide it)."""

    comparison: str
    measure: str
    mean: float
    low: float
    high: float
    verdict: str
    level: str = ""
    note: str = ""
    margin: float | None = None  # a claim's check with its own margin: drawn at ±margin


def forest_png(entries: Sequence[ForestEntry], delta: float, title: str,
               percent: bool = False, wrap: int = 34) -> bytes | None:
    """A family's forest plot that a statistician reads without the tables: one panel per
    figure compared (accuracy, macro F1, ...), one row per comparison, labels whole (wrapped,
    never cut); each interval is drawn at the level its verdict used (Holm's step, a sequential
    look's boundary: written beside it), coloured by verdict, with the ``±delta`` equivalence
    band shaded and a legend of both. The figure is sized to fit a page (at most ~10 in tall).
    """
    import textwrap

    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    entries = [e for e in entries if e.mean == e.mean]  # drop NaN means (not run)
    if not entries:
        return None
    rows = list(dict.fromkeys(e.comparison for e in entries))
    measures = list(dict.fromkeys(e.measure for e in entries))
    labels = ["\n".join(textwrap.wrap(name, wrap)) or name for name in rows]
    lines = max(1, max(label.count("\n") + 1 for label in labels))
    per_row = min(0.22 + 0.13 * lines, 9.0 / len(rows))
    width = min(11.0, 2.4 + 2.3 * len(measures))
    fig = Figure(figsize=(width, 1.5 + per_row * len(rows)), layout="constrained")
    axes = fig.subplots(1, len(measures), sharey=True, squeeze=False)[0]
    scale = 100.0 if percent else 1.0
    small = max(5.0, min(7.0, 72 * per_row / 3))
    for ax, measure in zip(axes, measures):
        ax.axvspan(-delta * scale, delta * scale, color="#e6e6e6", zorder=0)
        ax.axvline(0, color="#888888", linewidth=0.8)
        for e in (e for e in entries if e.measure == measure):
            row, color = rows.index(e.comparison), VERDICT_COLORS.get(e.verdict, "#333333")
            if e.low == e.low and e.high == e.high:
                ax.plot([e.low * scale, e.high * scale], [row, row], color=color, linewidth=2)
            ax.plot([e.mean * scale], [row], "o", color=color, markersize=4)
            if e.margin is not None:
                for edge in (-e.margin, e.margin):
                    ax.plot([edge * scale] * 2, [row - 0.35, row + 0.35], color="#6a3d9a",
                            linestyle="--", linewidth=1)
            text = "  ".join(t for t in (e.level, e.note) if t)
            if text:
                ax.annotate(text, (e.mean * scale, row), xytext=(0, -small - 1),
                            textcoords="offset points", fontsize=small - 0.5, ha="center",
                            va="center", color=color)
        ax.set_title(measure, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(len(rows) - 0.4, -0.6)
        ax.set_xlabel("treatment - baseline, %" if percent else "treatment - baseline",
                      fontsize=7)
    axes[0].set_yticks(range(len(rows)), labels, fontsize=small)
    handles = [Line2D([0], [0], color=VERDICT_COLORS[v], linewidth=2, marker="o", markersize=4,
                      label=v) for v in VERDICT_COLORS if any(e.verdict == v for e in entries)]
    handles.append(Patch(color="#e6e6e6", label=f"equivalence band \u00b1\u03b4 = "
                         f"{delta * scale:g}{'%' if percent else ''}"))
    handles += [Line2D([0], [0], color="#6a3d9a", linestyle="--", linewidth=1,
                       label="a claim's own margin")] if any(e.margin for e in entries) else []
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7,
               frameon=False)
    caption = ("intervals at the level each verdict was tested at (Holm within the family; a "
               "sequential look's boundary), written under each")
    fig.suptitle("\n".join([title, *textwrap.wrap(caption, int(width * 15))]), fontsize=8)
    return png_bytes(fig)


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
    return png_bytes(fig)
