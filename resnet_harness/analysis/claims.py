"""The studies' claims as checkable statements, each with a verdict from our own rows.

A :class:`~resnet_harness.study.Claim` (declared by a study) is a list of
:class:`~resnet_harness.study.Check`\\ s, each naming a comparison (by its arms), a figure,
and the direction the study says the treatment arm moves it. A check *holds* when the comparison
finds that direction, *fails* when it finds the opposite or equivalence (a check that expects
``equivalent``: when it finds either direction), and is *unclear* when inconclusive, not
comparable or resting on a degenerate arm (one predicted class). A claim is

* ``not run`` when none of its checks ran,
* ``incomplete`` when some did not (the missing ones are listed): a partial run decides nothing,
* ``supported`` when every check holds and no arm is degenerate,
* ``contradicted`` when any check fails,
* ``inconclusive`` otherwise.

:func:`analyse` evaluates them once per set of rows; the outputs render that
:class:`Analysis`: :func:`write_claims` (``claims.csv`` and ``comparisons.csv``),
:func:`summary_lines` (the terminal) and ``report.claims_section`` (the HTML).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from resnet_harness import study
from resnet_harness.analysis.comparisons import (ALPHA, CAVEATS, MEASURES, Result,
                                                 case_summaries, compare, comparisons_for)
from resnet_harness.analysis.sequential import Design, looked
from resnet_harness.analysis.stats import MAX_SEEDS_PLANNED
from resnet_harness.storage.atomic import atomic_write_bytes
from resnet_harness.storage.rundir import RunFolder
from resnet_harness.study import Check, Claim

_HOLDS = {"higher": ("higher",), "lower": ("lower",), "not lower": ("higher", "equivalent"),
          "equivalent": ("equivalent",)}
_FAILS = {"higher": ("lower", "equivalent"), "lower": ("higher", "equivalent"),
          "not lower": ("lower",), "equivalent": ("higher", "lower")}


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    verdict: str  # supported | contradicted | inconclusive | not run
    # (check, its comparison's result, outcome: holds | fails | unclear | not run)
    checks: tuple[tuple[Check, Result | None, str], ...]

    @property
    def confounds(self) -> list[str]:
        """Fields, besides the declared factor, in which the arms of its checks differed."""
        out: list[str] = []
        for _, result, _ in self.checks:
            for text in (result.confounds if result else ()):
                if text not in out:
                    out.append(text)
        return out

    @property
    def missing(self) -> list[str]:
        """The checks that did not run (their comparison and figure)."""
        return [f"{MEASURES[c.measure].label} ({r.comparison.name if r else c.treatment})"
                for c, r, o in self.checks if o == "not run"]

    def evidence(self) -> str:
        return "; ".join(evidence_line(check, result, outcome)
                         for check, result, outcome in self.checks)


def _outcome(check: Check, result: Result | None) -> str:
    if result is None or result.verdict == "not run":
        return "not run"
    if result.n == 0 or "degenerate" in result.note:
        return "unclear"
    if check.margin is not None:
        return _against_margin(check.expect, check.margin, result)
    if result.direction in _HOLDS[check.expect]:
        return "holds"
    if result.direction in _FAILS[check.expect]:
        return "fails"
    return "unclear"


def _against_margin(expect: str, margin: float, result: Result) -> str:
    """A check with its own margin, decided by where the interval lies against it. The interval
    is the two-sided one at the level the comparison's verdict used (Holm's step, a sequential
    look's boundary), so each one-sided statement errs at most half that level. As for
    equivalence at the session's delta, the interval must rest on two seeds whose arms differ:
    identical runs prove no bound."""
    low, high = result.low, result.high
    if not (math.isfinite(low) and math.isfinite(high)) or result.n < 2 \
            or result.differing < 2:
        return "unclear"
    if expect == "not lower":
        return "holds" if low > -margin else "fails" if high < -margin else "unclear"
    if expect == "equivalent":
        return ("holds" if -margin < low and high < margin else
                "fails" if low > margin or high < -margin else "unclear")
    if expect == "higher":
        return "holds" if low > margin else "fails" if high < margin else "unclear"
    return "holds" if high < -margin else "fails" if low > -margin else "unclear"  # lower


def claims_for(rows: Iterable[dict[str, Any]]) -> tuple[Claim, ...]:
    """The claims of the registered studies that ``rows`` have cases of."""
    present = {s.name for s in map(study.study_of, (r.get("case_id") for r in rows)) if s}
    return tuple(c for s in study.studies() if s.name in present for c in s.claims)


def evaluate(rows: Iterable[dict[str, Any]], delta: float = 0.01,
             claims: Sequence[Claim] | None = None, design: Design | None = None
             ) -> tuple[list[ClaimResult], list[Result]]:
    """Verdicts of every claim (default: those of the studies ``rows`` have cases of) from the
    rows, and the comparison results behind them; with a sequential ``design`` (``--seeds
    auto``), each comparison as its looks decided it."""
    rows = list(rows)
    claims = claims_for(rows) if claims is None else claims
    results = (looked(rows, delta, design)[0] if design is not None
               else compare(rows, delta, comparisons_for(rows)))
    index = {(*r.comparison.key, r.measure): r for r in results}
    out = []
    for claim in claims:
        checks = []
        for check in claim.checks:
            result = index.get((*check.key, check.measure))
            checks.append((check, result, _outcome(check, result)))
        outcomes = [o for _, _, o in checks]
        verdict = ("not run" if all(o == "not run" for o in outcomes)
                   else "incomplete" if "not run" in outcomes
                   else "contradicted" if "fails" in outcomes
                   else "supported" if all(o == "holds" for o in outcomes)
                   else "inconclusive")
        out.append(ClaimResult(claim, verdict, tuple(checks)))
    return out, results


@dataclass(frozen=True)
class Analysis:
    """The claims and comparisons of one set of rows, evaluated once (:func:`analyse`) and
    rendered by every output: ``claims.csv``, the report's sections, the terminal."""

    delta: float
    design: Design | None
    claims: tuple[ClaimResult, ...]
    results: tuple[Result, ...]


