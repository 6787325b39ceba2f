"""The paper study's report section: its Tables 7-10 as printed beside what we measured, and
the split and regularization plots. Built from the case frame of ``results.csv``."""

from __future__ import annotations

import math
from html import escape
from typing import Any, Callable, Sequence

import pandas as pd
from matplotlib.figure import Figure

from resnet_harness.report import html as H
from resnet_harness.analysis import table
from resnet_harness.report import plots
from resnet_harness.storage import schema
from resnet_harness.study import split_seed
from resnet_harness.studies.paper import CASES, DATASETS, PaperCase


def measured_and_paper(picked: pd.DataFrame, case: PaperCase, key: str) -> tuple[float, float]:
    """The measured value and the paper's figure of one paper metric ``key`` for one case.

    The row's own paper figure wins over the matrix's (the run may have been configured with
    other figures); NaN where either is missing.
    """
    measured = paper = math.nan
    if case.id in picked.index:
        line = picked.loc[case.id]
        measured = table.as_float(line.get(schema.PAPER_METRIC[key]))
        paper = table.as_float(line.get(f"paper_{key}"))
    else:  # --seeds: the mean over the case's seeds (claims.csv has their intervals)
        bases = picked.index.map(lambda i: split_seed(str(i))[0])
        column = schema.PAPER_METRIC[key]
        values = pd.to_numeric(picked.loc[bases == case.id, column], errors="coerce") \
            if column in picked.columns else pd.Series(dtype=float)
        measured = float(values.mean()) if values.notna().any() else math.nan
    if math.isnan(paper):
        paper = table.as_float(case.paper.as_dict().get(key))
    return measured, paper


def _triplet(picked: pd.DataFrame, case: PaperCase, key: str, prefix: str) -> dict[str, float]:
    measured, paper = measured_and_paper(picked, case, key)
    return {f"{prefix}_measured": measured, f"{prefix}_paper": paper,
            f"{prefix}_diff": measured - paper}


def _cases(table: str) -> list[PaperCase]:
    return [case for case in CASES if case.table == table]


