"""Sanity bounds of a result: what must hold at every scale, and the learned floors a case
declares (its study's ``Bounds``) for the reduced and paper scales."""

from __future__ import annotations

import math
from typing import Any

from resnet_harness.training.data import expected_train_counts
from resnet_harness.storage import schema
from resnet_harness.storage.schema import SCORES


def check(row: dict[str, Any], *, floors: dict[str, float], imbalanced: bool,
          expected_counts: list[int] | None = None) -> list[str]:
    """Every violated bound of ``row``, each as "metric=value violates bound"; empty when sane.

    ``floors``: metric -> minimum (the case's floors at the row's scale); ``imbalanced``: whether
    the case's training set must be imbalanced.
    """
    problems: list[str] = []
    metrics = row.get("metrics") or {}
    for name in (*SCORES, *schema.GROUP_SCORES):
        value = schema.value(row, name)
        if value is None and name in schema.GROUP_SCORES:
            continue  # a study's own score: only its rows have it
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{name}={value} is not a finite number")
        elif not 0.0 <= value <= 1.0:
            problems.append(f"{name}={value:.4f} lies outside [0, 1]")
    matrix = metrics.get("confusion_matrix")
    if matrix is not None:
        total = sum(map(sum, matrix))
        if total != row["test_samples"]:
            problems.append(f"confusion matrix sums to {total}, test size is {row['test_samples']}")
    if sum(row["test_counts"]) != row["test_samples"]:
        problems.append(f"test counts {row['test_counts']} do not sum to {row['test_samples']}")
    if expected_counts is not None:  # what the case's own selection must leave
        expected = list(expected_counts)
    else:
        expected = expected_train_counts(row["counts_before_imbalance"],
                                         tuple(row["reduced_classes"]), row["removal_fraction"])
    # --validation-split holds out part of the variant's training set: the spec covers both.
    held = row.get("validation_counts") or [0] * len(row["train_counts"])
    trained = [t + v for t, v in zip(row["train_counts"], held)]
    if trained != expected:
        problems.append(f"train class counts {trained} differ from the variant's spec {expected}"
                        + (" (training + validation)" if row.get("validation_counts") else ""))
    if imbalanced and not row["reduced_classes"]:
        problems.append("imbalanced case has no reduced classes")
    if not imbalanced and max(trained) - min(trained) > 1 and (
            max(row["counts_before_imbalance"]) - min(row["counts_before_imbalance"]) <= 1):
        problems.append(f"balanced case has unequal train counts {row['train_counts']}")
    scale = row.get("scale")
    for name, floor in floors.items():
        value = metrics.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value) and value < floor:
            problems.append(f"{name}={value:.4f} is below its {scale}-scale floor {floor}")
    return problems
