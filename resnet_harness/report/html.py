"""The self-contained ``report.html``: inline CSS, images as base64 data URIs or inline SVG, no
address outside the file, every piece of text escaped. The per-case sections and learning-curve
overlays are :mod:`resnet_harness.report.cases`; numbers and cells, :mod:`.markup`."""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from typing import Any, Callable, Sequence

import pandas as pd

from resnet_harness import study
from resnet_harness.analysis import claims
from resnet_harness.report import cases, cells, claims_section, curves, plots
from resnet_harness.analysis.table import NUM_CLASSES, PENDING
from resnet_harness.report.markup import (LABELS, anchor, cell, diff_cell, flat_items, fmt,
                                          fmt_paper, html_table, kv_table, label, missing)
from resnet_harness.storage.schema import SCORES

# The studies' report sections format through this module (``html.cell``, ``html.fmt``, ...).
__all__ = ["LABELS", "SectionContext", "cell", "claims_page", "diff_cell", "fmt", "fmt_paper",
           "html_table", "label", "missing", "render_report", "study_sections"]

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
STYLE = CSS + cells.CSS + cases.CSS + curves.CSS  # the page's whole style sheet


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
            generated_at: str, sections: Sequence[tuple[str, str]] = (),
            learning: bool = False) -> str:
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
    nav = (("claims", "Claims"), *sections, ("results", "All cases"), ("overview", "Plots"),
           *((("curves", "Learning curves"),) if learning else ()), ("counts", "Class counts"),
           ("cases", "Per case"), ("provenance", "Provenance"))
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
        target = (status if status in PENDING  # no section of its own
                  else anchor(line["case_id"], line["scale"]))
        link = f'<a href="#{target}">{escape(str(line["case_id"]))}</a>'
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
    columns = ([f"train_count_c{k}" for k in range(NUM_CLASSES)]
               + ["train_samples", "test_samples"])
    # A case's seeds that trained on the same counts share one line (of 100 seeds, 100 lines
    # would say the same thing).
    same: dict[tuple, list[pd.Series]] = {}
    for _, line in frame[~frame["status"].isin(PENDING)].iterrows():
        text = "" if missing(line["reduced_classes"]) else str(line["reduced_classes"])
        key = (study.split_seed(str(line["case_id"]))[0], line["scale"], text,
               *(fmt(line[c]) for c in columns))
        same.setdefault(key, []).append(line)
    lines = []
    for (base, scale, text, *_), group in same.items():
        reduced = {int(k) for k in text.split() if k.isdigit()}
        name = base + f" ({len(group)} seeds)" if len(group) > 1 else str(group[0]["case_id"])
        cells = [cell(name, "l"), cell(fmt(scale), "l"),
                 cell(" ".join(str(k) for k in sorted(reduced)) or "—")]
        cells += [cell(fmt(group[0][f"train_count_c{k}"]), "red" if k in reduced else "")
                  for k in range(NUM_CLASSES)]
        cells += [cell(fmt(group[0]["train_samples"])), cell(fmt(group[0]["test_samples"]))]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    printed = ('<p class="note">The training sets each case really used (highlighted: '
               "reduced classes).</p>")
    return printed + html_table(headers, lines)


def _recalibrated(frame: pd.DataFrame) -> bool:
    """Whether any row's scores differ before and after BatchNorm re-estimation."""
    pairs = [(frame[name], frame.get(f"{name}_as_trained")) for name in SCORES]
    return any(trained is not None and bool(((after - trained).abs() > 0).any())
               for after, trained in pairs)


def _provenance(runs: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                superseded: Sequence[dict[str, Any]], generated_at: str) -> str:
    parts = [f'<p class="note">Report generated {escape(generated_at)}.</p>']
    for run in runs:
        parts.append(f"<h3>Run folder <code>{escape(str(run.get('path')))}</code></h3>")
        info = {k: v for k, v in run.items() if k != "path"}
        parts.append(kv_table(flat_items("", info)) or '<p class="note">no run.json</p>')
    fields = Counter()
    for row in rows:
        for key, value in flat_items("", row.get("provenance") or {}):
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


