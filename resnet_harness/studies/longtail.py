"""The long-tail study, one instance of the Study API: imbalance profiles, methods, its cases,
training hooks, row fields, comparisons and report section.

A second study beside the paper's 21 cases, run by the same session, runner, scales, options,
rows, report, baseline and resume machinery. Each case is a :class:`LongTailCase` (a data set, a
training-set profile and a method) and ``experiments/test_longtail.py`` only parametrizes over
:data:`CASES`. It is opt-in: ``pytest experiments`` runs it only when ``-m``/``-k`` names it.

The field's protocol (CIFAR-10-LT, Cao et al. 2019, ``imbalance_cifar.py`` of LDAM-DRW): the
training set only is made long-tailed, the test set stays balanced, and balanced top-1 accuracy is
the headline figure. Profiles (``n_max`` = the per-class count after the scale's cap, so rho holds
at every scale):

- ``exp<rho>``: class i keeps ``int(n_max * (1/rho) ** (i / (C - 1)))`` images (truncated, as
  LDAM-DRW does): rho = 100 on full CIFAR-10 gives 5000 ... 50, 12,406 in all; rho = 10 gives
  5000 ... 500, 20,431.
- ``step<rho>``: classes 0..C/2-1 keep ``n_max``, the others ``int(n_max / rho)``.

rho holds exactly where ``n_max >= rho`` (reduced scale: 200 per class; paper scale: 5,000 /
6,000). At smoke scale (32 per class) the formula would leave classes empty, so every class keeps
at least one image and the effective rho is 32; each row records its ``effective_rho``.
- ``paper``: the study's own recipe (its text reading): 10% of classes 0, 1, 2 removed.

Head / middle / tail groups (10 classes): classes ranked by training count, largest first, ties
by class index; head = the 3 largest, middle = the next 4, tail = the 3 smallest. For ``exp``
that is classes 0-2 / 3-6 / 7-9; for ``step`` 0-2 / 3-6 (3, 4 large, 5, 6 small) / 7-9; for
``paper`` 3-5 / 6-9 / 0-2 (the reduced classes are the tail).

Two recipes. ``study`` (ids ``longtail-<dataset>-<profile>-<method>``): the paper's ResNet50,
head, Adam, batch size and augmentation, and our own variants of some methods (softmax focal
with gamma = 2, class weights through ``fit(class_weight)``, uniform re-sampling, losses on
clipped probabilities). ``literature`` (CIFAR-10 only, ids ending ``-lit``, marker
``literature``): the CIFAR-10-LT recipe of LDAM-DRW's ``cifar_train.py`` -- ResNet-32, 200
epochs (``--epochs N`` runs the first N of that schedule), SGD with momentum 0.9, lr 0.1 with 5 warm-up epochs and x0.01 / x0.0001 after epochs
160 / 180, weight decay 2e-4, batch 128, 4-pixel-padded random crop and flip -- and each method
as its reference code computes it, on logits (:class:`~longtail_losses.ReferenceLoss`):
LDAM-DRW's focal (gamma = 1) and weighted cross-entropy (normalised by the weights' sum), Cui et
al.'s sigmoid class-balanced focal (gamma = 1, output bias -log(C - 1)), LDAM-DRW's
effective-number re-sampler and DRW (beta fixed at 0.9999), Menon et al.'s logit-adjusted loss.

Nothing here imports TensorFlow; the Keras side of the methods is in ``longtail_losses`` and
the report section in ``longtail_report``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from resnet_harness.storage.schema import Field
from resnet_harness.studies import longtail_losses as losses
from resnet_harness.studies.profiles import PROFILES, Profile, apply_profile
from resnet_harness.study import (Bounds, Case, Comparison, Head, Hooks, PaperFigures, Study,
                                  StudyOption, register)
from resnet_harness.training.data.sources import DATASETS, NUM_CLASSES
from resnet_harness.training.backbones import register_backbone


# -- the study's own options ---------------------------------------------------------------------

def parse_beta(value: str) -> float:
    """The effective-number beta of Cui et al.: a number in [0, 1) (0.9999 by default)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"beta {value!r} is not a number") from None
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"beta {value!r} must lie in [0, 1), e.g. 0.9999")
    return number


