"""Run configuration: scales, and how a case's settings are resolved.

A :class:`RunConfig` is built once per pytest session from the command line, ini file and
environment; :meth:`RunConfig.for_case` turns one matrix row into the concrete settings of one run.
The validators of every option value live in :mod:`resnet_harness.training.values`.
"""

from __future__ import annotations

import functools

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from resnet_harness.storage.identity import comparable_config  # noqa: F401 - its home is identity
from resnet_harness.training.data.sources import NUM_CLASSES

Case = Any  # a study's case (resnet_harness.study.Case): config never imports a study


@dataclass(frozen=True)
class Scale:
    """How much of a case to run. ``None`` keeps what the case (the paper) says."""

    name: str
    weights: str | None  # "none" forces random init; None keeps the case's "imagenet"
    epochs: int | None
    max_train_samples: int | None
    max_test_samples: int | None
    augment: bool | None = None  # under --augment auto; None keeps what the case (the paper) says
    frozen_base_epochs: int | None = None  # a case that trains only its head; None: ``epochs``
    # Pooled train+test images a split case (Table 9) re-splits; None: the two caps summed.
    max_pool_samples: int | None = None


SCALES = {
    # The whole matrix in minutes on 2 CPU cores: random init, a few hundred images, one epoch.
    "smoke": Scale("smoke", weights="none", epochs=1, max_train_samples=320,
                   max_test_samples=160),
    # A real-data subset that learns in a few epochs on a CPU (random init so that it also runs
    # where ImageNet weights cannot be downloaded; --weights imagenet to change it). Measured
    # here, seed 0, 2,000 images x 3 epochs: the paper's rotation/shift augmentation holds
    # Fashion-MNIST at 0.596 against 0.731 without it (CIFAR-10 0.272 vs 0.320), so the whole
    # matrix could not reach the floors of issue 10 in 45 minutes with it (--augment on restores
    # it). Frozen-base cases (Table 6's arm) train only their head, ~4x cheaper per epoch: they
    # keep the paper's 7 epochs (0.564 after 3 epochs, 0.706 after 7).
    #
    # The whole 10,000-image test set: testing costs ~860 images/s against ~127 for training
    # (bench/inference_speed.py), and its sampling noise was the larger part of every
    # difference's error on 1,000 (docs/reference.md, "Test-set size"). Split cases keep their
    # pool of 3,000 images (2,000 + 1,000 before), so Table 9's training shares mean the same.
    "reduced": Scale("reduced", weights="none", epochs=3, max_train_samples=2000,
                     max_test_samples=10000, augment=False, frozen_base_epochs=7,
                     max_pool_samples=3000),
    # The study as published: full data, its epochs, ImageNet weights.
    "paper": Scale("paper", weights=None, epochs=None, max_train_samples=None,
                   max_test_samples=None),
}


@dataclass(frozen=True)
class Imbalance:
    """How a case's training set is thinned into an imbalanced one (``Case.imbalance``):
    ``classes`` lose a share of their images, a seeded random choice.

    Exactly one of ``remove_fraction`` (per reduced class), ``remove_total`` (spread evenly over
    the reduced classes) or ``keep_per_class`` is set. ``reading`` names where the recipe came
    from (the paper's readings: ``studies/profiles.py``).
    """

    reading: str
    classes: tuple[int, ...] = (0, 1, 2)
    remove_fraction: float | None = None
    remove_total: int | None = None
    keep_per_class: dict[str, int] | None = None  # data set -> samples kept per reduced class


AUTO_MAX_SEEDS = 12  # --seeds auto: the default most seeds a sequential design may spend


@dataclass(frozen=True)
class AutoSeeds:
    """``--seeds auto[:MAX]``: seeds 0.. in rounds until the claims are decided (the sequential
    design of ``resnet_harness.analysis.sequential``)."""

    max_seeds: int = AUTO_MAX_SEEDS
    first: int = 3
    step: int = 3

    def __str__(self) -> str:
        return f"auto:{self.max_seeds}"

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.max_seeds))


def weights_for(value: str | None, backbone: str) -> str | None:
    """What ``--weights`` gives a case that trains ``backbone``: ``BACKBONE=PATH`` gives PATH
    to that backbone's cases and nothing (None: the scale's or case's weights) to others."""
    from resnet_harness.training.backbones import BACKBONES

    if value is None:
        return None
    plain = None
    for entry in value.split(";") if ";" in value and not Path(value).exists() else [value]:
        name, sep, path = entry.partition("=")
        if sep and name in BACKBONES:
            if name == backbone:
                return path
        else:
            plain = entry
    return plain


