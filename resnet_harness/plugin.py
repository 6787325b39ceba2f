"""The pytest plugin (registered through the ``pytest11`` entry point).

Hooks only hand work to one :class:`~resnet_harness.session.HarnessSession`: options and ini keys
are declared here and validated by the ``parse_*`` functions of ``config``; everything else lives
in ``session``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from . import config as cfg
from .baseline import BaselineError, expand_tolerances, load_baseline, parse_tolerance
from .matrix import Case
from .progress import parse_progress
from .tracking import parse_tracking_uri

GROUP = "resnet-harness"

# option, destination, parser, help. Each also reads ini key ``harness_<dest>`` and environment
# variable ``RESNET_HARNESS_<DEST>``; the command line beats the environment beats the ini file.
OPTIONS = (
    ("--scale", "scale", cfg.parse_scale,
     "smoke (default: random init, a few hundred images, 1 epoch), reduced or paper"),
    ("--epochs", "epochs", cfg.parse_positive_int, "override the epochs of every case"),
    ("--max-train-samples", "max_train_samples", cfg.parse_sample_cap,
     "cap the training set (stratified subset)"),
    ("--max-test-samples", "max_test_samples", cfg.parse_sample_cap,
     "cap the test set (stratified subset)"),
    ("--seed", "seed", cfg.parse_seed, "seed of every random choice (default 0)"),
    ("--weights", "weights", cfg.parse_weights,
     "imagenet, none (random init) or PATH of a ResNet50 notop weights file"),
    ("--data-source", "data_source", cfg.parse_data_source,
     "auto (default: --data-dir, Debian's Fashion-MNIST, then Keras) or synthetic"),
    ("--imbalance", "imbalance", cfg.parse_imbalance,
     "reading of the paper's imbalance recipe: text (default, 10%% removed), table2, table4, "
     "table6"),
    ("--imbalance-classes", "imbalance_classes", cfg.parse_classes,
     "classes reduced in imbalanced variants (default 0,1,2)"),
    ("--imbalance-fraction", "imbalance_fraction", cfg.parse_fraction,
     "share of each reduced class removed, overriding --imbalance"),
    ("--hflip", "hflip", cfg.parse_on_off,
     "horizontal flip in augmentation: on (default, text and Table 5) or off (Table 3)"),
    ("--backbone", "backbone", cfg.parse_backbone,
     "resnet50 (default, the study) or tiny (a two-layer stand-in to test the harness quickly)"),
    ("--xla", "xla", cfg.parse_on_off,
     "compile the train step with XLA: off (default, as the study) or on"),
    ("--mixed-precision", "mixed_precision", cfg.parse_on_off,
     "float16 compute with float32 variables (GPUs with tensor cores): off (default) or on"),
    ("--report-dir", "report_dir", Path, "where run folders and reports go (default reports/)"),
    ("--progress", "progress", parse_progress,
     "live progress of the training case: auto (default: in place on a terminal, a line every "
     "30 s otherwise; -q turns it off), off, or SECONDS between plain lines"),
    ("--mlflow", "mlflow", parse_tracking_uri,
     "log the session into this MLflow tracking URI (e.g. sqlite:///mlruns.db): one parent run, "
     "one nested run per case; needs pip install -e '.[mlflow]'"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "resnet-harness: the ResNet50 study's experiment matrix")
    for flag, dest, parse, help_text in OPTIONS:
        group.addoption(flag, dest=f"harness_{dest}", type=parse, default=None, help=help_text,
                        metavar=dest.upper())
        parser.addini(f"harness_{dest}", f"default for {flag}", default=None)
    group.addoption("--data-dir", dest="harness_data_dir", action="append", default=None,
                    type=cfg.parse_data_dir, metavar="PATH|NAME=PATH",
                    help="local data: a folder with cifar10/ and fashion_mnist/ subfolders, or "
                    "NAME=PATH per data set (repeatable; env RESNET_HARNESS_DATA_DIR, ini "
                    "harness_data_dir)")
    parser.addini("harness_data_dir", "default for --data-dir (whitespace-separated)",
                  type="args", default=[])
    group.addoption("--baseline", dest="harness_baseline", default=None, metavar="PATH",
                    help="compare every case with this results.csv or run folder; a regression "
                    "beyond tolerance fails the case (ini harness_baseline)")
    parser.addini("harness_baseline", "default for --baseline", default=None)
    group.addoption("--tolerance", dest="harness_tolerance", action="append", default=None,
                    type=parse_tolerance, metavar="METRIC=VALUE",
                    help="baseline tolerance: absolute for metrics (accuracy=0.02, scores=0.1 for "
                    "all of them), relative for train_time_s/test_time_s/peak_rss_mb (0.5 = 50%% "
                    "slower); repeatable")
    parser.addini("harness_tolerance", "default --tolerance entries (whitespace-separated)",
                  type="args", default=[])
    group.addoption("--resume", dest="harness_resume", default=None, metavar="RUN_DIR",
                    help="write into RUN_DIR and skip cases whose identical configuration "
                    "already passed there")
    group.addoption("--deterministic", dest="harness_deterministic", action="store_true",
                    default=None, help="turn on TensorFlow op determinism (slower)")
    parser.addini("harness_deterministic", "default for --deterministic", type="bool",
                  default=False)


def _resolve(config: pytest.Config, dest: str, parse) -> object:
    value = config.getoption(f"harness_{dest}")
    if value is not None:
        return value
    for origin, raw in ((f"environment variable RESNET_HARNESS_{dest.upper()}",
                         cfg.env_default(dest)),
                        (f"ini key harness_{dest}", config.getini(f"harness_{dest}"))):
        if raw not in (None, "", []):
            try:
                return parse(raw)
            except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
                raise pytest.UsageError(f"{origin}: {exc}") from None
    return None


def run_config(config: pytest.Config) -> cfg.RunConfig:
    """The session's :class:`~resnet_harness.config.RunConfig` from options, env and ini."""
    values = {dest: _resolve(config, dest, parse) for _, dest, parse, _ in OPTIONS}
    data_dirs = config.getoption("harness_data_dir")
    if data_dirs is None:
        raw = cfg.env_default("data_dir")
        entries, origin = ((raw.split(os.pathsep), "environment variable RESNET_HARNESS_DATA_DIR")
                           if raw else (config.getini("harness_data_dir"),
                                        "ini key harness_data_dir"))
        try:
            data_dirs = [cfg.parse_data_dir(entry) for entry in entries if entry]
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"{origin}: {exc}") from None
    deterministic = config.getoption("harness_deterministic")
    if deterministic is None:
        deterministic = bool(config.getini("harness_deterministic"))
    return cfg.RunConfig(**{k: v for k, v in values.items() if v is not None},
                         data_dirs=dict(data_dirs or []), deterministic=deterministic)


