"""The self-contained ``report.html``: inline CSS, images as base64 data URIs, no address outside
the file, every piece of text escaped."""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from resnet_harness import study
from resnet_harness.analysis.baseline import guard as baseline_guard
from resnet_harness.analysis import claims
from resnet_harness.analysis.sequential import design_of
from resnet_harness.report import cells, plots
from resnet_harness.analysis.table import (NUM_CLASSES, PENDING, RESOURCE_KEYS, case_order,
                                         flatten_row)
from resnet_harness.storage.atomic import atomic_write_bytes
from resnet_harness.storage.schema import FIELDS, FIELDS_BY_NAME, PAPER_METRIC, SCORES

LABELS = {"f1": "F1 score", "precision": "Precision (macro)", "recall": "Recall (macro)",
          "accuracy": "Accuracy", "roc_auc": "ROC AUC (OvR macro)",
          "train_time_s": "Training time (s; ours: steady state, first step left out)",
          "test_time_s": "Testing time (s)",
          "memory_mb": "Memory (MB; ours: resident memory the case added)", "balanced": "Balanced",
          "imbalanced": "Imbalanced", "cifar10": "CIFAR-10", "fashion_mnist": "Fashion-MNIST"}
STATUS_ORDER = ("passed", "failed", "unfinished", "not_run", "error", "corrupt")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1d2329;margin:0;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:20px 28px 60px;background:#fff}
h1{font-size:24px;margin:0 0 6px}h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;
 border-bottom:2px solid #e3e6ea}h3{font-size:15px;margin:0 0 6px}
