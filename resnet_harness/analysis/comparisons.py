"""What the result rows say about each comparison that the studies declare.

A :class:`~resnet_harness.study.Comparison` (declared by a study) names two arms (case ids
without seed), the factor the study varies between them, and the figures compared. :func:`compare` pairs the arms' rows by seed and
gives, per figure, the mean paired difference (treatment - baseline) with its 95% t interval, a
paired t-test p-value, the Holm-adjusted p-value within its family, a verdict, and every
configuration field in which the two arms differ besides the declared factor (the confounds).

Verdicts, for a figure where higher is better (reversed for time and memory):

* ``equivalent``: the interval lies inside ``±delta`` (scores: absolute, e.g. 0.01 = one point;
  time and memory: relative, 0.01 = 1%);
* ``better`` / ``worse``: otherwise, when the Holm-adjusted p-value is below 0.05;
* ``inconclusive``: anything else, including a single seed;
* ``not run``: no seed has rows for both arms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from resnet_harness import study
from resnet_harness.analysis.stats import Summary, holm, paired_difference, seed_summary
from resnet_harness.storage import schema
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


_LABELS = {"f1_macro": "F1 (macro)", "roc_auc_ovr_macro": "ROC AUC"}


def _measures() -> dict[str, Measure]:
    # Every score of the row schema (its direction from there), plus the figures made of several
    # fields: the recall of the reduced classes, and time and memory (see RESOURCE_FIELDS).
    scores = [Measure(f.name, _LABELS.get(f.name, f.name.replace("_", " ")), better=f.better)
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
    low: float
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

    def as_dict(self) -> dict[str, Any]:
        """A flat record (``comparisons.csv``)."""
        c = self.comparison
        return {"family": c.family, "comparison": c.name, "factor": c.factor,
                "baseline": c.baseline, "treatment": c.treatment, "measure": self.measure,
                "n_seeds": self.n, "seeds": " ".join(map(str, self.seeds)),
                "baseline_mean": self.baseline_mean, "treatment_mean": self.treatment_mean,
                "difference": self.mean, "ci_low": self.low, "ci_high": self.high,
                "relative": MEASURES[self.measure].resource, "p_value": self.p_value,
                "p_holm": self.p_holm, "verdict": self.verdict, "direction": self.direction,
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
    return tuple(c for c in study.comparisons()
                 if c.baseline in present or c.treatment in present)


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
    left = dict(_flat("", a.get("config") or {}), **{k: a.get(k) for k in keys})
    right = dict(_flat("", b.get("config") or {}), **{k: b.get(k) for k in keys})
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
def _direction(n: int, low: float, high: float, mean: float, p_holm: float,
               delta: float) -> str:
    if n == 0:
        return "not run"
    if n >= 2 and -delta < low and high < delta:
        return "equivalent"
    if not math.isnan(p_holm) and p_holm < ALPHA:
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


def compare(rows: Iterable[dict[str, Any]], delta: float = 0.01,
            comparisons: Sequence[Comparison] | None = None) -> list[Result]:
    """Every figure of every comparison, from the result rows (pairs matched by seed).

    ``comparisons``: by default those of every registered study that has a row in ``rows``
    (a run of the paper's cases lists none of the long-tail study's as "not run")."""
    rows = list(rows)
    if comparisons is None:
        comparisons = comparisons_for(rows)
    table = usable_rows(rows)
    seeds_of: dict[str, set[int]] = {}
    for base, seed in table:
        seeds_of.setdefault(base, set()).add(seed)
    raws = []
    for comp in comparisons:
        seeds = sorted(seeds_of.get(comp.baseline, set()) & seeds_of.get(comp.treatment, set()))
        found: list[str] = []
        for seed in seeds:
            for text in confounds(table[comp.baseline, seed], table[comp.treatment, seed],
                                  comp.factor):
                if text not in found:
                    found.append(text)
        for name in comp.measures:
            raw = _Raw(comp, name, confounds=found)
            for seed in seeds:
                a, b = table[comp.baseline, seed], table[comp.treatment, seed]
                va, vb = value(a, name, b), value(b, name, a)
                if not (math.isnan(va) or math.isnan(vb)):
                    key = resource_field(a, name, b) if name in RESOURCE_FIELDS else None
                    if key and key not in raw.fields:
                        raw.fields.append(key)
                    raw.seeds.append(seed)
                    raw.a.append(va)
                    raw.b.append(vb)
            raws.append(raw)
    paired = []
    for raw in raws:
        if MEASURES[raw.measure].resource:  # relative: b / a - 1, so 0.01 means 1%
            diffs = [vb / va - 1 if va else math.nan for va, vb in zip(raw.a, raw.b)]
            paired.append(paired_difference([0.0] * len(diffs), diffs))
        else:
            paired.append(paired_difference(raw.a, raw.b))
    families: dict[tuple[str, bool], list[int]] = {}
    for index, raw in enumerate(raws):
        families.setdefault((raw.comparison.family, MEASURES[raw.measure].resource),
                            []).append(index)
    adjusted = [math.nan] * len(raws)
    for members in families.values():
        for index, p in zip(members, holm([paired[i].p_value for i in members])):
            adjusted[index] = p
    results = []
    for raw, pair, p_holm in zip(raws, paired, adjusted):
        measure = MEASURES[raw.measure]
        direction = _direction(pair.n, pair.low, pair.high, pair.mean, p_holm, delta)
        results.append(Result(
            raw.comparison, raw.measure, pair.n, pair.mean, pair.low, pair.high, pair.p_value,
            p_holm, _verdict(direction, measure), direction, tuple(raw.confounds),
            tuple(raw.seeds), seed_summary(raw.a).mean, seed_summary(raw.b).mean,
            tuple(raw.fields)))
    return results