def _forest(results, delta: float, title: str, relative: bool, margins=None) -> str:
    """One family's forest plot: each comparison's difference and interval at its verdict's
    level, the ±δ band, a check's own margin on its row (``margins``: by comparison key and
    figure), the verdict's colour and, under an inconclusive one, the seeds that would decide
    it."""
    margins = margins or {}
    entries = []
    for r in results:
        note = ""
        if r.verdict == "inconclusive" and r.seeds_at_delta == r.seeds_at_delta:
            at_delta = ">10k" if math.isinf(r.seeds_at_delta) else f"{r.seeds_at_delta:.0f}"
            note = f"n={r.n}; {at_delta} seeds at δ"
        # A score's difference lies in [-1, 1]: a wider interval (a strict early look) is drawn
        # as the whole range, not as a line that squeezes every other one to a dot.
        low, high = (r.low, r.high) if relative else (max(r.low, -1.0), min(r.high, 1.0))
        entries.append(plots.ForestEntry(
            r.comparison.name, claims.MEASURES[r.measure].label, r.mean, low, high,
            r.verdict, claims.level_text(r.alpha) if math.isfinite(r.low) else "", note,
            margins.get((*r.comparison.key, r.measure))))
    return _img(plots.forest_png(entries, delta, title, percent=relative), f"forest plot {title}")


@dataclass(frozen=True)
class SectionContext:
    """What a study's report section gets besides its rows: the case frame of every row, the
    ``img(png, alt)`` helper that embeds a figure, the run's equivalence margin and the
    comparison results the report evaluated once (``results``: every registered comparison
    of the rows, as ``claims.csv`` and the claims section have them)."""

    frame: pd.DataFrame
    img: Callable[[bytes | None, str], str]
    delta: float
    results: tuple = ()


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
                  runs: Sequence[dict[str, Any]], analysis: claims.Analysis, guard=None,
                  superseded: Sequence[dict[str, Any]] = (), title: str | None = None) -> str:
    """The whole report as one HTML string.

    ``frame`` is :func:`table.case_frame` of ``rows`` (the merged rows, unfinished ones included);
    ``runs`` is one dict per run folder (``path`` plus its ``run.json``); ``analysis`` the claims
    and comparisons of ``rows`` (:func:`claims.analyse`), shared by every section; ``guard``
    the baseline's verdict (``analysis.baseline.guard``, as the terminal shows it); ``superseded``
    lists the rows dropped by the merge, each with ``replaced_by`` naming the folder that won.
    """
    generated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    title = title or "resnet-harness: results"
    groups = cases.case_groups(rows)
    learning = cases.curves_section(groups)
    sections, anchors = study_sections(rows, SectionContext(frame, _img, analysis.delta,
                                                            analysis.results))
    body = [_header(title, frame, runs, generated_at, anchors, bool(learning)),
            claims_section.html_section(rows, analysis, forest=_forest), sections,
            _guard(guard), '<h2 id="results">All cases</h2>', _results(frame),
            '<h2 id="overview">Time and memory</h2>',
            f'<div class="grid">{_img(plots.resources_png(frame), "train time and peak memory per case")}</div>',
            '<h2 id="curves">Learning curves</h2>' + learning if learning else "",
            '<h2 id="counts">Class counts of every variant (Tables 1-2 as run)</h2>',
            _counts(frame),
            '<h2 id="cases">Per case</h2>',
            "".join(map(cases.render_group, groups)) or '<p class="note">no finished case</p>',
            '<h2 id="provenance">Provenance</h2>',
            _provenance(runs, rows, superseded, generated_at)]
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
            + "".join(body) + "</main></body></html>\n")


def _guard(found) -> str:
    # What --baseline concluded, as the terminal says it: a guard that compared nothing, or
    # compared across machines, must be as visible as one that found a regression.
    if found is None:
        return ""
    state = "failed" if found.failed else "passed"
    items = "".join(f"<li>{escape(line)}</li>" for line in found.lines)
    return (f'<h2 id="baseline">Baseline <span class="badge b-{state}">{state}</span></h2>'
            f"<ul>{items}</ul>")


def claims_page(rows: Sequence[dict[str, Any]], analysis: claims.Analysis,
                sources: Sequence[str] = ()) -> str:
    """A page of the claims, their forest plots and comparisons alone (``resnet_harness claims``)."""
    generated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    head = (f"<h1>Claims from saved rows</h1><p class=\"note\">{len(rows)} rows from "
            + ", ".join(f"<code>{escape(s)}</code>" for s in sources)
            + f" · generated {escape(generated_at)}</p>")
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>claims</title><style>{CSS}{cells.CSS}</style></head><body><main>"
            + head + claims_section.html_section(rows, analysis, forest=_forest)
            + "</main></body></html>\n")