def parse_tau(value: str) -> float:
    """The logit-adjustment temperature: a number >= 0 (1 by default)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"tau {value!r} is not a number") from None
    if not 0.0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"tau {value!r} must be a finite number >= 0, e.g. 1")
    return number


CB_BETA = StudyOption("--cb-beta", parse_beta,
                      "long-tail study: beta of the effective-number class weights "
                      "(default 0.9999)", default=0.9999)
LA_TAU = StudyOption("--la-tau", parse_tau,
                     "long-tail study: tau of the logit-adjusted loss and post-hoc adjustment "
                     "(default 1)", default=1.0)

def _resnet32(weights: str, weight_decay: float = 0.0):
    # Keras is imported when the backbone is built, not when the study is registered.
    from resnet_harness.studies.resnet32 import normalized_resnet32

    return normalized_resnet32(weights, weight_decay=weight_decay)


# The literature recipe's network, registered by the study that trains it.
register_backbone("resnet32", _resnet32)

# The study's imbalanced schedule at paper scale: Tables 4 and 6 of the paper.
EPOCHS = {"cifar10": 25, "fashion_mnist": 7}
RECIPES = ("study", "literature")
LITERATURE_PROFILES = ("exp100", "exp10", "step100", "step10")  # the literature's own

GROUP_SIZES = (("head", 3), ("middle", 4), ("tail", 3))  # for 10 classes, by training count


@dataclass(frozen=True)
class Method:
    """How a method trains; the knobs that ``longtail_losses`` turns into Keras settings.

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


DRW_START = losses.DRW_START
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("ce", "plain cross-entropy"),
    Method("inverse_freq", "cross-entropy, class weights N / (C n_c) via fit(class_weight) "
           "(the batch's mean; the -lit arm normalises by the weights as PyTorch)",
           class_weight="inverse"),
    Method("effective_num", "cross-entropy, effective-number class weights (Cui et al. 2019) via "
           "fit(class_weight) (the batch's mean; the -lit arm normalises by the weights)",
           class_weight="effective"),
    Method("resampling", "cross-entropy on class-uniform batches (tf.data sample_from_datasets; "
           "the -lit arm draws by effective number as LDAM-DRW)", resample=True),
    Method("focal", "softmax focal loss, gamma = 2: our variant (Keras' categorical focal "
           "cross-entropy); the published runs use gamma = 1 (the -lit arm)", gamma=2.0),
    Method("cb_focal", "class-balanced focal, our variant: softmax focal (gamma = 2) with "
           "effective-number alpha; Cui et al.'s is sigmoid focal, gamma = 1 (the -lit arm)",
           gamma=2.0, alpha="effective"),
    Method("la_loss", "logit-adjusted loss (Menon et al. 2021): tau log(prior) added to the "
           "logits in the loss", tau=True),
    Method("posthoc_la", "post-hoc logit adjustment of the ce arm's saved predictions "
           "(log p - tau log prior), no training", posthoc=True),
    Method("drw", "deferred re-weighting: cross-entropy, effective-number weights (--cb-beta) "
           f"switched on for the last {1 - DRW_START:.0%} of the epochs, no learning-rate cut "
           "(the -lit arm: beta 0.9999 and the schedule's x0.01 cut there, as LDAM-DRW)",
           class_weight="effective", deferred=True),
)}

# Published balanced top-1 (%) on CIFAR-10-LT exp rho = 100 -- ResNet-32 from scratch, 200
# epochs, full data: a different network and schedule from ours, shown beside, never compared.
@dataclass(frozen=True)
class Published:
    """A published CIFAR-10-LT (exp, rho = 100) figure with its true source and recipe.
    ``comparable``: the recipe is the -lit cases' own (LDAM-DRW's ResNet-32, 200 epochs, the
    same loss), so our best-epoch figure may be compared with it; otherwise ``why_not`` says
    what differs and the report shows ours for orientation only."""

    method: str  # our arm it sits beside
    theirs: str
    figure: float  # balanced (= plain: the test set is balanced) accuracy, %
    source: str
    recipe: str  # network, epochs, epoch selection
    comparable: bool = False
    why_not: str = ""


