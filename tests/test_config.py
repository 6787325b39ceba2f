"""The option validators, RunConfig.for_case at each scale, and the matrix's invariants."""

from __future__ import annotations

import argparse
import re
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from helpers import find_case
from resnet_harness.training import config as cfg
from resnet_harness.training import values
from resnet_harness.studies.paper import parse_comparison
from resnet_harness.studies.profiles import IMBALANCE_READINGS, parse_imbalance
from resnet_harness.training.config import SCALES, RunConfig
from resnet_harness.studies.paper import CASES, CASES_BY_ID, DROPOUTS, REDUCED_FLOORS, SPLITS, get_case
from resnet_harness.training.data.sources import DATASETS
from resnet_harness.training.model import Head

BAD = argparse.ArgumentTypeError


def bad(parse, value, *fragments, names=None):
    """``parse(value)`` must raise ArgumentTypeError naming the bad value (``value`` itself, or
    ``names`` where only part of it is wrong) and containing ``fragments``."""
    with pytest.raises(BAD) as exc:
        parse(value)
    message = str(exc.value)
    assert repr(value if names is None else names) in message, message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------------------------------------
# Validators


def test_parse_scale():
    for name in ("smoke", "reduced", "paper"):
        assert values.parse_scale(name) == name
    bad(values.parse_scale, "huge", "smoke, reduced, paper")
    bad(values.parse_scale, "Smoke")
    bad(values.parse_scale, "")


def test_parse_positive_int():
    assert values.parse_positive_int("1") == 1 and values.parse_positive_int("25") == 25
    bad(values.parse_positive_int, "0", "1 or more")
    bad(values.parse_positive_int, "-3", "1 or more")
    bad(values.parse_positive_int, "2.5", "not an integer")
    bad(values.parse_positive_int, "ten", "not an integer")


def test_parse_sample_cap():
    assert values.parse_sample_cap("10") == 10 and values.parse_sample_cap("3000") == 3000
    bad(values.parse_sample_cap, "9", "below the 10 classes")
    bad(values.parse_sample_cap, "0", "below the 10 classes")
    assert values.parse_sample_cap("70000") == 70000
    bad(values.parse_sample_cap, "70001", "use at most 70000")
    bad(values.parse_sample_cap, "1000000000000", "use at most 70000")
    bad(values.parse_sample_cap, "1e12", "not an integer; use a whole number from 10 to 70000")


def test_parse_epochs():
    assert values.parse_epochs("1") == 1 and values.parse_epochs("10000") == 10000
    bad(values.parse_epochs, "10001", "more than the limit of 10,000")
    bad(values.parse_epochs, "99999999999999999999", "more than the limit of 10,000")
    bad(values.parse_epochs, "0", "1 or more")


def test_parse_report_dir(tmp_path):
    assert values.parse_report_dir(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert values.parse_report_dir(str(tmp_path)) == tmp_path
    bad(values.parse_report_dir, "", "report dir '' is empty")
    bad(values.parse_report_dir, "  ", "is empty; pass a folder")
    afile = tmp_path / "afile"
    afile.write_text("x")
    bad(values.parse_report_dir, str(afile), "is a file, not a folder")
    bad(values.parse_report_dir, str(afile / "sub"), f"cannot be created: {str(afile)!r} is a file")


def test_parse_flag():
    for text in ("1", "true", "Yes", "ON"):
        assert values.parse_flag(text) is True
    for text in ("0", "false", "no", "Off"):
        assert values.parse_flag(text) is False
    bad(values.parse_flag, "maybe", "not a yes/no value")


def test_parse_seed():
    assert values.parse_seed("0") == 0 and values.parse_seed("4294967295") == 2**32 - 1
    bad(values.parse_seed, "-1", "seed")
    bad(values.parse_seed, "4294967296", "2**32")
    bad(values.parse_seed, "x", "not an integer")


def test_parse_weights(tmp_path):
    assert values.parse_weights("imagenet") == "imagenet" and values.parse_weights("none") == "none"
    from helpers import write_resnet50_weights

    path = write_resnet50_weights(tmp_path / "resnet50_notop.h5")
    assert values.parse_weights(str(path)) == str(path)
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    bad(values.parse_weights, str(empty), "cannot be read as HDF5")
    missing = str(tmp_path / "missing.h5")
    bad(values.parse_weights, missing, "neither 'imagenet', 'none'")
    bad(values.parse_weights, str(tmp_path), "existing weights file")  # a folder is not a file
    bad(values.parse_weights, "ImageNet")
    bad(values.parse_weights, f"bogus={path}", "names the backbone 'bogus', which is not "
                                               "registered", "resnet50")


def test_repeated_weights_combine_per_backbone_and_never_overwrite(tmp_path):
    from resnet_harness.training.config import weights_for

    both = values.combine_weights(["resnet32=/r32.h5", "/r50.h5"])
    assert weights_for(both, "resnet32") == "/r32.h5" and weights_for(both, "resnet50") == \
        "/r50.h5"
    assert weights_for(values.combine_weights(["resnet32=/r32.h5"]), "resnet50") is None
    for entries, words in ((["/a.h5", "none"], "every case two weights (/a.h5 and none)"),
                           (["resnet32=/a.h5", "resnet32=/b.h5"], "resnet32 cases two weights")):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(words)):
            values.combine_weights(entries)