def analyse(rows: Iterable[dict[str, Any]], delta: float = 0.01, design: Design | None = None
            ) -> Analysis:
    """:func:`evaluate` once, kept as an :class:`Analysis`."""
    claim_results, results = evaluate(rows, delta, design=design)
    return Analysis(delta, design, tuple(claim_results), tuple(results))


def number_text(v: float, spec: str) -> str:
    return "nan" if v is None or math.isnan(v) else format(v, spec)


def describe(result: Result) -> str:
    """``+0.0312 [+0.0120, +0.0504] (98.8%) p=0.004 (Holm 0.012 of 4, 5 seeds)``; relative
    for resources. The interval is at the level the verdict used (Holm's, a look's)."""
    spec = "+.1%" if MEASURES[result.measure].resource else "+.4f"
    if result.n == 0:
        return "not run"
    text = f"{number_text(result.mean, spec)}"
    if result.n >= 2 and math.isfinite(result.low):
        text += (f" [{number_text(result.low, spec)}, {number_text(result.high, spec)}]"
                 f" ({level_text(result.alpha)}) p={number_text(result.p_value, '.3g')}"
                 f" (Holm {number_text(result.p_holm, '.3g')} of {result.family_size}")
    else:
        text += " (no interval"
    text += f", {result.n} seed{'s' if result.n != 1 else ''})"
    return text + seeds_advice(result)


def level_text(alpha: float) -> str:
    """A confidence level ``1 - alpha`` as a percentage with the digits it needs."""
    level = 100 * (1 - alpha)
    for digits in range(1, 6):
        if round(level, digits) < 100 and abs(round(level, digits) - level) < 0.05 * 100 * alpha:
            return f"{level:.{digits}f}".rstrip("0").rstrip(".") + "%"
    return f"{level:.5f}%"


def duration(seconds: float) -> str:
    """Seconds as a reader wants them: "40 min", "2.1 h", "3.5 days"."""
    if not math.isfinite(seconds):
        return "unbounded"
    if seconds < 90 * 60:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def seeds_advice(result: Result) -> str:
    """``; seeds to decide: N at the observed difference (about 2.1 h more) ...`` for an
    inconclusive comparison ("" otherwise): seeds, and what they cost at this run's measured
    train + evaluation time per seed."""
    if result.verdict != "inconclusive" or math.isnan(result.seeds_at_delta):
        return ""
    resource = MEASURES[result.measure].resource
    spec = "+.1%" if resource else ".4f"

    def seeds(n: float, cost: float) -> str:
        text = f">{MAX_SEEDS_PLANNED:,}" if math.isinf(n) else f"{n:.0f}"
        if math.isfinite(cost) and math.isfinite(n):
            text += f" (about {duration(cost)} more)"
        return text
    detect = result.detectable
    shown = ("more than the figure's whole range" if not resource and detect > 1
             else number_text(detect, spec))
    return (f"; detectable with these seeds: {shown}; seeds to decide: "
            f"{seeds(result.seeds_at_observed, result.cost_at_observed_s)} at the observed "
            f"difference, {seeds(result.seeds_at_delta, result.cost_at_delta_s)} at delta"
            + (f" ({duration(result.seed_cost_s)} a seed)" if math.isfinite(result.seed_cost_s)
               else ""))


def evidence_line(check: Check, result: Result | None, outcome: str) -> str:
    arms = result.comparison.name if result else check.treatment
    label = f"{MEASURES[check.measure].label} ({arms})"
    if result is None or result.n == 0:
        return f"{label}: {result.verdict if result else 'not run'}" + (
            f" ({result.note})" if result and result.note else "")
    note = f" ({result.note})" if result.note else ""
    caveats = "".join(f" [{f}: {CAVEATS[f]}]" for f in result.fields if f in CAVEATS)
    said = result.direction if check.margin is None else \
        f"{check.expect} with margin {margin_text(check.margin, result.measure)}"
    return f"{label}: {describe(result)} -> {said} ({outcome}){note}{caveats}"