_LDAM_RECIPE = "ResNet-32, 200 epochs (LDAM-DRW's code), best test epoch"
PUBLISHED_CIFAR10_EXP100: tuple[Published, ...] = (
    Published("ce", "cross-entropy (ERM)", 70.4, "Cao et al. 2019 (LDAM-DRW), Table 2",
              _LDAM_RECIPE, comparable=True),
    Published("focal", "focal loss", 70.4, "Cao et al. 2019, Table 2", _LDAM_RECIPE,
              comparable=True),
    Published("cb_focal", "class-balanced focal", 74.6, "Cui et al. 2019, via Cao et al. 2019",
              "Cui et al.'s own network and schedule, best test epoch",
              why_not="another network and schedule than the -lit recipe's"),
    Published("drw", "LDAM-DRW (LDAM loss + DRW)", 77.0, "Cao et al. 2019, Table 2",
              _LDAM_RECIPE, why_not="the LDAM loss; our drw arm is cross-entropy + DRW"),
    Published("la_loss", "logit-adjusted loss", 77.9, "Menon et al. 2021 (its ERM: 71.4)",
              "Menon et al.'s bottleneck ResNet-32, 1,241 epochs, Nesterov, best test epoch",
              why_not="Menon et al.'s own network and 1,241-epoch schedule"),
)


@dataclass(frozen=True)
class LongTailCase(Case):
    """One case of the long-tail study: a data set, a training-set profile and a method."""

    study = "longtail"

    profile: str = "exp100"
    method: str = "ce"
    recipe: str = "study"  # or "literature" (LDAM-DRW's CIFAR-10-LT recipe)

    @property
    def base_id(self) -> str:
        """``longtail-<dataset>-<profile>-<method>``, e.g. ``longtail-cifar10-exp100-la_loss``,
        with ``-lit`` under the literature recipe (``id`` appends ``-seed3`` under
        ``--seeds``, as for the paper's cases)."""
        return f"longtail-{self.dataset}-{self.profile}-{self.method}" + (
            "-lit" if self.recipe == "literature" else "")

    @property
    def imbalanced(self) -> bool:
        # Every profile is imbalanced; its counts come from the profile, not from --imbalance.
        return True

    @property
    def markers(self) -> tuple[str, ...]:
        return (self.dataset, self.profile, self.method) + (
            ("literature",) if self.recipe == "literature" else ())

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.profile} {self.method}"

    @property
    def profile_spec(self) -> Profile:
        return PROFILES[self.profile]

    @property
    def method_spec(self) -> Method:
        return METHODS[self.method]

    def identity(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": None,
                "long_tail": dict(self.profile_spec.as_dict(), method=self.method,
                                  recipe=self.recipe)}

    def config_fields(self, cfg) -> dict[str, Any]:
        return {"long_tail": {"profile": self.profile, "method": self.method,
                              "recipe": self.recipe, "cb_beta": CB_BETA.value(cfg),
                              "la_tau": LA_TAU.value(cfg)}}

    def source_case(self) -> "LongTailCase":
        """The cross-entropy case of the same data set and profile (post-hoc arms read it)."""
        return replace(self, method="ce")

    def hooks(self) -> "LongTailHooks":
        return LiteratureHooks(self) if self.recipe == "literature" else LongTailHooks(self)


