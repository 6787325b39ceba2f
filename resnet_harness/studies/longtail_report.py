"""The long-tail study's report section: method x profile tables, per-class recall against class
size, and the published CIFAR-10-LT figures beside ours; one table per recipe (study, literature).

Returns an HTML fragment; the report includes it when long-tail rows exist.
Each cell is a method's mean over seeds and, for a method other than cross-entropy, its paired
difference from cross-entropy with the 95% t interval and the verdict of ``comparisons.compare``
(the same statistics as the paper's comparisons, Holm-corrected per data set and profile).
"""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

from resnet_harness.analysis.comparisons import Result, case_summaries, compare
from resnet_harness.report import plots
from resnet_harness.studies import longtail

LABELS = {"balanced_accuracy": "balanced acc.", "tail_accuracy": "tail acc.",
          "head_accuracy": "head acc.", "f1_macro": "macro F1"}
METRICS = tuple((name, LABELS[name]) for name in longtail.MEASURES)
_VERDICT_CLASS = {"better": "better", "worse": "worse", "equivalent": "close"}


def _rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if str(r.get("case_id", "")).startswith("longtail-")
            and r.get("status") in ("passed", "failed")]


def _fmt(number: float | None, signed: bool = False) -> str:
    if number is None or number != number:
        return "—"
    return f"{number:+.3f}" if signed else f"{number:.3f}"


def _cell(mean: float | None, n: int, result: Result | None) -> str:
    text = _fmt(mean) + (f' <span class="note">n={n}</span>' if n > 1 else "")
    css = ""
    if result is not None and result.n:
        interval = (f" [{_fmt(result.low, True)}, {_fmt(result.high, True)}]"
                    if result.n >= 2 else "")
        text += (f'<br><span class="note">{_fmt(result.mean, True)}{interval} '
                 f"{escape(result.verdict)}</span>")
        css = _VERDICT_CLASS.get(result.verdict, "")
    return f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>"


def _suffix(recipe: str) -> str:
    return "-lit" if recipe == "literature" else ""


def _table(dataset: str, scale: str, rows: list[dict[str, Any]], summaries, delta: float,
           recipe: str = "study") -> str:
    results = {(r.comparison.treatment, r.measure): r
               for r in compare(rows, delta, [c for c in longtail.COMPARISONS
                                              if c.treatment in summaries or c.baseline in summaries])}
    end = _suffix(recipe)
    profiles = [p for p in longtail.PROFILES
                if any(f"longtail-{dataset}-{p}-{m}{end}" in summaries for m in longtail.METHODS)]
    head = "<tr><th class=\"l\">method</th>" + "".join(
        f'<th colspan="{len(METRICS)}">{escape(p)}</th>' for p in profiles) + "</tr>"
    sub = "<tr><th></th>" + "".join(f"<th>{escape(label)}</th>" for _, label in METRICS) \
        * len(profiles) + "</tr>"
    lines = []
    for method in longtail.METHODS:
        cells = [f'<td class="l">{escape(method)}</td>']
        for profile in profiles:
            case = f"longtail-{dataset}-{profile}-{method}{end}"
            for name, _ in METRICS:
                summary = summaries.get(case, {}).get(name)
                cells.append(_cell(summary.mean if summary else None,
                                   summary.n if summary else 0, results.get((case, name))))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    title = (f"{dataset}, {scale} scale" + (", literature recipe (ResNet-32, LDAM-DRW's "
                                            "schedule, reference losses)"
                                            if recipe == "literature" else ""))
    return (f"<h3>{escape(title)}</h3><table><thead>{head}{sub}"
            f"</thead><tbody>{''.join(lines)}</tbody></table>")