def test_parse_data_dir(tmp_path):
    assert values.parse_data_dir(str(tmp_path)) == (None, tmp_path)
    assert values.parse_data_dir(f"cifar10={tmp_path}") == ("cifar10", tmp_path)
    assert values.parse_data_dir(f"fashion_mnist={tmp_path}") == ("fashion_mnist", tmp_path)
    eq = tmp_path / "a=b"  # an "=" inside a path is not a NAME=PATH separator
    eq.mkdir()
    assert values.parse_data_dir(str(eq)) == (None, eq)
    missing = str(tmp_path / "missing")
    bad(values.parse_data_dir, missing, "does not exist")
    bad(values.parse_data_dir, f"cifar10={missing}", "does not exist", names=missing)
    bad(values.parse_data_dir, f"mnist={tmp_path}", "unknown data set 'mnist'", "cifar10",
        "fashion_mnist")
    path_file = tmp_path / "file.txt"
    path_file.write_text("x")
    bad(values.parse_data_dir, f"cifar10={path_file}", "not a folder", names=str(path_file))


def test_parse_imbalance():
    for name in ("text", "table2", "table4", "table6"):
        assert parse_imbalance(name) == name
    bad(parse_imbalance, "table5", "text, table4, table6, table2")


def test_parse_classes():
    assert values.parse_classes("0,1,2") == (0, 1, 2)
    assert values.parse_classes("9") == (9,)
    assert values.parse_classes("3, 4,") == (3, 4)
    bad(values.parse_classes, "0,12", "[0, 10)")
    bad(values.parse_classes, "-1", "[0, 10)")
    bad(values.parse_classes, "a,b", "comma-separated integers")
    bad(values.parse_classes, "1,1", "distinct")
    bad(values.parse_classes, "", "distinct")
    bad(values.parse_classes, ",", "distinct")


def test_parse_fraction():
    assert values.parse_fraction("0.1") == 0.1 and values.parse_fraction("0.999") == 0.999
    for value in ("0", "1", "1.5", "-0.2", "nan", "inf"):
        bad(values.parse_fraction, value, "strictly between 0 and 1")
    bad(values.parse_fraction, "half", "not a number")


def test_parse_on_off():
    assert values.parse_on_off("on") is True and values.parse_on_off("off") is False
    for value in ("yes", "ON", "1", ""):
        bad(values.parse_on_off, value, "'on' or 'off'")


def test_parse_data_source():
    assert values.parse_data_source("auto") == "auto"
    assert values.parse_data_source("synthetic") == "synthetic"
    bad(values.parse_data_source, "keras", "auto or synthetic")


def test_parse_backbone():
    parse = values.parse_backbone
    assert parse("resnet50") == "resnet50" and parse("tiny") == "tiny"
    bad(parse, "resnet18", "resnet50 or tiny")


