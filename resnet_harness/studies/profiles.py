"""Training-set imbalance profiles that several studies use (one home: a study imports them).

``exp``/``step`` are the long-tail literature's (Cao et al. 2019, LDAM-DRW's
``imb_type``/``imb_factor``); ``paper`` is the paper's text reading, whose classes and share are
the core's ``--imbalance text`` recipe (``training.config.IMBALANCE_READINGS``): one
definition of "10% of classes 0-2".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from resnet_harness.training.config import IMBALANCE_READINGS
from resnet_harness.training.data.sources import NUM_CLASSES

_TEXT = IMBALANCE_READINGS["text"]
PAPER_CLASSES = _TEXT.classes  # the study's text reading: 10% of classes 0-2 removed
PAPER_FRACTION = _TEXT.remove_fraction


@dataclass(frozen=True)
class Profile:
    """A training-set imbalance profile: ``kind`` exp | step | paper, ``rho`` = n_max / n_min."""

    name: str
    kind: str
    rho: float | None = None

    def counts(self, before: Sequence[int]) -> list[int]:
        """Per-class training counts this profile keeps from ``before`` (the capped counts).

        ``n_max`` is the smallest capped class count, so that every class can supply its share
        (the capped counts are equal up to one image: stratified subsets).
        """
        before = [int(n) for n in before]
        classes = len(before)
        if self.kind == "paper":
            return [n - int(round(n * PAPER_FRACTION)) if c in PAPER_CLASSES else n
                    for c, n in enumerate(before)]
        n_max = min(before)
        # Every class keeps at least one image: LDAM-DRW's formula would leave none where
        # n_max < rho (smoke scale: 32 per class), and a class without images has no prior.
        if self.kind == "exp":
            # LDAM-DRW's expression, float for float: img_max * (imb_factor ** (i / (C - 1.0))).
            factor = 1.0 / self.rho
            return [max(1, int(n_max * (factor ** (c / (classes - 1.0)))))
                    for c in range(classes)]
        if self.kind == "step":
            return [n_max if c < classes // 2 else max(1, int(n_max * (1.0 / self.rho)))
                    for c in range(classes)]
        raise ValueError(f"unknown profile kind {self.kind!r}; use exp, step or paper")

    def as_dict(self) -> dict[str, Any]:
        return {"profile": self.name, "kind": self.kind, "rho": self.rho}


PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("exp100", "exp", 100), Profile("exp10", "exp", 10),
    Profile("step100", "step", 100), Profile("step10", "step", 10),
    Profile("paper", "paper"))}


def apply_profile(profile: Profile, train_idx: np.ndarray, y_train: np.ndarray,
                  seed: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """The training indices kept by ``profile`` (a seeded random subset of each class) and the
    classes it reduced."""
    before = np.bincount(y_train, minlength=NUM_CLASSES)
    target = profile.counts(before.tolist())
    rng = np.random.default_rng([seed, 3])
    kept = [rng.choice(train_idx[y_train == c], size=n, replace=False)
            for c, n in enumerate(target)]
    reduced = tuple(c for c, n in enumerate(target) if n < before[c])
    return np.sort(np.concatenate(kept)), reduced