nav a{margin-right:14px}a{color:#1f5fa8;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse;margin:8px 0 14px;font-size:12.5px}
th,td{border:1px solid #dde1e6;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#eef1f5;text-align:center}td.l,th.l{text-align:left}
tr.failed td,tr.error td,tr.corrupt td{background:#fdecea}tr.unfinished td,tr.not_run td{background:#fff6db}
td.better{background:#e3f4e6;color:#17632a}td.worse{background:#fbe4e2;color:#a4261b}
td.close{background:#f3f3f3}td.plain{color:#555}
td.none{color:#999}td.red{background:#ffe9cc;font-weight:600}
.badge{display:inline-block;padding:2px 10px;border-radius:11px;font-weight:600;margin-right:6px;
 font-size:13px;border:1px solid transparent}
.b-passed{background:#e3f4e6;color:#17632a}.b-failed,.b-error,.b-corrupt{background:#fbe4e2;
 color:#a4261b}.b-unfinished,.b-not_run{background:#fff0c2;color:#7a5a00}
.note{color:#555;font-size:12.5px}
.warn{background:#fff6db;border:1px solid #f0d67a;padding:8px 12px;border-radius:4px}
.err{background:#fdecea;border:1px solid #f2b8b1;padding:6px 10px;
 border-radius:4px;white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;
 font-size:12px}
section.case{border:1px solid #e3e6ea;border-radius:6px;padding:12px 16px;margin:14px 0}
section.case.failed,section.case.error,section.case.corrupt{border-left:5px solid #d0453a}
section.case.passed{border-left:5px solid #3a9a55}
.grid{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}img{max-width:100%}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
"""


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def fmt(value: Any, key: str = "") -> str:
    """A measured number as shown: 4 decimals for scores, 2 for seconds and megabytes."""
    if missing(value):
        return "—"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if not isinstance(value, (float, np.floating)):
        return str(value)
    return f"{value:.2f}" if _resource(key) else f"{value:.4f}"


def fmt_paper(value: Any) -> str:
    """A paper figure exactly as printed (shortest decimal form: 0.8577, 1496.23, 3.2)."""
    return "—" if missing(value) else np.format_float_positional(float(value), trim="-")


def _resource(key: str) -> bool:
    # A paper key (memory_mb) or our field name: not a 0..1 score, so 2 decimals.
    field = FIELDS_BY_NAME.get(PAPER_METRIC.get(key, key))
    return key in RESOURCE_KEYS or (field is not None
                                    and field.kind not in ("score", "group_score"))


def diff_cell(diff: Any, paper: Any, key: str, colour: bool = True) -> str:
    """A Δ cell; ``colour`` only where the two figures describe the same work (paper scale):
    a smaller run is not "better" or "worse" than the paper, only smaller."""
    if missing(diff):
        return '<td class="none">—</td>'
    if _resource(key):
        close, better = abs(diff) <= 0.1 * abs(paper), diff < 0
    else:
        close, better = abs(diff) <= 0.02, diff > 0
    css = "close" if close else ("better" if better else "worse")
    css = css if colour else "plain"
    text = f"{diff:+.2f}" if _resource(key) else f"{diff:+.4f}"
    return f'<td class="{css}">{escape(text)}</td>'


def cell(text: Any, css: str = "", raw: bool = False) -> str:
    body = str(text) if raw else escape(str(text))
    return f'<td class="{css}">{body}</td>' if css else f"<td>{body}</td>"


def html_table(headers: Sequence[str], rows: Iterable[str], head_html: str | None = None) -> str:
    head = head_html or "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _anchor(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts if not missing(p) and p != "")
    return "case-" + re.sub(r"[^A-Za-z0-9_.-]", "-", text)


def label(value: Any) -> str:
    return LABELS.get(str(value), str(value))


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _status_badges(frame: pd.DataFrame) -> str:
    counts = Counter(frame["status"].fillna("unknown"))
    names = list(STATUS_ORDER[:3]) + sorted(s for s in counts if s not in STATUS_ORDER[:3])
    return "".join(f'<span class="badge b-{escape(s)}">{escape(s)}: {counts.get(s, 0)}</span>'
                   for s in names)


def _header(title: str, frame: pd.DataFrame, runs: Sequence[dict[str, Any]],
            generated_at: str, sections: Sequence[tuple[str, str]] = ()) -> str:
    scales = sorted({str(s) for s in frame["scale"].dropna()})
    folders = ", ".join(f"<code>{escape(str(r.get('path')))}</code>" for r in runs)
    scale = escape(", ".join(scales) or "—")
    parts = [f"<h1>{escape(title)}</h1>",
             f'<p class="note">{len(frame)} case rows · scale: {scale} · generated '
             f"{escape(generated_at)} · run folders: {folders}</p>",
             f"<p>{_status_badges(frame)}</p>"]
    if "smoke" in scales:
        parts.append('<p class="warn">Smoke-scale rows train one epoch on a few hundred images; '
                     "their differences to the paper carry no meaning.</p>")
    nav = (("claims", "Claims"), *sections, ("results", "All cases"),
           ("overview", "Plots"), ("counts", "Class counts"), ("cases", "Per case"),
           ("provenance", "Provenance"))
    parts.append("<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in nav) + "</nav>")
    return "".join(parts)


def _results(frame: pd.DataFrame) -> str:
    columns = (("accuracy", "accuracy"), ("paper_accuracy", "paper acc."),
               ("f1_macro", "F1 macro"), ("roc_auc_ovr_macro", "AUC"),
               ("train_time_s", "train s"), ("test_time_s", "test s"),
               ("peak_rss_mb", "RSS MB"), ("peak_gpu_mb", "GPU MB"))
    if _recalibrated(frame):  # the scores before BatchNorm re-estimation, beside them
        columns = columns[:4] + (("accuracy_as_trained", "acc. as trained"),
                                 ("roc_auc_ovr_macro_as_trained", "AUC as trained")) + columns[4:]
    headers = (["case", "scale", "status"] + [h for _, h in columns]
               + ["error / bound violations", "vs baseline"])
    lines = []
    for _, line in frame.iterrows():
        status = str(line["status"])
        anchor = (status if status in PENDING  # no section of its own
                  else _anchor(line["case_id"], line["scale"]))
        link = f'<a href="#{anchor}">{escape(str(line["case_id"]))}</a>'
        cells = [cell(link, "l", raw=True), cell(fmt(line["scale"]), "l"),
                 cell(f'<span class="badge b-{escape(status)}">{escape(status)}</span>', "l",
                       raw=True)]
        cells += [cell(fmt_paper(line[c]) if c.startswith("paper_") else fmt(line[c], c))
                  for c, _ in columns]
        problems = [str(p) for p in (line["error"], line["bounds_violations"],
                                     line.get("warnings")) if not missing(p) and str(p)]
        cells.append(cell(" | ".join(problems), "l"))
        against = [f"{label} {line[column]}" for column, label in
                   (("baseline_regressions", "worse:"), ("baseline_improvements", "better:"))
                   if column in line and not missing(line[column]) and str(line[column])]
        status_text = line.get("baseline_status")
        if not missing(status_text) and str(status_text) != "compared":
            against.insert(0, str(status_text))
        cells.append(cell(" | ".join(against), "l"))
        lines.append(f'<tr class="{escape(status)}">' + "".join(cells) + "</tr>")
    unfinished = frame[frame["status"] == "unfinished"]
    listing = ""
    if len(unfinished):
        items = "".join(f"<li><code>{escape(str(c))}</code> (run folder "
                        f"<code>{escape(str(d))}</code>)</li>"
                        for c, d in zip(unfinished["case_id"], unfinished["run_dir"]))
        listing = (f'<h3 id="unfinished">Unfinished cases ({len(unfinished)})</h3><p class="note">'
                   f"Started but never wrote a result: the process died inside them.</p>"
                   f"<ul>{items}</ul>")
    not_run = frame[frame["status"] == "not_run"]
    if len(not_run):
        items = "".join(f"<li><code>{escape(str(c))}</code></li>" for c in not_run["case_id"])
        listing += (f'<h3 id="not_run">Not run ({len(not_run)})</h3><p class="note">Selected but '
                    "never started: the run was interrupted (Ctrl-C, SIGTERM) or stopped early "
                    f"(<code>-x</code>).</p><ul>{items}</ul>")
    return html_table(headers, lines) + listing


def _counts(frame: pd.DataFrame) -> str:
    headers = (["case", "scale", "reduced"] + [f"c{k}" for k in range(NUM_CLASSES)] +
               ["train total", "test total"])
    lines = []
    for _, line in frame[~frame["status"].isin(PENDING)].iterrows():
        text = "" if missing(line["reduced_classes"]) else str(line["reduced_classes"])
        reduced = {int(k) for k in text.split() if k.isdigit()}
        cells = [cell(line["case_id"], "l"), cell(fmt(line["scale"]), "l"),
                 cell(" ".join(str(k) for k in sorted(reduced)) or "—")]
        cells += [cell(fmt(line[f"train_count_c{k}"]), "red" if k in reduced else "")
                  for k in range(NUM_CLASSES)]
        cells += [cell(fmt(line["train_samples"])), cell(fmt(line["test_samples"]))]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    printed = ('<p class="note">The training sets each case really used (highlighted: '
               "reduced classes).</p>")
    return printed + html_table(headers, lines)


def _flat(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for k, v in value.items()
                for item in _flat(f"{prefix}.{k}" if prefix else str(k), v)]
    return [(prefix, value)]


def _kv(items: Iterable[tuple[str, Any]]) -> str:
    lines = [f'<tr><td class="l"><code>{escape(k)}</code></td><td class="l">'
             f"{escape(v if isinstance(v, str) else json.dumps(v))}</td></tr>" for k, v in items]
    return html_table(["key", "value"], lines) if lines else ""


def render_case(row: dict[str, Any], flat: dict[str, Any]) -> str:
    """The per-case section of one row (``flat`` is its :func:`table.flatten_row`)."""
    return _case(row, pd.Series(flat))


def _case(row: dict[str, Any], line: pd.Series) -> str:
    metrics = row.get("metrics") or {}
    per_class = metrics.get("per_class") or {}
    names = list(row.get("class_names") or [f"c{k}" for k in range(NUM_CLASSES)])
    reduced = [int(k) for k in row.get("reduced_classes") or []]
    status = str(row.get("status"))
    meta = " · ".join(f"{k}: {escape(fmt(line[k]))}" for k in
                      ("table", "dataset", "balance", "split", "regularization", "scale", "seed"))
    anchor = _anchor(row.get("case_id"), row.get("scale"))
    parts = [f'<section class="case {escape(status)}" id="{anchor}">',
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
    counts = [f"<tr><td>{k}</td>{cell(names[k] if k < len(names) else '', 'l')}"
              f"{cell(fmt(line[f'train_count_c{k}']), 'red' if k in reduced else '')}"
              f"{cell(fmt(line[f'test_count_c{k}']))}{cell(fmt(_get(per_class, 'recall', k)))}"
              "</tr>" for k in range(NUM_CLASSES)]
    if row.get("train_counts") or row.get("test_counts") or per_class.get("recall"):
        figures.append(html_table(["class", "name", "train", "test", "recall"], counts))
    else:
        figures.append('<p class="note">No class counts or metrics: the case stopped before '
                       "it had any.</p>")
    config = _kv(_flat("", row.get("config") or {})) or '<p class="note">not recorded</p>'
    parts.append(f'<div class="grid">{"".join(figures)}</div>')
    parts.append(f'<div class="grid"><div><b>Metrics</b>{_metric_table(line)}</div>'
                 f"<div><b>Config</b>{config}</div></div>")
    return "".join(parts) + "</section>"


def _get(per_class: dict[str, Any], key: str, k: int) -> Any:
    values = per_class.get(key) or []
    return values[k] if k < len(values) else None


def _recalibrated(frame: pd.DataFrame) -> bool:
    """Whether any row's scores differ before and after BatchNorm re-estimation."""
    pairs = [(frame[name], frame.get(f"{name}_as_trained")) for name in SCORES]
    return any(trained is not None and bool(((after - trained).abs() > 0).any())
               for after, trained in pairs)


def _metric_table(line: pd.Series) -> str:
    by_ours = {ours: paper for paper, ours in PAPER_METRIC.items()}
    # Every directed field except the as-trained copies, which get their own column.
    keys = [f.name for f in FIELDS if f.better and f.source != "metrics_as_trained"]
    # Scores as trained beside the re-estimated ones, where re-estimation changed any of them.
    trained = any(not missing(line.get(f"{k}_as_trained")) and line.get(f"{k}_as_trained")
                  != line.get(k) for k in list(SCORES) + ["train_inference_accuracy"])
    colour = line.get("scale") == "paper"
    lines = []
    for key in keys:
        paper_key = by_ours.get(key)
        paper = line.get(f"paper_{paper_key}") if paper_key else None
        diff = (line[key] - paper) if paper_key and not missing(paper) and not missing(
            line.get(key)) else None
        if missing(line.get(key)) and missing(paper):
            continue  # a failed case measured nothing: list only what someone reported
        before = cell(fmt(line.get(f"{key}_as_trained"), key)) if trained else ""
        lines.append(f'<tr>{cell(key, "l")}{cell(fmt(line[key], key))}{before}'
                     f"{cell(fmt_paper(paper))}"
                     f"{diff_cell(diff, paper, paper_key or key, colour)}</tr>")
    headers = ["metric", "measured"] + (["as trained"] if trained else []) + ["paper", "Δ"]
    return html_table(headers, lines)


def _provenance(runs: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                superseded: Sequence[dict[str, Any]], generated_at: str) -> str:
    parts = [f'<p class="note">Report generated {escape(generated_at)}.</p>']
    for run in runs:
        parts.append(f"<h3>Run folder <code>{escape(str(run.get('path')))}</code></h3>")
        info = {k: v for k, v in run.items() if k != "path"}
        parts.append(_kv(_flat("", info)) or '<p class="note">no run.json</p>')
    fields = Counter()
    for row in rows:
        for key, value in _flat("", row.get("provenance") or {}):
            if key not in ("started_at", "finished_at") and not missing(value):
                fields[key, value if isinstance(value, str) else json.dumps(value)] += 1
    if fields:
        lines = [f'<tr>{cell(k, "l")}{cell(v, "l")}{cell(n)}</tr>'
                 for (k, v), n in sorted(fields.items())]
        parts.append("<h3>Per-case provenance (distinct values)</h3>" +
                     html_table(["field", "value", "cases"], lines))
    if superseded:
        items = "".join(f"<li><code>{escape(str(r.get('case_id')))}</code> "
                        f"[{escape(fmt(r.get('scale')))}] {escape(str(r.get('status')))} in "
                        f"<code>{escape(str(r.get('run_dir')))}</code> — replaced by the row "
                        f"from <code>{escape(str(r.get('replaced_by')))}</code>"
                        + (f" ({escape(r['replaced_because'])})"
                           if r.get("replaced_because") else "") + "</li>"
                        for r in superseded)
        parts.append(f"<h3>Superseded rows ({len(superseded)})</h3><ul>{items}</ul>")
    return "".join(parts)


def _forest(results, delta: float, title: str, relative: bool) -> str:
    """One family's forest plot: each comparison's difference and interval, the ±δ band, the
    verdict's colour and, beside an inconclusive one, the seeds that would decide it."""
    entries = []
    for r in results:
        note = ""
        if r.verdict == "inconclusive" and r.seeds_at_delta == r.seeds_at_delta:
            at_delta = ">10k" if math.isinf(r.seeds_at_delta) else f"{r.seeds_at_delta:.0f}"
            note = f"n={r.n}; {at_delta} seeds at δ"
        label = f"{r.comparison.name}: {claims.MEASURES[r.measure].label}"
        entries.append((label[:60], r.mean, r.low, r.high, r.verdict, note))
    return _img(plots.forest_png(entries, delta, title, percent=relative), f"forest plot {title}")


@dataclass(frozen=True)
class SectionContext:
    """What a study's report section gets besides its rows: the case frame of every row, the
    ``img(png, alt)`` helper that embeds a figure, and the run's equivalence margin."""

    frame: pd.DataFrame
    img: Callable[[bytes | None, str], str]
    delta: float


def study_sections(rows: Sequence[dict[str, Any]], ctx: SectionContext
                   ) -> tuple[str, list[tuple[str, str]]]:
    """Each registered study's own section, for the studies that ``rows`` have cases of, and
    their ``(anchor, title)`` for the navigation."""
    parts, anchors = [], []
    for found in study.studies():
        own = [r for r in rows if study.study_of(r.get("case_id")) is found]
        section = study.report_section(found)
        if section is None or not own:
            continue
        body = section(own, ctx)
        if body:
            anchor = f"study-{found.name}"
            parts.append(f'<h2 id="{escape(anchor)}">{escape(found.title)}</h2>{body}')
            anchors.append((escape(anchor), escape(found.title)))
    return "".join(parts), anchors


def render_report(frame: pd.DataFrame, rows: Sequence[dict[str, Any]], *,
                  runs: Sequence[dict[str, Any]], superseded: Sequence[dict[str, Any]] = (),
                  title: str | None = None) -> str:
    """The whole report as one HTML string.

    ``frame`` is :func:`table.case_frame` of ``rows`` (the merged rows, unfinished ones included);
    ``runs`` is one dict per run folder (``path`` plus its ``run.json``); ``superseded`` lists the
    rows dropped by the merge, each with ``replaced_by`` naming the folder that won.
    """
    generated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    title = title or "resnet-harness: results"
    ordered = sorted(rows, key=lambda r: case_order(r.get("case_id"), r.get("scale")))
    cases = [_case(row, pd.Series(flatten_row(row))) for row in ordered
             if row.get("status") not in PENDING]
    delta, design = claims.delta_of(runs), design_of(runs)
    sections, anchors = study_sections(rows, SectionContext(frame, _img, delta))
    body = [_header(title, frame, runs, generated_at, anchors),
            claims.html_section(rows, delta, forest=_forest, design=design), sections,
            _guard(rows), '<h2 id="results">All cases</h2>', _results(frame),
            '<h2 id="overview">Time and memory</h2>',
            f'<div class="grid">{_img(plots.resources_png(frame), "train time and peak memory per case")}</div>',
            '<h2 id="counts">Class counts of every variant (Tables 1-2 as run)</h2>',
            _counts(frame),
            '<h2 id="cases">Per case</h2>',
            "".join(cases) or '<p class="note">no finished case</p>',
            '<h2 id="provenance">Provenance</h2>',
            _provenance(runs, rows, superseded, generated_at)]
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}{cells.CSS}</style></head><body><main>"
            + "".join(body) + "</main></body></html>\n")


def _guard(rows: Sequence[dict[str, Any]]) -> str:
    # What --baseline concluded, as the terminal says it: a guard that compared nothing, or
    # compared across machines, must be as visible as one that found a regression.
    found = baseline_guard(list(rows))
    if found is None:
        return ""
    state = "failed" if found.failed else "passed"
    items = "".join(f"<li>{escape(line)}</li>" for line in found.lines)
    return (f'<h2 id="baseline">Baseline <span class="badge b-{state}">{state}</span></h2>'
            f"<ul>{items}</ul>")


def claims_page(rows: Sequence[dict[str, Any]], delta: float, sources: Sequence[str] = (),
                design=None) -> str:
    """A page of the claims, their forest plots and comparisons alone (``resnet_harness claims``)."""
    generated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    head = (f"<h1>Claims from saved rows</h1><p class=\"note\">{len(rows)} rows from "
            + ", ".join(f"<code>{escape(s)}</code>" for s in sources)
            + f" · generated {escape(generated_at)}</p>")
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>claims</title><style>{CSS}{cells.CSS}</style></head><body><main>"
            + head + claims.html_section(rows, delta, forest=_forest, design=design)
            + "</main></body></html>\n")


def write_report(path: Path | str, frame: pd.DataFrame, rows: Sequence[dict[str, Any]], *,
                 runs: Sequence[dict[str, Any]], superseded: Sequence[dict[str, Any]] = (),
                 title: str | None = None) -> Path:
    """Render the report (see :func:`render_report`) and write it to ``path``."""
    path = Path(path)
    atomic_write_bytes(path, render_report(frame, rows, runs=runs, superseded=superseded,
                                           title=title).encode("utf-8"))
    path.chmod(0o644)  # the atomic write leaves a private 0600 temp file; a report is shared
    return path
