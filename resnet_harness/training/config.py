"""Run configuration: scales, the paper's contested readings, and validators for every option.

A :class:`RunConfig` is built once per pytest session from the command line, ini file and
environment; :meth:`RunConfig.for_case` turns one matrix row into the concrete settings of one run.
Validators are small ``parse_*`` functions that raise ``argparse.ArgumentTypeError`` so that pytest
turns bad input into a one-line usage error before anything trains.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from resnet_harness.storage.identity import comparable_config  # noqa: F401 - its home is identity
from resnet_harness.training.data.sources import DATASETS, NUM_CLASSES

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
    "reduced": Scale("reduced", weights="none", epochs=3, max_train_samples=2000,
                     max_test_samples=1000, augment=False, frozen_base_epochs=7),
    # The study as published: full data, its epochs, ImageNet weights.
    "paper": Scale("paper", weights=None, epochs=None, max_train_samples=None,
                   max_test_samples=None),
}


@dataclass(frozen=True)
class Imbalance:
    """How the imbalanced variants are made from the training set.

    Exactly one of ``remove_fraction`` (per reduced class), ``remove_total`` (spread evenly over
    the reduced classes) or ``keep_per_class`` is set.
    """

    reading: str
    classes: tuple[int, ...] = (0, 1, 2)
    remove_fraction: float | None = None
    remove_total: int | None = None
    keep_per_class: dict[str, int] | None = None  # data set -> samples kept per reduced class


# The paper gives four incompatible recipes (see README, "Readings of the paper").
IMBALANCE_READINGS = {
    "text": Imbalance("text", remove_fraction=0.10),  # "10% of training samples are removed"
    "table4": Imbalance("table4", remove_total=5000),  # "Number to remove: 5000"
    "table6": Imbalance("table6", remove_fraction=0.50),  # "Imbalance factor: 0.5"
    "table2": Imbalance("table2", keep_per_class={"cifar10": 4950, "fashion_mnist": 4500}),
}


def parse_scale(value: str) -> str:
    """A scale name: smoke, reduced or paper."""
    if value not in SCALES:
        raise argparse.ArgumentTypeError(
            f"unknown scale {value!r}; use one of: {', '.join(SCALES)}")
    return value


# Upper bounds, so that a typo (an extra zero, 1e12) is refused instead of trying to allocate
# terabytes or training for ever. The paper trains 5 to 25 epochs; 10,000 is far beyond any use
# of this study (about 40 days per case for full CIFAR-10 on one H100) yet finite.
MAX_EPOCHS = 10_000
# The largest data set is Fashion-MNIST, 60,000 train + 10,000 test images; a larger cap selects
# nothing more (Table 9's pooled splits draw from train + test, hence the sum).
MAX_SAMPLES = 70_000


def parse_positive_int(value: str) -> int:
    """An integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be 1 or more")
    return number


def parse_epochs(value: str) -> int:
    """An epoch count from 1 to :data:`MAX_EPOCHS`."""
    number = parse_positive_int(value)
    if number > MAX_EPOCHS:
        raise argparse.ArgumentTypeError(
            f"{value!r} epochs is more than the limit of {MAX_EPOCHS:,}; the paper trains 5 to 25")
    return number


def parse_sample_cap(value: str) -> int:
    """A sample cap: an integer from 10 (every class keeps a sample) to :data:`MAX_SAMPLES`."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an integer; use a whole number from {NUM_CLASSES} to "
            f"{MAX_SAMPLES}") from None
    if number < NUM_CLASSES:
        raise argparse.ArgumentTypeError(
            f"{value!r} is below the {NUM_CLASSES} classes; use at least {NUM_CLASSES}")
    if number > MAX_SAMPLES:
        raise argparse.ArgumentTypeError(
            f"{value!r} is more images than the largest data set holds ({MAX_SAMPLES:,}, "
            f"Fashion-MNIST train + test); use at most {MAX_SAMPLES}, or --scale paper for all")
    return number


def parse_seed(value: str) -> int:
    """A non-negative integer seed."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {value!r} is not an integer") from None
    if not 0 <= number < 2**32:
        raise argparse.ArgumentTypeError(f"seed {value!r} must be in [0, 2**32)")
    return number