def test_parse_comparison_and_delta():
    assert parse_comparison("study") == "study"
    assert parse_comparison("controlled") == "controlled"
    bad(parse_comparison, "paired", "study, controlled")
    assert values.parse_delta("0.01") == 0.01
    for value in ("0", "1", "-0.1", "nan"):
        bad(values.parse_delta, value, "strictly between 0 and 1")
    bad(values.parse_delta, "one", "not a number")


def test_parse_path():
    assert values.parse_path("reports") == Path("reports")
    bad(values.parse_path, "", "empty path")
    bad(values.parse_path, "  ", "empty path")


@pytest.mark.parametrize("mode,scale,expected", [
    ("auto", "reduced", (False, False)), ("auto", "smoke", (True, False)),
    ("auto", "paper", (True, False)), ("on", "reduced", (True, True)),
    ("off", "paper", (False, False))])
def test_augment_resolves_per_scale_and_case(mode, scale, expected):
    """(balanced CIFAR-10 arm, which the paper augments; imbalanced arm, which it does not)."""
    run = RunConfig(scale=scale, augment=mode)
    got = (run.for_case(CIFAR_BAL).augment, run.for_case(CASES_BY_ID[
        "table7-cifar10-imbalanced-split_orig-reg_none"]).augment)
    assert got == expected
    assert run.for_case(CIFAR_BAL).as_dict()["augment"] is expected[0]
    bad(values.parse_augment, "maybe", "auto, on, off")


def test_reduced_scale_keeps_the_frozen_base_cases_epochs():
    frozen = CASES_BY_ID["table7-fashion_mnist-imbalanced-split_orig-reg_none"]
    assert frozen.head.freeze_base
    assert RunConfig(scale="reduced").for_case(frozen).epochs == 7
    assert RunConfig(scale="reduced").for_case(CIFAR_BAL).epochs == 3
    assert RunConfig(scale="reduced", epochs=2).for_case(frozen).epochs == 2
    assert RunConfig(scale="smoke").for_case(frozen).epochs == 1
    # Under --comparison controlled the arm trains its whole network like its balanced arm.
    assert RunConfig(scale="reduced", study_options={"comparison": "controlled"}).for_case(
        frozen).epochs == 3


def test_parse_bn_recalibrate():
    for mode in ("auto", "on", "off"):
        assert values.parse_bn_recalibrate(mode) == mode
    bad(values.parse_bn_recalibrate, "yes", "auto, on, off")


@pytest.mark.parametrize("mode,scale,expected", [
    ("auto", "smoke", True), ("auto", "reduced", True), ("auto", "paper", False),
    ("on", "smoke", True), ("on", "paper", True), ("off", "smoke", False),
    ("off", "reduced", False)])
def test_bn_recalibrate_resolves_per_scale(mode, scale, expected):
    resolved = RunConfig(scale=scale, bn_recalibrate=mode).for_case(CIFAR_BAL)
    assert resolved.bn_recalibrate is expected
    assert resolved.as_dict()["bn_recalibrate"] is expected
    assert RunConfig(scale=scale).for_case(CIFAR_BAL).bn_recalibrate is (scale != "paper")


def test_parse_beta_and_tau():
    from resnet_harness.studies import longtail  # the long-tail study's own options

    assert longtail.parse_beta("0.9999") == 0.9999 and longtail.parse_beta("0") == 0.0
    bad(longtail.parse_beta, "1", "must lie in [0, 1)")
    bad(longtail.parse_beta, "x", "is not a number")
    assert longtail.parse_tau("1") == 1.0 and longtail.parse_tau("0") == 0.0
    bad(longtail.parse_tau, "-1", "finite number >= 0")
    bad(longtail.parse_tau, "inf", "finite number >= 0")
    bad(longtail.parse_tau, "nan", "finite number >= 0")


