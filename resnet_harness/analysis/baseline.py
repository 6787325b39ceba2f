"""Regression checks against a baseline run: each case's metrics, time and memory compared with
the baseline row of the same case id and scale.

Quality metrics regress when they fall more than an absolute tolerance below the baseline; time
and memory regress when they grow more than a relative tolerance above it. Improvements are
reported, never failed.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_harness.storage import identity
from resnet_harness.storage.atomic import atomic_write_bytes
from resnet_harness.storage.rundir import RunFolder
from resnet_harness.storage.schema import (DEFAULT_TOLERANCES, FIELDS_BY_NAME, SCORES, as_number,
                                           numbers)
from resnet_harness.storage.schema import value as field_value
from resnet_harness.study import split_seed

REQUIRED_COLUMNS = ("case_id", "scale", "status")


class BaselineError(Exception):
    """The baseline cannot be used; the message says why and how to fix it."""


@dataclass(frozen=True)
class Comparison:
    """One metric of one case against its baseline."""

    metric: str
    baseline: float
    measured: float
    tolerance: float
    verdict: str  # "regression" | "improvement" | "same"

    def describe(self) -> str:
        kind = FIELDS_BY_NAME[self.metric].tolerance
        return (f"{self.metric}: measured {self.measured:.4g}, baseline {self.baseline:.4g}, "
                f"{kind} tolerance {self.tolerance:g}")


SCORES_SHORTHAND = "scores"  # every quality metric at once


def parse_tolerance(value: str) -> tuple[str, float]:
    """``METRIC=VALUE`` with a known metric (or ``scores``, all quality metrics) and a
    non-negative number."""
    name, sep, number = value.partition("=")
    if not sep or (name not in DEFAULT_TOLERANCES and name != SCORES_SHORTHAND):
        raise argparse.ArgumentTypeError(
            f"tolerance {value!r} must be METRIC=VALUE with METRIC one of: "
            f"{SCORES_SHORTHAND} (all scores), {', '.join(DEFAULT_TOLERANCES)}")
    try:
        tolerance = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"tolerance {value!r}: {number!r} is not a number") from None
    if not tolerance >= 0 or not math.isfinite(tolerance):
        raise argparse.ArgumentTypeError(
            f"tolerance {value!r} must be a finite number >= 0 (infinity would switch the "
            "guard off without a word: to compare nothing, leave --baseline out)")
    return name, tolerance


def expand_tolerances(entries) -> dict[str, float]:
    """``(metric, value)`` pairs in order as a dict; ``scores`` stands for every quality metric,
    and a later entry overrides an earlier one (``scores=0.15`` then ``accuracy=0.1``)."""
    out: dict[str, float] = {}
    for name, value in entries:
        out.update(dict.fromkeys(SCORES, value) if name == SCORES_SHORTHAND else {name: value})
    return out


def with_overrides(tolerances: dict[str, float], overrides, where: str) -> dict[str, float]:
    """``tolerances`` updated by each ``{metric: value}`` of ``overrides`` in order (a marker's
    or a matrix row's); within one mapping ``scores`` applies first, so named metrics win.

    ``ValueError`` naming ``where`` for an unknown metric.
    """
    out = dict(tolerances)
    for mapping in overrides:
        unknown = set(mapping) - set(DEFAULT_TOLERANCES) - {SCORES_SHORTHAND}
        if unknown:
            raise ValueError(f"{where}: tolerance names unknown metrics {sorted(unknown)}; use "
                             f"{SCORES_SHORTHAND}, {', '.join(DEFAULT_TOLERANCES)}")
        out.update(expand_tolerances(sorted(mapping.items(),
                                            key=lambda item: item[0] != SCORES_SHORTHAND)))
    return out


def results_csv(path: Path) -> Path:
    """The ``results.csv`` a baseline path names (the file itself or a run folder holding it)."""
    path = RunFolder.results_csv(path)
    if not path.is_file():
        raise BaselineError(f"baseline {path} does not exist; pass a results.csv or a run folder "
                            "that holds one (e.g. reports/latest)")
    return path


def _read_results(csv: Path, usable: tuple[str, ...] = ("passed",)):
    """A ``results.csv`` as a frame, checked to be one (``table.read_results``: readable,
    harness columns, rows, figures in range, no case twice)."""
    from resnet_harness.analysis.table import ResultsError, read_results  # pandas: lazily

    try:
        return read_results(csv, usable, fix=_RECORD)
    except ResultsError as exc:
        raise BaselineError(str(exc)) from None


_RECORD = ("fix the file or record a new baseline with: python -m resnet_harness save-baseline "
           "RUN_DIR FILE")


def baseline_key(case_id: str, scale: str, seed: Any = None) -> tuple[str, str, int]:
    """What a baseline row and a run are first matched on: the case (without a ``-seedN``
    suffix), the scale and the seed. So a ``--seeds 0-2`` run compares each seed with the same
    seed's baseline row, and a plain run (``--seed``, default 0) matches a ``--seeds`` baseline
    too. :meth:`Baseline.match` then compares the rest of the two rows' identities."""
    base, id_seed = split_seed(str(case_id))
    number = as_number(seed)
    return base, str(scale), int(number if number is not None else id_seed or 0)


@dataclass(frozen=True)
class Match:
    """The baseline row a measured row is compared with, or why there is none.

    ``same_environment``: the two rows were made with the same libraries, CPU instruction sets,
    GPUs and oneDNN settings, so on unchanged code their figures are bit-identical and the
    tight per-seed tolerance applies; otherwise they differ like two seeds do and only the
    session's pooled comparison (:func:`across_environments`) can judge them.
    """

    row: dict[str, Any] | None
    reason: str | None = None  # why not compared
    same_environment: bool = True
    differences: tuple[str, ...] = ()  # environment/library differences, when not the same


_DETERMINISM = "settings.config.deterministic:"


class Baseline:
    """A baseline file's passed rows, checked when loaded, matched by identity."""

    def __init__(self, rows: list[dict[str, Any]], path: str):
        self.path = path
        self.rows = {baseline_key(r["case_id"], r["scale"], r.get("seed")): r for r in rows}

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __contains__(self, key) -> bool:
        return key in self.rows

    def __getitem__(self, key: tuple[str, str, int]) -> dict[str, Any]:
        return self.rows[key]

    def values(self):
        """The baseline rows (flat, as ``results.csv`` holds them; JSON columns parsed)."""
        return self.rows.values()

    def get(self, key: tuple[str, str, int]) -> dict[str, Any] | None:
        """The row of ``key`` (:func:`baseline_key`), or None."""
        return self.rows.get(key)

    def match(self, row: dict[str, Any]) -> Match:
        """The baseline row for the measured ``row``: same case, seed and scale, then the same
        settings and data (what the baseline recorded of them); ``Match.reason`` says why
        there is none."""
        base, scale, seed = baseline_key(row["case_id"], row.get("scale"), row.get("seed"))
        found = self.rows.get((base, scale, seed))
        if found is None:
            scales = sorted({k[1] for k in self.rows if k[0] == base and k[2] == seed})
            return Match(None, f"the baseline has no row of {base} seed {seed}"
                         + (f" at scale {scale} (only {', '.join(scales)})" if scales else ""))
        mine, theirs = identity.parts(row), identity.parts(found)
        other = identity.differences(mine, theirs, ("settings", "data"), strict=False)
        # Op determinism picks other kernels, not another experiment: like another machine,
        # it moves the figures as another seed would (bench/reproducibility.txt).
        kernels = [d for d in other if d.startswith(_DETERMINISM)]
        other = [d for d in other if not d.startswith(_DETERMINISM)]
        if other:
            return Match(None, "the baseline row was made another way: " + "; ".join(other[:3]))
        if not theirs["environment"]:  # a baseline written before environments were recorded
            env = ["environment: not recorded by the baseline"] + kernels
        else:
            env = identity.differences(mine, theirs, ("environment", "libraries")) + kernels
        return Match(found, same_environment=not env, differences=tuple(env))


def _record(line: dict[str, Any]) -> dict[str, Any]:
    # A results.csv line as a row the identity can read: empty cells absent, JSON cells parsed.
    from resnet_harness.analysis.table import (JSON_COLUMNS, PARTIAL_CONFIG,  # pandas: lazily
                                               json_cells)

    out = {k: v for k, v in line.items() if not (isinstance(v, float) and math.isnan(v))
           and k not in JSON_COLUMNS}
    out.update(json_cells(line))
    if "seed" in out:
        out["seed"] = int(out["seed"])
    if not isinstance(out.get("config"), dict):  # written before the config column
        out["config"] = identity.current_names({k: out[k] for k in PARTIAL_CONFIG if k in out})
        out["config_partial"] = True  # no defaults of later settings are assumed for it
    return out


def load_baseline(path: Path | str) -> Baseline:
    """The passed rows of a baseline file, checked: a file with no rows, no passed row, a case
    twice or a figure that is not a finite number in range is a :class:`BaselineError`."""
    csv = results_csv(Path(path))
    frame = _read_results(csv)
    passed = frame[frame["status"] == "passed"]
    if passed.empty:
        raise BaselineError(f"{csv} has no passed row ({len(frame)} rows); a baseline holds "
                            "passed cases: record one from a run that has some")
    return Baseline([_record(r) for r in passed.to_dict("records")], str(csv))


def measured_values(row: dict[str, Any]) -> dict[str, float]:
    """The comparable figures of a result row (every field with a tolerance kind)."""
    return numbers(row, DEFAULT_TOLERANCES)


def compare(row: dict[str, Any], base: dict[str, Any],
            tolerances: dict[str, float]) -> list[Comparison]:
    """Each comparable figure of ``row`` against ``base`` under ``tolerances``."""
    out = []
    for metric, measured in measured_values(row).items():
        baseline = base.get(metric)
        if not isinstance(baseline, (int, float)) or not math.isfinite(baseline) or \
                not math.isfinite(measured):
            continue
        tolerance = tolerances.get(metric, DEFAULT_TOLERANCES.get(metric, 0.0))
        if FIELDS_BY_NAME[metric].tolerance == "relative":
            limit = baseline * (1 + tolerance)
            verdict = ("regression" if measured > limit
                       else "improvement" if measured < baseline * (1 - tolerance) else "same")
        else:
            verdict = ("regression" if measured < baseline - tolerance
                       else "improvement" if measured > baseline + tolerance else "same")
        out.append(Comparison(metric, float(baseline), measured, tolerance, verdict))
    return out


def save_baseline(run_dir: Path | str, dest: Path | str) -> Path:
    """Copy a run's passed rows (its ``results.csv``) to ``dest`` as the new baseline, written
    atomically; :class:`BaselineError` when there is nothing to save or ``dest`` is unwritable."""
    csv = results_csv(Path(run_dir))
    frame = _read_results(csv)
    passed = frame[frame["status"] == "passed"]
    if passed.empty:
        raise BaselineError(f"{csv} has no passed case ({len(frame)} rows); a baseline holds "
                            "passed cases only, so save a run that has some")
    dest = Path(dest)
    if dest.is_dir():
        raise BaselineError(f"baseline destination {dest} is a folder; pass a file path, e.g. "
                            "baselines/reduced.csv")
    try:
        atomic_write_bytes(dest, passed.to_csv(index=False).encode("utf-8"))
    except OSError as exc:
        raise BaselineError(f"cannot write the baseline to {dest} ({exc.strerror or exc}); pass "
                            "a writable path") from None
    return dest


MIN_PAIRS = 6  # fewer cases than this cannot tell a 3-point regression from another machine
ALPHA = 0.05  # one-sided: the pooled check asks "worse by more than the margin?" only


@dataclass(frozen=True)
class Guard:
    """What ``--baseline`` concluded over a session's rows: ``lines`` for the terminal and the
    report, ``failed`` when the run must fail (a pooled regression, or no case compared)."""

    lines: list[str]
    failed: bool
    compared: int  # cases compared, per seed or pooled


def _pooled(rows: list[dict[str, Any]], metric: str) -> tuple[int, float, float, float] | None:
    from scipy import stats

    diffs, margins = [], []
    for row in rows:
        base = row["baseline"]
        measured, reference = as_number(field_value(row, metric)), as_number(
            (base.get("values") or {}).get(metric))
        if measured is None or reference is None:
            continue
        diffs.append(measured - reference)
        margins.append(float((base.get("tolerances") or {}).get(
            metric, DEFAULT_TOLERANCES[metric])))
    if len(diffs) < MIN_PAIRS:
        return None
    n, mean = len(diffs), sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    low = mean - stats.t.ppf(1 - ALPHA, n - 1) * sd / math.sqrt(n)
    return n, mean, low, max(margins)


def guard(rows: list[dict[str, Any]]) -> Guard | None:
    """The baseline's verdict over ``rows`` (a session's); None when no row had a baseline.

    Rows of the baseline's own environment were judged one by one (tight tolerance, per seed).
    Rows whose baseline came from another environment are pooled: for each score, the one-sided
    95% lower bound of the mean difference (run minus baseline, same case and seed) must stay
    above minus the tolerance (a non-inferiority test), which needs at least
    :data:`MIN_PAIRS` cases. Time and memory are not compared across machines.
    """
    judged = [r for r in rows if isinstance(r.get("baseline"), dict)
              and r.get("status") in ("passed", "failed")]
    if not judged:
        return None
    path = judged[0]["baseline"].get("path")
    direct = [r for r in judged if "values" in r["baseline"]
              and not r["baseline"].get("across_environments")]
    across = [r for r in judged if r["baseline"].get("across_environments")]
    skipped = [r for r in judged if "values" not in r["baseline"]]
    lines, failed, compared = [], False, len(direct)
    if direct:
        worse = [r["case_id"] for r in direct if r["baseline"].get("regressions")]
        lines.append(f"baseline {path}: {len(direct)} case(s) compared seed by seed in the same "
                     f"environment; {len(worse)} regressed" + (f" ({', '.join(worse[:5])})"
                                                                if worse else ""))
    if across:
        how = "; ".join(across[0]["baseline"]["across_environments"][:2])
        results = {m: _pooled(across, m) for m in SCORES}
        if all(r is None for r in results.values()):
            failed = True
            lines.append(
                f"baseline {path}: not compared: it was recorded in another environment ({how})"
                f" and {len(across)} case(s) are too few to compare across environments (at "
                f"least {MIN_PAIRS}); record a local baseline with unchanged code on this "
                "machine: run the same command without --baseline, then python -m "
                "resnet_harness save-baseline reports/latest FILE")
        else:
            compared += len(across)
            lines.append(f"baseline {path}: recorded in another environment ({how}); "
                         f"{len(across)} case(s) pooled, one-sided {1 - ALPHA:.0%} lower bound "
                         "of the mean difference against minus the tolerance:")
            for metric, result in results.items():
                if result is None:
                    continue
                n, mean, low, margin = result
                bad = low < -margin
                failed |= bad
                lines.append(f"  {metric}: mean {mean:+.4f}, lower bound {low:+.4f} "
                             f"{'<' if bad else '>='} -{margin:g}: "
                             + ("REGRESSION" if bad else "no regression"))
    for row in skipped[:10]:
        lines.append(f"{row['case_id']}: not compared: {row['baseline'].get('not_compared')}")
    if len(skipped) > 10:
        lines.append(f"... and {len(skipped) - 10} more not compared (results.csv: "
                     "baseline_status)")
    if compared == 0 and not failed:
        failed = True
        lines.append(f"baseline {path} compared no case; the run fails so that a guard that "
                     "checks nothing is never read as a pass")
    return Guard(lines, failed, compared)
