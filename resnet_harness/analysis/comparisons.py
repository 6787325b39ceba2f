"""What the result rows say about each comparison that the studies declare.

A :class:`~resnet_harness.study.Comparison` (declared by a study) names two arms (case ids
without seed), the factor the study varies between them, and the figures compared.
:func:`compare` pairs the arms' rows by seed and gives, per figure, the mean paired difference
(treatment - baseline) with its 95% t interval, a paired t-test p-value, the Holm-adjusted
p-value within its family, a verdict, and every configuration field in which the two arms differ
besides the declared factor (the confounds).

A difference comparison (``baseline_minus``/``treatment_minus`` set) compares, per seed, the
treatment case's figure minus its ``_minus`` case's with the baseline's likewise: a difference
of differences over four rows of one seed (time and memory: a ratio of ratios).

Scores: the standard error never falls below what sampling each run's test set gives
(:func:`sampling_variance`), so identical seeds cannot produce certainty. Time and memory: the
per-seed log ratio ``log(b / a)``, its t interval reported as ``b / a - 1`` (never below -100%),
paired only between runs in the same model-reuse state.

Verdicts, for a figure where higher is better (reversed for time and memory):

* ``equivalent``: the interval lies inside ``±delta`` (scores: absolute, e.g. 0.01 = one point;
  time and memory: relative, 0.01 = 1%), and neither arm is degenerate (one predicted class);
* ``better`` / ``worse``: otherwise, when the Holm-adjusted p-value is below ``ALPHA`` (0.05);
* ``inconclusive``: anything else, including a single seed; it says the smallest difference the
  seeds could detect and how many seeds would decide it (80% power, Holm's strictest level);
* ``not run``: no seed has rows for both arms; ``not comparable``: the rows exist but none pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import numpy as np

from resnet_harness import study
from resnet_harness.analysis import pairing
from resnet_harness.analysis.stats import (Summary, detectable, holm, paired_difference,
                                          seed_summary, seeds_needed)
from resnet_harness.storage import schema
from resnet_harness.storage.identity import comparable_config
from resnet_harness.study import Comparison

ALPHA = 0.05
SCALE_RANK = {"smoke": 0, "reduced": 1, "paper": 2}
USABLE_STATUS = ("passed", "failed")  # failed = a bound broke; the figures were still measured


@dataclass(frozen=True)
class Measure:
    """A figure that comparisons look at: a score (absolute differences) or a resource
    (time/memory: relative differences, lower is better)."""

    name: str
    label: str
    resource: bool = False
    better: str = "higher"

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"


def _measures() -> dict[str, Measure]:
    # Every score of the row schema (its title and direction from there), plus the figures made
    # of several fields: the recall of the reduced classes, and time and memory (see
    # RESOURCE_FIELDS).
    scores = [Measure(f.name, f.heading, better=f.better)
              for f in schema.FIELDS
              if f.kind in ("score", "group_score") and f.source != "metrics_as_trained"]
    return {m.name: m for m in (
        *scores, Measure("reduced_recall", "recall of the reduced classes"),
        Measure("train_time", "training time", resource=True, better="lower"),
        Measure("memory", "memory", resource=True, better="lower"))}


class _Measures(dict):
    """Measures by name, rebuilt when a study has registered fields since the last look."""

    _seen = -1

    def _current(self) -> "_Measures":
        if self._seen != len(schema.FIELDS):
            self.clear()
            self.update(_measures())
            self._seen = len(schema.FIELDS)
        return self

    def __getitem__(self, name: str) -> Measure:
        return dict.__getitem__(self._current(), name)

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self._current(), name)

    def get(self, name, default=None):
        return dict.get(self._current(), name, default)


MEASURES = _Measures()
# Steady-state figures (another part of the harness may add them) beat the raw ones: the raw
# training time includes graph tracing, the peak RSS the data set already loaded.
RESOURCE_FIELDS = {"train_time": ("steady_train_time_s", "train_time_s"),
                   "memory": ("rss_added_mb", "peak_rss_mb")}
# The process's peak RSS only grows while cases run one after another in it, so a case that runs
# later (the imbalanced arm runs after the balanced one) looks bigger on run order alone.
CAVEATS = {"peak_rss_mb": "peak RSS of the whole process: grows with run order",
           "train_time_s": "includes graph tracing of the first step"}


@dataclass(frozen=True)
class Result:
    """One figure of one comparison."""

    comparison: Comparison
    measure: str
    n: int  # seeds with rows for both arms
    mean: float  # treatment - baseline (relative for time and memory)
    low: float  # the interval at the level of its verdict (``alpha``: Holm's, a look's)
    high: float
    p_value: float
    p_holm: float
    verdict: str  # better | worse | equivalent | inconclusive | not run
    direction: str  # higher | lower | equivalent | inconclusive | not run (of treatment)
    confounds: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    baseline_mean: float = math.nan
    treatment_mean: float = math.nan
    fields: tuple[str, ...] = ()  # row fields behind a time or memory figure
    family_size: int = 0  # tests Holm's correction ran over (this one's family)
    alpha: float = ALPHA  # the nominal two-sided level its test and interval used
    delta: float = math.nan
    se: float = math.nan  # standard error of the mean difference (log ratio for resources)
    floored: bool = False  # the test-set sampling floor set the standard error
    note: str = ""  # why not comparable / degenerate
    detectable: float = math.nan  # smallest difference these seeds detect (80%, adjusted alpha)
    seeds_at_observed: float = math.nan  # seeds to decide at the observed difference
    seeds_at_delta: float = math.nan  # seeds to detect a difference of delta
    df: float = math.nan  # degrees of freedom of the t behind the interval and the p-value
    se_shared: float = 0.0  # the part of se that a test set shared by all seeds adds
    ci95_low: float = math.nan  # the unadjusted 95% interval, for reading beside the paper
    ci95_high: float = math.nan
    differing: int = 0  # seeds in which the arms' predictions differ
    test_sets: str = ""  # shared | per seed | unpaired: how test-set noise entered se
    seed_cost_s: float = math.nan  # measured train + evaluation seconds of one seed's arms
    family_alpha: float = ALPHA  # the family-wise error rate Holm keeps
    cost_at_observed_s: float = math.nan  # seconds more to decide at the observed difference
    cost_at_delta_s: float = math.nan  # seconds more to detect a difference of delta

    def as_dict(self) -> dict[str, Any]:
        """A flat record (``comparisons.csv``)."""
        c = self.comparison
        return {"family": c.family, "comparison": c.name, "factor": c.factor,
                "baseline": c.baseline, "treatment": c.treatment,
                "baseline_minus": c.baseline_minus or "",
                "treatment_minus": c.treatment_minus or "", "measure": self.measure,
                "n_seeds": self.n, "seeds": " ".join(map(str, self.seeds)),
                "baseline_mean": self.baseline_mean, "treatment_mean": self.treatment_mean,
                "difference": self.mean, "ci_low": self.low, "ci_high": self.high,
                "relative": MEASURES[self.measure].resource, "p_value": self.p_value,
                "p_holm": self.p_holm, "family_size": self.family_size, "alpha": self.alpha,
                "family_alpha": self.family_alpha,
                "ci95_low": self.ci95_low, "ci95_high": self.ci95_high,
                "delta": self.delta, "verdict": self.verdict, "direction": self.direction,
                "se": self.se, "df": self.df, "se_shared_test_set": self.se_shared,
                "se_floored_by_test_set": self.floored, "test_sets": self.test_sets,
                "seeds_differing": self.differing,
                "detectable_difference": self.detectable,
                "seeds_needed_at_observed": self.seeds_at_observed,
                "seeds_needed_at_delta": self.seeds_at_delta,
                "seed_cost_s": self.seed_cost_s,
                "cost_to_decide_at_observed_s": self.cost_at_observed_s,
                "cost_to_decide_at_delta_s": self.cost_at_delta_s, "note": self.note,
                "fields": " ".join(self.fields), "confounds": "; ".join(self.confounds)}


# -- rows ----------------------------------------------------------------------------------------
def usable_rows(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Measured rows keyed by ``(case id without seed, seed)``, at the largest scale present
    (a merged report may hold several; figures of different scales are never paired)."""
    rows = [r for r in rows if r.get("status") in USABLE_STATUS and r.get("metrics")]
    if not rows:
        return {}
    top = max(SCALE_RANK.get(r.get("scale"), -1) for r in rows)
    out = {}
    for row in rows:
        if SCALE_RANK.get(row.get("scale"), -1) == top:
            base, seed = study.split_seed(str(row.get("case_id")))
            out[base, int(row["seed"] if row.get("seed") is not None else seed or 0)] = row
    return out