def baseline_settings(config: pytest.Config):
    """``(baseline rows or None, tolerances)``, validated before anything trains."""
    path = config.getoption("harness_baseline") or cfg.env_default("baseline") or \
        config.getini("harness_baseline")
    tolerances = config.getoption("harness_tolerance")
    if tolerances is None:
        try:
            tolerances = [parse_tolerance(v) for v in config.getini("harness_tolerance")]
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"ini key harness_tolerance: {exc}") from None
    rows = None
    if path:
        try:
            rows = load_baseline(path)
        except BaselineError as exc:
            raise pytest.UsageError(f"--baseline: {exc}") from None
    return rows, expand_tolerances(tolerances)


def resume_dir(config: pytest.Config) -> Path | None:
    """The run folder given to ``--resume``, checked to be one."""
    value = config.getoption("harness_resume")
    if value is None:
        return None
    path = Path(value)
    if not (path / "cases").is_dir():
        raise pytest.UsageError(f"--resume: {path} is not a run folder (no cases/ inside); pass "
                                "a folder under reports/runs/ or reports/latest")
    return path


def pytest_configure(config: pytest.Config) -> None:
    for name, text in (
            ("cifar10", "CIFAR-10 cases"), ("fashion_mnist", "Fashion-MNIST cases"),
            ("table7", "the paper's Table 7/8 cases (balanced vs imbalanced)"),
            ("table9", "the paper's Table 9 cases (train/test splits)"),
            ("table10", "the paper's Table 10 cases (regularization)"),
            ("balanced", "cases on balanced data"), ("imbalanced", "cases on imbalanced data"),
            ("experiment", "a case of the study's matrix"),
            ("tolerance(**metrics)", "per-case baseline tolerances, e.g. tolerance(accuracy=0.02)")):
        config.addinivalue_line("markers", f"{name}: {text}")
    # Before TensorFlow loads: oneDNN kernels are off by default on CPUs without AVX-512, and
    # without them ResNet50's backward pass at 32x32 runs ~5x slower (see bench/README.md).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .devices import pin_worker
    from .session import HarnessSession

    pin_worker()
    baseline_rows, tolerances = baseline_settings(config)
    session = HarnessSession(config, run_config(config), baseline=baseline_rows,
                             tolerances=tolerances, resume=resume_dir(config))
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "resnet_harness_session")
    from .watch import Watch

    session.watch = Watch(config, session, progress=session.run.progress,
                          mlflow_uri=session.run.mlflow)
    config.pluginmanager.register(session.watch, "resnet_harness_watch")


SESSION_KEY = pytest.StashKey["HarnessSession"]()


def case_param(case: Case):
    """``pytest.param`` of one matrix row: its id and its data-set, table and balance markers."""
    marks = [pytest.mark.experiment, getattr(pytest.mark, case.dataset),
             getattr(pytest.mark, case.table), getattr(pytest.mark, case.balance)]
    if case.tolerances:
        marks.append(pytest.mark.tolerance(**dict(case.tolerances)))
    return pytest.param(case, id=case.id, marks=marks)


@pytest.fixture
def harness(request: pytest.FixtureRequest):
    """The session's harness: ``harness.check(case)`` runs a case and asserts its bounds."""
    session = request.config.stash[SESSION_KEY]
    session.current_item = request.node
    return session