# The most seeds one session runs per case: 1,000 seeds of the 111 cases are 111,000 rows, more
# than any study here needs (the "how many seeds" figures stop being informative long before),
# and the seed list is built before collection, so a typo (0-4294967295) must not allocate it.
MAX_SEEDS = 1000
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


def parse_seeds(value: str) -> "tuple[int, ...] | AutoSeeds":
    """Seeds to repeat every case with: ``0,1,2,3,4``, a range ``0-4``, or both (``0-2,7``);
    or ``auto`` / ``auto:MAX`` (rounds of seeds until every claim touched is decided)."""
    text = str(value).strip()
    if text == "auto" or text.startswith("auto:"):
        _, _, maximum = text.partition(":")
        if maximum and not maximum.isdigit():
            raise argparse.ArgumentTypeError(
                f"seeds {value!r}: {maximum!r} is not a number of seeds; use auto or auto:12")
        most = int(maximum) if maximum else AUTO_MAX_SEEDS
        if not 3 <= most <= MAX_SEEDS:
            raise argparse.ArgumentTypeError(
                f"seeds {value!r}: auto needs 3 to {MAX_SEEDS} seeds at most; use e.g. auto:12")
        return AutoSeeds(most)
    seeds: list[int] = []
    for part in (p.strip() for p in str(value).split(",")):
        first, sep, last = part.partition("-")
        try:
            bounds = [parse_seed(first)] + ([parse_seed(last)] if sep else [])
        except argparse.ArgumentTypeError:
            bounds = []
        if not part or not bounds or bounds[-1] < bounds[0]:
            raise argparse.ArgumentTypeError(
                f"seeds {value!r}: {part!r} is not a seed or a range; use e.g. 0,1,2,3,4 or 0-4")
        if len(seeds) + bounds[-1] - bounds[0] + 1 > MAX_SEEDS:
            raise argparse.ArgumentTypeError(
                f"seeds {value!r} name more than {MAX_SEEDS} seeds; run at most {MAX_SEEDS} "
                "per session (split the range over sessions with --resume)")
        seeds.extend(range(bounds[0], bounds[-1] + 1))
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds {value!r} name a seed twice; list each once")
    return tuple(seeds)


COMPARISONS = ("study", "controlled")


def parse_comparison(value: str) -> str:
    """``study`` (each arm as the paper ran it) or ``controlled`` (Table 7's imbalanced arm with
    its balanced arm's head, epochs, augmentation and freezing, so only the data differs)."""
    if value not in COMPARISONS:
        raise argparse.ArgumentTypeError(
            f"unknown comparison {value!r}; use one of: {', '.join(COMPARISONS)}")
    return value


def parse_delta(value: str) -> float:
    """An equivalence margin: a fraction strictly between 0 and 1, e.g. 0.01 for one point of
    accuracy."""
    return parse_fraction(value)


def parse_weights(value: str) -> str:
    """``imagenet``, ``none``, the path of a ResNet50 notop weights file (``.weights.h5`` /
    ``.h5``), or ``BACKBONE=PATH``: a notop weights file for the cases of that registered
    backbone only (the others keep their scale's weights). The file is checked against the
    backbone's layout (see :mod:`resnet_harness.training.weights`)."""
    if value in ("imagenet", "none"):
        return value
    from resnet_harness.training.model import BACKBONES

    name, sep, rest = value.partition("=")
    named = bool(sep) and name in BACKBONES
    backbone, path = (name, Path(rest).expanduser()) if named else ("resnet50",
                                                                    Path(value).expanduser())
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"weights {value!r} is neither 'imagenet', 'none' nor an existing weights file")
    from resnet_harness.training.weights import WeightsError, check_weights_file

    try:
        check_weights_file(path, backbone)
    except WeightsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"{backbone}={path}" if named else str(path)