def comparisons_for(rows: Iterable[dict[str, Any]]) -> tuple[Comparison, ...]:
    """The registered comparisons with an arm among the cases of ``rows`` (seeded ids too)."""
    present = {study.split_seed(str(r.get("case_id")))[0] for r in rows}
    return tuple(c for c in study.comparisons() if any(arm in present for arm in c.arms))


def resource_field(row: dict[str, Any], measure: str,
                   partner: dict[str, Any] | None = None) -> str | None:
    """The row field that gives a time or memory figure: the steady-state one when both rows
    have it, else the raw one."""
    for key in RESOURCE_FIELDS[measure]:
        if _finite(row.get(key)) and (partner is None or _finite(partner.get(key))):
            return key
    return None


def value(row: dict[str, Any], measure: str, partner: dict[str, Any] | None = None) -> float:
    """One figure of a row; NaN when missing. ``reduced_recall`` averages the recall of the
    classes that the imbalanced one of ``row`` and ``partner`` reduced."""
    if measure in RESOURCE_FIELDS:
        key = resource_field(row, measure, partner)
        return float(row[key]) if key else math.nan
    metrics = row.get("metrics") or {}
    if measure == "reduced_recall":
        reduced = row.get("reduced_classes") or (partner or {}).get("reduced_classes") or []
        recall = (metrics.get("per_class") or {}).get("recall") or []
        picked = [recall[k] for k in reduced if k < len(recall) and _finite(recall[k])]
        return float(sum(picked) / len(picked)) if picked and len(picked) == len(reduced) \
            else math.nan
    number = schema.as_number(schema.value(row, measure))
    return math.nan if number is None else number


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


