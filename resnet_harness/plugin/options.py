"""Every option of the harness in one table, and the one way its effective value is found.

Each option is read from the command line (``--name``), the environment
(``RESNET_HARNESS_<NAME>``) and the ini file (``harness_<name>``), in that order of precedence,
and parsed by the same ``parse_*`` validator wherever it came from. :func:`resolve` returns the
values and where each came from; the run's provenance records both.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from resnet_harness.training import config as cfg
from resnet_harness.training import values
from resnet_harness.analysis.baseline import parse_tolerance
from resnet_harness.plugin.progress import parse_progress
from resnet_harness.plugin.resume import parse_policy
from resnet_harness.plugin import slurm
from resnet_harness.plugin.tracking import parse_tracking_uri

DEFAULT = "default"


@dataclass(frozen=True)
class Option:
    """One harness option. ``kind``: ``value`` (one value), ``list`` (repeatable; the
    environment separates entries with ``separator``, the ini file with whitespace) or ``flag``
    (no value on the command line; ``1/true/yes/on`` or ``0/false/no/off`` elsewhere)."""

    flag: str
    parse: Callable[[str], Any]
    help: str
    kind: str = "value"
    separator: str | None = None  # environment list separator; None: whitespace

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return f"RESNET_HARNESS_{self.dest.upper()}"

    @property
    def ini(self) -> str:
        return f"harness_{self.dest}"


OPTIONS: tuple[Option, ...] = (
    Option("--scale", values.parse_scale,
           "smoke (default: random init, a few hundred images, 1 epoch), reduced or paper"),
    Option("--epochs", values.parse_epochs, "override the epochs of every case"),
    Option("--max-train-samples", values.parse_sample_cap, "cap the training set (stratified subset)"),
    Option("--max-test-samples", values.parse_sample_cap, "cap the test set (stratified subset)"),
    Option("--seed", values.parse_seed, "seed of every random choice (default 0)"),
    Option("--seeds", values.parse_seeds,
           "run every case once per seed, the seed in its id (-seed3): 0,1,2,3,4 or 0-4 (at "
           "most 1000); auto[:MAX]: rounds of 3 seeds until every claim touched is decided "
           "(O'Brien-Fleming alpha spending, MAX 12 by default)"),
    Option("--equivalence-delta", values.parse_delta,
           "margin within which two arms count as equivalent in comparisons (default 0.01)"),
    Option("--weights", values.parse_weights,
           "imagenet, none (random init), PATH of a ResNet50 notop weights file, or "
           "BACKBONE=PATH: a notop weights file for that backbone's cases only (repeatable, "
           "one per backbone)", kind="list", separator=";"),
    Option("--data-source", values.parse_data_source,
           "auto (default: --data-dir, Debian's Fashion-MNIST, then Keras) or synthetic"),
    Option("--data-dir", values.parse_data_dir,
           "local data: a folder with cifar10/ and fashion_mnist/ subfolders, or NAME=PATH per "
           "data set (repeatable; the environment separates entries with ':')",
           kind="list", separator=os.pathsep),
    Option("--hflip", values.parse_on_off,
           "horizontal flip in augmentation: on (default, text and Table 5) or off (Table 3)"),
    Option("--backbone", values.parse_backbone,
           "resnet50 (default, the study), tiny (a two-layer stand-in to test the harness) or "
           "another registered one (resnet32, mobilenetv2, densenet121, vgg16, efficientnetb0)"
           ": every case trains it; the default leaves a case's own backbone"),
    Option("--xla", values.parse_on_off,
           "compile the train step with XLA: off (default, as the study) or on"),
    Option("--mixed-precision", values.parse_on_off,
           "float16 compute with float32 variables (GPUs with tensor cores): off (default) or on"),
    Option("--bn-recalibrate", values.parse_bn_recalibrate,
           "re-estimate BatchNorm statistics on training batches before evaluating: auto "
           "(default: on at smoke and reduced scale, off at paper scale), on or off"),
    Option("--augment", values.parse_augment,
           "the paper's rotation/shift/flip augmentation: auto (default: off at reduced scale, "
           "else as the case says), on or off"),
    Option("--validation-split", values.parse_validation_split,
           "hold out this share of each case's training set (stratified, seeded, after the "
           "imbalance recipe) as a validation set; off by default (the paper had none)"),
    Option("--early-stopping", values.parse_patience,
           "stop training after PATIENCE epochs without a better validation figure "
           "(--early-stopping-monitor; lower validation loss by default) and keep the "
           "best epoch's weights; needs --validation-split"),
    Option("--early-stopping-monitor", values.parse_monitor,
           "what early stopping watches: val_loss (default) or val_accuracy; also the "
           "quantity a study's own early-stopping cases watch"),
    Option("--batch-order", values.parse_batch_order,
           "the order training images are batched in: common (default: the images two cases "
           "of one seed share come in the same order, common random numbers for paired "
           "comparisons) or shuffle (a fresh tf.data shuffle of each case's own set)"),
    Option("--deterministic", values.parse_flag, "turn on TensorFlow op determinism (slower)",
           kind="flag"),
    Option("--report-dir", values.parse_report_dir,
           "where run folders and reports go (default reports/)"),
    Option("--progress", parse_progress,
           "live progress of the session and the training case: auto (default: in place on a "
           "terminal, otherwise a line every 30 s and at each epoch end; -q turns it off), "
           "off, or SECONDS between plain lines"),
    Option("--mlflow", parse_tracking_uri,
           "log the session into this MLflow tracking URI (e.g. sqlite:///mlruns.db): one "
           "parent run, one nested run per case; needs pip install -e \".[mlflow]\""),
    Option("--baseline", values.parse_path,
           "compare every case with this results.csv or run folder; a regression beyond "
           "tolerance fails the case"),
    Option("--tolerance", parse_tolerance,
           "baseline tolerance: absolute for scores (accuracy=0.02, scores=0.1 for all of "
           "them), relative for train_time_s/test_time_s/peak_rss_mb (0.5 = 50%% slower); "
           "repeatable (whitespace-separated in the environment and ini)", kind="list"),
    Option("--resume", values.parse_path,
           "write into this run folder and skip cases whose row passed there with the identity "
           "this session would give it (settings, data, code, libraries, environment)"),
    Option("--resume-mismatch", parse_policy,
           "what --resume does with a folder or rows made another way: refuse (default, "
           "naming each difference), rerun (set them aside in superseded/ and run again) or "
           "keep (rows of other code, libraries or environment only)"),
    Option("--slurm", values.parse_flag,
           "submit the selected cases to SLURM as one job array through submitit (one case "
           "per task) instead of running them here; see the --slurm-* options", kind="flag"),
    Option("--slurm-partition", str, "SLURM partition of the tasks (default: the cluster's)"),
    Option("--slurm-time", slurm.parse_minutes,
           "time limit per task in minutes or H:MM (default 60); a task reaching it is "
           "requeued and its case starts again"),
    Option("--slurm-gpus", slurm.parse_count, "GPUs per task (default: 1 where the partition's nodes have GPUs, else 0)"),
    Option("--slurm-cpus", slurm.parse_count, "CPUs per task (default 4, or a node's CPUs if fewer)"),
    Option("--slurm-mem", slurm.parse_count, "memory per task in GB (default: the cluster's)"),
    Option("--slurm-parallelism", slurm.parse_count,
           "at most this many tasks at once (default: as many as SLURM gives)"),
    Option("--slurm-wait", values.parse_on_off,
           "on (default): wait, show progress, build the report; off: return once submitted "
           "(python -m resnet_harness attach RUN_FOLDER waits later)"),
    Option("--slurm-option", slurm.parse_extra,
           "any other #SBATCH option as KEY=VALUE (account=mylab, qos=high); repeatable",
           kind="list"),
)
SLURM_OPTIONS = tuple(o.dest for o in OPTIONS if o.dest.startswith("slurm"))


def all_options() -> tuple[Option, ...]:
    """The harness's options and, after them, every registered study's own
    (``Study.options``): one table, declared, resolved and recorded the same way."""
    from resnet_harness import study

    study.load_builtin()
    return OPTIONS + tuple(Option(o.flag, o.parse, o.help) for o in study.options())


def study_option_defaults() -> dict[str, Any]:
    """``{dest: default}`` of every registered study's options."""
    from resnet_harness import study

    study.load_builtin()
    return {o.dest: o.default for o in study.options()}


