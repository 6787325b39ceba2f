"""Validators for every option value: small ``parse_*`` functions that raise
``argparse.ArgumentTypeError``, so that pytest turns bad input into a one-line usage error before
anything trains (``resnet_harness.plugin.options`` wires them to the options).
"""

from __future__ import annotations

import argparse
import re
import math
import os
from pathlib import Path

from resnet_harness.training.config import (AUTO_MAX_SEEDS, BN_RECALIBRATE_MODES, SCALES,
                                            AutoSeeds)
from resnet_harness.training.data.sources import DATASETS, NUM_CLASSES


def one_of(value: str, choices, what: str) -> str:
    """``value`` when it is one of ``choices``; else the one-line error ``unknown WHAT 'x';
    use one of: a, b``. For validators of named choices, the studies' own included."""
    if value not in choices:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {value!r}; use one of: {', '.join(choices)}")
    return value


def parse_scale(value: str) -> str:
    """A scale name: smoke, reduced or paper."""
    return one_of(value, SCALES, "scale")


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


def parse_seeds(value: str) -> "tuple[int, ...] | AutoSeeds":
    """Seeds to repeat every case with: ``0,1,2,3,4``, a range ``0-4``, or both (``0-2,7``);
    or ``auto`` / ``auto:MAX`` (rounds of seeds until every claim touched is decided)."""
    text = str(value).strip()
    if text == "auto" or text.startswith("auto:"):
        _, _, maximum = text.partition(":")
        if maximum and not (maximum.isascii() and maximum.isdigit()):  # "²" is a digit too
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
    from resnet_harness.training.backbones import BACKBONES

    name, sep, rest = value.partition("=")
    named = bool(sep) and name in BACKBONES
    backbone, path = (name, Path(rest).expanduser()) if named else ("resnet50",
                                                                    Path(value).expanduser())
    if sep and not named and re.fullmatch(r"[A-Za-z][\w.-]*", name) and not path.exists():
        raise argparse.ArgumentTypeError(
            f"weights {value!r} names the backbone {name!r}, which is not registered; use "
            f"BACKBONE=PATH with one of {', '.join(BACKBONES)}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"weights {value!r} is neither 'imagenet', 'none' nor an existing weights file")
    from resnet_harness.training.weights import WeightsError, check_weights_file

    try:
        check_weights_file(path, backbone)
    except WeightsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"{backbone}={path}" if named else str(path)


def combine_weights(entries: list[str]) -> str | None:
    """One ``--weights`` value from the option given several times: at most one plain value
    (``imagenet``, ``none`` or a ResNet50 PATH, for every case) and at most one
    ``BACKBONE=PATH`` per backbone (for that backbone's cases, before the plain one), joined by
    ``;``. Two values for the same cases are refused rather than the later silently winning."""
    if not entries:
        return None
    from resnet_harness.training.backbones import BACKBONES

    seen: dict[str, str] = {}
    for entry in entries:
        name, sep, _ = entry.partition("=")
        key = name if sep and name in BACKBONES else "every case"
        if key in seen:
            raise argparse.ArgumentTypeError(
                f"--weights gives {key if key == 'every case' else key + ' cases'} two weights "
                f"({seen[key]} and {entry}); pass one --weights per backbone, as BACKBONE=PATH")
        seen[key] = entry
    return ";".join(entries)


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
    """Epochs without a better validation figure (``--early-stopping-monitor``) before training
    stops (early stopping)."""
    try:
        patience = int(str(value).strip())
    except ValueError:
        patience = 0
    if patience < 1:
        raise argparse.ArgumentTypeError(
            f"early-stopping patience {value!r} must be a whole number of epochs >= 1, e.g. 5")
    return patience


MONITORS = ("val_loss", "val_accuracy")  # what Keras' EarlyStopping can watch here


def parse_monitor(value: str) -> str:
    """What early stopping watches: ``val_loss`` (default) or ``val_accuracy``."""
    if value not in MONITORS:
        raise argparse.ArgumentTypeError(
            f"early-stopping monitor {value!r} is not one of {', '.join(MONITORS)}: "
            "e.g. --early-stopping-monitor val_accuracy")
    return value


BATCH_ORDERS = ("common", "shuffle")  # training.data.pipeline.common_order, or tf.data's shuffle


def parse_batch_order(value: str) -> str:
    """How training images are ordered into batches: ``common`` (default) or ``shuffle``."""
    if value not in BATCH_ORDERS:
        raise argparse.ArgumentTypeError(
            f"batch order {value!r} is not one of {', '.join(BATCH_ORDERS)}: e.g. "
            "--batch-order shuffle")
    return value


def parse_on_off(value: str) -> bool:
    """``on`` or ``off``."""
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{value!r} must be 'on' or 'off'")
    return value == "on"


def parse_bn_recalibrate(value: str) -> str:
    """``auto`` (on at smoke and reduced scale, off at paper scale), ``on`` or ``off``."""
    return _parse_mode(value, "--bn-recalibrate")


def parse_augment(value: str) -> str:
    """``auto`` (the scale's rule: off at reduced scale, else what the case says), ``on``
    (every case augments) or ``off`` (none does)."""
    return _parse_mode(value, "--augment")


def _parse_mode(value: str, flag: str) -> str:
    return one_of(value, BN_RECALIBRATE_MODES, f"{flag} mode")


def parse_backbone(value: str) -> str:
    """A registered backbone (``training.model.BACKBONES``): ``resnet50`` (the study),
    ``tiny`` (a two-layer stand-in for fast self-tests), ``resnet32`` (the long-tail
    literature's CIFAR ResNet) or one a study registered (``register_backbone``)."""
    from resnet_harness.training.backbones import BACKBONES

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


def parse_path(value: str) -> Path:
    """A non-empty path (whether it must exist is checked where it is used)."""
    if not str(value).strip():
        raise argparse.ArgumentTypeError(f"{value!r} is an empty path; pass a folder or file path")
    return check_path(value, "path")
