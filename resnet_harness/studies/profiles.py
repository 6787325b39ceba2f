"""Training-set imbalance that several studies use (one home: a study imports it).

- The paper's imbalance recipe and its four readings (:data:`IMBALANCE_READINGS`), with the
  options that choose and adjust one (``--imbalance``, ``--imbalance-classes``,
  ``--imbalance-fraction``: :data:`IMBALANCE_OPTIONS`, declared by every study whose cases
  use the recipe, the paper's and the architectures study);
- the profiles: ``exp``/``step`` are the long-tail literature's (Cao et al. 2019, LDAM-DRW's
  ``imb_type``/``imb_factor``); ``paper`` is the paper's text reading, whose classes and share
  are ``IMBALANCE_READINGS["text"]``: one definition of "10% of classes 0-2".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from resnet_harness.study import StudyOption
from resnet_harness.training import values
from resnet_harness.training.config import Imbalance
from resnet_harness.training.data.sources import NUM_CLASSES

# The paper gives four incompatible recipes (see README, "Readings of the paper").
IMBALANCE_READINGS = {
    "text": Imbalance("text", remove_fraction=0.10),  # "10% of training samples are removed"
    "table4": Imbalance("table4", remove_total=5000),  # "Number to remove: 5000"
    "table6": Imbalance("table6", remove_fraction=0.50),  # "Imbalance factor: 0.5"
    "table2": Imbalance("table2", keep_per_class={"cifar10": 4950, "fashion_mnist": 4500}),
}


def parse_imbalance(value: str) -> str:
    """A reading of the paper's imbalance recipe: text, table2, table4 or table6."""
    return values.one_of(value, IMBALANCE_READINGS, "imbalance reading")


IMBALANCE = StudyOption("--imbalance", parse_imbalance,
                        "reading of the paper's imbalance recipe: text (default, 10%% "
                        "removed), table2, table4, table6", default="text")
IMBALANCE_CLASSES = StudyOption("--imbalance-classes", values.parse_classes,
                                "classes reduced in imbalanced variants (default 0,1,2)")
IMBALANCE_FRACTION = StudyOption("--imbalance-fraction", values.parse_fraction,
                                 "share of each reduced class removed, overriding --imbalance")
IMBALANCE_OPTIONS = (IMBALANCE, IMBALANCE_CLASSES, IMBALANCE_FRACTION)


def imbalance_recipe(options: Mapping[str, Any]) -> Imbalance:
    """The paper's imbalance recipe as the session's options read it: the ``--imbalance``
    reading, its classes replaced by ``--imbalance-classes`` and its share by
    ``--imbalance-fraction`` when given."""
    recipe = IMBALANCE_READINGS[IMBALANCE.value(options)]
    classes, fraction = IMBALANCE_CLASSES.value(options), IMBALANCE_FRACTION.value(options)
    if classes is not None:
        recipe = replace(recipe, classes=tuple(classes))
    if fraction is not None:
        recipe = replace(recipe, reading=f"{recipe.reading}+fraction", remove_fraction=fraction,
                         remove_total=None, keep_per_class=None)
    return recipe


def imbalance_config(cfg) -> dict[str, Any]:
    """The row's ``config`` entry of a study that uses the recipe: the case's thinning (None
    for its balanced cases), compared by ``--resume`` like any setting."""
    return {"imbalance": asdict(cfg.imbalance) if cfg.imbalance else None}


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