def add_options(group, parser) -> None:
    """Declare every option on pytest's option ``group`` and its ini key on ``parser``."""
    from resnet_harness import study

    study.load_builtin()
    study.options_declared()
    for option in all_options():
        dest = f"harness_{option.dest}"
        if option.kind == "flag":
            group.addoption(option.flag, dest=dest, action="store_true", default=None,
                            help=f"{option.help} (env {option.env}, ini {option.ini})")
        else:
            group.addoption(option.flag, dest=dest, type=option.parse, default=None,
                            action="append" if option.kind == "list" else "store",
                            metavar=option.dest.upper(),
                            help=f"{option.help} (env {option.env}, ini {option.ini})")
        parser.addini(option.ini, f"default for {option.flag}",
                      type="args" if option.kind == "list" else "string", default=None)


@dataclass(frozen=True)
class Resolved:
    """Effective option values (None where unset) and where each came from: the option's flag
    (command line), ``environment variable NAME``, ``ini key NAME`` or ``default``."""

    values: dict[str, Any]
    origins: dict[str, str]

    @property
    def given(self) -> bool:
        """Whether any harness option was set anywhere (the plugin is active then)."""
        return any(origin != DEFAULT for origin in self.origins.values())

    def provenance(self, effective: Any = None) -> dict[str, dict[str, Any]]:
        """``{option: {"value": ..., "from": ...}}`` for run.json; an option left at its
        default records the value it took in ``effective`` (the session's ``RunConfig``)."""
        return {dest: {"value": _plain(value if value is not None
                                       else _effective(effective, dest)),
                       "from": self.origins[dest]}
                for dest, value in self.values.items()}