def test_every_validator_is_tested():
    # parse_seeds: tests/test_stats.py; parse_validation_split, parse_patience:
    # tests/test_validation.py
    tested = {"parse_validation_split", "parse_patience", "parse_monitor", "parse_batch_order",
              "parse_seeds", "parse_delta", "parse_scale",
              "parse_positive_int", "parse_seed", "parse_weights",
              "parse_data_dir", "parse_classes", "parse_fraction",
              "parse_on_off", "parse_data_source", "parse_backbone", "parse_sample_cap",
              "parse_flag", "parse_path", "parse_bn_recalibrate", "parse_epochs",
              "parse_report_dir", "parse_augment"}
    assert {name for name in dir(values) if name.startswith("parse_")} <= tested


# ---------------------------------------------------------------------------------------------
# RunConfig.for_case


CIFAR_BAL = find_case("table7", "cifar10", "balanced")
CIFAR_IMB = find_case("table7", "cifar10", "imbalanced")
FMNIST_IMB = find_case("table7", "fashion_mnist", "imbalanced")


def test_for_case_smoke():
    c = RunConfig(scale="smoke").for_case(CIFAR_BAL)
    assert (c.epochs, c.weights, c.max_train_samples, c.max_test_samples) == (1, "none", 320, 160)
    assert c.scale == "smoke" and c.seed == 0 and c.imbalance is None
    assert c.augment is True and c.hflip is True and c.case is CIFAR_BAL


def test_for_case_reduced():
    c = RunConfig(scale="reduced").for_case(CIFAR_BAL)
    assert (c.epochs, c.weights, c.max_train_samples, c.max_test_samples) == (3, "none", 2000,
                                                                              10000)
    assert c.augment is False  # the scale turns the paper's augmentation off (config.SCALES)
    # A split case keeps the pool of 3,000 images it had; caps given by hand size it instead.
    assert c.max_pool_samples == 3000 and c.as_dict()["max_pool_samples"] == 3000
    assert RunConfig(scale="reduced", max_test_samples=500).for_case(
        CIFAR_BAL).max_pool_samples is None
    assert "max_pool_samples" not in RunConfig(scale="smoke").for_case(CIFAR_BAL).as_dict()


def test_for_case_paper():
    c = RunConfig(scale="paper").for_case(CIFAR_BAL)
    assert (c.epochs, c.weights, c.max_train_samples, c.max_test_samples) == (25, "imagenet",
                                                                              None, None)
    assert RunConfig(scale="paper").for_case(FMNIST_IMB).epochs == 7
    f_bal = find_case("table7", "fashion_mnist", "balanced")
    assert RunConfig(scale="paper").for_case(f_bal).epochs == 5


def test_for_case_overrides_win(tmp_path):
    run = RunConfig(scale="smoke", epochs=4, weights="imagenet", max_train_samples=100,
                    max_test_samples=50, seed=7, hflip=False)
    c = run.for_case(CIFAR_BAL)
    assert (c.epochs, c.weights, c.max_train_samples, c.max_test_samples) == (4, "imagenet", 100,
                                                                              50)
    assert c.seed == 7 and c.hflip is False
    c = RunConfig(scale="paper", epochs=2, weights="none", max_train_samples=10).for_case(
        CIFAR_BAL)
    assert (c.epochs, c.weights, c.max_train_samples, c.max_test_samples) == (2, "none", 10, None)


def test_for_case_imbalance():
    c = RunConfig().for_case(CIFAR_IMB)
    assert c.imbalance == IMBALANCE_READINGS["text"]
    assert c.imbalance.classes == (0, 1, 2) and c.imbalance.remove_fraction == 0.1
    c = _with(imbalance="table4", imbalance_classes=(5, 6)).for_case(CIFAR_IMB)
    assert c.imbalance.remove_total == 5000 and c.imbalance.classes == (5, 6)
    c = _with(imbalance="table2", imbalance_fraction=0.3).for_case(CIFAR_IMB)
    assert c.imbalance.remove_fraction == 0.3
    assert c.imbalance.keep_per_class is None and c.imbalance.remove_total is None
    assert c.imbalance.reading == "table2+fraction"
    assert _with(imbalance="table6").for_case(CIFAR_BAL).imbalance is None
    # Classes read back from run.json (a list) are the same recipe.
    assert _with(imbalance_classes=[5, 6]).for_case(CIFAR_IMB).imbalance.classes == (5, 6)


