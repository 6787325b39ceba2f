"""A pytest plugin that breaks the harness on purpose, to prove the regression guard catches it.

Load it with ``PYTHONPATH=bench pytest -p inject_regression ...`` and choose the fault with
``HARNESS_INJECT``:

``labels:F``  shuffle the labels of a share F of every training set (seeded; class counts stay
              exactly the same, so no bound notices it; only the scores can);
``lr:K``      multiply every case's learning rate by K.

Never part of the harness: it lives in ``bench/`` and only ``bench/regression_guard.py`` uses it.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np


def _shuffle_labels(make_variant, share: float):
    def wrapped(raw, cfg):
        variant = make_variant(raw, cfg)
        rng = np.random.default_rng(cfg.seed + 12345)
        chosen = rng.choice(len(variant.y_train), int(round(share * len(variant.y_train))),
                            replace=False)
        # A permutation of the chosen labels among themselves keeps every class count.
        variant.y_train = variant.y_train.copy()
        variant.y_train[chosen] = variant.y_train[rng.permutation(chosen)]
        return variant
    return wrapped


def pytest_configure(config) -> None:
    spec = os.environ.get("HARNESS_INJECT", "")
    kind, _, value = spec.partition(":")
    if not kind:
        return
    from resnet_harness.training import runner

    if kind == "labels":
        runner.make_variant = _shuffle_labels(runner.make_variant, float(value))
    elif kind == "lr":
        factor = float(value)
        original = runner.model_for

        def model_for(cfg, models):
            case = dataclasses.replace(cfg.case, learning_rate=cfg.case.learning_rate * factor)
            return original(dataclasses.replace(cfg, case=case), models)
        runner.model_for = model_for
    else:
        raise ValueError(f"HARNESS_INJECT={spec!r}: use labels:F or lr:K")