def weights_for(value: str | None, backbone: str) -> str | None:
    """What ``--weights`` gives a case that trains ``backbone``: ``BACKBONE=PATH`` gives PATH
    to that backbone's cases and nothing (None: the scale's or case's weights) to others."""
    from resnet_harness.training.model import BACKBONES

    if value is None:
        return None
    name, sep, path = value.partition("=")
    if sep and name in BACKBONES:
        return path if name == backbone else None
    return value


# Linux' limits (NAME_MAX, PATH_MAX); checked before any file call, which would otherwise end
# in an OSError traceback far from the option that named the path.
NAME_MAX, PATH_MAX = 255, 4096


def check_path(value: str, what: str) -> Path:
    """``value`` as a path, or ``argparse.ArgumentTypeError`` (one line) when it cannot name a
    file here: not valid UTF-8 (the report and run.json record paths as text), a component
    over 255 bytes, or over 4096 bytes in all."""
    text = str(value)
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise argparse.ArgumentTypeError(
            f"{what} {shown!r} is not valid UTF-8; rename it or pass another path") from None
    path = Path(text).expanduser()
    long = [part for part in path.parts if len(part.encode("utf-8")) > NAME_MAX]
    if long:
        raise argparse.ArgumentTypeError(
            f"{what} has a component of {len(long[0].encode('utf-8'))} bytes "
            f"({long[0][:20]}...), over the file system's {NAME_MAX}; pass a shorter path")
    if len(os.fsencode(path.absolute())) > PATH_MAX or len(encoded) > PATH_MAX:
        raise argparse.ArgumentTypeError(
            f"{what} is {len(os.fsencode(path.absolute()))} bytes long, over the file "
            f"system's {PATH_MAX}; pass a shorter path")
    return path


def parse_report_dir(value: str) -> Path:
    """A folder that is, or can be made, writable: not empty, not a file, not under a file."""
    if not str(value).strip():
        raise argparse.ArgumentTypeError(
            f"report dir {value!r} is empty; pass a folder, e.g. reports (the default)")
    path = check_path(value, "report dir")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"report dir {value!r} is a file, not a folder; pass a folder path")
    existing = path.absolute()
    while not existing.exists():  # the nearest ancestor that exists must let us create it
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(
            f"report dir {value!r} cannot be created: {str(existing)!r} is a file; pass a "
            "folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(
            f"report dir {value!r} cannot be written: {str(existing)!r} is not writable; "
            "pass a folder you can write to")
    return path


_FLAGS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}


def parse_flag(value: str) -> bool:
    """A yes/no setting: 1, true, yes, on or 0, false, no, off (any case)."""
    flag = _FLAGS.get(str(value).strip().lower())
    if flag is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a yes/no value; use one of: 1, 0, true, false, yes, no, on, off")
    return flag


def parse_data_dir(value: str) -> tuple[str | None, Path]:
    """``PATH`` (one subfolder per data set) or ``NAME=PATH`` for one data set."""
    name, sep, path = value.partition("=")
    if sep and name in DATASETS:
        target = check_path(path, "data dir")
    elif sep and "/" not in name and "\\" not in name:
        raise argparse.ArgumentTypeError(
            f"unknown data set {name!r} in --data-dir {value!r}; use one of: {', '.join(DATASETS)}")
    else:
        name, target = None, check_path(value, "data dir")
    if not target.is_dir():
        raise argparse.ArgumentTypeError(
            f"data dir {str(target)!r} does not exist or is not a folder; "
            "pass an existing folder (see README, 'Using local data')")
    return name, target


def parse_imbalance(value: str) -> str:
    """A reading of the paper's imbalance recipe: text, table2, table4 or table6."""
    if value not in IMBALANCE_READINGS:
        raise argparse.ArgumentTypeError(
            f"unknown imbalance reading {value!r}; use one of: {', '.join(IMBALANCE_READINGS)}")
    return value