def _with(**study_options) -> RunConfig:
    """A session with these study options (the paper's imbalance recipe, --comparison)."""
    return RunConfig(study_options=study_options)


def test_the_recipe_and_comparison_reach_only_the_studies_that_declare_them():
    """The paper's imbalance recipe is in the configs of the paper's and the architectures
    study's rows (None where balanced), ``comparison`` in the paper's alone: a long-tail row
    carries neither."""
    from resnet_harness.studies import architectures, longtail

    paper_cfg = _with(imbalance="table6").for_case(CIFAR_BAL).as_dict()
    assert paper_cfg["imbalance"] is None and paper_cfg["comparison"] == "study"
    arch = next(c for c in architectures.CASES if c.variant == "imbalanced")
    assert _with().for_case(arch).as_dict()["imbalance"]["reading"] == "text"
    assert "comparison" not in _with().for_case(arch).as_dict()
    lt = _with().for_case(longtail.CASES[0]).as_dict()
    assert "imbalance" not in lt and "comparison" not in lt and "recipe" not in lt


def test_case_config_as_dict():
    d = _with(imbalance="table6").for_case(FMNIST_IMB).as_dict()
    assert d["head"]["dense_units"] == 1024 and d["head"]["freeze_base"] is True
    assert d["imbalance"]["remove_fraction"] == 0.5 and d["batch_size"] == 32
    assert d["learning_rate"] == 1e-3
    assert d["xla"] is False and d["mixed_precision"] is False  # the study used neither
    d = RunConfig(xla=True, mixed_precision=True).for_case(FMNIST_IMB).as_dict()
    assert d["xla"] is True and d["mixed_precision"] is True


def test_run_config_data_dir_for(tmp_path):
    run = RunConfig(data_dirs={None: tmp_path, "cifar10": tmp_path / "c"})
    assert run.data_dir_for("cifar10") == tmp_path / "c"
    assert run.data_dir_for("fashion_mnist") == tmp_path / "fashion_mnist"
    assert RunConfig().data_dir_for("cifar10") is None
    assert RunConfig(data_dirs={None: tmp_path}).as_dict()["data_dirs"] == {"*": str(tmp_path)}


def test_scales_table():
    assert set(SCALES) == {"smoke", "reduced", "paper"}
    assert SCALES["paper"].epochs is None and SCALES["paper"].weights is None


# ---------------------------------------------------------------------------------------------
# The matrix


def test_matrix_size_and_unique_ids():
    assert len(CASES) == 21
    ids = [case.id for case in CASES]
    assert len(set(ids)) == 21 and set(ids) == set(CASES_BY_ID)
    counts = {t: sum(c.table == t for c in CASES) for t in ("table7", "table9", "table10")}
    assert counts == {"table7": 4, "table9": 10, "table10": 7}
    for case in CASES:
        assert get_case(case.id) is case
        with pytest.raises(FrozenInstanceError):
            case.epochs = 1  # type: ignore[misc]


def test_ids_name_dataset_balance_split_and_regularization():
    for case in CASES:
        parts = case.id.split("-")
        assert case.dataset in parts and case.balance in parts
        assert f"reg_{case.regularization}" in parts
        split = ("split_orig" if case.split is None else
                 f"split{round(case.split * 100)}_{round((1 - case.split) * 100)}")
        assert split in parts
        assert case.table[len("table"):] in parts[0]
        assert " " not in case.id and "/" not in case.id and "[" not in case.id


def test_get_case_unknown():
    with pytest.raises(KeyError, match="unknown case id 'nope'"):
        get_case("nope")


def test_keyword_selection_picks_one_case():
    # `pytest -k "cifar and imbalanced"` matches by substring of the id
    selected = [case for case in CASES if "cifar" in case.id and "imbalanced" in case.id]
    assert selected == [CIFAR_IMB]
    assert len([case for case in CASES if "fashion" in case.id and "imbalanced" in case.id]) == 1
    assert len([case for case in CASES if "split70_30" in case.id]) == 2