def _effective(run: Any, dest: str) -> Any:
    """The value the session took for option ``dest``: a ``RunConfig`` field, or a study's own
    option among its ``study_options`` (recorded as before they moved into the study, so a
    folder made earlier resumes)."""
    if hasattr(run, dest):
        return getattr(run, dest)
    return (getattr(run, "study_options", None) or {}).get(dest)


def _plain(value: Any) -> Any:
    if isinstance(value, cfg.AutoSeeds):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _parse_entries(option: Option, raw: Any, origin: str) -> Any:
    try:
        if option.kind == "list":
            entries = raw if isinstance(raw, list) else str(raw).split(option.separator)
            return [option.parse(entry) for entry in entries if entry.strip()]
        return option.parse(raw)
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{origin}: {exc}") from None


def resolve(getoption: Callable[[str], Any], getini: Callable[[str], Any],
            environ: dict[str, str] | None = None) -> Resolved:
    """Every option's effective value: command line, else environment, else ini, else None.

    ``getoption``/``getini`` are pytest's ``config.getoption``/``config.getini``. A bad value
    from the environment or the ini file raises ``argparse.ArgumentTypeError`` naming where it
    came from (the command line is checked by argparse itself).
    """
    environ = os.environ if environ is None else environ
    values, origins = {}, {}
    for option in all_options():
        value, origin = getoption(f"harness_{option.dest}"), option.flag
        if value is None:
            raw_env, raw_ini = environ.get(option.env) or None, getini(option.ini)
            if raw_env is not None:
                origin = f"environment variable {option.env}"
                value = _parse_entries(option, raw_env, origin)
            elif raw_ini not in (None, "", []):
                origin = f"ini key {option.ini}"
                value = _parse_entries(option, raw_ini, origin)
            else:
                origin = DEFAULT
        values[option.dest], origins[option.dest] = value, origin
    return Resolved(values, origins)


# Options that shape the session (what to compare against, where to write), not a case's run.
_SESSION_OPTIONS = ("baseline", "tolerance", "resume", "resume_mismatch", "data_dir",
                    *SLURM_OPTIONS)


def _combine(weights: Any) -> str | None:
    return values.combine_weights(list(weights) if isinstance(weights, (list, tuple))
                                  else [weights])


def run_config(resolved: Resolved) -> cfg.RunConfig:
    """The session's :class:`~resnet_harness.training.config.RunConfig` from resolved options."""
    values = resolved.values
    if values["seed"] is not None and values["seeds"] is not None:
        raise argparse.ArgumentTypeError(
            f"{resolved.origins['seed']} {values['seed']} and {resolved.origins['seeds']} "
            f"{_plain(values['seeds'])} both given: --seeds sets every case's seed; drop --seed")
    if values["early_stopping"] is not None and values["validation_split"] is None:
        raise argparse.ArgumentTypeError(
            f"{resolved.origins['early_stopping']} {values['early_stopping']} needs a "
            "validation set to watch: add --validation-split 0.1 (or drop --early-stopping)")
    defaults = study_option_defaults()
    settings = {dest: value for dest, value in values.items()
                if value is not None and dest not in _SESSION_OPTIONS and dest not in defaults}
    # A study's options travel to its cases as one mapping, each at its value or default.
    settings["study_options"] = {dest: default if values.get(dest) is None else values[dest]
                                 for dest, default in defaults.items()}
    if "weights" in settings:
        try:
            combined = _combine(settings.pop("weights"))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{resolved.origins['weights']}: {exc}") from None
        if combined is not None:
            settings["weights"] = combined
    return cfg.RunConfig(**settings, data_dirs=dict(values["data_dir"] or []))