def _by_balance(picked: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    # Tables 7 and 8: data set x metric down, balanced/imbalanced across.
    lookup = {(c.dataset, c.balance): c for c in _cases("table7")}
    lines = []
    for dataset in DATASETS:
        for key in keys:
            line: dict[str, Any] = {"dataset": dataset, "metric": key}
            for balance in ("balanced", "imbalanced"):
                line.update(_triplet(picked, lookup[dataset, balance], key, balance))
            lines.append(line)
    return pd.DataFrame(lines)


def table7_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 7: per data set F1, precision, recall, accuracy and ROC AUC, balanced and
    imbalanced, each as ``<balance>_measured``/``_paper``/``_diff`` (diff = measured - paper)."""
    return _by_balance(table.pick_per_case(frame), ("f1", "precision", "recall", "accuracy", "roc_auc"))


def table8_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 8: training time, testing time and memory (our peak RSS), shaped like Table 7."""
    return _by_balance(table.pick_per_case(frame), table.RESOURCE_KEYS)


def table9_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 9: per data set and train fraction, test accuracy, train/test time and memory, each
    as ``<metric>_measured``/``_paper``/``_diff``."""
    picked = table.pick_per_case(frame)
    lines = []
    for case in _cases("table9"):
        line: dict[str, Any] = {"dataset": case.dataset, "split": case.split}
        for key in ("accuracy",) + table.RESOURCE_KEYS:
            line.update(_triplet(picked, case, key, key))
        lines.append(line)
    return pd.DataFrame(lines)


def table10_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 10: per regularization, accuracy, AUC, train/test time and memory vs the paper."""
    picked = table.pick_per_case(frame)
    lines = []
    for case in _cases("table10"):
        line: dict[str, Any] = {"regularization": case.regularization}
        for key in ("accuracy", "roc_auc") + table.RESOURCE_KEYS:
            line.update(_triplet(picked, case, key, key))
        lines.append(line)
    return pd.DataFrame(lines)


def paper_tables(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """All four paper-shaped summaries, keyed ``table7`` .. ``table10``."""
    return {"table7": table7_frame(frame), "table8": table8_frame(frame),
            "table9": table9_frame(frame), "table10": table10_frame(frame)}


def _split_label(split: float) -> str:
    return f"{round(split * 100)}% / {round((1 - split) * 100)}%"


def _reg_label(reg: str) -> str:
    if reg.startswith("dropout"):
        return f"Dropout ({reg[len('dropout'):]})"
    return {"l1": "L1", "l2": "L2", "none": "none (control)"}.get(reg, reg)


def _compare_table(frame: pd.DataFrame, labels: Sequence[tuple[str, str, Callable]],
                   groups: Sequence[str], key_of: Callable[[pd.Series, str], str],
                   colour: bool = True) -> str:
    """A measured | paper | difference table; the first label column spans its repeated values."""
    top = "".join(f'<th rowspan="2" class="l">{escape(h)}</th>' for _, h, _ in labels)
    top += "".join(f'<th colspan="3">{escape(H.label(g))}</th>' for g in groups)
    sub = "<th>measured</th><th>paper</th><th>Δ</th>" * len(groups)
    first, previous, lines = labels[0][0], None, []
    for _, line in frame.iterrows():
        cells = []
        if line[first] != previous:  # the frames come grouped by their first column
            size = int((frame[first] == line[first]).sum())
            text = escape(labels[0][2](line[first]))
            cells.append(f'<td class="l" rowspan="{size}"><b>{text}</b></td>')
            previous = line[first]
        cells += [H.cell(show(line[column]), "l") for column, _, show in labels[1:]]
        for group in groups:
            key = key_of(line, group)
            measured, paper = line[f"{group}_measured"], line[f"{group}_paper"]
            cells.append(H.cell(H.fmt(measured, key), "none" if H.missing(measured) else ""))
            cells.append(H.cell(H.fmt_paper(paper), "none" if H.missing(paper) else ""))
            cells.append(H.diff_cell(line[f"{group}_diff"], paper, key, colour))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return H.html_table([], lines, head_html=f"<tr>{top}</tr><tr>{sub}</tr>")


def _summary(tables: dict[str, pd.DataFrame], colour: bool = True) -> str:
    by_metric = (("dataset", "Dataset", H.label), ("metric", "Metric", H.label))
    parts = [
        "<h3>Table 7: performance</h3>",
        _compare_table(tables["table7"], by_metric, ("balanced", "imbalanced"),
                       lambda line, _: line["metric"], colour),
        "<h3>Table 8: training/testing time and memory</h3>",
        _compare_table(tables["table8"], by_metric, ("balanced", "imbalanced"),
                       lambda line, _: line["metric"], colour),
        "<h3>Table 9: train/test splits (balanced data)</h3>",
        _compare_table(tables["table9"], (("dataset", "Dataset", H.label),
                                          ("split", "Train / test", _split_label)),
                       ("accuracy",) + table.RESOURCE_KEYS, lambda _, group: group, colour),
        "<h3>Table 10: regularization (Fashion-MNIST, balanced)</h3>",
        _compare_table(tables["table10"], (("regularization", "Regularization", _reg_label),),
                       ("accuracy", "roc_auc") + table.RESOURCE_KEYS, lambda _, group: group, colour),
    ]
    shading = ("Green: better than the paper, red: worse, grey: within 0.02 (scores) or 10% "
               "(time, memory)." if colour else
               "Not coloured: below paper scale the run is smaller work than the paper's, so "
               "neither better nor worse.")
    legend = (f'<p class="note">Δ = measured − paper. {shading} Precision, recall and F1 are '
              "macro averages. Our training time leaves out the first step (graph tracing, paid "
              "once per architecture and process), so it does not depend on the order cases ran "
              "in. Our memory is what the case added to the process's resident memory: the "
              "first case of each architecture also built and traced the model (hundreds of "
              "MB); the cases after it reuse that model and add little.</p>")
    return legend + "".join(parts)


def _counts_note() -> str:
    return ('<p class="note">The paper prints (Tables 1, 2): CIFAR-10 60,000 samples, 6,000 '
            "per class; imbalanced 54,000, classes 0-2 at 4,950, 3-9 at 6,000. Fashion-MNIST "
            "50,000, 5,000 per class; imbalanced 45,000, classes 0-2 at 4,500. The class counts "
            "section below shows the training sets each case really used.</p>")


def section(rows: Sequence[dict[str, Any]], ctx) -> str:
    """The section: the paper's tables, measured beside printed, and the overview plots."""
    tables = paper_tables(ctx.frame)
    colour = set(ctx.frame["scale"].dropna()) == {"paper"}
    plots_html = [ctx.img(split_png(tables["table9"]), "accuracy against train fraction"),
                  ctx.img(regularization_png(tables["table10"]),
                          "regularization comparison")]
    return (_summary(tables, colour=colour) + f'<div class="grid">{"".join(plots_html)}</div>'
            + _counts_note())


# -- the paper's own figures ---------------------------------------------------------------------
DATASET_COLORS = {"cifar10": plots.MEASURED, "fashion_mnist": "#c0392b"}


def split_png(table9: pd.DataFrame) -> bytes | None:
    """Test accuracy against train fraction per data set, the paper's Table 9 as dashed lines."""
    if table9.empty:
        return None
    fig = Figure(figsize=(5.6, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for dataset, part in table9.groupby("dataset", sort=False):
        color = DATASET_COLORS.get(str(dataset), plots.MEASURED)
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
    return plots.png_bytes(fig)


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
               color=plots.MEASURED, label="measured")
        ax.bar([p + 0.2 for p in positions], table10[f"{key}_paper"].fillna(0), width=0.4,
               color=plots.PUBLISHED, label="paper")
        ax.set_xticks(list(positions), labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1.22)  # headroom for the legend above bars that reach 1
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_title(f"Table 10: {name}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)
    return plots.png_bytes(fig)