def _seed_mean(rows: Sequence[dict[str, Any]], case: str, key: str) -> float | None:
    """Mean over the seeds of ``case`` of a top-level row figure (None where none has it)."""
    found = [r.get(key) for r in rows if str(r.get("case_id", "")).split("-seed")[0] == case]
    found = [v for v in found if isinstance(v, (int, float)) and v == v]
    return float(sum(found) / len(found)) if found else None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _published(summaries, rows, recipe: str = "study") -> str:
    lines, end = [], _suffix(recipe)
    for pub in longtail.PUBLISHED_CIFAR10_EXP100:
        case = f"longtail-cifar10-exp100-{pub.method}{end}"
        summary = summaries.get(case, {}).get("balanced_accuracy")
        last = None if summary is None or summary.mean != summary.mean else summary.mean
        by_val = _seed_mean(rows, case, "test_accuracy_at_validation_best")
        by_test = _seed_mean(rows, case, "test_accuracy_best_epoch")
        if recipe == "literature" and pub.comparable and by_test is not None:
            versus = f"{100 * by_test - pub.figure:+.1f} (ours best test epoch, as published)"
        elif recipe == "literature" and pub.comparable:
            versus = "not compared: our rows have no per-epoch test scores"
        else:
            versus = "not compared: " + (pub.why_not or "another recipe (the -lit cases run it)")
        lines.append(f'<tr><td class="l">{escape(pub.theirs)}</td><td>{pub.figure:.1f}</td>'
                     f'<td class="l">{escape(pub.source)}<br><span class="note">'
                     f'{escape(pub.recipe)}</span></td><td class="l">{escape(pub.method)}</td>'
                     f"<td>{_pct(last)}</td><td>{_pct(by_val)}</td><td>{_pct(by_test)}</td>"
                     f'<td class="l">{escape(versus)}</td></tr>')
    if recipe == "literature":
        ran = sorted({len((r.get("history") or {}).get("epoch_seconds") or [])
                      for r in rows if str(r.get("case_id", "")).startswith(
                          "longtail-cifar10-exp100-") and r.get("history")})
        epochs = "/".join(str(n) for n in ran) or "?"
        note = ('<p class="warn">Same network (ResNet-32), recipe and losses as LDAM-DRW\'s '
                f'runs, but <b>{epochs} of their 200 epochs</b> (the first epochs of the same '
                'schedule) and, unless the run folder is at paper scale, on fewer images. The '
                'published figures are the best test epoch\'s: ours are shown at the last '
                'epoch, at the epoch the validation set chose (the published way to choose '
                'without the test set) and at the best test epoch (what the papers report; '
                'optimistic); the best test epoch, chosen as the published figure was, is compared '
                'with it where the recipe is the same, and nowhere else. See docs/longtail.md, "The literature recipe".</p>')
    else:
        note = ('<p class="warn">The published figures are for <b>ResNet-32 trained from '
                'scratch for 200 epochs on the full long-tailed set</b>; ours are ResNet50 at '
                'this run\'s scale and schedule. They are shown side by side for orientation, '
                'not compared (the -lit cases run the published recipe).</p>')
    return ('<h3>Published CIFAR-10-LT (exponential, ρ = 100) beside ours'
            + (", literature recipe" if recipe == "literature" else "") + '</h3>' + note +
            "<table><thead><tr><th class=\"l\">published method</th><th>balanced acc. %</th>"
            "<th class=\"l\">source and recipe</th><th class=\"l\">our arm</th>"
            "<th>ours %, last epoch</th><th>ours %, epoch chosen by validation</th>"
            "<th>ours %, best test epoch (optimistic)</th><th class=\"l\">difference</th>"
            "</tr>"
            f"</thead><tbody>{''.join(lines)}</tbody></table>")


def _plots(dataset: str, by_id: dict[str, dict[str, Any]]) -> list[bytes]:
    """Per profile, each method's per-class recall against class size (the lowest seed's run:
    every seed of a profile has the same class sizes)."""
    out = []
    for profile in longtail.PROFILES:
        lines = []
        for method in longtail.METHODS:
            case = f"longtail-{dataset}-{profile}-{method}"
            row = by_id.get(case) or next((by_id[k] for k in sorted(by_id)
                                           if k.startswith(case + "-seed")), None)
            recall = (((row or {}).get("metrics") or {}).get("per_class") or {}).get("recall")
            if row and recall and row.get("train_counts"):
                lines.append((method, list(row["train_counts"]), list(recall)))
        png = recall_png(lines, f"{dataset} {profile}: recall vs class size")
        if png:
            out.append(png)
    return out


def section(rows: Sequence[dict[str, Any]], ctx) -> str:
    """The long-tail section as an HTML fragment; "" when ``rows`` hold no long-tail row.

    ``ctx.img(png, alt)`` turns PNG bytes into an ``<img>`` tag (the report's own helper);
    ``ctx.delta``: the equivalence margin of the verdicts (``--equivalence-delta``).
    """
    img, delta = ctx.img, ctx.delta
    rows = _rows(rows)
    if not rows:
        return ""
    parts = ['<p class="note">Each cell: the mean over seeds (n = seeds), and below it the mean '
             'paired difference from cross-entropy (ce) on the same data set, profile, scale and '
             'seed, its 95% t interval over seeds and the verdict (Holm-corrected over the '
             'profile\'s methods and figures; one seed: a point value, inconclusive). Head / '
             'middle / tail: the 3 / 4 / 3 classes with the most / middle / fewest training '
             'images. Balanced accuracy is on the balanced test set.</p>']
    for scale in sorted({str(r.get("scale")) for r in rows}):
        for dataset in sorted({str(r.get("dataset")) for r in rows}):
            subset = [r for r in rows if r.get("scale") == scale and r.get("dataset") == dataset]
            if not subset:
                continue
            by_id = {r["case_id"]: r for r in subset}
            summaries = case_summaries(subset, longtail.MEASURES)
            for recipe in longtail.RECIPES:
                mine = [r for r in subset if (str(r["case_id"]).split("-seed")[0].endswith(
                    "-lit")) == (recipe == "literature")]
                if not mine:
                    continue
                parts.append(_table(dataset, scale, mine, summaries, delta, recipe))
                if dataset == "cifar10" and any("-exp100-" in r["case_id"] for r in mine):
                    parts.append(_published(summaries, mine, recipe))
            if img is not None:
                parts.append('<div class="grid">' + "".join(
                    img(png, f"{dataset} per-class recall against class size")
                    for png in _plots(dataset, by_id)) + "</div>")
    return "".join(parts)


def recall_png(lines: list[tuple[str, list[float], list[float]]],
                        title: str) -> bytes | None:
    """Per-class recall against the class's training count (log axis), one line per method.

    ``lines``: ``(method, train_counts, recall)`` per method of one data set and profile.
    """
    lines = [line for line in lines if line[1] and line[2]]
    if not lines:
        return None
    from matplotlib.figure import Figure

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
    return plots.png_bytes(fig)
