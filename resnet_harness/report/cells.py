"""Per-case figures as HTML: the confusion-matrix heat map and the per-class recall bars.

They are tables with inline colours rather than images: a report of 21 cases drew 42 matplotlib
PNGs in about 10 s (and pytest-html extras another 5 s), a large share of a 4-minute smoke run;
the tables take milliseconds, keep their numbers selectable and need no image decoder.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

# matplotlib's "Blues" colour map at 0 and 1; shades in between are interpolated linearly.
_LIGHT, _DARK = (0xF7, 0xFB, 0xFF), (0x08, 0x30, 0x6B)
MEASURED, REDUCED = "#2f6db5", "#e07b20"

CSS = """
table.cm td{width:2.4em;height:1.9em;padding:0;text-align:center;vertical-align:middle;
 font-size:11px;border:1px solid #fff}
table.cm th{font-size:11px;font-weight:500;background:none;border:none;padding:0 4px}
table.cm th.col{writing-mode:vertical-rl;transform:rotate(180deg);height:5.5em;text-align:left}
table.cm caption,table.recall caption{font-size:12px;color:#444;caption-side:top;text-align:left}
table.recall td{border:none;padding:1px 4px;font-size:11.5px}
table.recall .track{width:180px;background:#eef1f5;height:12px;position:relative}
table.recall .bar{height:12px}table.recall .mean{position:absolute;top:-2px;bottom:-2px;
 border-left:2px dashed #444}
"""


def _shade(share: float) -> str:
    share = min(max(share, 0.0), 1.0)
    return "#" + "".join(f"{round(a + (b - a) * share):02x}" for a, b in zip(_LIGHT, _DARK))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def confusion_html(matrix: Sequence[Sequence[float]], class_names: Sequence[str],
                   title: str = "confusion matrix (shade: share of the true class)") -> str:
    """Heat map of a confusion matrix: rows are true classes, columns predicted ones; the shade
    is the cell's share of its row, the text its count (empty when 0). A matrix of means (over
    seeds) prints its counts with one decimal."""
    counts = [[float(v) for v in row] for row in matrix]
    names = [escape(str(n)) for n in class_names] or [str(k) for k in range(len(counts))]
    head = "".join(f'<th class="col">{n}</th>' for n in names)
    lines = []
    for i, row in enumerate(counts):
        total = sum(row) or 1
        cells = []
        for value in row:
            share = value / total
            color = "#fff" if share > 0.6 else "#222"
            text = f"{value:.0f}" if value.is_integer() else f"{value:.1f}"
            cells.append(f'<td style="background:{_shade(share)};color:{color}" '
                         f'title="{text} ({share:.0%})">{text if value else ""}</td>')
        name = names[i] if i < len(names) else str(i)
        lines.append(f'<tr><th class="l">{name}</th>{"".join(cells)}</tr>')
    return (f'<table class="cm"><caption>{escape(title)}<br>rows: true, columns: predicted'
            f'</caption><tr><th></th>{head}</tr>{"".join(lines)}</table>')


def recall_html(recall: Sequence[float | None], class_names: Sequence[str],
                reduced: Sequence[int] = ()) -> str:
    """Per-class recall as bars; reduced classes in orange, the macro mean as a dashed line."""
    values = [float(v) if _finite(v) else None for v in recall]
    known = [v for v in values if v is not None]
    mean = sum(known) / len(known) if known else None
    marker = (f'<div class="mean" style="left:{100 * mean:.1f}%"></div>'
              if mean is not None else "")
    lines = []
    for k, value in enumerate(values):
        name = escape(str(class_names[k])) if k < len(class_names) else str(k)
        color = REDUCED if k in set(reduced) else MEASURED
        width = 100 * (value or 0.0)
        bar = (f'<div class="track">{marker}<div class="bar" style="width:{width:.1f}%;'
               f'background:{color}"></div></div>')
        text = "–" if value is None else f"{value:.3f}"
        lines.append(f'<tr><td class="l">{name}</td><td>{bar}</td><td>{text}</td></tr>')
    caption = "per-class recall" + (f", dashed: macro {mean:.3f}" if mean is not None else "")
    if reduced:
        caption += ", orange: reduced classes"
    return f'<table class="recall"><caption>{escape(caption)}</caption>{"".join(lines)}</table>'
