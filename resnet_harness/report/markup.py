"""The report's small pieces of markup: numbers as shown, table cells and tables, anchors, and
nested settings as key/value tables. Every piece of text is escaped here."""

from __future__ import annotations

import json
import math
import re
from html import escape
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from resnet_harness.analysis.table import RESOURCE_KEYS
from resnet_harness.storage.schema import FIELDS_BY_NAME, PAPER_METRIC

LABELS = {"f1": "F1 score", "precision": "Precision (macro)", "recall": "Recall (macro)",
          "accuracy": "Accuracy", "roc_auc": "ROC AUC (OvR macro)",
          "train_time_s": "Training time (s; ours: steady state, first step left out)",
          "test_time_s": "Testing time (s)",
          "memory_mb": "Memory (MB; ours: resident memory the case added)", "balanced": "Balanced",
          "imbalanced": "Imbalanced", "cifar10": "CIFAR-10", "fashion_mnist": "Fashion-MNIST"}


def missing(value: Any) -> bool:
    """Whether ``value`` is no figure at all: None, NaN or pandas' NA."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def fmt(value: Any, key: str = "") -> str:
    """A measured number as shown: 4 decimals for scores, 2 for seconds and megabytes."""
    if missing(value):
        return "—"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if not isinstance(value, (float, np.floating)):
        return str(value)
    return f"{value:.2f}" if resource(key) else f"{value:.4f}"


def fmt_paper(value: Any) -> str:
    """A paper figure exactly as printed (shortest decimal form: 0.8577, 1496.23, 3.2)."""
    return "—" if missing(value) else np.format_float_positional(float(value), trim="-")


def resource(key: str) -> bool:
    """Whether ``key`` (a paper key such as ``memory_mb`` or our field name) is a resource
    figure (time, memory) rather than a 0..1 score: shown with 2 decimals, lower is better."""
    field = FIELDS_BY_NAME.get(PAPER_METRIC.get(key, key))
    return key in RESOURCE_KEYS or (field is not None
                                    and field.kind not in ("score", "group_score"))


def diff_cell(diff: Any, paper: Any, key: str, colour: bool = True) -> str:
    """A Δ cell; ``colour`` only where the two figures describe the same work (paper scale):
    a smaller run is not "better" or "worse" than the paper, only smaller."""
    if missing(diff):
        return '<td class="none">—</td>'
    if resource(key):
        close, better = abs(diff) <= 0.1 * abs(paper), diff < 0
    else:
        close, better = abs(diff) <= 0.02, diff > 0
    css = "close" if close else ("better" if better else "worse")
    css = css if colour else "plain"
    text = f"{diff:+.2f}" if resource(key) else f"{diff:+.4f}"
    return f'<td class="{css}">{escape(text)}</td>'


def cell(text: Any, css: str = "", raw: bool = False) -> str:
    """A ``<td>`` of ``text``, escaped unless ``raw`` (markup built here)."""
    body = str(text) if raw else escape(str(text))
    return f'<td class="{css}">{body}</td>' if css else f"<td>{body}</td>"


def html_table(headers: Sequence[str], rows: Iterable[str], head_html: str | None = None) -> str:
    """A table of ``rows`` (``<tr>`` markup) under ``headers``, or under ``head_html``."""
    head = head_html or "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def anchor(*parts: Any) -> str:
    """The element id of a case's section (or its seed's line): ``case-`` and the parts."""
    text = "-".join(str(p) for p in parts if not missing(p) and p != "")
    return "case-" + re.sub(r"[^A-Za-z0-9_.-]", "-", text)


def label(value: Any) -> str:
    """The printed name of a metric, balance or data set key (:data:`LABELS`), else itself."""
    return LABELS.get(str(value), str(value))


def flat_items(prefix: str, value: Any) -> list[tuple[str, Any]]:
    """Nested dicts as ``(dotted.key, value)`` pairs."""
    if isinstance(value, dict):
        return [item for k, v in value.items()
                for item in flat_items(f"{prefix}.{k}" if prefix else str(k), v)]
    return [(prefix, value)]


def kv_table(items: Iterable[tuple[str, Any]]) -> str:
    """A key/value table of ``items`` (non-strings as JSON); empty without items."""
    lines = [f'<tr><td class="l"><code>{escape(k)}</code></td><td class="l">'
             f"{escape(v if isinstance(v, str) else json.dumps(v))}</td></tr>" for k, v in items]
    return html_table(["key", "value"], lines) if lines else ""