class LongTailHooks(Hooks):
    """The methods' training: one shared loss (its knobs set per case), class weights, the
    class-balanced sampler, the profile's training subset, and post-hoc adjustment."""

    loss_name = "longtail"  # ModelCache key: every long-tail case shares one compiled model

    def __init__(self, case: LongTailCase):
        self.case, self.method = case, case.method_spec
        self.predictions_from = case.source_case().base_id if self.method.posthoc else None

    def on_build_loss(self):
        return losses.longtail_loss()

    def on_batches(self) -> dict[str, Any]:
        return {"class_balanced": self.method.resample}

    def on_select_training(self, train_idx, y_train):
        return apply_profile(self.case.profile_spec, train_idx, y_train, self.seed)

    def expected_train_counts(self, counts_before: Sequence[int]) -> list[int]:
        return self.case.profile_spec.counts(counts_before)

    def on_fit_start(self, model) -> dict[str, Any]:
        cfg, train_counts = self.cfg, self.train_counts
        method, beta = self.method, CB_BETA.value(cfg)
        loss = model.loss
        alpha = losses.class_weights(method.alpha, train_counts, beta)
        shift = LA_TAU.value(cfg) * losses.log_prior(train_counts) if method.tau else None
        loss.configure(gamma=method.gamma, alpha=alpha, shift=shift)
        weights = losses.class_weights(method.class_weight, train_counts, beta)
        if weights is None or method.alpha:
            return {}
        if method.deferred:
            return {"callbacks": [losses.drw_callback(loss, weights,
                                                      losses.drw_start_epoch(cfg.epochs))]}
        return {"class_weight": {c: float(w) for c, w in enumerate(weights)}}

    def on_predictions(self, proba):
        return losses.posthoc_adjust(proba, self.train_counts, LA_TAU.value(self.cfg))

    def on_row(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Head/middle/tail accuracy and the ``long_tail`` record (profile, method, groups)."""
        train_counts = self.train_counts
        recall = metrics["per_class"]["recall"]
        members = groups(train_counts)
        out: dict[str, Any] = {f"{name}_accuracy": float(np.mean([recall[c] for c in classes]))
                               for name, classes in members.items()}
        out["long_tail"] = dict(self.case.profile_spec.as_dict(), method=self.case.method,
                                groups=members,
                                effective_rho=max(train_counts) / max(1, min(train_counts)))
        if self.method.posthoc:
            out["long_tail"]["source_case"] = self.case.source_case().id
        return out


class LiteratureHooks(LongTailHooks):
    """The literature recipe: logits, SGD with the reference schedule and weight decay, crop and
    flip, and each method as its reference code computes it (module docstring)."""

    # The published figures are a chosen epoch's: rows carry the best epoch's beside the last.
    score_every_epoch = True

    def __init__(self, case: LongTailCase):
        super().__init__(case)
        self.loss_name = "longtail-reference-" + self.kind

    @property
    def kind(self) -> str:
        return "sigmoid" if self.method.alpha else "softmax"

    def on_build_loss(self):
        return losses.reference_loss(self.kind)

    def on_build_model(self) -> dict[str, Any]:
        # LDAM-DRW's ResNet-32 head: nn.Linear after _weights_init (He-normal weights,
        # PyTorch's uniform(+-1/sqrt(64)) bias).
        options = {"logits": True, "optimizer": "sgd", "momentum": losses.LITERATURE_MOMENTUM,
                   "weight_decay": losses.LITERATURE_WEIGHT_DECAY, "head_init": "torch"}
        if self.kind == "sigmoid":
            # Cui et al.: every one-vs-rest output starts at prior 1/C, and the output bias is
            # left out of weight decay.
            options["output_bias"] = -float(np.log(NUM_CLASSES - 1))
            options["decay_output_bias"] = False
        return options

    def on_batches(self) -> dict[str, Any]:
        resample = self.method.resample
        return {"augmentation_kind": "crop_flip", "class_balanced": resample,
                "class_weights": losses.resampling_weights(self.train_counts) if resample
                else None}

    def on_fit_start(self, model) -> dict[str, Any]:
        cfg, train_counts = self.cfg, self.train_counts
        method = self.method
        # The published 200-epoch schedule whatever --epochs says: a shorter run is its first
        # epochs (warm-up, then lr 0.1), comparable with the start of the published curves.
        nominal = self.case.epochs
        callbacks: list = [losses.literature_schedule(nominal)]
        alpha = losses.class_weights(method.alpha, train_counts, CB_BETA.value(cfg))
        weights = losses.class_weights(
            method.class_weight, train_counts,
            losses.REFERENCE_BETA if method.deferred else CB_BETA.value(cfg))
        shift = LA_TAU.value(cfg) * losses.log_prior(train_counts) if method.tau else None
        model.loss.configure(gamma=LITERATURE_GAMMA if method.gamma else 0.0,
                             alpha=alpha if alpha is not None else
                             None if method.deferred else weights,
                             shift=shift, normalize=weights is not None)
        if method.deferred:
            callbacks.append(losses.drw_callback(model.loss, weights,
                                                 losses.drw_start_epoch(nominal)))
        return {"callbacks": callbacks}


LITERATURE_GAMMA = 1.0  # the published focal runs: LDAM-DRW's cifar_train.py and Cui et al.
LITERATURE_HEAD = Head(regularizer="l2", reg_strength=losses.LITERATURE_WEIGHT_DECAY / 2)


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
                    dataset=dataset, epochs=EPOCHS[dataset], augment=True,
                    paper=PaperFigures(source="not in the paper (long-tail study)"),
                    bounds=_BOUNDS, note=METHODS[method].doc, profile=profile, method=method))
    for profile in LITERATURE_PROFILES:
        for method in METHODS:
            cases.append(LongTailCase(
                dataset="cifar10", epochs=losses.LITERATURE_EPOCHS, augment=True,
                weights="none", backbone="resnet32", head=LITERATURE_HEAD,
                batch_size=losses.LITERATURE_BATCH, learning_rate=losses.LITERATURE_LR,
                paper=PaperFigures(source="not in the paper (long-tail study, literature "
                                          "recipe)"),
                bounds=_BOUNDS, note=LITERATURE_DOCS.get(method, METHODS[method].doc),
                profile=profile, method=method, recipe="literature"))
    return cases


# How each method runs under the literature recipe, where it differs from the study recipe's.
LITERATURE_DOCS = {
    "ce": "cross-entropy on logits (ResNet-32, LDAM-DRW's recipe)",
    "inverse_freq": "cross-entropy with class weights N / (C n_c), normalised by the batch's "
                    "weights as PyTorch's weighted cross-entropy",
    "effective_num": "cross-entropy with effective-number weights (--cb-beta), normalised by "
                     "the batch's weights (LDAM-DRW's Reweight rule)",
    "resampling": "cross-entropy on batches drawn by effective-number weight, beta 0.9999 "
                  "(LDAM-DRW's ImbalancedDatasetSampler)",
    "focal": "softmax focal, gamma = 1 (LDAM-DRW's FocalLoss)",
    "cb_focal": "sigmoid class-balanced focal, gamma = 1, output bias -log(C - 1) "
                "(Cui et al. 2019)",
    "la_loss": "logit-adjusted loss on logits (Menon et al. 2021)",
    "posthoc_la": "post-hoc logit adjustment of the ce arm's predictions",
    "drw": "cross-entropy, effective-number weights (beta 0.9999) from epoch 160 of 200, with "
           "the schedule's x0.01 learning-rate cut there (LDAM-DRW's DRW rule, CE loss)",
}


CASES: tuple[LongTailCase, ...] = tuple(_cases())
CASES_BY_ID: dict[str, LongTailCase] = {case.id: case for case in CASES}

# What each method is compared with cross-entropy on (the field's headline figure first).
MEASURES = ("balanced_accuracy", "tail_accuracy", "head_accuracy", "f1_macro")


# Each method against cross-entropy on the same data set and profile, paired by seed; Holm's
# correction runs over a data set and profile's methods and figures together.
COMPARISONS = tuple(Comparison(f"longtail-{case.dataset}-{case.profile}"
                               + ("-lit" if case.recipe == "literature" else ""), "method",
                               case.source_case().id, case.id, MEASURES)
                    for case in CASES if case.method != "ce")


# -- data ---------------------------------------------------------------------------------------

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


# Classes ranked by training count: 3 largest / 4 / 3 smallest. No baseline tolerance: a group is
# 3-4 classes of the test set, too few images to guard.
def _members(name: str):
    def classes(row: Mapping[str, Any]) -> list[int]:
        return groups(row["train_counts"])[name]
    return classes


FIELDS = (
    Field("head_accuracy", "group_score", "higher", ".3f", classes=_members("head"),
          doc="long-tail study: mean recall of the 3 classes with the most training images"),
    Field("middle_accuracy", "group_score", "higher", ".3f", classes=_members("middle"),
          doc="long-tail study: mean recall of the 4 middle classes by training count"),
    Field("tail_accuracy", "group_score", "higher", ".3f", classes=_members("tail"),
          doc="long-tail study: mean recall of the 3 classes with the fewest training images"),
)


STUDY = register(Study(
    name="longtail", title="The long-tail study", cases=CASES, opt_in=True,
    markers=(("longtail", "the long-tail study's cases (experiments/test_longtail.py)"),
             ("exp100", "long-tail profile: exponential, rho = 100"),
             ("exp10", "long-tail profile: exponential, rho = 10"),
             ("step100", "long-tail profile: step, half the classes at n_max / 100"),
             ("step10", "long-tail profile: step, half the classes at n_max / 10"),
             ("paper", "long-tail profile: the paper's own (10% of classes 0-2 removed)"),
             ("literature", "long-tail study, literature recipe (ResNet-32, LDAM-DRW's "
                            "CIFAR-10-LT schedule, reference losses)"),
             *((name, f"long-tail method: {m.doc}") for name, m in METHODS.items())),
    comparisons=COMPARISONS, fields=FIELDS, options=(CB_BETA, LA_TAU),
    factor_fields={"method": ("long_tail.method",)},
    report="resnet_harness.studies.longtail_report:section"), __name__)
