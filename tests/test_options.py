"""The one option table: every option read from the command line, the environment and the ini
file with the same precedence and validators, and where each value came from."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from resnet_harness.plugin import options
from resnet_harness.plugin.options import DEFAULT, all_options, resolve

OPTIONS = all_options()  # the harness's and the studies' own (--cb-beta, --la-tau)


def fake(cmdline=None, ini=None):
    """``getoption``/``getini`` stand-ins: unset options are None, unset ini keys None/[]."""
    cmdline, ini = cmdline or {}, ini or {}

    def getoption(dest):
        return cmdline.get(dest[len("harness_"):])

    def getini(name):
        option = next(o for o in OPTIONS if o.ini == name)
        return ini.get(option.dest, [] if option.kind == "list" else None)

    return getoption, getini


def test_nothing_given_means_defaults_and_not_active():
    resolved = resolve(*fake(), environ={})
    assert set(resolved.values) == {o.dest for o in OPTIONS}
    assert all(v is None for v in resolved.values.values())
    assert set(resolved.origins.values()) == {DEFAULT}
    assert not resolved.given


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.dest)
def test_every_option_has_the_same_precedence(option, tmp_path):
    """command line > environment > ini > default, for every option of the table."""
    raw = {"scale": ["paper", "reduced", "smoke"], "epochs": ["3", "4", "5"],
           "max_train_samples": ["30", "40", "50"], "max_test_samples": ["30", "40", "50"],
           "seed": ["1", "2", "3"], "seeds": ["0-2", "1,2", "4"],
           "comparison": ["controlled", "study", "controlled"],
           "equivalence_delta": ["0.02", "0.03", "0.04"], "weights": ["none", "imagenet", "none"],
           "data_source": ["synthetic", "auto", "synthetic"],
           "data_dir": [f"cifar10={tmp_path}", str(tmp_path), f"fashion_mnist={tmp_path}"],
           "imbalance": ["table2", "table4", "table6"], "imbalance_classes": ["1", "2", "3"],
           "imbalance_fraction": ["0.2", "0.3", "0.4"], "hflip": ["on", "off", "on"],
           "backbone": ["tiny", "resnet50", "tiny"], "xla": ["on", "off", "on"],
           "mixed_precision": ["on", "off", "on"],
           "bn_recalibrate": ["on", "off", "auto"], "augment": ["off", "on", "auto"],
           "progress": ["off", "5", "auto"],
           "mlflow": ["sqlite:///a.db", "sqlite:///b.db", "http://localhost:5000"], "deterministic": [None, "1", "yes"],
           "report_dir": ["a", "b", "c"], "baseline": ["x.csv", "y.csv", "z.csv"],
           "tolerance": ["accuracy=0.1", "scores=0.2", "f1_macro=0.3"],
           "resume": ["r1", "r2", "r3"], "cb_beta": ["0.9", "0.99", "0.999"],
           "la_tau": ["0.5", "1", "2"], "resume_mismatch": ["rerun", "keep", "refuse"],
           "slurm": [None, "1", "yes"], "slurm_partition": ["gpu", "debug", "long"],
           "slurm_time": ["90", "1:30", "5"], "slurm_gpus": ["0", "1", "2"],
           "slurm_cpus": ["1", "2", "4"], "slurm_mem": ["1", "2", "3"],
           "slurm_parallelism": ["1", "2", "3"], "slurm_wait": ["on", "off", "on"],
           "slurm_option": ["account=a", "qos=b", "x=y"],
           "validation_split": ["0.1", "0.2", "0.3"], "early_stopping": ["1", "2", "3"],
           "early_stopping_monitor": ["val_accuracy", "val_loss", "val_accuracy"],
           "batch_order": ["shuffle", "common", "shuffle"]}[
               option.dest]
    cli_raw, env_raw, ini_raw = raw

    def parsed(text):
        if option.kind == "flag":
            return True if text is None else option.parse(text)
        value = option.parse(text)
        return [value] if option.kind == "list" else value

    cli = {option.dest: parsed(cli_raw)}
    ini = {option.dest: [ini_raw] if option.kind == "list" else ini_raw}
    env = {option.env: env_raw}
    cases = [(cli, env, ini, parsed(cli_raw), option.flag),
             ({}, env, ini, parsed(env_raw), f"environment variable {option.env}"),
             ({}, {}, ini, parsed(ini_raw), f"ini key {option.ini}"),
             ({}, {}, {}, None, DEFAULT)]
    for cmdline, environ, ini_values, expected, origin in cases:
        resolved = resolve(*fake(cmdline, ini_values), environ=environ)
        assert resolved.values[option.dest] == expected, origin
        assert resolved.origins[option.dest] == origin
        assert resolved.given == (origin != DEFAULT)


def test_bad_environment_and_ini_values_name_their_origin():
    with pytest.raises(argparse.ArgumentTypeError,
                       match="environment variable RESNET_HARNESS_SCALE: unknown scale 'huge'"):
        resolve(*fake(), environ={"RESNET_HARNESS_SCALE": "huge"})
    with pytest.raises(argparse.ArgumentTypeError, match="ini key harness_deterministic: "):
        resolve(*fake(ini={"deterministic": "maybe"}), environ={})
    with pytest.raises(argparse.ArgumentTypeError, match="ini key harness_tolerance: "):
        resolve(*fake(ini={"tolerance": ["accuracy"]}), environ={})


def test_list_options_split_the_environment(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    environ = {"RESNET_HARNESS_DATA_DIR": f"cifar10={tmp_path / 'a'}:{tmp_path / 'b'}",
               "RESNET_HARNESS_TOLERANCE": "scores=0.15  accuracy=0.1"}
    resolved = resolve(*fake(), environ=environ)
    assert resolved.values["data_dir"] == [("cifar10", tmp_path / "a"), (None, tmp_path / "b")]
    assert resolved.values["tolerance"] == [("scores", 0.15), ("accuracy", 0.1)]
    run = options.run_config(resolved)
    assert run.data_dirs == {"cifar10": tmp_path / "a", None: tmp_path / "b"}


def test_provenance_records_each_value_and_origin():
    resolved = resolve(*fake({"seed": 4}), environ={"RESNET_HARNESS_REPORT_DIR": "out"})
    record = resolved.provenance()
    assert record["seed"] == {"value": 4, "from": "--seed"}
    assert record["report_dir"] == {"value": "out",
                                    "from": "environment variable RESNET_HARNESS_REPORT_DIR"}
    assert record["scale"] == {"value": None, "from": DEFAULT}
    run = options.run_config(resolved)
    assert run.report_dir == Path("out")
    effective = resolved.provenance(run)  # a default records the value it took
    assert effective["scale"] == {"value": "smoke", "from": DEFAULT}
    assert effective["seed"] == {"value": 4, "from": "--seed"}


def test_option_names_do_not_clash_with_widely_installed_plugins():
    """Option names of pytest-benchmark 5.3, pytest-randomly 5.1, pytest-cov 7.1, hypothesis
    6.170, pytest-mpl 0.19 and pytest-timeout 2.4, read from their wheels (2026-11-27): pytest
    refuses to start when two plugins register the same option."""
    theirs = {"--benchmark-compare", "--benchmark-disable", "--benchmark-json", "--benchmark-only",
              "--benchmark-save", "--benchmark-skip", "--randomly-seed", "--randomly-dont-reset-seed",
              "--randomly-dont-reorganize", "--cov", "--cov-report", "--cov-config", "--no-cov",
              "--cov-fail-under", "--hypothesis-seed", "--hypothesis-profile",
              "--hypothesis-verbosity", "--hypothesis-show-statistics", "--hypothesis-explain",
              "--mpl", "--mpl-baseline-path", "--mpl-generate-path", "--mpl-hash-library",
              "--mpl-results-path", "--timeout", "--timeout-method", "--timeout_method",
              "--session-timeout"}
    ours = {option.flag for option in OPTIONS}
    assert not ours & theirs
    assert all(option.ini.startswith("harness_") and option.env.startswith("RESNET_HARNESS_")
               for option in OPTIONS)