BN_RECALIBRATE_MODES = ("auto", "on", "off")
# Scales at which ``--bn-recalibrate auto`` re-estimates BatchNorm statistics: the short runs from
# random init whose moving averages lag the weights. At paper scale the study's protocol stands.
BN_RECALIBRATE_AUTO_SCALES = ("smoke", "reduced")


def resolve_augment(mode: str, scale: str, case_augment: bool) -> bool:
    """Whether a case whose recipe says ``case_augment`` augments, under ``mode`` at ``scale``."""
    if mode == "auto":
        rule = SCALES[scale].augment
        return case_augment if rule is None else rule
    return mode == "on"


def resolve_bn_recalibrate(mode: str, scale: str) -> bool:
    """Whether BatchNorm statistics are re-estimated for ``mode`` at ``scale``."""
    if mode == "auto":
        return scale in BN_RECALIBRATE_AUTO_SCALES
    return mode == "on"


@dataclass(frozen=True)
class CaseConfig:
    """Everything one run of one case needs, after scale and overrides are applied."""

    case: Case
    scale: str
    seed: int
    epochs: int
    weights: str
    max_train_samples: int | None
    max_test_samples: int | None
    imbalance: Imbalance | None
    augment: bool
    hflip: bool
    backbone: str = "resnet50"
    max_pool_samples: int | None = None  # a split case's pool (Scale.max_pool_samples)
    xla: bool = False
    mixed_precision: bool = False
    data_source: str = "auto"
    deterministic: bool = False
    bn_recalibrate: bool = False  # resolved from RunConfig.bn_recalibrate and the scale
    # The studies' own options (``Study.options``) by name, at their session values; a study
    # reads its own through ``StudyOption.value`` and records them in ``config_fields``.
    study_options: dict[str, Any] = field(default_factory=dict)
    validation_split: float | None = None  # share of the training set held out for validation
    early_stopping: int | None = None  # patience in epochs on early_stopping_monitor
    early_stopping_monitor: str = "val_loss"  # or "val_accuracy" (values.MONITORS)
    batch_order: str = "common"  # or "shuffle" (values.BATCH_ORDERS)

    @functools.cached_property
    def hooks(self):
        """The hooks of this run of the case (``resnet_harness.study.Hooks``): made and bound
        once, so every moment of the run -- data, model, fit, row, bounds -- sees one object."""
        return self.case.hooks().bind(self)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly settings, as stored with the result row: everything that can change a
        result (``--resume`` reuses a row only when this is equal), the study's own included."""
        return {**self.case.config_fields(self),
            "epochs": self.epochs, "weights": self.weights, "batch_size": self.case.batch_size,
            "learning_rate": self.case.learning_rate, "max_train_samples": self.max_train_samples,
            "max_test_samples": self.max_test_samples, "augment": self.augment,
            # Only when set, so that rows made before it (smoke, paper) keep their identity.
            **({"max_pool_samples": self.max_pool_samples} if self.max_pool_samples else {}),
            "hflip": self.hflip, "backbone": self.backbone, "head": asdict(self.case.head),
            "xla": self.xla, "mixed_precision": self.mixed_precision,
            "data_source": self.data_source, "deterministic": self.deterministic,
            "bn_recalibrate": self.bn_recalibrate,
            # Only when used, so that rows made without a validation set keep their identity.
            **({"validation_split": self.validation_split,
                "early_stopping": self.early_stopping} if self.validation_split else {}),
            # Likewise only when it differs from the default (rows made before it keep theirs).
            **({"early_stopping_monitor": self.early_stopping_monitor}
               if self.early_stopping and self.early_stopping_monitor != "val_loss" else {}),
            **({"batch_order": self.batch_order} if self.batch_order != "common" else {}),
        }


