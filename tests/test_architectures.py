"""The architectures study: its matrix and selection, a smoke run end to end (tiny backbone,
synthetic data), each registered Keras backbone built at 32x32, the weights check per backbone,
the cases' own validation protocol, and its comparisons and claims on fake rows (difference
comparisons and equivalence checks included)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import CONFTEST, EXPERIMENTS, FAST, write_resnet50_weights

# Imported before pytester snapshots sys.modules (see test_longtail_plugin.py).
from resnet_harness import study
from resnet_harness.analysis import claims, comparisons
from resnet_harness.studies import architectures as arch
from resnet_harness.studies.architectures import (CASES, KERAS_APPLICATIONS, OTHERS, REFERENCE,
                                                  arch_id, table7_id)
from resnet_harness.studies.profiles import PROFILES
from resnet_harness.training import values
from resnet_harness.training.config import RunConfig

study.load_builtin()
ARCH_EXPERIMENTS = (Path(__file__).resolve().parents[1] / "experiments"
                    / "test_architectures.py").read_text()
N_PAPER = 21


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    # Not "test_architectures": in-process runs would clash with this file.
    pytester.makepyfile(test_study=EXPERIMENTS, test_arch_study=ARCH_EXPERIMENTS,
                        conftest=CONFTEST)
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    return pytester


# -- the matrix --------------------------------------------------------------------------------

def test_the_matrix():
    backbone_cases = [c for c in CASES if c.protocol is None]
    assert len(CASES) == 38 and len(backbone_cases) == 30
    assert {(c.dataset, c.backbone, c.variant) for c in backbone_cases} == {
        (d, b, v) for d in ("cifar10", "fashion_mnist") for b in KERAS_APPLICATIONS
        for v in arch.VARIANTS}
    for case in backbone_cases:  # the paper's head, optimiser and balanced recipe
        assert case.head == study.Head() and case.learning_rate == 1e-3
        assert case.batch_size == 32 and case.augment and case.weights == "imagenet"
        assert case.epochs == {"cifar10": 25, "fashion_mnist": 5}[case.dataset]
        assert (case.imbalance({}) is not None) == (case.variant == "imbalanced")
    # The ResNet50 balanced case is Table 7's balanced run, with its published figures.
    assert CASES[0].id == "arch-cifar10-resnet50-balanced" and CASES[0].paper.accuracy == 0.67
    stops = {c.id: (c.validation_split, c.early_stopping) for c in CASES if c.protocol}
    assert stops[table7_id("cifar10", "imbalanced", "earlystop")] == (0.1, arch.PATIENCE)
    assert stops[table7_id("fashion_mnist", "balanced", "holdout")] == (0.1, None)


def test_collection_counts_ids_and_opt_in(project):
    total = N_PAPER + len(CASES)
    plain = project.runpytest("--collect-only", "-q")
    plain.stdout.fnmatch_lines([f"*{N_PAPER}/{total} tests collected ({len(CASES)} deselected)*"])
    assert "arch-" not in plain.stdout.str()
    result = project.runpytest("--collect-only", "-q", "-m", "architectures")
    result.stdout.fnmatch_lines([f"*{len(CASES)}/{total} tests collected ({N_PAPER} deselected)*"])
    ids = sorted(line.split("[", 1)[1].rstrip("]") for line in result.outlines
                 if line.startswith("test_arch_study.py::"))
    assert ids == sorted(case.id for case in CASES)
    for expression, count in (("architectures and early_stopping", 8),
                              ("architectures and mobilenetv2", 6),
                              ("architectures and exp100", 10),
                              ("architectures and cifar10 and balanced and not early_stopping", 5)):
        result = project.runpytest("--collect-only", "-q", "-m", expression)
        result.stdout.fnmatch_lines([f"*{count}/{total} tests collected*"])


def test_a_smoke_run_writes_rows_comparisons_claims_and_its_section(project):
    selection = "architectures and cifar10 and balanced and (resnet50 or mobilenetv2 or " \
                "early_stopping)"
    result = project.runpytest_subprocess(*FAST, "-m", selection)
    result.assert_outcomes(passed=4)
    (run_dir,) = sorted((project.path / "reports" / "runs").iterdir())
    rows = {p.stem: json.loads(p.read_text()) for p in (run_dir / "cases").glob("*.json")}
    assert set(rows) == {arch_id("cifar10", "resnet50"), arch_id("cifar10", "mobilenetv2"),
                         table7_id("cifar10", "balanced", "holdout"),
                         table7_id("cifar10", "balanced", "earlystop")}
    for row in rows.values():
        assert row["status"] == "passed" and row["parameters"] > 0
        assert row["config"]["backbone"] == "tiny"  # --backbone tiny beats the case's
        assert row["architecture"]["variant"] == "balanced"
    held = rows[table7_id("cifar10", "balanced", "earlystop")]
    assert held["config"]["validation_split"] == 0.1 and held["config"]["early_stopping"] == 3
    assert sum(held["validation_counts"]) == 32  # 10% of the 320 smoke images
    assert rows[table7_id("cifar10", "balanced", "holdout")]["config"]["early_stopping"] is None
    assert "validation_split" not in rows[arch_id("cifar10", "resnet50")]["config"]
    table = pd.read_csv(run_dir / "comparisons.csv")
    mine = table[(table["family"] == "architectures-cifar10-balanced") & (table["n_seeds"] > 0)]
    assert set(mine["baseline"]) == {arch_id("cifar10", "mobilenetv2")}
    assert set(mine["n_seeds"]) == {1} and set(mine["treatment"]) == {CASES[0].id}
    verdicts = pd.read_csv(run_dir / "claims.csv").set_index("claim")["verdict"]
    assert verdicts["resnet50-beats-mobilenet-cifar10"] == "inconclusive"  # one seed
    assert "Architectures: ResNet50 against other backbones" in \
        (run_dir / "report.html").read_text()


# -- backbones and weights -----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(KERAS_APPLICATIONS))
def test_each_backbone_builds_at_32x32_with_random_init(name):
    """Build only, no training: 1-6 s each on 2 busy CPU cores (DenseNet121 the slowest)."""
    from resnet_harness.training.model import BACKBONES

    base = BACKBONES[name]("none")
    assert tuple(base.input_shape) == (None, 32, 32, 3)
    assert len(base.output.shape) == 4 and base.output.shape[1:3] == (1, 1)
    assert base.count_params() > 1_000_000
    if name == "efficientnetb0":  # sees [0, 255] as its own Rescaling(1/255) expects
        assert base.layers[1].name == "input_scale"


def test_the_weights_check_knows_each_backbones_layout(tmp_path):
    from resnet_harness.training.model import BACKBONES
    from resnet_harness.training.weights import WeightsError, check_weights_file

    path = tmp_path / "mobilenetv2.weights.h5"
    BACKBONES["mobilenetv2"]("none").save_weights(path)
    check_weights_file(path, "mobilenetv2")
    with pytest.raises(WeightsError, match="is not ResNet50 without its top"):
        check_weights_file(path)
    resnet = write_resnet50_weights(tmp_path / "resnet50_notop.h5")
    with pytest.raises(WeightsError, match="is not mobilenetv2 without its top.*mobilenetv2=PATH"):
        check_weights_file(resnet, "mobilenetv2")
    value = values.parse_weights(f"mobilenetv2={path}")
    assert value == f"mobilenetv2={path}" and values.parse_weights(str(resnet)) == str(resnet)
    with pytest.raises(Exception, match="is not vgg16 without its top"):
        values.parse_weights(f"vgg16={path}")
    run = RunConfig(scale="paper", weights=value)
    by_id = {c.id: c for c in CASES}
    assert run.for_case(by_id[arch_id("cifar10", "mobilenetv2")]).weights == str(path)
    assert run.for_case(by_id[arch_id("cifar10", "vgg16")]).weights == "imagenet"
    assert RunConfig(scale="smoke", weights=value).for_case(
        by_id[arch_id("cifar10", "vgg16")]).weights == "none"


def test_weights_options_per_backbone_on_the_command_line(project, tmp_path):
    from resnet_harness.training.model import BACKBONES

    mobilenet = tmp_path / "mobilenetv2.weights.h5"
    BACKBONES["mobilenetv2"]("none").save_weights(mobilenet)
    resnet = write_resnet50_weights(tmp_path / "resnet50_notop.h5")
    select = ["-m", "architectures and cifar10 and mobilenetv2 and balanced"]
    # Built-in studies' backbones are registered before options are parsed.
    result = project.runpytest(str(project.path), "--backbone", "mobilenetv2", "--weights",
                               f"mobilenetv2={mobilenet}", "--collect-only", "-q", *select)
    assert result.ret == pytest.ExitCode.OK, result.stderr.lines
    # A plain PATH is a ResNet50 file: a case of another backbone is refused before training.
    result = project.runpytest(str(project.path), "--data-source", "synthetic", "--weights",
                               str(resnet), *select)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"*{arch_id('cifar10', 'mobilenetv2')} trains mobilenetv2 but "
                                 "--weights * is a ResNet50 file; pass --weights resnet50=PATH*"])


def test_registered_backbones_parse_and_unknown_ones_say_which_exist():
    assert [values.parse_backbone(name) for name in OTHERS] == list(OTHERS)
    with pytest.raises(Exception, match="use resnet50 or tiny, or another registered backbone: "
                                        "resnet32, mobilenetv2"):
        values.parse_backbone("vgg")


# -- the cases' own validation protocol ------------------------------------------------------------

def test_a_case_keeps_its_validation_protocol_whatever_the_session_says():
    by_id = {c.id: c for c in CASES}
    stop, hold = (by_id[table7_id("cifar10", "imbalanced", p)] for p in ("earlystop", "holdout"))
    plain = by_id[arch_id("cifar10", "vgg16")]
    for run in (RunConfig(), RunConfig(validation_split=0.2, early_stopping=5)):
        got = run.for_case(stop)
        assert (got.validation_split, got.early_stopping) == (0.1, arch.PATIENCE)
        got = run.for_case(hold)
        assert (got.validation_split, got.early_stopping) == (0.1, None)
        got = run.for_case(plain)
        assert (got.validation_split, got.early_stopping) == (run.validation_split,
                                                              run.early_stopping)
    assert run.for_case(stop).imbalance is not None  # the paper's imbalanced recipe
    with pytest.raises(ValueError, match="early_stopping without a validation_split"):
        study.Study("bad", "bad", (arch.ArchitectureCase(dataset="cifar10", backbone="vgg16",
                                                         early_stopping=2),))


def test_the_session_chooses_what_the_early_stopping_arm_watches():
    stop, hold = (arch.CASES_BY_ID[table7_id("cifar10", "balanced", p)]
                  for p in ("earlystop", "holdout"))
    run = RunConfig(early_stopping_monitor="val_accuracy")
    stopping, holding = run.for_case(stop).as_dict(), run.for_case(hold).as_dict()
    assert stopping["early_stopping_monitor"] == "val_accuracy"
    assert "early_stopping_monitor" not in holding  # nothing to watch: its rows stay reusable
    # the arms differ in their stopping rule, monitor included, and nothing else
    assert comparisons.confounds({"config": holding}, {"config": stopping}, "early_stopping") == []
    assert comparisons.confounds({"config": holding}, {"config": stopping}, "backbone") == [
        "early_stopping: none -> 3", "early_stopping_monitor: none -> val_accuracy"]


def _bound(case):
    from types import SimpleNamespace

    return case.hooks().bind(SimpleNamespace(case=case, seed=0))


def test_the_exp100_variant_keeps_the_long_tail_profile():
    y = np.repeat(np.arange(10), 200)
    idx = np.arange(len(y))
    case = arch.CASES_BY_ID[arch_id("fashion_mnist", "densenet121", "exp100")]
    kept, reduced = _bound(case).on_select_training(idx, y)
    assert np.bincount(y[kept], minlength=10).tolist() == PROFILES["exp100"].counts([200] * 10)
    assert reduced == tuple(range(1, 10)) and case.imbalanced
    assert case.hooks().expected_train_counts([200] * 10) == PROFILES["exp100"].counts([200] * 10)
    other = arch.CASES_BY_ID[arch_id("fashion_mnist", "densenet121", "imbalanced")]
    assert _bound(other).on_select_training(idx, y) is None
    assert other.hooks().expected_train_counts([200] * 10) is None


# -- comparisons and claims on fake rows ---------------------------------------------------------

def _row(case: str, seed: int, acc: float, *, auc: float = 0.8) -> dict:
    reduced = [0, 1, 2] if ("imbalanced" in case or "exp100" in case) else []
    return {"case_id": f"{case}-seed{seed}", "seed": seed, "scale": "reduced",
            "status": "passed", "config": {}, "reduced_classes": reduced,
            "test_counts": [1000] * 10,
            "metrics": {"accuracy": acc, "balanced_accuracy": acc, "f1_macro": acc,
                        "roc_auc_ovr_macro": auc, "per_class": {"recall": [acc] * 10}},
            "intervals": {m: [acc - 0.005, acc + 0.005]
                          for m in ("accuracy", "balanced_accuracy", "f1_macro")}}


SEEDS = range(4)
JITTER = (0.001, -0.001, 0.002, -0.002)


def _backbone_rows(cost: dict[tuple[str, str], float]) -> list[dict]:
    """Balanced and imbalanced rows of every backbone on both data sets: balanced accuracy
    0.6, imbalanced 0.6 + cost[(dataset, backbone)]."""
    rows = []
    for dataset in ("cifar10", "fashion_mnist"):
        for backbone in KERAS_APPLICATIONS:
            for seed in SEEDS:
                base = 0.6 + JITTER[seed] + (0.05 if backbone == REFERENCE else 0.0)
                rows.append(_row(arch_id(dataset, backbone), seed, base))
                rows.append(_row(arch_id(dataset, backbone, "imbalanced"), seed,
                                 base + cost[dataset, backbone] + JITTER[3 - seed]))
    return rows


def _verdicts(rows, delta=0.01) -> dict[str, str]:
    return {c.claim.key: c.verdict for c in claims.evaluate(rows, delta)[0]}


def test_a_difference_comparison_pairs_four_rows_per_seed():
    cost = {(d, b): -0.01 if b == REFERENCE else -0.10
            for d in ("cifar10", "fashion_mnist") for b in KERAS_APPLICATIONS}
    rows = _backbone_rows(cost)
    results = comparisons.compare(rows)
    (found,) = [r for r in results if r.comparison.family
                == "architectures-imbalance-cifar10-imbalanced"
                and r.comparison.baseline == arch_id("cifar10", "vgg16", "imbalanced")]
    # (resnet50 imbalanced - balanced) - (vgg16 imbalanced - balanced), seed by seed
    assert found.mean == pytest.approx(0.09) and found.n == 4 and found.verdict == "better"
    assert found.family_size == 4
    assert found.comparison.name == ("(cifar10 resnet50 imbalanced - cifar10 resnet50 balanced) "
                                     "vs (cifar10 vgg16 imbalanced - cifar10 vgg16 balanced)")
    record = found.as_dict()
    assert record["baseline_minus"] == arch_id("cifar10", "vgg16")
    assert record["treatment_minus"] == arch_id("cifar10", REFERENCE)
    verdicts = _verdicts(rows)
    assert verdicts["resnet50-loses-no-more-to-imbalanced"] == "supported"
    assert verdicts["resnet50-loses-no-more-to-exp100"] == "not run"
    assert verdicts["resnet50-beats-mobilenet-cifar10"] == "supported"  # 0.65 against 0.60
    # One backbone that loses less than ResNet50 (here: gains) contradicts the claim.
    cost["fashion_mnist", "vgg16"] = 0.05
    verdicts = _verdicts(_backbone_rows(cost))
    assert verdicts["resnet50-loses-no-more-to-imbalanced"] == "contradicted"


def _table7_rows(stop_shift: float, moved: bool = True) -> list[dict]:
    rows = []
    for dataset in ("cifar10", "fashion_mnist"):
        for seed in SEEDS:
            for protocol in arch.PROTOCOLS:
                # Early stopping moves each seed's imbalanced arm a little (it changed the model),
                # or, with moved=False, not at all (it kept the last epoch every time).
                wobble = (0.002, -0.001, 0.0015, -0.002)[seed % 4] if moved else 0.0
                shift = stop_shift + wobble if protocol == "earlystop" else 0.0
                rows.append(_row(table7_id(dataset, "balanced", protocol), seed,
                                 0.7 + JITTER[seed]))
                rows.append(_row(table7_id(dataset, "imbalanced", protocol), seed,
                                 0.75 + shift + JITTER[3 - seed], auc=0.8 + shift / 10))
    return rows


def test_early_stopping_claim_needs_equivalent_imbalance_effects():
    key = "early-stopping-changes-no-table7-verdict"
    # delta 0.05: the AUC and reduced-recall intervals of 1,000 test images per class are wider
    # than the default 0.01 allows at 4 seeds.
    assert _verdicts(_table7_rows(0.0), delta=0.05)[key] == "supported"
    assert _verdicts(_table7_rows(0.10), delta=0.05)[key] == "contradicted"
    # Arms that never differed vouch for nothing: equivalence needs two seeds that moved.
    assert _verdicts(_table7_rows(0.0, moved=False), delta=0.05)[key] == "inconclusive"
    results = comparisons.compare(_table7_rows(0.0), 0.05)
    table7 = [r for r in results if r.comparison.family == "architectures-table7-earlystop"
              and r.measure == "accuracy"]
    assert len(table7) == 2 and all(r.verdict == "better" for r in table7)
