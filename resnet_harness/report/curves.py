"""Learning curves as inline SVG: a case's loss and accuracy per epoch, and one overlay of every
case of a paper table.

Hand-written SVG rather than matplotlib: a case's two panels of 20 epochs are 2.3 KB of SVG
written in 0.4 ms, against 11.0 KB as a base64 PNG at 60 dpi (15.0 KB at 80 dpi) drawn in about
0.3 s, which matters when every case of a run gets one (``bench/report_scale.py`` prints both).
Polylines cost bytes per epoch, not per pixel, so a curve of many epochs is thinned to
:data:`MAX_POINTS`.

A history is a row's ``history``: ``{name: [value per epoch]}``, ``None`` for a non-finite
value, with ``val_<name>`` beside ``<name>`` when the case had a validation set.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from html import escape
from typing import Any, Mapping, Sequence

from resnet_harness.report.cells import MEASURED

PANELS = ("loss", "accuracy")  # the figures drawn, when the history has them
SEED_LINES = 5  # up to this many seeds each seed is a line; more become the mean and a band
MAX_POINTS = 200  # per line; longer histories are thinned (the last epoch always kept)
PALETTE = ("#2f6db5", "#e07b20", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
# The page's style sheet sets the text once rather than on every label.
CSS = "svg.curves text{font:9px system-ui,sans-serif;fill:#444}svg.curves .t{font-weight:600}\n"

Series = list  # values per epoch, None where missing


def has_curve(history: Any) -> bool:
    """Whether ``history`` (a row's ``history`` value) holds any panel's figures."""
    return isinstance(history, Mapping) and any(
        isinstance(history.get(n), list) and any(_finite(v) for v in history[n]) for n in PANELS)


def mean_curve(histories: Sequence[Mapping[str, Any]]) -> dict[str, Series]:
    """Per name, the mean over ``histories`` epoch by epoch (of the histories that have a
    finite value at that epoch; None where none has)."""
    names = {n for h in histories for n in h if isinstance(h.get(n), list)}
    return {n: [s[0] for s in _stats([h.get(n) or [] for h in histories])] for n in names}


def case_svg(histories: Sequence[Mapping[str, Any]], width: int = 190,
             height: int = 118) -> str:
    """One case's learning curves: a panel per figure of :data:`PANELS`, training solid and
    validation dashed. One history per seed: up to :data:`SEED_LINES` seeds each draw a line,
    more draw their mean with a band of ±1 standard deviation. Empty when nothing to draw."""
    histories = [h for h in histories if has_curve(h)]
    panels = [n for n in PANELS if any(_has(h, n) for h in histories)]
    if not panels:
        return ""
    parts = []
    for index, name in enumerate(panels):
        lines = []
        for key, dashed in ((name, False), (f"val_{name}", True)):
            per_seed = [h.get(key) or [] for h in histories if _has(h, key)]
            if not per_seed:
                continue
            if len(per_seed) <= SEED_LINES:
                lines += [_Line(s, MEASURED, dashed, 0.8 if len(per_seed) > 1 else 1.4)
                          for s in per_seed]
            else:
                stats = _stats(per_seed)
                lines.append(_Line([m for m, _, _ in stats], MEASURED, dashed, 1.4,
                                   band=[(lo, hi) for _, lo, hi in stats]))
        parts.append(_panel(name, lines, index * width, width, height))
    what = (f"mean of {len(histories)} seeds, band ±1 sd" if len(histories) > SEED_LINES
            else f"{len(histories)} seeds" if len(histories) > 1 else "one run")
    label = f"learning curves per epoch ({what}; dashed: validation)"
    return _svg(parts, width * len(panels), height, label)


def overlay_svg(cases: Sequence[tuple[str, Mapping[str, Any]]], width: int = 270,
                height: int = 170) -> str:
    """Several cases' curves on one panel per figure: ``cases`` is ``(label, history)`` pairs
    (a multi-seed case's :func:`mean_curve`), each drawn in its colour of :data:`PALETTE` in
    order, validation dashed. Empty when no case has a curve."""
    cases = [(label, h) for label, h in cases if has_curve(h)]
    panels = [n for n in PANELS if any(_has(h, n) for _, h in cases)]
    if not panels:
        return ""
    parts = []
    for index, name in enumerate(panels):
        lines = [_Line(h[key], color(k), dashed, 1.1)
                 for k, (_, h) in enumerate(cases)
                 for key, dashed in ((name, False), (f"val_{name}", True)) if _has(h, key)]
        parts.append(_panel(name, lines, index * width, width, height))
    label = "learning curves of " + ", ".join(label for label, _ in cases)
    return _svg(parts, width * len(panels), height, label)


def color(index: int) -> str:
    """The overlay colour of the ``index``-th case (the palette repeats after ten)."""
    return PALETTE[index % len(PALETTE)]


@dataclass
class _Line:
    values: Series
    color: str
    dashed: bool
    weight: float  # stroke width, px
    band: list[tuple[float | None, float | None]] | None = None  # (low, high) per epoch


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _has(history: Mapping[str, Any], key: str) -> bool:
    values = history.get(key)
    return isinstance(values, list) and any(_finite(v) for v in values)


def _stats(per_seed: Sequence[Series]) -> list[tuple[float | None, float | None, float | None]]:
    """Per epoch ``(mean, mean - sd, mean + sd)`` over the seeds with a finite value there."""
    out = []
    for epoch in range(max((len(s) for s in per_seed), default=0)):
        found = [float(s[epoch]) for s in per_seed if epoch < len(s) and _finite(s[epoch])]
        if not found:
            out.append((None, None, None))
            continue
        mean = statistics.fmean(found)
        sd = statistics.stdev(found) if len(found) > 1 else 0.0
        out.append((mean, mean - sd, mean + sd))
    return out


def _thinned(count: int) -> list[int]:
    if count <= MAX_POINTS:
        return list(range(count))
    step = count / (MAX_POINTS - 1)
    return sorted({min(count - 1, round(k * step)) for k in range(MAX_POINTS)} | {count - 1})


def _panel(name: str, lines: Sequence[_Line], left: int, width: int, height: int) -> str:
    """One panel at ``left``: axes, a few ticks, the title and the lines (bands first)."""
    x0, x1, y0, y1 = left + 34, left + width - 8, height - 18, 20
    epochs = max((len(line.values) for line in lines), default=1)
    values = [v for line in lines for v in line.values if _finite(v)]
    values += [v for line in lines for pair in (line.band or ()) for v in pair if _finite(v)]
    if "acc" in name:  # a share: the whole 0..1 range tells how far from perfect it is
        low, high = 0.0, 1.0
    else:
        low, high = min(0.0, min(values, default=0.0)), max(values, default=1.0)
    high = high if high > low else low + 1.0
    def x(epoch: int) -> float:
        return x0 + (x1 - x0) * (epoch / (epochs - 1) if epochs > 1 else 0.5)

    def y(value: float) -> float:
        return y0 - (y0 - y1) * (min(max(value, low), high) - low) / (high - low)

    out = [f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fafbfc" '
           'stroke="#ccd1d7" stroke-width="0.6"/>',
           f'<text x="{left + 4}" y="10" class="t">{escape(name)}</text>']
    for value in (low, (low + high) / 2, high):
        out.append(f'<text x="{x0 - 3}" y="{y(value) + 3:.1f}" text-anchor="end">'
                   f"{_tick(value)}</text>")
    if epochs == 1:
        # One epoch is one point in the middle: its tick and the axis label are one text, not
        # two drawn over each other.
        out.append(f'<text x="{x(0):.1f}" y="{y0 + 11}" text-anchor="middle">epoch 1 of 1</text>')
    else:
        for epoch in (0, epochs - 1):
            out.append(f'<text x="{x(epoch):.1f}" y="{y0 + 11}" text-anchor="middle">'
                       f"{epoch + 1}</text>")
        out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{y0 + 11}" text-anchor="middle">'
                   "epoch</text>")
    keep = _thinned(epochs)
    for line in lines:
        if line.band:
            out += _band(line, keep, x, y)
    for line in lines:
        out += _path(line, keep, x, y)
    if epochs == 1:  # a lone point's value, written beside it (no line shows where it lies)
        for rank, line in enumerate(l for l in lines if l.values and _finite(l.values[0])):
            out.append(f'<text x="{x(0) + 6:.1f}" y="{y(line.values[0]) + 3 + 9 * rank:.1f}" '
                       f'fill="{line.color}">{_tick(line.values[0])}</text>')
    return "".join(out)


def _band(line: _Line, keep: Sequence[int], x, y) -> list[str]:
    pieces = []
    for run in _runs(keep, lambda e: e < len(line.band) and _finite(line.band[e][0])):
        upper = [f"{x(e):.1f},{y(line.band[e][1]):.1f}" for e in run]
        lower = [f"{x(e):.1f},{y(line.band[e][0]):.1f}" for e in reversed(run)]
        pieces.append(f'<polygon points="{" ".join(upper + lower)}" fill="{line.color}" '
                      'fill-opacity="0.18"/>')
    return pieces


def _path(line: _Line, keep: Sequence[int], x, y) -> list[str]:
    """The line, broken where a value is missing; a lone point is a dot."""
    style = (f'stroke="{line.color}" stroke-width="{line.weight}" fill="none"'
             + (' stroke-dasharray="4 2"' if line.dashed else ""))
    pieces, path = [], []
    for run in _runs(keep, lambda e: e < len(line.values) and _finite(line.values[e])):
        points = [f"{x(e):.1f},{y(line.values[e]):.1f}" for e in run]
        if len(points) == 1:
            px, py = points[0].split(",")
            pieces.append(f'<circle cx="{px}" cy="{py}" r="3" fill="{line.color}"/>')
        else:
            path.append(f"M{points[0]}L" + " ".join(points[1:]))
    if path:
        pieces.append(f'<path d="{"".join(path)}" {style}/>')
    return pieces


def _runs(keep: Sequence[int], present) -> list[list[int]]:
    """The kept epochs in runs of consecutive ones where ``present(epoch)``: a missing value
    breaks the line rather than being bridged."""
    runs: list[list[int]] = [[]]
    for epoch in keep:
        if present(epoch):
            runs[-1].append(epoch)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _tick(value: float) -> str:
    return f"{value:.2g}" if abs(value) < 10 else f"{value:.0f}"


def _svg(parts: Sequence[str], width: int, height: int, label: str) -> str:
    # No xmlns: inline SVG in HTML needs none, and the report holds no address.
    return (f'<svg class="curves" width="{width}" height="{height}" viewBox="0 0 {width} '
            f'{height}" role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
            + "".join(parts) + "</svg>")
