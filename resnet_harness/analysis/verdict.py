"""A case's verdict: one pure function of its row, its floors, its baseline row and the
tolerances. Nothing here knows pytest or the session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from resnet_harness.analysis import bounds
from resnet_harness.analysis.baseline import compare


@dataclass(frozen=True)
class Verdict:
    """What a finished row means: ``passed`` or ``failed`` and why."""

    status: str
    violations: list[str]
    bounds: dict[str, Any]
    baseline: dict[str, Any] | None = field(default=None)

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with its status, error, bounds and baseline comparison filled in."""
        out = dict(row, status=self.status, error="; ".join(self.violations) or None,
                   bounds=self.bounds)
        if self.baseline is not None:
            out["baseline"] = self.baseline
        return out


def judge(row: Mapping[str, Any], *, floors: Mapping[str, float], imbalanced: bool,
          expected_counts: list[int] | None = None,
          baseline_row: Mapping[str, Any] | None = None, baseline_path: str | None = None,
          tolerances: Mapping[str, float] | None = None, not_compared: str | None = None,
          across_environments: tuple[str, ...] = ()) -> Verdict:
    """The verdict on a measured ``row``.

    ``floors``: metric -> minimum at this scale (the case's ``Bounds``); ``imbalanced``: whether
    the case's training set must be imbalanced; ``baseline_row``: the baseline's row of the same
    identity, or None (with ``baseline_path`` given: recorded as not compared, for the reason
    ``not_compared``); ``tolerances``: metric -> tolerance, the defaults of ``schema`` for the
    rest. ``across_environments``: how the baseline row's libraries or environment differ from
    this row's; such a row is not judged alone (its figures differ like another seed's) but
    pooled with the session's others (``baseline.across_environments``).
    """
    violations = bounds.check(row, floors=floors, imbalanced=imbalanced,
                              expected_counts=expected_counts)
    baseline = None
    if baseline_row is not None:
        comparisons = compare(dict(row), dict(baseline_row), dict(tolerances or {}))
        regressions = ([] if across_environments else
                       [c.describe() for c in comparisons if c.verdict == "regression"])
        baseline = {
            "path": baseline_path, "tolerances": dict(tolerances or {}),
            "regressions": regressions,
            "improvements": ([] if across_environments else
                             [c.describe() for c in comparisons if c.verdict == "improvement"]),
            "values": {c.metric: c.baseline for c in comparisons},
        }
        if across_environments:
            baseline["across_environments"] = list(across_environments)
        violations += [f"regression against baseline: {text}" for text in regressions]
    elif baseline_path is not None:
        baseline = {"path": baseline_path,
                    "not_compared": not_compared or "the baseline has no row of this case"}
    return Verdict("failed" if violations else "passed", violations,
                   {"violations": list(violations), "floors": dict(floors)}, baseline)