def margin_text(margin: float, measure: str) -> str:
    """A check's margin as its figure reads: ``0.05`` for a score, ``5%`` for time/memory."""
    return f"{margin:.0%}" if MEASURES[measure].resource else f"{margin:g}"


def delta_of(runs: Sequence[dict[str, Any]], default: float = 0.01) -> float:
    """The ``--equivalence-delta`` of the run(s), from their ``run.json`` options (stored as
    ``{"value": ..., "from": ...}``; a bare number from older runs is read too)."""
    for run in runs:
        stored = (run.get("options") or {}).get("equivalence_delta")
        value = stored.get("value") if isinstance(stored, dict) else stored
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return default


# -- outputs -------------------------------------------------------------------------------------
CLAIM_COLUMNS = ("claim", "statement", "source", "verdict", "missing", "evidence", "confounds",
                 "delta", "margins", "alpha")


def claim_records(claim_results: Sequence[ClaimResult], delta: float = 0.01
                  ) -> list[dict[str, Any]]:
    """One record per claim; ``delta`` is the session's margin, ``margins`` each check's own
    (``accuracy: 0.05``), where a check sets one."""
    return [{"claim": c.claim.key, "statement": c.claim.statement, "source": c.claim.source,
             "verdict": c.verdict, "missing": "; ".join(c.missing), "evidence": c.evidence(),
             "confounds": "; ".join(c.confounds), "delta": delta,
             "margins": "; ".join(f"{MEASURES[k.measure].label}: "
                                  f"{margin_text(k.margin, k.measure)}"
                                  for k, _, _ in c.checks if k.margin is not None),
             "alpha": ALPHA}
            for c in claim_results]


def check_margins(claim_results: Sequence[ClaimResult]) -> dict[tuple[str, ...], float]:
    """``{(*comparison key, measure): margin}`` of the checks that carry their own margin (the
    forest plot draws them on the comparison's row)."""
    return {(*k.key, k.measure): k.margin for c in claim_results for k, _, _ in c.checks
            if k.margin is not None}


def _csv_bytes(records: list[dict[str, Any]], columns: Sequence[str]) -> bytes:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue().encode("utf-8")


def write_claims(rows: Iterable[dict[str, Any]], out_dir: Path | str, analysis: Analysis
                 ) -> dict[str, Path]:
    """Write ``claims.csv`` (one line per claim), ``comparisons.csv`` (one line per figure of
    each comparison) and ``seeds.csv`` (per case and figure: mean, std and 95% t interval over
    seeds) into ``out_dir``, from ``analysis`` (of ``rows``); returns their paths."""
    rows = list(rows)
    claim_results, results, delta = analysis.claims, analysis.results, analysis.delta
    paths = RunFolder(out_dir).claims_paths
    summaries = [dict(case=case, measure=measure, **summary.as_dict())
                 for case, by_measure in case_summaries(rows).items()
                 for measure, summary in by_measure.items()]
    atomic_write_bytes(paths["seeds"], _csv_bytes(
        summaries, ("case", "measure", "n", "mean", "std", "low", "high")))
    atomic_write_bytes(paths["claims"], _csv_bytes(claim_records(claim_results, delta),
                                                   CLAIM_COLUMNS))
    records = [r.as_dict() for r in results]
    columns = list(records[0]) if records else ["comparison"]
    atomic_write_bytes(paths["comparisons"], _csv_bytes(records, columns))
    return paths


def summary_lines(analysis: Analysis) -> list[str]:
    """One line per claim for the terminal, plus a confound note where the arms differ."""
    claim_results, delta, design = analysis.claims, analysis.delta, analysis.design
    if not claim_results:
        return []
    width = max(len(c.claim.key) for c in claim_results)
    lines = [f"claims (paired over seeds, alpha {ALPHA:g} Holm per family, delta {delta:g}"
             + (f", sequential {design.as_text()}" if design else "") + "; see claims.csv):"]
    pad = f"  {'':<{width}}   "
    for c in claim_results:
        if c.verdict != "not run":
            lines.append(f"  {c.claim.key:<{width}} {c.verdict}")
            if c.verdict == "incomplete":
                lines.append(f"{pad}not run: {'; '.join(c.missing)}")
            for check, result, outcome in c.checks:
                if result is None:
                    continue
                name = f"{MEASURES[check.measure].label} ({result.comparison.name})"
                if check.margin is not None and result.n:
                    lines.append(f"{pad}{name}: {check.expect} with margin "
                                 f"{margin_text(check.margin, check.measure)}: {outcome} "
                                 f"({describe(result)})")
                elif result.verdict == "inconclusive" and result.n:
                    lines.append(f"{pad}{name}: inconclusive at {result.n} seeds"
                                 f"{seeds_advice(result)}")
                elif result.note:
                    lines.append(f"{pad}{name}: {result.verdict} ({result.note})")
            if c.confounds:
                lines.append(f"{pad}confounded: {'; '.join(c.confounds)}")
    not_run = [c.claim.key for c in claim_results if c.verdict == "not run"]
    if not_run:
        lines.append(f"  not run: {', '.join(not_run)}")
    return lines
