"""Comparisons between cases, declared as data, and what the result rows say about each.

A :class:`Comparison` names two arms of the matrix (case ids without seed), the factor the study
varies between them, and the figures compared. :func:`compare` pairs the arms' rows by seed and
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

from . import matrix, schema
from .stats import Summary, holm, paired_difference, seed_summary

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


MEASURES = _measures()
# Steady-state figures (another part of the harness may add them) beat the raw ones: the raw
# training time includes graph tracing, the peak RSS the data set already loaded.
RESOURCE_FIELDS = {"train_time": ("steady_train_time_s", "train_time_s"),
                   "memory": ("rss_added_mb", "peak_rss_mb")}
# The process's peak RSS only grows while cases run one after another in it, so a case that runs
# later (the imbalanced arm runs after the balanced one) looks bigger on run order alone.
CAVEATS = {"peak_rss_mb": "peak RSS of the whole process: grows with run order",
           "train_time_s": "includes graph tracing of the first step"}
# Fields that the declared factor itself changes: not confounds.
FACTOR_FIELDS = {
    "balance": ("balance", "imbalance", "recipe"),
    "split": ("split",),
    "regularization": ("regularization", "head.dropout", "head.regularizer"),
    "dataset": ("dataset",),
    "method": ("long_tail.method",),  # the long-tail study: a method against cross-entropy
}
CASE_FIELDS = ("table", "dataset", "balance", "split", "regularization")


@dataclass(frozen=True)
class Comparison:
    """Treatment arm against baseline arm; both are matrix case ids without a seed."""

    family: str  # Holm's correction runs over the family's tests (scores and resources apart)
    factor: str  # the field the study varies between the arms (see FACTOR_FIELDS)
    baseline: str
    treatment: str
    measures: tuple[str, ...] = ("accuracy",)

    @property
    def name(self) -> str:
        return f"{_short(self.treatment)} vs {_short(self.baseline)}"


def _short(case_id: str) -> str:
    """``fashion_mnist imbalanced``, ``cifar10 split 70/30``, ``fashion_mnist reg dropout0.3``;
    ``cifar10 exp100 focal`` for a case of the long-tail study."""
    case = matrix.CASES_BY_ID.get(case_id)
    if case is None:
        from .longtail import CASES_BY_ID as LONG_TAIL

        case = LONG_TAIL[case_id]
        return f"{case.dataset} {case.profile} {case.method}"
    parts = [case.dataset]
    if case.table == "table7":
        parts.append(case.balance)
    if case.split is not None:
        parts.append(f"split {round(case.split * 100)}/{round((1 - case.split) * 100)}")
    if case.table == "table10":
        parts.append(f"reg {case.regularization}")
    return " ".join(parts)


def case_id(table: str, dataset: str, balance: str = "balanced", split: float | None = None,
            reg: str = "none") -> str:
    """The id (without seed) of the matrix row with these attributes."""
    (case,) = [c for c in matrix.CASES
               if (c.table, c.dataset, c.balance, c.split, c.regularization)
               == (table, dataset, balance, split, reg)]
    return case.id


def _declared() -> tuple[Comparison, ...]:
    out = []
    table7 = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr_macro", "reduced_recall",
              "train_time", "memory")
    for dataset in matrix.DATASETS:  # Table 7/8: imbalanced against balanced
        out.append(Comparison("table7", "balance", case_id("table7", dataset),
                              case_id("table7", dataset, "imbalanced"), table7))
    for dataset in matrix.DATASETS:  # Table 9: each split against the next larger one
        for small, large in zip(matrix.SPLITS, matrix.SPLITS[1:]):
            out.append(Comparison("table9-splits", "split", case_id("table9", dataset, split=small),
                                  case_id("table9", dataset, split=large)))
    for split in matrix.SPLITS:  # Table 9: Fashion-MNIST against CIFAR-10 at the same split
        out.append(Comparison("table9-datasets", "dataset", case_id("table9", "cifar10", split=split),
                              case_id("table9", "fashion_mnist", split=split)))
    regs = [c.regularization for c in matrix.CASES if c.table == "table10"]
    control = case_id("table10", "fashion_mnist")
    for reg in regs:  # Table 10: each regulariser against the no-regularization control
        if reg != "none":
            out.append(Comparison("table10-control", "regularization", control,
                                  case_id("table10", "fashion_mnist", reg=reg),
                                  ("accuracy", "roc_auc_ovr_macro")))
    best = case_id("table10", "fashion_mnist", reg="dropout0.3")
    for reg in regs:  # Table 10's claim: dropout 0.3 beats every other regulariser
        if reg not in ("none", "dropout0.3"):
            out.append(Comparison("table10-dropout0.3", "regularization",
                                  case_id("table10", "fashion_mnist", reg=reg), best))
    out.append(Comparison("table10-l2-l1", "regularization",
                          case_id("table10", "fashion_mnist", reg="l1"),
                          case_id("table10", "fashion_mnist", reg="l2")))
    return tuple(out)


COMPARISONS: tuple[Comparison, ...] = _declared()


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
            base, seed = matrix.split_seed(str(row.get("case_id")))
            out[base, int(row["seed"] if row.get("seed") is not None else seed or 0)] = row
    return out


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
    left = dict(_flat("", a.get("config") or {}), **{k: a.get(k) for k in CASE_FIELDS})
    right = dict(_flat("", b.get("config") or {}), **{k: b.get(k) for k in CASE_FIELDS})
    skip = FACTOR_FIELDS.get(factor, (factor,))
    out = []
    for key in sorted(set(left) | set(right)):
        if any(key == s or key.startswith(s + ".") for s in skip):
            continue
        if left.get(key) != right.get(key):
            out.append(f"{key}: {_show(left.get(key))} -> {_show(right.get(key))}")
    return out


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
            comparisons: Sequence[Comparison] = COMPARISONS) -> list[Result]:
    """Every figure of every comparison, from the result rows (pairs matched by seed)."""
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
