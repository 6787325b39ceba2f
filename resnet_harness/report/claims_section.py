"""The claims and comparisons of a report as HTML, from the one :class:`~resnet_harness.
analysis.claims.Analysis` the report evaluated (the claims section of ``report.html`` and the
page of ``python -m resnet_harness claims``)."""

from __future__ import annotations

from html import escape
from typing import Any, Iterable, Sequence

from resnet_harness.analysis.claims import (ALPHA, MEASURES, Analysis, Result, evidence_line,
                                            number_text, check_margins, describe)
from resnet_harness.analysis.comparisons import case_summaries

_CSS_CLASS = {"supported": "better", "contradicted": "worse", "inconclusive": "close",
              "not run": "none", "incomplete": "none", "not comparable": "none", "better": "better", "worse": "worse", "equivalent": "close"}


def families(results: Sequence[Result]) -> dict[tuple[str, bool], list[Result]]:
    """Results that ran, by (family, relative): what Holm's correction and a forest plot share."""
    out: dict[tuple[str, bool], list[Result]] = {}
    for r in results:
        if r.n:
            out.setdefault((r.comparison.family, MEASURES[r.measure].resource), []).append(r)
    return out


def family_anchor(family: str, relative: bool) -> str:
    return f"family-{family}{'-relative' if relative else ''}"


def html_section(rows: Iterable[dict[str, Any]], analysis: Analysis, forest=None) -> str:
    """The claims and comparisons as an HTML fragment (the report's CSS classes).

    ``forest(results, delta, title, relative, margins)``: the report's forest-plot maker (HTML
    of one family's figure; ``margins``: :func:`check_margins`), drawn above the text
    evidence; None leaves the figures out."""
    rows = list(rows)
    claim_results, results, delta = analysis.claims, analysis.results, analysis.delta
    grouped = families(results)
    lines = []
    for c in claim_results:
        confounded = c.confounds
        warn = (f'<div class="warn">confounded: the arms also differ in '
                f'{escape("; ".join(confounded))}</div>' if confounded and c.verdict != "not run"
                else "")
        evidence = "".join(f"<li>{escape(evidence_line(k, r, o))}</li>" for k, r, o in c.checks)
        links = dict.fromkeys(
            (r.comparison.family, MEASURES[r.measure].resource) for _, r, _ in c.checks
            if r is not None and r.n and forest is not None)
        plots = " ".join(f'<a href="#{escape(family_anchor(f, rel))}">{escape(f)}'
                         f'{" (relative)" if rel else ""}</a>' for f, rel in links)
        missing = (f'<div class="warn">incomplete: not run: {escape("; ".join(c.missing))}</div>'
                   if c.verdict == "incomplete" else "")
        lines.append(f'<tr><td class="l">{escape(c.claim.statement)}<br>'
                     f'<span class="note">{escape(c.claim.source)}</span></td>'
                     f'<td class="{_CSS_CLASS.get(c.verdict, "")}">{escape(c.verdict)}</td>'
                     f'<td class="l">{"<p>plots: " + plots + "</p>" if plots else ""}'
                     f'<ul>{evidence}</ul>{missing}{warn}</td></tr>')
    comp_lines = []
    for r in results:
        if r.n == 0:
            continue
        comp_lines.append(
            f'<tr><td class="l">{escape(r.comparison.family)}</td>'
            f'<td class="l">{escape(r.comparison.name)}</td>'
            f'<td class="l">{escape(MEASURES[r.measure].label)}</td><td>{escape(describe(r))}</td>'
            f'<td class="{_CSS_CLASS.get(r.verdict, "")}">{escape(r.verdict)}</td>'
            f'<td class="l">{escape("; ".join(r.confounds)) or "—"}</td></tr>')
    ran = comp_lines or ['<tr><td colspan="6" class="l none">no comparison has both arms '
                         'measured</td></tr>']
    figures = ""
    if forest is not None:
        margins = check_margins(claim_results)
        figures = "".join(
            f'<div id="{escape(family_anchor(family, relative))}">'
            f'{forest(members, delta, f"{family} ({len(members)} tests)", relative, margins)}'
            '</div>' for (family, relative), members in grouped.items())
        if figures:
            figures = f'<h3>Comparisons by family</h3><div class="grid">{figures}</div>'
    return ('<h2 id="claims">The studies\' claims, checked</h2>'
            f'<p class="note">Paired over seeds (treatment - baseline; time and memory: the ratio '
            f'of the arms, from a t interval of log ratios): mean difference, 95% t interval '
            f'(its standard error never below what sampling each test set gives), paired t-test '
            f'p-value, Holm-corrected within each family (the family\'s size is given). '
            f'Better/worse: Holm p &lt; α = {ALPHA:g}; equivalent: interval inside ±δ = '
            f'{delta:g} (time, memory: ±{delta:.0%}); inconclusive ones say how many seeds would '
            f'decide them (80% power at α over the family size). See README, "Seeds, intervals '
            f'and claims".</p>'
            '<table><tr><th class="l">claim</th><th>verdict</th><th class="l">evidence</th></tr>'
            + "".join(lines) + "</table>" + figures
            + '<h3>Comparisons</h3><table><tr><th class="l">family</th><th class="l">comparison'
            '</th><th class="l">figure</th><th>difference [95% CI] p</th><th>verdict</th>'
            '<th class="l">also differs (confounds)</th></tr>' + "".join(ran) + "</table>"
            + _seeds_table(rows))


def _seeds_table(rows: list[dict[str, Any]]) -> str:
    summaries = {case: by_measure for case, by_measure in case_summaries(rows).items()
                 if any(s.n >= 2 for s in by_measure.values())}
    if not summaries:
        return ""
    names = list(next(iter(summaries.values())))
    head = "".join(f"<th>{escape(MEASURES[m].label)}</th>" for m in names)
    body = "".join(
        f'<tr><td class="l">{escape(case)}</td><td>{max(s.n for s in by_measure.values())}</td>'
        + "".join(f"<td>{number_text(s.mean, '.4f')} ± {number_text(s.std, '.4f')}<br>"
                  f"[{number_text(s.low, '.4f')}, {number_text(s.high, '.4f')}]</td>"
                  for s in by_measure.values()) + "</tr>"
        for case, by_measure in summaries.items())
    return ('<h3>Per case over seeds: mean ± std [95% t interval]</h3>'
            f'<table><tr><th class="l">case</th><th>seeds</th>{head}</tr>{body}</table>')
