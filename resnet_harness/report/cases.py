"""The report's per-case sections and its learning-curve overlays.

One section per case and scale. A case run once shows its own heat map, recall bars, learning
curves, metrics beside the paper and config. A case run with several seeds (``--seeds``) gets
one section that summarises them: one heat map of the mean confusion matrix, the mean recall,
the seeds' curves (their mean and a band past a few seeds), the mean metrics beside the paper,
and the seeds' own figures as lines of one table. A section per seed made the report of 11 cases
x 100 seeds 17.7 MB, built in 35 s and opened in 13 s; one per case makes it 1.2 MB, 7.7 s and
1.5 s (``bench/report_scale.py``).
"""

from __future__ import annotations

import math
from collections import Counter
from html import escape
from typing import Any, Mapping, Sequence

from resnet_harness import study
from resnet_harness.analysis.table import NUM_CLASSES, PENDING, as_float, case_order, flatten_row
from resnet_harness.report import cells, curves
from resnet_harness.report.markup import (anchor, cell, diff_cell, flat_items, fmt, fmt_paper,
                                          html_table, kv_table, missing)
from resnet_harness.storage.schema import FIELDS, PAPER_METRIC, SCORES

META = ("table", "dataset", "balance", "split", "regularization", "scale")
# The seeds table: (case frame column, header); the last losses come from the histories.
SEED_COLUMNS = (("accuracy", "accuracy"), ("f1_macro", "F1 macro"),
                ("roc_auc_ovr_macro", "AUC"), ("steady_train_time_s", "train s (steady)"),
                ("epochs_run", "epochs"))
Flat = Mapping[str, Any]  # a row as :func:`table.flatten_row` gives it (a results.csv line)
_BAD = ("corrupt", "error", "failed")  # worst first: the section's border shows the worst seed

CSS = """
table.seeds tr.stat td{background:#f4f6f8;font-weight:600}
ul.legend{list-style:none;padding:0;margin:4px 0;font-size:12px;columns:2}
ul.legend span{display:inline-block;width:14px;height:3px;margin:0 6px 3px 0}
"""


