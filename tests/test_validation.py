"""``--validation-split`` and ``--early-stopping``, for every study: a stratified, seeded share
of the training set (after the imbalance recipe, never the test set) held out; fit watches it,
stops on its loss (or accuracy: ``--early-stopping-monitor``) and keeps the best weights; rows record both sets' counts, the validation
curve, the best epoch and the epochs run. Off by default."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from helpers import CONFTEST, EXPERIMENTS, FAST, decode_id, id_raw
from resnet_harness.studies import longtail
from resnet_harness.studies.paper import get_case
from resnet_harness.training import values
from resnet_harness.training.config import RunConfig
from resnet_harness.training.data import make_variant
from resnet_harness.training.runner import validation_fields, validation_inputs


@pytest.mark.parametrize("parse, text, message", [
    (values.parse_validation_split, "0", "strictly between 0 and 1"),
    (values.parse_validation_split, "1", "strictly between 0 and 1"),
    (values.parse_validation_split, "tenth", "strictly between 0 and 1"),
    (values.parse_patience, "0", ">= 1"),
    (values.parse_patience, "2.5", ">= 1"),
    (values.parse_monitor, "val_f1", "not one of val_loss, val_accuracy"),
    (values.parse_monitor, "loss", "e.g. --early-stopping-monitor val_accuracy"),
    (values.parse_batch_order, "random", "not one of common, shuffle"),
])
def test_bad_values_are_one_line_errors(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)


def test_early_stopping_without_a_validation_set_is_refused():
    from resnet_harness.plugin import options

    values = {o.dest: None for o in options.all_options()}
    values["early_stopping"] = 3
    origins = {o.dest: "default" for o in options.all_options()}
    origins["early_stopping"] = "--early-stopping"
    with pytest.raises(argparse.ArgumentTypeError, match="add --validation-split 0.1"):
        options.run_config(options.Resolved(values, origins))


class _History:
    def __init__(self, epochs, **curves):
        self.history, self.params = curves, {"epochs": epochs}


@pytest.mark.parametrize("monitor, best", [("val_loss", 2), ("val_accuracy", 3)])
def test_the_best_epoch_is_the_monitors_first_best(monitor, best):
    variant = make_variant(id_raw("cifar10", 60, 20), RunConfig(
        data_source="synthetic", validation_split=0.25).for_case(
            get_case("table7-cifar10-balanced-split_orig-reg_none")))
    # loss is lowest at epoch 2; accuracy highest (tied) at epochs 3 and 5: Keras keeps the first
    history = _History(6, val_loss=[2.0, 1.5, 1.7, 1.9, 2.2],
                       val_accuracy=[0.1, 0.2, 0.4, 0.3, 0.4])
    fields = validation_fields(history, variant, True, monitor)
    assert fields["best_epoch"] == best and fields["stopped_early"] is True
    assert validation_fields(history, variant, False, monitor)["stopped_early"] is False
    # and Keras' callback watches the same figure, the same way round
    cfg = RunConfig(data_source="synthetic", validation_split=0.25, early_stopping=2,
                    early_stopping_monitor=monitor).for_case(
                        get_case("table7-cifar10-balanced-split_orig-reg_none"))
    (stopper,) = [c for c in validation_inputs(cfg, variant)[1]
                  if type(c).__name__ == "EarlyStopping"]
    assert (stopper.monitor, stopper.patience, stopper.restore_best_weights) == (monitor, 2, True)
    assert stopper.mode == {"val_loss": "min", "val_accuracy": "max"}[monitor]


def test_the_monitor_is_in_a_rows_identity_only_when_it_is_not_the_default():
    case = get_case("table7-cifar10-balanced-split_orig-reg_none")
    settings = {(stop, monitor): RunConfig(validation_split=0.1, early_stopping=stop,
                                           early_stopping_monitor=monitor).for_case(case).as_dict()
                for stop in (None, 3) for monitor in ("val_loss", "val_accuracy")}
    assert "early_stopping_monitor" not in settings[3, "val_loss"]  # rows made before it
    assert settings[3, "val_accuracy"]["early_stopping_monitor"] == "val_accuracy"
    assert settings[None, "val_loss"] == settings[None, "val_accuracy"]  # nothing stops


def test_the_validation_set_comes_out_of_the_recipes_training_set():
    raw = id_raw("cifar10", 60, 20)
    case = get_case("table7-cifar10-imbalanced-split_orig-reg_none")
    plain = make_variant(raw, RunConfig(data_source="synthetic").for_case(case))
    held = make_variant(raw, RunConfig(data_source="synthetic", validation_split=0.25)
                        .for_case(case))
    assert plain.y_val is None and plain.validation_counts is None
    # the test set is untouched; training + validation is exactly the recipe's training set
    assert np.array_equal(decode_id(held.x_test), decode_id(plain.x_test))
    together = np.sort(np.concatenate([decode_id(held.x_train), decode_id(held.x_val)]))
    assert np.array_equal(together, np.sort(decode_id(plain.x_train)))
    assert not set(decode_id(held.x_train)) & set(decode_id(held.x_val))
    # stratified: 25% of each class, the reduced classes (29 of 32 at smoke scale) included
    assert plain.train_counts == [29, 29, 29] + [32] * 7
    assert sum(held.validation_counts) == round(0.25 * sum(plain.train_counts)) == 78
    assert all(abs(v - 0.25 * n) <= 1 for v, n in zip(held.validation_counts,
                                                        plain.train_counts))
    again = make_variant(raw, RunConfig(data_source="synthetic", validation_split=0.25)
                         .for_case(case))
    assert np.array_equal(decode_id(again.x_val), decode_id(held.x_val))  # seeded


def test_a_class_keeps_its_last_training_image():
    raw = id_raw("cifar10", 60, 20)
    case = longtail.CASES_BY_ID["longtail-cifar10-exp100-ce"]
    run = RunConfig(data_source="synthetic", validation_split=0.5, max_train_samples=100)
    variant = make_variant(raw, run.for_case(case))
    assert min(variant.train_counts) >= 1
    assert variant.train_counts[-1] == 1 and variant.validation_counts[-1] == 0


def test_a_validation_part_left_empty_is_refused_before_anything_trains():
    from resnet_harness.training.data.sources import DataError
    from resnet_harness.training.data.variants import check_variant

    raw = id_raw("cifar10", 60, 20)
    case = get_case("table7-cifar10-balanced-split_orig-reg_none")
    run = RunConfig(data_source="synthetic", validation_split=0.02, max_train_samples=20)
    message = ("validation split 0.02 of its 20 training images holds out no image for "
               "validation; use a share of at least 0.05, or more training images")
    for check in (check_variant, make_variant):  # the up-front check and the case itself
        with pytest.raises(DataError, match=message):
            check(raw, run.for_case(case))
    check_variant(raw, RunConfig(data_source="synthetic", validation_split=0.05,
                                 max_train_samples=20).for_case(case))
    one_each = RunConfig(data_source="synthetic", validation_split=0.5, max_train_samples=10)
    with pytest.raises(DataError, match="every class has a single training image, which stays "
                                        "in training; use more training images"):
        check_variant(raw, one_each.for_case(case))


def test_rows_keep_the_validation_curve_best_epoch_and_epochs_run(pytester):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    result = pytester.runpytest_subprocess(
        *FAST, "-k", "table7 and cifar10 and imbalanced", "--epochs", "6",
        "--validation-split", "0.25", "--early-stopping", "1", "--progress", "off")
    result.assert_outcomes(passed=1)
    (run_dir,) = (pytester.path / "reports" / "runs").iterdir()
    (path,) = (run_dir / "cases").glob("*.json")
    row = json.loads(path.read_text())
    history = row["history"]
    assert {"val_loss", "val_accuracy"} <= set(history)
    run = len(history["loss"])
    assert 2 <= run <= 6 and len(history["val_loss"]) == run
    best = int(np.argmin(history["val_loss"])) + 1
    assert row["best_epoch"] == best
    assert row["stopped_early"] == (run < 6)
    if row["stopped_early"]:
        assert run == best + 1  # patience 1: one epoch past the best
    # the variant's counts: training + validation = the imbalanced recipe's 29/32 per class
    assert [t + v for t, v in zip(row["train_counts"], row["validation_counts"])] == \
        [29, 29, 29] + [32] * 7
    assert row["config"]["validation_split"] == 0.25 and row["config"]["early_stopping"] == 1
    import pandas as pd

    frame = pd.read_csv(run_dir / "results.csv")
    assert frame.loc[0, "epochs_run"] == run and frame.loc[0, "best_epoch"] == best
    assert frame.loc[0, "validation_samples"] == sum(row["validation_counts"])


def test_early_stopping_can_watch_validation_accuracy(pytester):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    result = pytester.runpytest_subprocess(
        *FAST, "-k", "table7 and cifar10 and imbalanced", "--epochs", "4",
        "--validation-split", "0.25", "--early-stopping", "1",
        "--early-stopping-monitor", "val_accuracy", "--progress", "off")
    result.assert_outcomes(passed=1)
    (path,) = (pytester.path / "reports" / "runs").glob("*/cases/*.json")
    row = json.loads(path.read_text())
    accuracy = row["history"]["val_accuracy"]
    assert row["best_epoch"] == int(np.argmax(accuracy)) + 1
    assert row["config"]["early_stopping_monitor"] == "val_accuracy"
    # patience 1 on accuracy: training stops the first epoch that does not beat the best
    if row["stopped_early"]:
        assert len(accuracy) == row["best_epoch"] + 1 and accuracy[-1] <= max(accuracy[:-1])
