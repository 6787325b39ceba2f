"""Deciding claims with as few seeds as they need: a group-sequential design over seeds.

``--seeds auto[:MAX]`` runs seeds in rounds (:class:`Design`: the first 3, then 3 more per round,
up to MAX, 12 by default) and stops when every claim its selection touches is decided.

The procedure: Lan–DeMets alpha spending with the O'Brien–Fleming-type function
``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))`` over the information fraction
``t = seeds / MAX``. Look ``k`` tests every comparison (Holm within its family, as without a
design) at the alpha it spends, ``alpha(t_k) - alpha(t_{k-1})``, with intervals at that level; a
comparison keeps the first decision it reaches (better, worse, equivalent). Why this one:

- it is valid as it stands for t statistics with few degrees of freedom: the looks' levels sum
  to alpha, so by the union bound the family-wise rate of a wrong better/worse over all looks
  stays at or below alpha whatever the correlation between looks (no multivariate-normal
  boundary computation, which would need large-sample z statistics that 3-12 seeds do not give);
- O'Brien–Fleming spends almost nothing at 3 seeds, where a t-test has 2 degrees of freedom and
  an early stop would need an enormous effect anyway, and keeps nearly all of alpha for the last
  look, so a run that goes to MAX loses little power against a fixed design of MAX seeds.

Measured by simulation with this module's own analysis (``tests/test_verdicts.py``, 400
simulated studies each, MAX 12): under no difference, with three comparisons in a family, the
family-wise rate of a better/worse verdict over all looks is 0.048 (Monte-Carlo error 0.011;
the union bound caps it at 0.05); with a planted difference of 1.5 seed standard deviations the
design decides with power 0.998 after 8.3 seeds on average, where a fixed design of equal power
needs 13.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from scipy import stats as sps

from resnet_harness.analysis.comparisons import ALPHA, Result, compare, comparisons_for, planned

DECIDED = ("better", "worse", "equivalent")


@dataclass(frozen=True)
class Design:
    """Seeds run in rounds: ``first``, then ``step`` more per round, up to ``max_seeds``."""

    max_seeds: int = 12
    first: int = 3
    step: int = 3
    alpha: float = ALPHA

    @property
    def looks(self) -> tuple[int, ...]:
        """Seed counts at which the claims are looked at (the last is ``max_seeds``)."""
        looks = list(range(self.first, self.max_seeds + 1, self.step))
        if not looks or looks[-1] != self.max_seeds:
            looks.append(self.max_seeds)
        return tuple(looks)

    def spent(self, seeds: int) -> float:
        """Alpha spent up to ``seeds`` seeds (O'Brien–Fleming type)."""
        t = min(1.0, seeds / self.max_seeds)
        if t <= 0:
            return 0.0
        z = sps.norm.ppf(1 - self.alpha / 2)
        return float(2 - 2 * sps.norm.cdf(z / math.sqrt(t)))

    def alpha_at(self, seeds: int) -> float:
        """The alpha of the look at ``seeds`` seeds: what it spends beyond the previous look."""
        looks = self.looks
        index = looks.index(seeds)
        return self.spent(seeds) - (self.spent(looks[index - 1]) if index else 0.0)

    def round_of(self, seed_index: int) -> int:
        """The look a seed (its 0-based position in the seed list) is first part of."""
        return next(i for i, n in enumerate(self.looks) if seed_index < n)

    def as_text(self) -> str:
        return f"auto:{self.max_seeds}"


def _seeds_in(rows: Iterable[dict[str, Any]]) -> list[int]:
    return sorted({int(r["seed"]) for r in rows if r.get("seed") is not None})


def looked(rows: Sequence[dict[str, Any]], delta: float, design: Design
           ) -> tuple[list[Result], dict[tuple[str, ...], int]]:
    """Every comparison as the sequential design decides it on ``rows``: at each look that the
    rows complete, the comparisons not yet decided are tested at that look's alpha; each keeps
    its first decision, or its result at the last look. Also returns the seeds each decision
    took (by ``(*comparison.key, measure)``: ``(baseline, treatment, measure)`` for a plain
    comparison)."""
    rows = list(rows)
    seeds = _seeds_in(rows)
    chosen: dict[tuple[str, ...], Result] = {}
    took: dict[tuple[str, ...], int] = {}
    comparisons = comparisons_for(rows)
    for look in design.looks:
        if len(seeds) < look:
            break
        kept = set(seeds[:look])
        subset = [r for r in rows if r.get("seed") is not None and int(r["seed"]) in kept]
        for result in compare(subset, delta, comparisons, alpha=design.alpha_at(look),
                              plan=False):
            key = (*result.comparison.key, result.measure)
            if key in chosen and chosen[key].verdict in DECIDED:
                continue
            chosen[key], took[key] = result, look
    if not chosen:  # fewer seeds than the first look: the plain analysis, said as such
        return compare(rows, delta, comparisons), {}
    return [planned(r) for r in chosen.values()], took


def undecided(claim_results, selected: Iterable[str]) -> list[str]:
    """Keys of the claims that a further round could still decide: those whose every check has
    both arms among ``selected`` (case ids without seed), not yet supported or contradicted,
    and with no check whose figures cannot be paired (more seeds would not pair them)."""
    selected = set(selected)
    out = []
    for c in claim_results:
        arms = {arm for check, _, _ in c.checks for arm in check.arms}
        if not arms <= selected or c.verdict in ("supported", "contradicted"):
            continue
        if any(r is not None and r.verdict == "not comparable" for _, r, _ in c.checks):
            continue
        out.append(c.claim.key)
    return out


def design_for(seeds) -> Design | None:
    """The design of a session's ``--seeds`` value (``AutoSeeds``), or None for a fixed list."""
    if seeds is None or not hasattr(seeds, "max_seeds"):
        return None
    return Design(seeds.max_seeds, seeds.first, seeds.step)


def design_of(runs: Sequence[dict[str, Any]]) -> Design | None:
    """The sequential design of the run(s) (``--seeds auto[:MAX]`` in ``run.json``), or None."""
    for run in runs:
        stored = (run.get("options") or {}).get("seeds")
        value = stored.get("value") if isinstance(stored, dict) else stored
        if isinstance(value, str) and value.startswith("auto"):
            _, _, maximum = value.partition(":")
            return Design(int(maximum)) if maximum.isdigit() else Design()
    return None
