"""The report's long-tail section: method x profile tables, per-class recall against class size,
and the published CIFAR-10-LT figures beside ours (a different network and schedule).

Returns an HTML fragment; ``html.render_report`` includes it when long-tail rows exist.
Intervals and verdicts per comparison come from the seeds/statistics work (issue 11): here each
method's difference from cross-entropy is a point value of one seed.
"""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

from resnet_harness import longtail
from resnet_harness.report import plots
from resnet_harness.schema import as_number, value

METRICS = (("balanced_accuracy", "balanced acc."), ("tail_accuracy", "tail acc."),
           ("head_accuracy", "head acc."), ("f1_macro", "macro F1"))


def _rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if str(r.get("case_id", "")).startswith("longtail-")
            and r.get("status") in ("passed", "failed")]


def _num(row: dict[str, Any] | None, name: str) -> float | None:
    return None if row is None else as_number(value(row, name))


def _fmt(number: float | None, signed: bool = False) -> str:
    if number is None:
        return "—"
    return f"{number:+.3f}" if signed else f"{number:.3f}"


def _table(dataset: str, scale: str, by_id: dict[str, dict[str, Any]]) -> str:
    profiles = [p for p in longtail.PROFILES
                if any(f"longtail-{dataset}-{p}-{m}" in by_id for m in longtail.METHODS)]
    head = "<tr><th class=\"l\">method</th>" + "".join(
        f'<th colspan="{len(METRICS)}">{escape(p)}</th>' for p in profiles) + "</tr>"
    sub = "<tr><th></th>" + "".join(f"<th>{escape(label)}</th>" for _, label in METRICS) \
        * len(profiles) + "</tr>"
    lines = []
    for method in longtail.METHODS:
        cells = [f'<td class="l">{escape(method)}</td>']
        for profile in profiles:
            row = by_id.get(f"longtail-{dataset}-{profile}-{method}")
            base = by_id.get(f"longtail-{dataset}-{profile}-ce")
            for name, _ in METRICS:
                mine, ref = _num(row, name), _num(base, name)
                text = _fmt(mine)
                if method != "ce" and mine is not None and ref is not None:
                    text += f' <span class="note">({_fmt(mine - ref, signed=True)})</span>'
                cells.append(f"<td>{text}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<h3>{escape(dataset)}, {escape(scale)} scale</h3><table><thead>{head}{sub}"
            f"</thead><tbody>{''.join(lines)}</tbody></table>")


def _published(by_id: dict[str, dict[str, Any]]) -> str:
    lines = []
    for method, theirs, figure, source in longtail.PUBLISHED_CIFAR10_EXP100:
        ours = _num(by_id.get(f"longtail-cifar10-exp100-{method}"), "balanced_accuracy")
        lines.append(f'<tr><td class="l">{escape(theirs)}</td><td>{figure:.1f}</td>'
                     f'<td class="l">{escape(source)}</td><td class="l">{escape(method)}</td>'
                     f"<td>{'—' if ours is None else f'{100 * ours:.1f}'}</td></tr>")
    return ('<h3>Published CIFAR-10-LT (exponential, ρ = 100) beside ours</h3>'
            '<p class="warn">The published figures are for <b>ResNet-32 trained from scratch for '
            '200 epochs on the full long-tailed set</b>; ours are ResNet50 at this run\'s scale '
            'and schedule. They are shown side by side for orientation, not compared.</p>'
            "<table><thead><tr><th class=\"l\">published method</th><th>balanced acc. %</th>"
            "<th class=\"l\">source</th><th class=\"l\">our arm</th><th>ours %</th></tr>"
            f"</thead><tbody>{''.join(lines)}</tbody></table>")


def _plots(dataset: str, by_id: dict[str, dict[str, Any]]) -> list[bytes]:
    out = []
    for profile in longtail.PROFILES:
        lines = []
        for method in longtail.METHODS:
            row = by_id.get(f"longtail-{dataset}-{profile}-{method}")
            recall = (((row or {}).get("metrics") or {}).get("per_class") or {}).get("recall")
            if row and recall and row.get("train_counts"):
                lines.append((method, list(row["train_counts"]), list(recall)))
        png = plots.longtail_recall_png(lines, f"{dataset} {profile}: recall vs class size")
        if png:
            out.append(png)
    return out


def section(rows: Sequence[dict[str, Any]], img=None) -> str:
    """The long-tail section as an HTML fragment; "" when ``rows`` hold no long-tail row.

    ``img(png, alt)`` turns PNG bytes into an ``<img>`` tag (the report's own helper).
    """
    rows = _rows(rows)
    if not rows:
        return ""
    parts = ['<p class="note">Each cell: the figure, and in brackets its difference from '
             'cross-entropy (ce) on the same data set, profile, scale and seed (one seed: a point '
             'value, no interval). Head / middle / tail: the 3 / 4 / 3 classes with the most / '
             'middle / fewest training images. Balanced accuracy is on the balanced test set.</p>']
    for scale in sorted({str(r.get("scale")) for r in rows}):
        for dataset in sorted({str(r.get("dataset")) for r in rows}):
            by_id = {r["case_id"]: r for r in rows
                     if r.get("scale") == scale and r.get("dataset") == dataset}
            if not by_id:
                continue
            parts.append(_table(dataset, scale, by_id))
            if dataset == "cifar10" and any("-exp100-" in k for k in by_id):
                parts.append(_published(by_id))
            if img is not None:
                parts.append('<div class="grid">' + "".join(
                    img(png, f"{dataset} per-class recall against class size")
                    for png in _plots(dataset, by_id)) + "</div>")
    return "".join(parts)