def parse_classes(value: str) -> tuple[int, ...]:
    """Comma-separated class indices in [0, 10), e.g. ``0,1,2``."""
    try:
        classes = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"classes {value!r} must be comma-separated integers, e.g. 0,1,2") from None
    bad = [c for c in classes if not 0 <= c < NUM_CLASSES]
    if not classes or bad or len(set(classes)) != len(classes):
        raise argparse.ArgumentTypeError(
            f"classes {value!r} must be distinct integers in [0, {NUM_CLASSES}), e.g. 0,1,2")
    return classes


def parse_fraction(value: str) -> float:
    """A fraction strictly between 0 and 1."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError(f"{value!r} must lie strictly between 0 and 1")
    return number


def parse_validation_split(value: str) -> float:
    """The share of each case's training set held out, stratified and seeded, for validation."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = math.nan
    if not 0.0 < share < 1.0:
        raise argparse.ArgumentTypeError(
            f"validation split {value!r} must be a share strictly between 0 and 1, e.g. 0.1")
    return share


def parse_patience(value: str) -> int:
    """Epochs without a better validation loss before training stops (early stopping)."""
    try:
        patience = int(str(value).strip())
    except ValueError:
        patience = 0
    if patience < 1:
        raise argparse.ArgumentTypeError(
            f"early-stopping patience {value!r} must be a whole number of epochs >= 1, e.g. 5")
    return patience


def parse_on_off(value: str) -> bool:
    """``on`` or ``off``."""
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{value!r} must be 'on' or 'off'")
    return value == "on"


BN_RECALIBRATE_MODES = ("auto", "on", "off")
# Scales at which ``--bn-recalibrate auto`` re-estimates BatchNorm statistics: the short runs from
# random init whose moving averages lag the weights. At paper scale the study's protocol stands.
BN_RECALIBRATE_AUTO_SCALES = ("smoke", "reduced")


def parse_bn_recalibrate(value: str) -> str:
    """``auto`` (on at smoke and reduced scale, off at paper scale), ``on`` or ``off``."""
    return _parse_mode(value, "--bn-recalibrate")


def parse_augment(value: str) -> str:
    """``auto`` (the scale's rule: off at reduced scale, else what the case says), ``on``
    (every case augments) or ``off`` (none does)."""
    return _parse_mode(value, "--augment")


def _parse_mode(value: str, flag: str) -> str:
    if value not in BN_RECALIBRATE_MODES:
        raise argparse.ArgumentTypeError(
            f"unknown {flag} mode {value!r}; use one of: {', '.join(BN_RECALIBRATE_MODES)}")
    return value


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


def parse_backbone(value: str) -> str:
    """A registered backbone (``training.model.BACKBONES``): ``resnet50`` (the study),
    ``tiny`` (a two-layer stand-in for fast self-tests), ``resnet32`` (the long-tail
    literature's CIFAR ResNet) or one a study registered (``register_backbone``)."""
    from resnet_harness.training.model import BACKBONES

    if value not in BACKBONES:
        others = [name for name in BACKBONES if name not in ("resnet50", "tiny")]
        raise argparse.ArgumentTypeError(
            f"unknown backbone {value!r}; use resnet50 or tiny"
            + (f", or another registered backbone: {', '.join(others)}" if others else ""))
    return value


def parse_data_source(value: str) -> str:
    """``auto`` (local folders, then the Keras cache/download) or ``synthetic``."""
    if value not in ("auto", "synthetic"):
        raise argparse.ArgumentTypeError(f"unknown data source {value!r}; use auto or synthetic")
    return value


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