SUMMARY_MEASURES = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr_macro")


def case_summaries(rows: Iterable[dict[str, Any]], measures: Sequence[str] = SUMMARY_MEASURES
                   ) -> dict[str, dict[str, Summary]]:
    """Per case id (without seed): mean, std and 95% t interval of each figure over seeds."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for (base, _), row in sorted(usable_rows(rows).items()):
        by_case.setdefault(base, []).append(row)
    return {base: {m: seed_summary([value(r, m) for r in case_rows]) for m in measures}
            for base, case_rows in by_case.items()}


# -- confounds -----------------------------------------------------------------------------------
def _flat(prefix: str, obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, val in obj.items():
            out.update(_flat(f"{prefix}.{key}" if prefix else str(key), val))
        return out
    return {prefix: tuple(obj) if isinstance(obj, list) else obj}


def confounds(a: dict[str, Any], b: dict[str, Any], factor: str) -> list[str]:
    """Each field (config and case fields) in which rows ``a`` and ``b`` differ, besides
    ``factor`` and what it implies: ``"epochs: 5 -> 7"``."""
    keys = _case_fields()
    # Configs as the identity reads them: a row stored before a setting was renamed (the
    # paper's "recipe", now "comparison") is compared under the new name.
    left = dict(_flat("", comparable_config(a.get("config") or {})),
                **{k: a.get(k) for k in keys})
    right = dict(_flat("", comparable_config(b.get("config") or {})),
                 **{k: b.get(k) for k in keys})
    skip = study.factor_fields(factor)
    out = []
    for key in sorted(set(left) | set(right)):
        if any(key == s or key.startswith(s + ".") for s in skip):
            continue
        if left.get(key) != right.get(key):
            out.append(f"{key}: {_show(left.get(key))} -> {_show(right.get(key))}")
    return out


def _case_fields() -> tuple[str, ...]:
    # The row keys that place a case in its study: a difference there is a confound too.
    return tuple(dict.fromkeys(("dataset", "split") + tuple(
        k for s in study.studies() for k in s.identity_columns)))


def _show(v: Any) -> str:
    return "none" if v is None else str(list(v)) if isinstance(v, tuple) else str(v)


# -- verdicts ------------------------------------------------------------------------------------
def _direction(n: int, low: float, high: float, mean: float, p_value: float, level: float,
               delta: float, resource: bool = False, degenerate: bool = False,
               comparable: bool = True, differing: int = 2) -> str:
    if n == 0:
        return "not run" if comparable else "not comparable"
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"  # no interval: one seed, or no spread and no floor
    # Resources: log ratios, so the margin is log(1 -/+ delta) around 0.
    lo_margin, hi_margin = ((math.log1p(-delta), math.log1p(delta)) if resource
                            else (-delta, delta))
    # Equivalence is a claim about how much the arms can differ: it needs two seeds in which
    # they did differ, or identical runs would vouch for any arm that changes nothing often.
    if (n >= 2 and differing >= 2 and lo_margin < low and high < hi_margin
            and not degenerate):
        return "equivalent"
    if not math.isnan(p_value) and p_value <= level:
        return "higher" if mean > 0 else "lower"
    return "inconclusive"


def _verdict(direction: str, measure: Measure) -> str:
    if direction in ("higher", "lower"):
        return "better" if (direction == "higher") == measure.higher_is_better else "worse"
    return direction


@dataclass
class _Raw:
    comparison: Comparison
    measure: str
    seeds: list[int] = field(default_factory=list)
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    confounds: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    within: list[float] = field(default_factory=list)  # test-set variance of each difference
    degenerate: list[str] = field(default_factory=list)  # arms that predicted one class
    identical: int = 0  # seeds in which arms with the same predictions cancelled
    skipped: list[str] = field(default_factory=list)  # seeds left out as not comparable
    differing: int = 0  # seeds whose arms' predictions (or, unknown, figures) differ
    replicates: list = field(default_factory=list)  # per seed: resampled differences or None
    floors: list[float] = field(default_factory=list)  # per seed: the least test-set variance
    test_sets: list = field(default_factory=list)  # per seed: the test set's name or None
    paired: int = 0  # seeds whose test-set variance came from pairing images
    costs: list[float] = field(default_factory=list)  # per seed: train + evaluation seconds


def compare(rows: Iterable[dict[str, Any]], delta: float = 0.01,
            comparisons: Sequence[Comparison] | None = None, alpha: float = ALPHA,
            plan: bool = True, nominal=None, decided: dict | None = None) -> list[Result]:
    """Every figure of every comparison, from the result rows (pairs matched by seed).

    ``comparisons``: by default those with an arm among ``rows``' cases; ``alpha``: the
    family-wise error rate. Holm's procedure within each family tests a comparison at
    ``nominal(alpha / k)`` (k: the family's comparisons not yet rejected; ``nominal`` is the
    identity without a design, a sequential look's boundary with one), and its interval is at
    that level: the interval and the verdict always agree. ``decided``: results of earlier
    looks by key, kept as they are (rejections count as rejected for Holm)."""
    rows = list(rows)
    if comparisons is None:
        comparisons = comparisons_for(rows)
    table = usable_rows(rows)
    seeds_of: dict[str, set[int]] = {}
    for base, seed in table:
        seeds_of.setdefault(base, set()).add(seed)
    raws = []
    for comp in comparisons:
        seeds = sorted(set.intersection(*(seeds_of.get(arm, set()) for arm in comp.arms)))
        pairs = [(comp.baseline, comp.treatment)] + (
            [(comp.baseline_minus, comp.treatment_minus)] if comp.is_difference else [])
        found: list[str] = []
        for seed in seeds:
            for a, b in pairs:
                for text in confounds(table[a, seed], table[b, seed], comp.factor):
                    if text not in found:
                        found.append(text)
        for name in comp.measures:
            raw = _Raw(comp, name, confounds=found)
            for seed in seeds:
                _pair(raw, seed, *(table[arm, seed] for arm in comp.arms))
            raws.append(raw)
    paired = [_paired(raw) for raw in raws]
    families: dict[tuple[str, bool], list[int]] = {}
    for index, raw in enumerate(raws):
        families.setdefault((raw.comparison.family, MEASURES[raw.measure].resource),
                            []).append(index)
    adjusted, sizes, levels = [math.nan] * len(raws), [0] * len(raws), [alpha] * len(raws)
    decided = decided or {}
    for members in families.values():
        size = sum(1 for i in members if not math.isnan(paired[i].p_value))
        for index, p in zip(members, holm([paired[i].p_value for i in members])):
            adjusted[index], sizes[index] = p, size
        chosen = _holm_levels([paired[i].p_value for i in members], alpha, nominal or
                              (lambda a: a), [_key(raws[i]) in decided and decided[
                                  _key(raws[i])].verdict in ("better", "worse")
                                  for i in members])
        for index, level in zip(members, chosen):
            levels[index] = level
    results = [decided.get(_key(raw)) or _result(raw, pair, p_holm, size, delta, level, alpha)
               for raw, pair, p_holm, size, level in zip(raws, paired, adjusted, sizes, levels)]
    return [planned(r) for r in results] if plan else results


def _key(raw: "_Raw") -> tuple[str, ...]:
    return (*raw.comparison.key, raw.measure)


def _holm_levels(p_values: Sequence[float], alpha: float, nominal,
                 rejected_before: Sequence[bool]) -> list[float]:
    """The nominal level each member of a family is tested at under Holm's step-down: with r
    members rejected (earlier looks' included), every member still open is tested at
    ``nominal(alpha / (m - r))``, and each rejection raises the level of the rest. A rejected
    member keeps the level that rejected it; an open one the last level reached. Rejecting
    all that pass a level at once is the step-down itself: a rejection only raises the others'
    level."""
    m = sum(1 for p in p_values if not math.isnan(p))
    rejected = sum(bool(r) for r in rejected_before)
    levels = [math.nan] * len(p_values)
    open_ = [i for i, p in enumerate(p_values) if not math.isnan(p) and not rejected_before[i]]
    while m and open_:
        level = nominal(alpha / max(1, m - rejected))
        newly = [i for i in open_ if p_values[i] <= level]
        for i in open_:
            levels[i] = level
        if not newly or m - rejected <= 1:
            break
        rejected += len(newly)
        open_ = [i for i in open_ if i not in newly]
    return [alpha if math.isnan(v) else v for v in levels]


def _pair(raw: _Raw, seed: int, *rows: dict[str, Any]) -> None:
    """Add one seed's pair of figures to ``raw`` (or note why it is left out). ``rows``: the
    rows of ``raw.comparison.arms`` (baseline, treatment; or baseline, baseline_minus,
    treatment, treatment_minus)."""
    comp = raw.comparison
    resource = MEASURES[raw.measure].resource
    if comp.is_difference:
        a, a_minus, b, b_minus = rows
        va, vb = (_difference(a, a_minus, raw.measure, resource),
                  _difference(b, b_minus, raw.measure, resource))
        # Each figure's partner is the other row of its arm: reduced_recall then reads the
        # classes that the imbalanced one of the two reduced.
        partners = ((a, a_minus), (a_minus, a), (b, b_minus), (b_minus, b))
        signs = (-1, 1, 1, -1)  # vb - va = b - b_minus - a + a_minus
    else:
        a, b = rows
        va, vb = value(a, raw.measure, b), value(b, raw.measure, a)
        partners = ((a, b), (b, a))
        signs = (-1, 1)
    if math.isnan(va) or math.isnan(vb):
        return
    if resource:
        # A case that built (and traced) its model adds that model to its memory and its first
        # steps; one that reused it does not: only like is paired with like.
        reuse = [row.get("model_reused") for row in rows]
        if None in reuse or len(set(reuse)) > 1:
            raw.skipped.append(f"seed {seed}: model_reused {' vs '.join(map(str, reuse))}"
                               + (" (unknown)" if None in reuse else ""))
            return
        if va <= 0 or vb <= 0:
            return
        key = resource_field(a, raw.measure, b)
        if key and key not in raw.fields:
            raw.fields.append(key)
        raw.within.append(0.0)
        raw.replicates.append(None)
        raw.floors.append(0.0)
        raw.test_sets.append(None)
        raw.differing += 1
    else:
        terms = [(row, partner, sign) for (row, partner), sign in zip(partners, signs)]
        values = pairing.replicates(raw.measure, terms)
        floor = max(pairing.floor(raw.measure, row, partner) for row, partner, _ in terms)
        if values is not None:
            within = max(pairing.finite_variance(values), floor)
            raw.paired += 1
            cancelled = _same_predictions(rows)
        else:  # rows without test_outcomes, or not on one test set: the conservative sum
            within, cancelled = _test_set_variance(raw.measure, partners, signs)
        raw.within.append(within)
        raw.replicates.append(values)
        raw.floors.append(floor)
        raw.test_sets.append(rows[0].get("test_set") if values is not None else None)
        raw.identical += cancelled
        # Whether the arms differ in this seed: by their predictions where the rows say, else
        # by the figure (two recalls of 0 say the arms did not differ there).
        known = all(isinstance(row.get("predictions_digest"), str)
                    or isinstance(row.get("test_outcomes"), str) for row in rows)
        raw.differing += (not _same_predictions(rows)) if known else vb != va
    for arm, row in zip(comp.arms, rows):
        if is_degenerate(row) and arm not in raw.degenerate:
            raw.degenerate.append(arm)
    raw.costs.append(seed_cost(rows))
    raw.seeds.append(seed)
    raw.a.append(va)
    raw.b.append(vb)


def _test_set_variance(measure: str, partners, signs) -> tuple[float, bool]:
    """The variance that sampling the test set adds to one seed's difference ``sum(sign *
    figure)``, and whether figures cancelled. Figures of different runs are taken as
    independent samples (conservative: the runs share their test images); two rows with the
    same ``predictions_digest`` and the same figure are one figure, so their signs add up
    first: an arm whose predictions did not change at all (early stopping that kept the last
    epoch) adds no test-set variance, where counting it twice would claim an uncertainty the
    runs do not have."""
    groups: dict[Any, list[float]] = {}
    for index, ((row, partner), sign) in enumerate(zip(partners, signs)):
        digest = row.get("predictions_digest")
        key = ((digest, value(row, measure, partner)) if isinstance(digest, str) and digest
               else index)
        entry = groups.setdefault(key, [0, sampling_variance(row, measure, partner)])
        entry[0] += sign
    within = sum(coefficient * coefficient * variance for coefficient, variance in groups.values())
    return within, len(groups) < len(signs)


def _difference(row: dict[str, Any], minus: dict[str, Any], measure: str,
                resource: bool) -> float:
    """A difference arm's figure: the row's minus its ``minus`` row's (time and memory: their
    ratio, so that the comparison's log ratio is a difference of log ratios)."""
    va, vm = value(row, measure, minus), value(minus, measure, row)
    if resource:
        return va / vm if va > 0 and vm > 0 else math.nan
    return va - vm


def _paired(raw: _Raw):
    if MEASURES[raw.measure].resource:  # log ratios: log(b / a), reported as b / a - 1
        return paired_difference(np.log(raw.a), np.log(raw.b))
    within, shared = raw.within, 0.0
    if shared_test_set(raw):
        within, shared = _shared_terms(raw)
    return paired_difference(raw.a, raw.b, within=within, shared=shared)


def shared_test_set(raw: _Raw) -> bool:
    """Whether every seed of ``raw`` was scored on one test set (paper scale, and the reduced
    scale's whole test set), each with resampled differences to take its offset from."""
    return (len(raw.seeds) >= 2 and len(set(raw.test_sets)) == 1
            and raw.test_sets[0] is not None and all(r is not None for r in raw.replicates))


def _shared_terms(raw: _Raw) -> tuple[list[float], float]:
    """Per-seed floors and the shared offset's variance when every seed has one test set.

    The per-image difference of seed s is mu + a_i + e_si: a_i the image's own effect,
    common to all seeds, e_si the seed's. Resampling the images once for all seeds gives
    V = Var*(mean over seeds) = (s_a^2 + s_e^2 / n) / N and W = mean over seeds of Var*(seed)
    = (s_a^2 + s_e^2) / N, so s_e^2 / N = (W - V) n / (n - 1) is the test-set noise that each
    seed adds independently (a floor under the seeds' spread) and s_a^2 / N = V - that / n is
    the offset all seeds share, which stays whatever the number of seeds."""
    n = len(raw.seeds)
    draws = np.vstack(raw.replicates)
    common = float(np.var(draws.mean(axis=0), ddof=1))
    each = float(np.mean(np.var(draws, axis=1, ddof=1)))
    independent = max((each - common) * n / (n - 1), float(np.mean(raw.floors)))
    return [independent] * n, max(0.0, common - independent / n)


def seed_cost(rows: Sequence[dict[str, Any]]) -> float:
    """What one seed of these rows cost as measured: their training plus evaluation seconds
    (NaN when a row did not record them)."""
    total = 0.0
    for row in rows:
        train, test = row.get("train_time_s"), row.get("evaluation_s", row.get("test_time_s"))
        if not (_finite(train) and _finite(test)):
            return math.nan
        total += float(train) + float(test)
    return total


def _same_predictions(rows: Sequence[dict[str, Any]]) -> bool:
    digests = {row.get("predictions_digest") for row in rows}
    outcomes = {row.get("test_outcomes") for row in rows}
    return (len(digests) == 1 and isinstance(next(iter(digests)), str)) or (
        len(outcomes) == 1 and isinstance(next(iter(outcomes)), str))


def _result(raw: _Raw, pair, p_holm: float, size: int, delta: float, level: float,
            alpha: float = ALPHA) -> Result:
    measure = MEASURES[raw.measure]
    comparable = bool(raw.seeds) or not raw.skipped
    degenerate = bool(raw.degenerate)
    low, high = pair.interval(1 - level) if pair.n >= 2 else (math.nan, math.nan)
    direction = _direction(pair.n, low, high, pair.mean, pair.p_value, level, delta,
                           measure.resource, degenerate, comparable, raw.differing)
    notes = []
    if raw.skipped:
        kinds = sorted(set(s.partition(": ")[2] for s in raw.skipped))
        notes.append(f"not comparable in {len(raw.skipped)} of {len(raw.skipped) + len(raw.seeds)}"
                     f" seeds: {'; '.join(kinds)} (one built and traced its model, the other "
                     "reused one: run the arms one per process to compare them)")
    if degenerate:
        notes.append("degenerate: " + ", ".join(raw.degenerate) + " predicted a single class")
    if raw.identical:
        notes.append(f"identical predictions in {raw.identical} of {len(raw.seeds)} seeds "
                     "(those runs' test-set sampling cancels)")
    if pair.n >= 2 and pair.se == 0:
        notes.append("no interval: every seed gave the same difference and nothing bounds "
                     "its uncertainty (no test-set figures), which is not certainty")
    elif (pair.n >= 2 and raw.differing < 2 and math.isfinite(low)
          and not measure.resource and -delta < low and high < delta):
        notes.append(f"not equivalent: the arms differ in {raw.differing} of {pair.n} seeds, "
                     "equivalence needs two that differ")
    scale = _ratio if measure.resource else (lambda v: v)
    lo95, hi95 = pair.interval(0.95) if pair.n >= 2 else (math.nan, math.nan)
    return Result(
        raw.comparison, raw.measure, pair.n, scale(pair.mean), scale(low),
        scale(high), pair.p_value, p_holm, _verdict(direction, measure), direction,
        tuple(raw.confounds), tuple(raw.seeds), seed_summary(raw.a).mean,
        seed_summary(raw.b).mean, tuple(raw.fields), size, level, delta, pair.se,
        pair.floored, "; ".join(notes), df=pair.df,
        se_shared=math.sqrt(pair.shared) if pair.shared > 0 else 0.0,
        ci95_low=scale(lo95), ci95_high=scale(hi95), differing=raw.differing,
        test_sets=_design(raw), seed_cost_s=_mean_finite(raw.costs), family_alpha=alpha)


def _design(raw: _Raw) -> str:
    """How the test-set noise of ``raw`` was taken into account (``comparisons.csv``)."""
    if MEASURES[raw.measure].resource or not raw.seeds:
        return ""
    if shared_test_set(raw):
        return "shared"
    if raw.paired == len(raw.seeds):
        return "per seed"
    return "unpaired" if not raw.paired else f"paired in {raw.paired} of {len(raw.seeds)}"


def _mean_finite(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _ratio(log_ratio: float) -> float:
    # b / a - 1 from log(b / a); a very wide interval (a strict look, two seeds) is unbounded.
    return math.inf if log_ratio > 700 else math.expm1(log_ratio)


def planned(result: Result) -> Result:
    """``result`` with, when inconclusive, the smallest difference its seeds could detect and
    the seeds that would decide it at the observed difference and at delta (80% power at
    Holm's strictest level for its family, ``ALPHA / family size``)."""
    seed_variance = result.se ** 2 - result.se_shared ** 2
    sd = math.sqrt(seed_variance * result.n) if result.n >= 2 and seed_variance > 0 else math.nan
    if result.verdict != "inconclusive" or not (math.isfinite(sd) and sd > 0):
        return result
    shared = result.se_shared ** 2 / sd ** 2
    resource = MEASURES[result.measure].resource
    scale = _ratio if resource else (lambda v: v)
    observed = math.log1p(result.mean) if resource else result.mean
    margin = math.log1p(result.delta) if resource else result.delta
    alpha = result.family_alpha / max(result.family_size, 1)
    at_observed = seeds_needed(observed / sd, alpha, shared=shared)
    at_delta = seeds_needed(margin / sd, alpha, shared=shared)
    return replace(result, detectable=scale(detectable(result.n, sd, alpha, shared=shared)),
                   seeds_at_observed=at_observed, seeds_at_delta=at_delta,
                   cost_at_observed_s=more_cost(at_observed, result),
                   cost_at_delta_s=more_cost(at_delta, result))


def more_cost(seeds: float, result: Result) -> float:
    """Seconds the seeds beyond ``result.n`` would take at its measured cost per seed."""
    if not math.isfinite(result.seed_cost_s):
        return math.nan
    return max(0.0, seeds - result.n) * result.seed_cost_s if math.isfinite(seeds) else math.inf


# -- test-set sampling and degenerate runs --------------------------------------------------------
def sampling_variance(row: dict[str, Any], measure: str,
                      partner: dict[str, Any] | None = None) -> float:
    """The variance that sampling the test set adds to one run's figure.

    From the row's own 95% bootstrap interval where it has one (accuracy, balanced accuracy,
    macro F1); Agresti and Coull's binomial ``p~(1-p~)/(n + z^2)`` over the test images
    concerned for the other proportions (the reduced classes' recall, a group's accuracy over
    the group's own images, per-class averages), never 0; for ROC
    AUC Hanley & McNeil's (1982) variance per one-vs-rest class, averaged over classes. 0 where
    nothing is known (the comparison then rests on the seeds' spread alone).
    """
    interval = (row.get("intervals") or {}).get(measure)
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and all(
            _finite(v) for v in interval):
        return ((interval[1] - interval[0]) / (2 * 1.959963984540054)) ** 2
    v = value(row, measure, partner)
    counts = row.get("test_counts") or []
    n = sum(counts) if counts else row.get("test_samples") or 0
    if not _finite(v) or not n:
        return 0.0
    if measure == "roc_auc_ovr_macro":
        classes = max(1, len([c for c in counts if c]) or 10)
        pos, neg = n / classes, n - n / classes
        q1, q2 = v / (2 - v), 2 * v * v / (1 + v)
        per_class = (v * (1 - v) + (pos - 1) * (q1 - v * v) + (neg - 1) * (q2 - v * v)) / (
            pos * neg)
        return max(per_class, 0.0) / classes
    classes = pairing.measured_classes(measure, row, partner)  # reduced classes, a group's
    if classes is not None and counts:
        n = sum(counts[k] for k in classes if k < len(counts)) or n
    if not 0 <= v <= 1:
        return 0.0
    # Agresti-Coull: z^2/2 successes and failures added, so a figure of 0 or 1 (every image
    # wrong, or right) still has a variance, as its interval says it must.
    z2 = 1.959963984540054 ** 2
    adjusted = (v * n + z2 / 2) / (n + z2)
    return adjusted * (1 - adjusted) / (n + z2)


def predicted_classes(row: dict[str, Any]) -> int | None:
    """How many classes a row's model predicted: stored (``results.csv`` has it too), else
    from its confusion matrix or its test outcomes; None when the row cannot tell."""
    stored = schema.as_number(row.get("predicted_classes"))
    if stored is not None:
        return int(stored)
    matrix = (row.get("metrics") or {}).get("confusion_matrix")
    if isinstance(matrix, list) and matrix and isinstance(matrix[0], list):
        return sum(1 for k in range(len(matrix[0])) if any(r[k] for r in matrix))
    pair = pairing.decoded(row)
    return None if pair is None else int(len(np.unique(pair[1])))


def is_degenerate(row: dict[str, Any]) -> bool:
    """Whether a run's model predicted one class for every test image: its scores say nothing
    about what it learned. Read from ``predicted_classes`` (a row or a ``results.csv`` line)
    or the confusion matrix, so the run folder and its CSV agree."""
    return predicted_classes(row) == 1
