"""Deciding claims with as few seeds as they need: a group-sequential design over seeds.

``--seeds auto[:MAX]`` runs seeds in rounds (:class:`Design`: the first 3, then 3 more per round,
up to MAX, 12 by default) and stops when every claim its selection touches is decided.

The procedure: Lan-DeMets alpha spending with the O'Brien-Fleming-type function
``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))`` over the information fraction
``t = seeds / MAX``, turned into a proper group-sequential boundary for the paired t statistic
(:func:`boundary`): look k rejects when ``|T_k| >= c_k``, where ``c_k`` is chosen so that the
chance of a first crossing at look k under no difference is exactly what the function spends
there, ``alpha(t_k) - alpha(t_{k-1})``. The statistics of successive looks share their seeds, so
a path that did not cross before is less likely to cross now: the boundary accounts for that and
spends all of alpha, where testing each look at its spent increment alone (the union bound)
leaves about a fifth of it unused (simulated: 0.040 of 0.05) and loses power.

``c_k`` has no closed form for t statistics with 2-11 degrees of freedom; it is calibrated by
simulation (:data:`SIMULATIONS` paths of standard normal differences, a fixed random seed, so
the constants are the same in every process), the first look exactly from the t distribution.
Each look's boundary is stated as the nominal two-sided level ``pi_k`` of a paired t-test at that
look (``2 * t.sf(c_k, n_k - 1)``); a comparison with another number of seeds is tested at the
same nominal level. Holm's step-down within a family (``comparisons._holm_levels``) tests each
comparison at the boundary of ``alpha / k`` (k: the family's comparisons not yet rejected,
rejections at earlier looks included); a comparison keeps the first decision it reaches.

Measured by simulation (``tests/test_verdicts.py``, ``bench/sequential_design.py``; figures in
``docs/reference.md``, "The sequential design").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from functools import lru_cache

import numpy as np
from scipy import stats as sps

from resnet_harness.analysis.comparisons import ALPHA, Result, compare, comparisons_for, planned

SIMULATIONS = 400_000  # paths per calibration; the boundary's levels to ~1% of themselves
CALIBRATION_SEED = 20261206

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
        """The alpha the look at ``seeds`` seeds spends beyond the previous look."""
        looks = self.looks
        index = looks.index(seeds)
        return self.spent(seeds) - (self.spent(looks[index - 1]) if index else 0.0)

    def nominal(self, seeds: int, alpha: float | None = None) -> float:
        """The nominal two-sided level of the paired t-test at the look at ``seeds`` seeds
        under this design's boundary for a family-wise ``alpha`` (default the design's)."""
        levels = boundary(self.looks, self.max_seeds, self.alpha if alpha is None else alpha)
        return levels[self.looks.index(seeds)]

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
    rows complete, the comparisons not yet decided are tested at that look's boundary (Holm
    within each family, rejections of earlier looks counted); each keeps its first decision,
    or its result at the last look. Also returns the seeds each decision took (by
    ``(*comparison.key, measure)``: ``(baseline, treatment, measure)`` for a plain
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
        decided = {k: r for k, r in chosen.items() if r.verdict in DECIDED}
        for result in compare(subset, delta, comparisons, alpha=design.alpha, plan=False,
                              nominal=lambda a, look=look: design.nominal(look, a),
                              decided=decided):
            key = (*result.comparison.key, result.measure)
            if key in decided:
                continue
            chosen[key], took[key] = result, look
    if not chosen:  # fewer seeds than the first look: the plain analysis, said as such
        return compare(rows, delta, comparisons), {}
    return [planned(r) for r in chosen.values()], took


@lru_cache(maxsize=256)
def boundary(looks: tuple[int, ...], max_seeds: int, alpha: float = ALPHA) -> tuple[float, ...]:
    """Nominal two-sided levels of the paired t-test at each look of ``looks`` (seed counts)
    that spend ``alpha`` by the O'Brien-Fleming-type function over ``seeds / max_seeds``:
    under no difference the first crossing happens at look k with probability exactly the
    alpha spent there (up to the simulation's error), so the design's error rate is alpha.

    Look 1 is exact (the t distribution); each later look's critical value is the quantile of
    ``|T_k|`` among the simulated paths that crossed no earlier boundary. Where a look spends
    less than 50 paths' worth of probability (strict Holm levels early on), its increment is
    tested on its own (the union bound: conservative by a negligible amount there)."""
    design = Design(max_seeds, alpha=alpha)
    spent = [design.spent(n) for n in looks]
    increments = [b - a for a, b in zip([0.0, *spent], spent)]
    rng = np.random.default_rng(CALIBRATION_SEED)
    paths = rng.standard_normal((SIMULATIONS, looks[-1]))
    sums, squares = np.cumsum(paths, axis=1), np.cumsum(paths ** 2, axis=1)
    alive = np.ones(SIMULATIONS, dtype=bool)
    levels = []
    for k, (n, inc) in enumerate(zip(looks, increments)):
        if n < 2 or inc <= 0:
            levels.append(0.0)
            continue
        total, sq = sums[:, n - 1], squares[:, n - 1]
        sd = np.sqrt(np.maximum(sq - total ** 2 / n, 0) / (n - 1))
        t = np.abs(total / n) / (sd / np.sqrt(n))
        wanted = inc * SIMULATIONS
        if k == 0 or wanted < 50:
            critical = float(sps.t.isf(inc / 2, n - 1))
        else:
            among = np.sort(t[alive])[::-1]
            index = min(len(among) - 1, max(0, int(round(wanted)) - 1))
            critical = float(among[index])
        alive &= t < critical
        levels.append(float(2 * sps.t.sf(critical, n - 1)))
    return tuple(levels)


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
            return Design(int(maximum)) if maximum.isascii() and maximum.isdigit() else Design()
    return None


def simulate(design: Design, effect: float, family: int = 1, sims: int = 20_000,
             seed: int = 0) -> dict[str, float]:
    """Operating characteristics of ``design`` by simulation: ``family`` comparisons whose
    per-seed differences are N(``effect``, 1) each, tested at every look with this module's
    boundary and Holm's levels (``comparisons._holm_levels``), as :func:`looked` tests rows.

    Returns the share of studies with any comparison called better/worse (the family-wise
    error when ``effect`` is 0), the share with every comparison decided (power), the mean
    seeds run (a study stops when all its comparisons are decided) and the seeds a fixed
    design needs for the same power (one comparison, level ``alpha / family``)."""
    from resnet_harness.analysis.comparisons import _holm_levels
    from resnet_harness.analysis.stats import power

    rng = np.random.default_rng(seed)
    diffs = rng.normal(effect, 1.0, (sims, family, design.max_seeds))
    rejected = np.zeros((sims, family), dtype=bool)
    stop = np.full(sims, design.max_seeds)
    for look in design.looks:
        x = diffs[:, :, :look]
        t = x.mean(-1) / (x.std(-1, ddof=1) / np.sqrt(look))
        p = 2 * sps.t.sf(np.abs(t), look - 1)
        for i in np.flatnonzero(~rejected.all(axis=1)):
            levels = _holm_levels(list(p[i]), design.alpha,
                                  lambda a, look=look: design.nominal(look, a),
                                  list(rejected[i]))
            rejected[i] |= p[i] <= np.array(levels)
            if rejected[i].all():
                stop[i] = min(stop[i], look)
    decided = float(rejected.all(axis=1).mean())
    fixed = next((n for n in range(2, 1000)
                  if power(n, effect, design.alpha / family) >= decided), math.inf) \
        if effect else math.nan
    return {"any_rejected": float(rejected.any(axis=1).mean()), "power": decided,
            "mean_seeds": float(stop.mean()), "fixed_seeds_same_power": fixed}