def test_table9_splits():
    assert SPLITS == (0.5, 0.6, 0.7, 0.8, 0.9)
    for dataset in DATASETS:
        rows = [c for c in CASES if c.table == "table9" and c.dataset == dataset]
        assert sorted(c.split for c in rows) == list(SPLITS)
        assert all(c.balance == "balanced" and c.head == Head() and c.augment for c in rows)
    assert all(c.split is None for c in CASES if c.table != "table9")


def test_table10_regularizations():
    rows = {c.regularization: c for c in CASES if c.table == "table10"}
    assert set(rows) == {"l1", "l2", "dropout0.1", "dropout0.3", "dropout0.5", "dropout0.7",
                         "none"}
    assert DROPOUTS == (0.1, 0.3, 0.5, 0.7)
    assert all(c.dataset == "fashion_mnist" and c.balance == "balanced" and c.epochs == 5
               for c in rows.values())
    assert rows["l1"].head == Head(regularizer="l1")
    assert rows["l2"].head == Head(regularizer="l2")
    for rate in DROPOUTS:
        assert rows[f"dropout{rate}"].head == Head(dropout=rate)
    assert rows["none"].head == Head() and rows["none"].paper.as_dict() == {}
    assert rows["dropout0.1"].paper.as_dict() == {}


def test_paper_figures():
    assert CIFAR_IMB.paper.train_time_s == 2163.77
    assert CIFAR_IMB.paper.accuracy == 0.73
    f90 = find_case("table9", "fashion_mnist", "balanced", 0.9)
    assert f90.paper.accuracy == 0.8607 and f90.paper.train_time_s == 263.73
    c50 = find_case("table9", "cifar10", "balanced", 0.5)
    assert c50.paper.accuracy == 0.3113
    d03 = find_case("table10", "fashion_mnist", "balanced", None, "dropout0.3")
    assert d03.paper.roc_auc == 0.9447 and d03.paper.accuracy == 0.6606
    l1 = find_case("table10", "fashion_mnist", "balanced", None, "l1")
    assert l1.paper.as_dict() == {"accuracy": 0.3860, "roc_auc": 0.8803, "train_time_s": 375.18,
                                  "test_time_s": 2.84, "memory_mb": 2652.21}
    f_bal = find_case("table7", "fashion_mnist", "balanced")
    assert f_bal.paper.as_dict()["roc_auc"] == 0.84 and f_bal.paper.memory_mb == 4868.14


def test_table6_head_and_table7_schedule():
    assert FMNIST_IMB.head == Head(dense_units=1024, freeze_base=True)
    assert FMNIST_IMB.head.dense_units == 1024 and FMNIST_IMB.head.freeze_base
    others = [c for c in CASES if c is not FMNIST_IMB]
    assert all(c.head.dense_units is None and not c.head.freeze_base for c in others)
    # augmentation on balanced data only; ImageNet weights, batch 32, Adam 1e-3 everywhere
    for case in CASES:
        assert case.augment == (case.balance == "balanced")
        assert case.weights == "imagenet" and case.batch_size == 32
        assert case.learning_rate == 1e-3
    assert [c.epochs for c in CASES if c.table == "table7"] == [25, 25, 5, 7]


def test_bounds_floors():
    floors = CIFAR_BAL.bounds
    assert floors.floors("smoke") == {}
    assert floors.floors("reduced") == REDUCED_FLOORS["cifar10"]
    for dataset, reduced in REDUCED_FLOORS.items():  # measured floors, above chance
        assert set(reduced) == {"accuracy", "roc_auc_ovr_macro"}
        assert reduced["accuracy"] > 0.1 + 0.05 and reduced["roc_auc_ovr_macro"] > 0.5 + 0.05
        assert all(c.bounds.floors("reduced") == reduced for c in CASES if c.dataset == dataset)
    assert floors.floors("paper") == {"accuracy": 0.57, "roc_auc_ovr_macro": 0.55}
