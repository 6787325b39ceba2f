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

from resnet_harness.storage.atomic import atomic_write_bytes
from resnet_harness.storage.rundir import RunFolder
from resnet_harness.storage.schema import (DEFAULT_TOLERANCES, FIELDS_BY_NAME, SCORES, as_number,
                                           numbers)
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
    if not tolerance >= 0:
        raise argparse.ArgumentTypeError(f"tolerance {value!r} must be 0 or more")
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


def _read_results(csv: Path):
    """A ``results.csv`` as a frame, checked to be one (readable, not empty, harness columns)."""
    import pandas as pd

    try:
        frame = pd.read_csv(csv)
    except pd.errors.EmptyDataError:
        raise BaselineError(f"{csv} is empty; pass a results.csv written by resnet-harness "
                            "(rebuild one with: python -m resnet_harness report RUN_DIR)") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a results.csv"
        raise BaselineError(f"{csv} is not a readable CSV ({type(exc).__name__}); "
                            "pass a results.csv written by resnet-harness") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise BaselineError(f"{csv} lacks the columns {', '.join(missing)}; pass a "
                            "results.csv written by resnet-harness")
    return frame


def baseline_key(case_id: str, scale: str, seed: Any = None) -> tuple[str, str, int]:
    """What a baseline row and a run are matched on: the case (without a ``-seedN`` suffix),
    the scale and the seed. So a ``--seeds 0-2`` run compares each seed with the same seed's
    baseline row, and a plain run (``--seed``, default 0) matches a ``--seeds`` baseline too."""
    base, id_seed = split_seed(str(case_id))
    number = as_number(seed)
    return base, str(scale), int(number if number is not None else id_seed or 0)


def load_baseline(path: Path | str) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Baseline rows keyed by :func:`baseline_key`, finished (passed) rows only."""
    csv = results_csv(Path(path))
    frame = _read_results(csv)
    rows = {}
    for record in frame.to_dict("records"):
        if record["status"] == "passed":
            rows[baseline_key(record["case_id"], record["scale"], record.get("seed"))] = record
    return rows


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
