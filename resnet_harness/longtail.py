"""The long-tail study, as data: imbalance profiles, methods, its matrix rows and its comparisons.

A second study beside the paper's 21 cases (``matrix.CASES``), run by the same session, runner,
scales, options, rows, report, baseline and resume machinery. Each row is a
:class:`LongTailCase` -- a :class:`~resnet_harness.matrix.Case` with a training-set profile and a
method -- and ``experiments/test_longtail.py`` only parametrizes over :data:`CASES`.

The field's protocol (CIFAR-10-LT, Cao et al. 2019, ``imbalance_cifar.py`` of LDAM-DRW): the
training set only is made long-tailed, the test set stays balanced, and balanced top-1 accuracy is
the headline figure. Profiles (``n_max`` = the per-class count after the scale's cap, so rho holds
at every scale):

- ``exp<rho>``: class i keeps ``int(n_max * (1/rho) ** (i / (C - 1)))`` images (truncated, as
  LDAM-DRW does): rho = 100 on full CIFAR-10 gives 5000 ... 50, 12,406 in all; rho = 10 gives
  5000 ... 500, 20,431.
- ``step<rho>``: classes 0..C/2-1 keep ``n_max``, the others ``int(n_max / rho)``.

rho holds exactly where ``n_max >= rho`` (reduced scale: 300 per class; paper scale: 5,000 /
6,000). At smoke scale (32 per class) the formula would leave classes empty, so every class keeps
at least one image and the effective rho is 32; each row records its ``effective_rho``.
- ``paper``: the study's own recipe (its text reading): 10% of classes 0, 1, 2 removed.

Head / middle / tail groups (10 classes): classes ranked by training count, largest first, ties
by class index; head = the 3 largest, middle = the next 4, tail = the 3 smallest. For ``exp``
that is classes 0-2 / 3-6 / 7-9; for ``step`` 0-2 / 3-6 (3, 4 large, 5, 6 small) / 7-9; for
``paper`` 3-5 / 6-9 / 0-2 (the reduced classes are the tail).

Nothing here imports TensorFlow; the Keras side of the methods is in ``longtail_methods``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import numpy as np

from .matrix import DATASETS, EPOCHS, NUM_CLASSES, Bounds, Case, Head, PaperFigures

PAPER_CLASSES = (0, 1, 2)  # the study's text reading: 10% of classes 0-2 removed
PAPER_FRACTION = 0.10
GROUP_SIZES = (("head", 3), ("middle", 4), ("tail", 3))  # for 10 classes, by training count


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


@dataclass(frozen=True)
class Method:
    """How a method trains; the knobs that ``longtail_methods`` turns into Keras settings.

    ``class_weight``: None, "inverse" (N / (C n_c)) or "effective" (Cui et al. 2019, beta from
    ``--cb-beta``), passed to ``fit(class_weight=...)`` unless ``deferred`` or ``alpha`` says
    otherwise; ``resample``: class-balanced sampling in tf.data; ``gamma``: focal loss exponent;
    ``alpha``: per-class weights inside the focal loss ("effective" for class-balanced focal);
    ``tau``: logit adjustment inside the loss (True: ``--la-tau``); ``deferred``: the class
    weights switch on at ``DRW_START`` of the epochs; ``posthoc``: no training -- adjust the
    saved predictions of the cross-entropy arm.
    """

    name: str
    doc: str
    class_weight: str | None = None
    resample: bool = False
    gamma: float = 0.0
    alpha: str | None = None
    tau: bool = False
    deferred: bool = False
    posthoc: bool = False


DRW_START = 0.8  # LDAM-DRW re-weights from epoch 160 of 200
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("ce", "plain cross-entropy"),
    Method("inverse_freq", "cross-entropy, class weights N / (C n_c) via fit(class_weight)",
           class_weight="inverse"),
    Method("effective_num", "cross-entropy, effective-number class weights (Cui et al. 2019) via "
           "fit(class_weight)", class_weight="effective"),
    Method("resampling", "cross-entropy on class-balanced batches (tf.data sample_from_datasets)",
           resample=True),
    Method("focal", "focal loss, gamma = 2 (Keras' categorical focal cross-entropy)", gamma=2.0),
    Method("cb_focal", "class-balanced focal loss: focal with effective-number alpha",
           gamma=2.0, alpha="effective"),
    Method("la_loss", "logit-adjusted loss (Menon et al. 2021): tau log(prior) added to the "
           "logits in the loss", tau=True),
    Method("posthoc_la", "post-hoc logit adjustment of the ce arm's saved predictions "
           "(log p - tau log prior), no training", posthoc=True),
    Method("drw", "deferred re-weighting: cross-entropy, effective-number weights switched on "
           f"for the last {1 - DRW_START:.0%} of the epochs", class_weight="effective",
           deferred=True),
)}

# Published balanced top-1 (%) on CIFAR-10-LT exp rho = 100 -- ResNet-32 from scratch, 200
# epochs, full data: a different network and schedule from ours, shown beside, never compared.
PUBLISHED_CIFAR10_EXP100: tuple[tuple[str, str, float, str], ...] = (
    # (our method it sits beside, their method, balanced accuracy %, source)
    ("ce", "cross-entropy (ERM)", 70.4, "Cao et al. 2019 (LDAM-DRW), Table 2"),
    ("focal", "focal loss", 70.4, "Cao et al. 2019, Table 2"),
    ("cb_focal", "class-balanced focal", 74.6, "Cui et al. 2019 via Cao et al. 2019"),
    ("drw", "LDAM-DRW (LDAM loss + DRW; our drw arm is CE + DRW)", 77.0, "Cao et al. 2019"),
    ("la_loss", "logit-adjusted loss", 77.9, "Menon et al. 2021 (its ERM: 71.4)"),
)


@dataclass(frozen=True)
class LongTailCase(Case):
    """One case of the long-tail study: a data set, a training-set profile and a method."""

    profile: str = "exp100"
    method: str = "ce"

    @property
    def base_id(self) -> str:
        """``longtail-<dataset>-<profile>-<method>``, e.g. ``longtail-cifar10-exp100-la_loss``
        (``id`` appends ``-seed3`` under ``--seeds``, as for the paper's cases)."""
        return f"longtail-{self.dataset}-{self.profile}-{self.method}"

    @property
    def imbalanced(self) -> bool:
        # Every profile is imbalanced; its counts come from the profile, not from --imbalance.
        return True

    @property
    def markers(self) -> tuple[str, ...]:
        """Markers beyond data set and table: the profile and the method."""
        return (self.profile, self.method)

    @property
    def profile_spec(self) -> Profile:
        return PROFILES[self.profile]

    @property
    def method_spec(self) -> Method:
        return METHODS[self.method]

    def source_case(self) -> "LongTailCase":
        """The cross-entropy case of the same data set and profile (post-hoc arms read it)."""
        return replace(self, method="ce")


# No reduced-scale floor: on CIFAR-10 exp100 (744 training images, 3 epochs from random init,
# seed 0) every method's test output was almost constant (one predicted class) and the AUCs
# were 0.528-0.585, so the paper cases' 0.55 floor would fail some of them on noise. Range and
# count checks apply at every scale.
_BOUNDS = Bounds(reduced={}, paper={"roc_auc_ovr_macro": 0.75})


def _cases() -> list[LongTailCase]:
    cases = []
    for dataset in DATASETS:
        for profile in PROFILES:
            for method in METHODS:
                # The field augments every method (random crop + flip); the study's
                # augmentation is used. Epochs at paper scale: the study's imbalanced schedule.
                cases.append(LongTailCase(
                    "longtail", dataset, "longtail", None, "none", Head(),
                    EPOCHS[dataset, "imbalanced"], augment=True,
                    paper=PaperFigures(source="not in the paper (long-tail study)"),
                    bounds=_BOUNDS, note=METHODS[method].doc, profile=profile, method=method))
    return cases


CASES: tuple[LongTailCase, ...] = tuple(_cases())
CASES_BY_ID: dict[str, LongTailCase] = {case.id: case for case in CASES}
assert len(CASES_BY_ID) == len(CASES), "case ids must be unique"

# What each method is compared with cross-entropy on (the field's headline figure first).
MEASURES = ("balanced_accuracy", "tail_accuracy", "head_accuracy", "f1_macro")


def _comparisons():
    from .comparisons import Comparison

    # Each method against cross-entropy on the same data set and profile, paired by seed; Holm's
    # correction runs over a data set and profile's methods and figures together.
    return tuple(Comparison(f"longtail-{case.dataset}-{case.profile}", "method",
                            case.source_case().id, case.id, MEASURES)
                 for case in CASES if case.method != "ce")


COMPARISONS = _comparisons()


def comparisons_for(case_ids: Iterable[str]) -> tuple[Any, ...]:
    """The comparisons with an arm among ``case_ids`` (seeded ids allowed): a run of the paper's
    cases lists none of the 80 long-tail comparisons as "not run"."""
    from .matrix import split_seed

    present = {split_seed(str(case_id))[0] for case_id in case_ids}
    return tuple(c for c in COMPARISONS if c.treatment in present or c.baseline in present)


def is_long_tail(case: Any) -> bool:
    return isinstance(case, LongTailCase)


# -- data ---------------------------------------------------------------------------------------

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


def groups(train_counts: Sequence[int]) -> dict[str, list[int]]:
    """Head / middle / tail classes: ranked by training count, largest first, ties by index.

    Sizes 3 / 4 / 3 for 10 classes; for another class count the same 30/40/30 shares.
    """
    classes = len(train_counts)
    order = sorted(range(classes), key=lambda c: (-int(train_counts[c]), c))
    if classes == NUM_CLASSES:
        sizes = [size for _, size in GROUP_SIZES]
    else:
        head = tail = max(1, round(0.3 * classes))
        sizes = [head, classes - head - tail, tail]
    out, start = {}, 0
    for (name, _), size in zip(GROUP_SIZES, sizes):
        out[name] = sorted(order[start:start + size])
        start += size
    return out


def group_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                  train_counts: Sequence[int]) -> dict[str, Any]:
    """Per-class recall, balanced accuracy and head/middle/tail accuracy of one set of
    predictions. A group's accuracy is the mean recall of its classes (the test set is
    balanced, so it is also the accuracy on the group's test images)."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    classes = len(train_counts)
    recall = [float(np.mean(y_pred[y_true == c] == c)) if np.any(y_true == c) else float("nan")
              for c in range(classes)]
    out: dict[str, Any] = {"per_class_recall": recall,
                           "balanced_accuracy": float(np.nanmean(recall))}
    for name, members in groups(train_counts).items():
        out[f"{name}_accuracy"] = float(np.nanmean([recall[c] for c in members]))
    return out


def find_any_case(case_id: str) -> Case | None:
    """The case of ``case_id`` in either study, the paper's matrix or this one (a seeded id
    gives the case with that seed); None when neither has it."""
    from .matrix import find_case, split_seed

    case = find_case(case_id)
    if case is None:
        base, seed = split_seed(str(case_id))
        case = CASES_BY_ID.get(base)
        if case is not None and seed is not None:
            case = replace(case, seed=seed)
    return case