@dataclass(frozen=True)
class RunConfig:
    """Session-wide settings; see ``pytest --help``, group "resnet-harness"."""

    scale: str = "smoke"
    seed: int = 0
    epochs: int | None = None
    max_train_samples: int | None = None
    max_test_samples: int | None = None
    weights: str | None = None
    data_source: str = "auto"
    data_dirs: dict[str | None, Path] = field(default_factory=dict)
    hflip: bool = True
    report_dir: Path = Path("reports")
    backbone: str = "resnet50"
    deterministic: bool = False
    xla: bool = False
    mixed_precision: bool = False
    seeds: "tuple[int, ...] | AutoSeeds | None" = None  # --seeds: every case once per seed
    equivalence_delta: float = 0.01  # |difference| below which two arms count as equivalent
    bn_recalibrate: str = "auto"
    augment: str = "auto"
    progress: str | float = "auto"  # resnet_harness.plugin.progress.parse_progress
    mlflow: str | None = None  # tracking URI; None: MLflow is not used (nor imported)
    study_options: dict[str, Any] = field(default_factory=dict)  # Study.options, by name
    validation_split: float | None = None
    early_stopping: int | None = None
    early_stopping_monitor: str = "val_loss"
    batch_order: str = "common"

    def for_case(self, case: Case) -> CaseConfig:
        """The concrete settings of ``case`` at this scale, overrides applied.

        A seeded case (``--seeds``) runs with its own seed instead of ``--seed``. The studies'
        options may put another case in its place (``Case.in_session``: the paper's
        ``--comparison controlled``) and set how its training set is thinned
        (``Case.imbalance``: the paper's ``--imbalance`` readings). A case that sets
        its own ``validation_split`` keeps its validation protocol (share and patience; what
        early stopping watches is ``--early-stopping-monitor``'s); ``--weights
        BACKBONE=PATH`` reaches only the cases that train that backbone.
        """
        scale = SCALES[self.scale]
        case = case.in_session(self.study_options)
        imbalance = case.imbalance(self.study_options)
        # A case that names its backbone (the long-tail literature recipe's ResNet-32)
        # trains it unless the session asked for another than the default (--backbone tiny).
        backbone = (case.backbone if case.backbone and self.backbone == "resnet50"
                    else self.backbone)
        # A case with its own validation share keeps its whole protocol (share and patience).
        own = case.validation_split is not None
        return CaseConfig(
            case=case, scale=self.scale, seed=self.seed if case.seed is None else case.seed,
            epochs=self.epochs or (case.head.freeze_base and scale.frozen_base_epochs)
            or scale.epochs or case.epochs,
            weights=weights_for(self.weights, backbone) or scale.weights or case.weights,
            max_train_samples=self.max_train_samples or scale.max_train_samples,
            max_test_samples=self.max_test_samples or scale.max_test_samples,
            # Caps given on the command line size a split case's pool themselves.
            max_pool_samples=(None if self.max_train_samples or self.max_test_samples
                              else scale.max_pool_samples),
            imbalance=imbalance, augment=resolve_augment(self.augment, self.scale, case.augment),
            hflip=self.hflip, backbone=backbone,
            xla=self.xla, mixed_precision=self.mixed_precision, data_source=self.data_source,
            deterministic=self.deterministic,
            study_options=dict(self.study_options),
            validation_split=case.validation_split if own else self.validation_split,
            early_stopping=case.early_stopping if own else self.early_stopping,
            early_stopping_monitor=self.early_stopping_monitor,
            batch_order=self.batch_order,
            bn_recalibrate=resolve_bn_recalibrate(self.bn_recalibrate, self.scale),
        )

    def cases(self, cases) -> list[Case]:
        """The cases to run: ``cases``, once per seed of ``--seeds`` when given."""
        if not self.seeds:
            return list(cases)
        seeds = self.seeds.seeds if isinstance(self.seeds, AutoSeeds) else self.seeds
        # Seed-major: consecutive cases share a seed, so a worker reuses its model (the cache is
        # keyed by seed) instead of building and tracing one for nearly every case.
        return [replace(case, seed=seed) for seed in seeds for case in cases]

    def data_dir_for(self, dataset: str) -> Path | None:
        """The local folder given for ``dataset``, if any (``NAME=PATH`` beats ``PATH/NAME``)."""
        if dataset in self.data_dirs:
            return self.data_dirs[dataset]
        if None in self.data_dirs:
            return self.data_dirs[None] / dataset
        return None

    def synthetic_size(self) -> tuple[int, int]:
        """Per-class train/test sizes of the synthetic stand-in: enough for the requested caps."""
        train = max(60, -(-(self.max_train_samples or 0) // NUM_CLASSES) + 2)
        test = max(20, -(-(self.max_test_samples or 0) // NUM_CLASSES) + 2)
        if self.scale != "smoke" and not self.max_train_samples:
            train, test = 500, 100
        return train, test

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["data_dirs"] = {str(k or "*"): str(v) for k, v in self.data_dirs.items()}
        out["report_dir"] = str(self.report_dir)
        return out