def case_groups(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows that ran (not unfinished, not run) by case without its seed and scale, in the
    studies' case order; a case's seeds in seed order."""
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: case_order(r.get("case_id"), r.get("scale"))):
        if row.get("status") not in PENDING:
            key = (study.split_seed(str(row.get("case_id")))[0], row.get("scale"))
            groups.setdefault(key, []).append(row)
    return [sorted(group, key=_seed_order) for group in groups.values()]


def render_group(rows: Sequence[dict[str, Any]]) -> str:
    """The section of one case (``rows``: one of :func:`case_groups`)."""
    if len(rows) == 1:
        return render_case(rows[0], flatten_row(rows[0]))
    return _seeds_section(rows)


def render_case(row: dict[str, Any], flat: dict[str, Any]) -> str:
    """The section of a case run once (``flat`` is the row's :func:`table.flatten_row`)."""
    line = flat
    metrics = row.get("metrics") or {}
    per_class = metrics.get("per_class") or {}
    names = _names(row)
    reduced = [int(k) for k in row.get("reduced_classes") or []]
    status = str(row.get("status"))
    meta = " · ".join(f"{k}: {escape(fmt(line[k]))}" for k in META + ("seed",))
    own = anchor(row.get("case_id"), row.get("scale"))
    parts = [f'<section class="case {escape(status)}" id="{own}">',
             f'<h3>{escape(str(row.get("case_id")))} <span class="badge b-{escape(status)}">'
             f'{escape(status)}</span></h3><p class="note">{meta} · finished '
             f"{escape(fmt(line['finished_at']))} · "
             f"<code>{escape(fmt(line['run_dir']))}</code></p>"]
    if row.get("error"):
        parts.append(f'<div class="err">{escape(str(row["error"]))}</div>')
    if row.get("warnings"):
        parts.append('<div class="warn"><b>Warnings</b><ul>' + "".join(
            f"<li>{escape(str(w))}</li>" for w in row["warnings"]) + "</ul></div>")
    violations = (row.get("bounds") or {}).get("violations") or []
    if violations:
        parts.append('<div class="warn"><b>Bound violations</b><ul>' + "".join(
            f"<li>{escape(str(v))}</li>" for v in violations) + "</ul></div>")
    figures = []
    if metrics.get("confusion_matrix"):
        figures.append(cells.confusion_html(metrics["confusion_matrix"], names))
    if per_class.get("recall"):
        figures.append(cells.recall_html(per_class["recall"], names, reduced))
    figures.append(_curves([row]))
    if row.get("train_counts") or row.get("test_counts") or per_class.get("recall"):
        figures.append(_class_table(names, reduced, [line], per_class.get("recall") or []))
    else:
        figures.append('<p class="note">No class counts or metrics: the case stopped before '
                       "it had any.</p>")
    parts.append(f'<div class="grid">{"".join(figures)}</div>')
    parts.append(f'<div class="grid"><div><b>Metrics</b>{_metric_table(line)}</div>'
                 f"<div><b>Config</b>{_config([row])}</div></div>")
    return "".join(parts) + "</section>"


def curves_section(groups: Sequence[Sequence[dict[str, Any]]]) -> str:
    """Every case's learning curve on one plot per paper table (a study's rows without a
    ``table``: per study and data set), a multi-seed case as its seeds' mean, beside a legend
    that links each case's section. Empty when no row has a per-epoch history."""
    plots: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    scales = {group[0].get("scale") for group in groups}
    for group in groups:
        histories = [r["history"] for r in group if curves.has_curve(r.get("history"))]
        if not histories:
            continue
        first = group[0]
        base = study.split_seed(str(first.get("case_id")))[0]
        found = study.study_of(first.get("case_id"))
        key = first.get("table") or "-".join(
            str(p) for p in (found.name if found else "other", first.get("dataset")) if p)
        label = base + (f" [{first.get('scale')}]" if len(scales) > 1 else "")
        label += f" (mean of {len(histories)} seeds)" if len(histories) > 1 else ""
        history = histories[0] if len(histories) == 1 else curves.mean_curve(histories)
        link = anchor(base if len(group) > 1 else first.get("case_id"), first.get("scale"))
        plots.setdefault(str(key), []).append((label, link, history))
    parts = []
    for key, entries in plots.items():
        legend = "".join(f'<li><span style="background:{curves.color(k)}"></span>'
                         f'<a href="#{link}">{escape(label)}</a></li>'
                         for k, (label, link, _) in enumerate(entries))
        svg = curves.overlay_svg([(label, history) for label, _, history in entries])
        parts.append(f"<div><h3>{escape(key)}</h3>{svg}<ul class=\"legend\">{legend}</ul></div>")
    if not parts:
        return ""
    return ('<p class="note">Loss and accuracy per epoch, solid: training, dashed: validation '
            "(when the case had a validation set). A curve still falling or rising at its last "
            "epoch is a case that was still learning.</p>"
            f'<div class="grid">{"".join(parts)}</div>')


def _seeds_section(rows: Sequence[dict[str, Any]]) -> str:
    lines = [flatten_row(r) for r in rows]
    # Names, reduced classes and settings from a seed that measured something, if any did.
    first, line = next(((r, ln) for r, ln in zip(rows, lines) if r.get("metrics")),
                       (rows[0], lines[0]))
    base, scale = study.split_seed(str(first.get("case_id")))[0], first.get("scale")
    own = anchor(base, scale)
    statuses = Counter(str(r.get("status")) for r in rows)
    worst = next((s for s in _BAD if s in statuses), "passed")
    measured = [(r, ln) for r, ln in zip(rows, lines) if r.get("metrics")]
    seeds = [ln.get("seed") for ln in lines]
    meta = " · ".join(f"{k}: {escape(fmt(line[k]))}" for k in META)
    finished = max((str(ln["finished_at"]) for ln in lines if not missing(ln["finished_at"])),
                   default="—")
    folders = sorted({str(ln["run_dir"]) for ln in lines if not missing(ln["run_dir"])})
    badges = "".join(f'<span class="badge b-{escape(s)}">{escape(s)}: {n}</span>'
                     for s, n in sorted(statuses.items()))
    parts = [f'<section class="case {escape(worst)}" id="{own}">',
             f"<h3>{escape(base)} · {len(rows)} seeds {badges}</h3>"
             f'<p class="note">{meta} · seeds: {escape(_ranges(seeds))} · last finished '
             f"{escape(finished)} · " + ", ".join(f"<code>{escape(f)}</code>" for f in folders)
             + "</p>"]
    flagged = {"errors": sum(bool(r.get("error")) for r in rows),
               "warnings": sum(bool(r.get("warnings")) for r in rows),
               "bound violations": sum(bool((r.get("bounds") or {}).get("violations"))
                                       for r in rows)}
    if any(flagged.values()):
        said = ", ".join(f"{name} in {n}" for name, n in flagged.items() if n)
        parts.append(f'<div class="warn">{escape(said)} of {len(rows)} seeds: see the seeds\' '
                     "lines below.</div>")
    names = _names(first)
    reduced = [int(k) for k in first.get("reduced_classes") or []]
    figures = []
    matrices = [r["metrics"]["confusion_matrix"] for r, _ in measured
                if r["metrics"].get("confusion_matrix")]
    if matrices:
        same = [m for m in matrices if _shape(m) == _shape(matrices[0])]
        figures.append(cells.confusion_html(
            _mean_matrix(same), names,
            title=f"mean confusion matrix of {len(same)} seeds (shade: share of the true class)"))
    recalls = [(r["metrics"].get("per_class") or {}).get("recall") or [] for r, _ in measured]
    recall = [_mean([as_float(v[k]) for v in recalls if k < len(v)])
              for k in range(max(map(len, recalls), default=0))]
    if recall:
        figures.append(cells.recall_html(recall, names, reduced))
    figures.append(_curves(rows))
    if any(r.get("train_counts") or r.get("test_counts") for r in rows) or recall:
        figures.append(_class_table(names, reduced, lines, recall, mean=True))
    parts.append(f'<div class="grid">{"".join(figures)}</div>')
    parts.append(_seeds_table(rows, lines, own))
    mean_line = _mean_line(line, [ln for _, ln in measured])
    parts.append(f'<div class="grid"><div><b>Metrics</b>'
                 f"{_metric_table(mean_line, f'mean of {len(measured)}')}</div>"
                 f"<div><b>Config</b>{_config(rows)}</div></div>")
    return "".join(parts) + "</section>"


def _seeds_table(rows: Sequence[dict[str, Any]], lines: Sequence[Flat], own: str) -> str:
    """One line per seed (its id the seed's link target) and the mean, sd, min and max."""
    losses = [key for key in ("loss", "val_loss")
              if any(_last(r.get("history"), key) is not None for r in rows)]
    headers = (["seed", "status"] + [h for _, h in SEED_COLUMNS]
               + [f"last {k.replace('_', ' ')}" for k in losses] + ["errors, warnings"])
    table_lines, columns = [], {c: [] for c, _ in SEED_COLUMNS}
    columns.update({k: [] for k in losses})
    for row, line in zip(rows, lines):
        status = str(row.get("status"))
        mark = anchor(row.get("case_id"), row.get("scale"))
        ident = f' id="{mark}"' if mark != own else ""
        values = [line.get(c) for c, _ in SEED_COLUMNS]
        values += [_last(row.get("history"), k) for k in losses]
        if row.get("metrics"):
            for key, value in zip(columns, values):
                columns[key].append(as_float(value))
        notes = [str(row["error"])] if row.get("error") else []
        notes += [str(w) for w in row.get("warnings") or []]
        notes += [str(v) for v in (row.get("bounds") or {}).get("violations") or []]
        table_lines.append(
            f'<tr class="{escape(status)}"{ident}>{cell(fmt(line.get("seed")))}'
            f"{cell(status, 'l')}" + "".join(cell(fmt(v, k)) for k, v in zip(columns, values))
            + cell(" | ".join(notes), "l") + "</tr>")
    for name, reduce in (("mean", _mean), ("sd", _sd), ("min", _min), ("max", _max)):
        table_lines.append(f'<tr class="stat"><td>{name}</td><td></td>' + "".join(
            cell(_stat(reduce(values), key)) for key, values in columns.items()) + "<td></td></tr>")
    return (f'<p class="note">The {len(rows)} seeds\' own figures, then their mean, standard '
            "deviation, minimum and maximum (over the seeds that measured).</p>"
            + html_table(headers, table_lines).replace("<table>", '<table class="seeds">', 1))


def _stat(value: float | None, key: str) -> str:
    # Epochs are counts, but their mean is not: one decimal, not a score's four.
    return f"{value:.1f}" if key == "epochs_run" and value is not None else fmt(value, key)


def _curves(rows: Sequence[dict[str, Any]]) -> str:
    histories = [r["history"] for r in rows if curves.has_curve(r.get("history"))]
    if not histories:
        return ('<p class="note">No learning curve: no per-epoch history was recorded.</p>'
                if any(r.get("metrics") for r in rows) else "")
    what = (f"mean of {len(histories)} seeds, band: ±1 sd" if len(histories) > curves.SEED_LINES
            else f"{len(histories)} seeds" if len(histories) > 1 else "")
    caption = "learning curves" + (f" ({what})" if what else "") + ", dashed: validation"
    return f'<div><div class="note">{escape(caption)}</div>{curves.case_svg(histories)}</div>'


def _class_table(names: Sequence[str], reduced: Sequence[int], lines: Sequence[Flat],
                 recall: Sequence[Any], mean: bool = False) -> str:
    """Per class: the training and test images (a range where the seeds differ) and recall."""
    def counts(prefix: str, k: int) -> str:
        found = sorted({v for v in (ln.get(f"{prefix}_count_c{k}") for ln in lines)
                        if not missing(v)})
        return "—" if not found else (fmt(found[0]) if len(found) == 1
                                      else f"{fmt(found[0])}–{fmt(found[-1])}")

    body = [f"<tr><td>{k}</td>{cell(names[k] if k < len(names) else '', 'l')}"
            f"{cell(counts('train', k), 'red' if k in reduced else '')}"
            f"{cell(counts('test', k))}{cell(fmt(recall[k] if k < len(recall) else None))}</tr>"
            for k in range(NUM_CLASSES)]
    return html_table(["class", "name", "train", "test", "mean recall" if mean else "recall"],
                      body)


def _metric_table(line: Flat, measured: str = "measured") -> str:
    by_ours = {ours: paper for paper, ours in PAPER_METRIC.items()}
    # Every directed field except the as-trained copies, which get their own column.
    keys = [f.name for f in FIELDS if f.better and f.source != "metrics_as_trained"]
    # Scores as trained beside the re-estimated ones, where re-estimation changed any of them.
    trained = any(not missing(line.get(f"{k}_as_trained")) and line.get(f"{k}_as_trained")
                  != line.get(k) for k in list(SCORES) + ["train_inference_accuracy"])
    colour = line.get("scale") == "paper"
    # The published column only for a case its study publishes figures for.
    published = any(not missing(line.get(f"paper_{k}")) for k in PAPER_METRIC)
    lines = []
    for key in keys:
        paper_key = by_ours.get(key)
        paper = line.get(f"paper_{paper_key}") if paper_key else None
        diff = (line[key] - paper) if paper_key and not missing(paper) and not missing(
            line.get(key)) else None
        if missing(line.get(key)) and missing(paper):
            continue  # a failed case measured nothing: list only what someone reported
        before = cell(fmt(line.get(f"{key}_as_trained"), key)) if trained else ""
        theirs = (f"{cell(fmt_paper(paper))}{diff_cell(diff, paper, paper_key or key, colour)}"
                  if published else "")
        lines.append(f'<tr>{cell(key, "l")}{cell(fmt(line[key], key))}{before}{theirs}</tr>')
    headers = ["metric", measured] + (["as trained"] if trained else []) + (
        ["paper", "Δ"] if published else [])
    return html_table(headers, lines)


def _config(rows: Sequence[dict[str, Any]]) -> str:
    """The config of the first row that recorded one, and the keys whose values differ between
    the seeds that did."""
    recorded = [r for r in rows if r.get("config")]
    if not recorded:
        return '<p class="note">not recorded</p>'
    items = [dict(flat_items("", r["config"])) for r in recorded]
    table = kv_table(items[0].items())
    differ = sorted({k for other in items[1:] for k in set(items[0]) | set(other)
                     if items[0].get(k) != other.get(k)})
    if differ:
        table = (f'<p class="note">seed {escape(fmt(recorded[0].get("seed")))}\'s; differs '
                 f"between seeds in {escape(', '.join(differ))}</p>" + table)
    return table


def _mean_line(first: Flat, lines: Sequence[Flat]) -> Flat:
    """``first`` with every registered field the mean over ``lines`` (its finite values)."""
    mean = dict(first)
    for name in (f.name for f in FIELDS):
        if name in mean:
            mean[name] = _mean([as_float(ln.get(name)) for ln in lines])
    return mean


def _mean_matrix(matrices: Sequence[Sequence[Sequence[float]]]) -> list[list[float]]:
    return [[sum(float(m[i][j]) for m in matrices) / len(matrices) for j in range(len(row))]
            for i, row in enumerate(matrices[0])]


def _shape(matrix: Sequence[Sequence[Any]]) -> list[int]:
    return [len(row) for row in matrix]


def _names(row: Mapping[str, Any]) -> list[str]:
    return list(row.get("class_names") or [f"c{k}" for k in range(NUM_CLASSES)])


def _last(history: Any, key: str) -> float | None:
    values = history.get(key) if isinstance(history, Mapping) else None
    found = [v for v in values or [] if isinstance(v, (int, float)) and math.isfinite(v)]
    return float(found[-1]) if found else None


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if not missing(v) and math.isfinite(float(v))]


def _mean(values: Sequence[Any]) -> float | None:
    found = _finite(values)
    return sum(found) / len(found) if found else None


def _sd(values: Sequence[Any]) -> float | None:
    found = _finite(values)
    if len(found) < 2:
        return None
    mean = sum(found) / len(found)
    return math.sqrt(sum((v - mean) ** 2 for v in found) / (len(found) - 1))


def _min(values: Sequence[Any]) -> float | None:
    return min(_finite(values), default=None)


def _max(values: Sequence[Any]) -> float | None:
    return max(_finite(values), default=None)


def _seed_order(row: Mapping[str, Any]) -> tuple[int, int]:
    seed = study.split_seed(str(row.get("case_id")))[1]
    return (0, seed) if seed is not None else (1, 0)


def _ranges(seeds: Sequence[Any]) -> str:
    """``1–3, 7`` for seeds 1, 2, 3, 7."""
    numbers = sorted({int(s) for s in seeds if not missing(s)})
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in spans) or "—"