def parse_path(value: str) -> Path:
    """A non-empty path (whether it must exist is checked where it is used)."""
    if not str(value).strip():
        raise argparse.ArgumentTypeError(f"{value!r} is an empty path; pass a folder or file path")
    return check_path(value, "path")


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
    xla: bool = False
    mixed_precision: bool = False
    data_source: str = "auto"
    deterministic: bool = False
    recipe: str = "study"  # "controlled": Table 7's imbalanced arm ran its balanced arm's recipe
    bn_recalibrate: bool = False  # resolved from RunConfig.bn_recalibrate and the scale
    cb_beta: float = 0.9999  # long-tail study: effective-number beta (Cui et al. 2019)
    la_tau: float = 1.0  # long-tail study: logit-adjustment temperature (Menon et al. 2021)
    validation_split: float | None = None  # share of the training set held out for validation
    early_stopping: int | None = None  # patience in epochs on validation loss

    @property
    def hooks(self):
        """The case's training hooks (``resnet_harness.study.Hooks``)."""
        return self.case.hooks()

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly settings, as stored with the result row: everything that can change a
        result (``--resume`` reuses a row only when this is equal), the study's own included."""
        return {**self.case.config_fields(self),
            "epochs": self.epochs, "weights": self.weights, "batch_size": self.case.batch_size,
            "learning_rate": self.case.learning_rate, "max_train_samples": self.max_train_samples,
            "max_test_samples": self.max_test_samples, "augment": self.augment,
            "hflip": self.hflip, "backbone": self.backbone, "head": asdict(self.case.head),
            "xla": self.xla, "mixed_precision": self.mixed_precision,
            "data_source": self.data_source, "deterministic": self.deterministic,
            "bn_recalibrate": self.bn_recalibrate,
            "imbalance": asdict(self.imbalance) if self.imbalance else None,
            "recipe": self.recipe,
            # Only when used, so that rows made without a validation set keep their identity.
            **({"validation_split": self.validation_split,
                "early_stopping": self.early_stopping} if self.validation_split else {}),
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
    imbalance: str = "text"
    imbalance_classes: tuple[int, ...] | None = None
    imbalance_fraction: float | None = None
    hflip: bool = True
    report_dir: Path = Path("reports")
    backbone: str = "resnet50"
    deterministic: bool = False
    xla: bool = False
    mixed_precision: bool = False
    seeds: "tuple[int, ...] | AutoSeeds | None" = None  # --seeds: every case once per seed
    comparison: str = "study"
    equivalence_delta: float = 0.01  # |difference| below which two arms count as equivalent
    bn_recalibrate: str = "auto"
    augment: str = "auto"
    progress: str | float = "auto"  # resnet_harness.progress.parse_progress
    mlflow: str | None = None  # tracking URI; None: MLflow is not used (nor imported)
    cb_beta: float = 0.9999
    la_tau: float = 1.0
    validation_split: float | None = None
    early_stopping: int | None = None

    def for_case(self, case: Case) -> CaseConfig:
        """The concrete settings of ``case`` at this scale, overrides applied.

        A seeded case (``--seeds``) runs with its own seed instead of ``--seed``. Under
        ``--comparison controlled`` Table 7's imbalanced arm takes its balanced arm's head,
        epochs and augmentation, so the two arms differ in their data only. A case that sets
        its own ``validation_split`` keeps its validation protocol; ``--weights BACKBONE=PATH``
        reaches only the cases that train that backbone.
        """
        scale = SCALES[self.scale]
        recipe = "study"
        controlled = case.controlled() if self.comparison == "controlled" else None
        if controlled is not None:
            case, recipe = controlled, "controlled"
        imbalance = None
        if case.uses_imbalance_recipe:
            imbalance = IMBALANCE_READINGS[self.imbalance]
            if self.imbalance_classes is not None:
                imbalance = replace(imbalance, classes=self.imbalance_classes)
            if self.imbalance_fraction is not None:
                imbalance = replace(imbalance, reading=f"{imbalance.reading}+fraction",
                                    remove_fraction=self.imbalance_fraction, remove_total=None,
                                    keep_per_class=None)
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
            imbalance=imbalance, augment=resolve_augment(self.augment, self.scale, case.augment),
            hflip=self.hflip, backbone=backbone,
            xla=self.xla, mixed_precision=self.mixed_precision, data_source=self.data_source,
            deterministic=self.deterministic, recipe=recipe, cb_beta=self.cb_beta,
            la_tau=self.la_tau,
            validation_split=case.validation_split if own else self.validation_split,
            early_stopping=case.early_stopping if own else self.early_stopping,
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
