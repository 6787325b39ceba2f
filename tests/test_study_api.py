"""The Study API end to end: a third study, defined in its own module of a user's project (no
line of the package changed), runs with the tiny backbone on synthetic data, and its rows, its
field, its comparison, its claim and its report section all come out."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import pytest

from helpers import CONFTEST, FAST
from resnet_harness import study
from resnet_harness.storage import schema
from resnet_harness.study import Case, Hooks

# A user's study: does a ten times larger learning rate change accuracy? Its cases vary one
# field, its hooks add one declared row field, its claim and report section are its own.
THIRD_STUDY = '''
from dataclasses import dataclass

import numpy as np

from resnet_harness.storage.schema import Field
from resnet_harness.study import Check, Claim, Comparison, Hooks, Study, register, Case


@dataclass(frozen=True)
class RateCase(Case):
    study = "rates"

    @property
    def base_id(self):
        return f"rates-{self.dataset}-lr{self.learning_rate:g}"

    @property
    def label(self):
        return f"{self.dataset} lr {self.learning_rate:g}"

    def hooks(self):
        return RateHooks()


class RateHooks(Hooks):
    def on_row(self, metrics):
        return {"worst_recall": float(np.min(metrics["per_class"]["recall"]))}


CASES = tuple(RateCase(dataset="fashion_mnist", learning_rate=lr) for lr in (1e-3, 1e-2))
LOW, HIGH = CASES[0].id, CASES[1].id


def section(rows, ctx):
    return f"<p>rates section: {len(rows)} rows</p>"


STUDY = register(Study(
    name="rates", title="Learning rates", cases=CASES,
    comparisons=(Comparison("rates", "learning_rate", LOW, HIGH,
                            ("accuracy", "worst_recall")),),
    claims=(Claim("higher-rate-helps", "A ten times larger rate raises accuracy", "ours",
                  (Check(LOW, HIGH, "accuracy", "higher"),)),),
    fields=(Field("worst_recall", "group_score", "higher", ".3f",
                  doc="recall of the worst class"),),
    factor_fields={"learning_rate": ("learning_rate",)},
    report=section), __name__)
'''

EXPERIMENTS = '''
from rates import STUDY
from resnet_harness.plugin import case_params


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", case_params(metafunc.config, STUDY))


def test_rates(case, harness):
    harness.check(case)
'''


def test_a_third_study_is_one_module_and_one_experiments_file(pytester: pytest.Pytester):
    pytester.makepyfile(rates=THIRD_STUDY, test_rates=EXPERIMENTS, conftest=CONFTEST)
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    listed = pytester.runpytest_subprocess("--collect-only", "-q", "-m", "rates")
    listed.stdout.fnmatch_lines(["*test_rates[[]rates-fashion_mnist-lr0.001[]]*",
                                 "*test_rates[[]rates-fashion_mnist-lr0.01[]]*"])
    result = pytester.runpytest_subprocess(*FAST, "--seeds", "0-1", "--progress", "off")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*higher-rate-helps*"])  # its claim in the terminal
    run = (pytester.path / "reports" / "latest").resolve()
    frame = pd.read_csv(run / "results.csv")
    assert set(frame["study"]) == {"rates"} and len(frame) == 4
    assert frame["worst_recall"].between(0, 1).all()  # its declared field, as a column
    comparisons = pd.read_csv(run / "comparisons.csv")
    ours = comparisons[comparisons["family"] == "rates"]
    assert set(ours["measure"]) == {"accuracy", "worst_recall"}
    assert (ours["n_seeds"] == 2).all()
    claims = pd.read_csv(run / "claims.csv")
    assert list(claims["claim"]) == ["higher-rate-helps"]
    assert claims["verdict"].iloc[0] in ("supported", "contradicted", "inconclusive")
    page = (run / "report.html").read_text()
    assert '<h2 id="study-rates">Learning rates</h2><p>rates section: 4 rows</p>' in page
    assert "A ten times larger rate raises accuracy" in page


def test_the_report_of_a_fresh_process_loads_the_study_its_rows_name(pytester):
    """``python -m resnet_harness report`` in another process imports the study module a row
    names, so its comparison and section are there too."""
    pytester.makepyfile(rates=THIRD_STUDY, test_rates=EXPERIMENTS, conftest=CONFTEST)
    pytester.runpytest_subprocess(*FAST, "--progress", "off").assert_outcomes(passed=2)
    run = (pytester.path / "reports" / "latest").resolve()
    (run / "report.html").unlink()
    rebuilt = pytester.run(sys.executable, "-m", "resnet_harness", "report", str(run))
    assert rebuilt.ret == 0, rebuilt.stderr.str()
    assert "rates section: 2 rows" in (run / "report.html").read_text()


def test_registering_refuses_what_would_be_ambiguous():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Clash(Case):
        study = "clash"

        @property
        def base_id(self):
            return "table7-cifar10-balanced-split_orig-reg_none"  # the paper's

    study.load_builtin()
    with pytest.raises(ValueError, match="belong to another study"):
        study.register(study.Study("clash", "clash", (Clash(dataset="cifar10"),)))

    @dataclass(frozen=True)
    class Unnamed(Case):
        @property
        def base_id(self):
            return "unnamed-1"

    with pytest.raises(ValueError, match="set it to 'unnamed'"):
        study.register(study.Study("unnamed", "u", (Unnamed(dataset="cifar10"),)))
    assert "clash" not in {s.name for s in study.studies()}


def test_default_hooks_do_nothing():
    hooks = Hooks()
    assert hooks.loss_name is None and hooks.on_build_loss() is None
    assert hooks.on_batches() == {} and hooks.predictions_from is None
    assert hooks.on_select_training([0, 1], [0, 1]) is None
    x, y = np.zeros((2, 3)), np.array([0, 1])
    kept = hooks.on_training_set(x, y, None)
    assert kept[0] is x and kept[1] is y
    assert hooks.expected_train_counts([5, 5]) is None
    assert hooks.on_build_model() == {} and hooks.on_fit_start(None) == {}
    assert hooks.on_row({}) == {}


def test_study_fields_join_the_schema_registry():
    study.load_builtin()
    assert "tail_accuracy" in schema.FIELDS_BY_NAME
    assert "tail_accuracy" in schema.GROUP_SCORES
    assert {"table", "balance", "long_tail"} <= schema.KNOWN_KEYS


def test_a_study_module_that_cannot_be_imported_is_named_once():
    from resnet_harness import study

    problems: list[str] = []
    rows = [{"study": "ghost", "study_module": "no_such_study_module_here"}] * 3
    study.load(rows, problems)
    assert len(problems) == 1 and problems[0].startswith(
        "study 'ghost': its module no_such_study_module_here cannot be imported (No module "
        "named 'no_such_study_module_here'); its rows are shown without its comparisons")
    assert "PYTHONPATH" in problems[0]


def test_a_figure_registered_twice_must_be_declared_the_same_way():
    """One registry of figures: the same declaration again is kept (a module imported twice);
    another declaration under a registered name is refused, naming what differs."""
    from resnet_harness.storage.schema import Field

    study.load_builtin()
    before = len(schema.FIELDS)
    schema.register_fields([schema.FIELDS_BY_NAME["accuracy"]])
    schema.register_fields([Field("f1_macro", "score", "higher", ".3f", "absolute", 0.05, "f1",
                                  "metrics", "f1_mac", title="F1 (macro)")])
    assert len(schema.FIELDS) == before
    with pytest.raises(ValueError, match="'accuracy' is registered already with another "
                                         "declaration .better: 'higher' registered, 'lower'"):
        schema.register_fields([Field("accuracy", "score", "lower", ".3f", "absolute", 0.05,
                                      "accuracy", "metrics", "acc")])
    assert schema.FIELDS_BY_NAME["accuracy"].better == "higher"
    from resnet_harness.analysis.comparisons import MEASURES

    assert MEASURES["f1_macro"].label == "F1 (macro)"  # its title, from its one declaration


def test_a_study_declares_its_own_options_and_its_cases_read_them():
    """The long-tail study's --cb-beta and --la-tau live in the study: one table with the
    harness's options, resolved the same way (command line, environment, ini), handed to its
    cases and recorded in their rows' config."""
    from resnet_harness.plugin import options
    from resnet_harness.studies import longtail

    study.load_builtin()
    assert {o.flag for o in study.options()} >= {"--cb-beta", "--la-tau"}
    assert {"--cb-beta", "--la-tau"} <= {o.flag for o in options.all_options()}
    assert not {"--cb-beta", "--la-tau"} & {o.flag for o in options.OPTIONS}  # not the core's
    resolved = options.resolve(lambda dest: None, lambda name: None,
                               environ={"RESNET_HARNESS_CB_BETA": "0.99"})
    assert resolved.origins["cb_beta"] == "environment variable RESNET_HARNESS_CB_BETA"
    run = options.run_config(resolved)
    assert run.study_options == {"cb_beta": 0.99, "la_tau": 1.0, "comparison": "study",
                                 "imbalance": "text", "imbalance_classes": None,
                                 "imbalance_fraction": None}
    # The paper's options left the core too: only the studies declare them.
    assert not {"--comparison", "--imbalance", "--imbalance-classes", "--imbalance-fraction"} \
        & {o.flag for o in options.OPTIONS}
    case = longtail.CASES_BY_ID["longtail-cifar10-exp100-cb_focal"]
    config = run.for_case(case)
    assert longtail.CB_BETA.value(config) == 0.99
    assert config.as_dict()["long_tail"]["cb_beta"] == 0.99  # in the row's identity
    with pytest.raises(argparse.ArgumentTypeError, match="environment variable "
                                                         "RESNET_HARNESS_LA_TAU: tau '-1'"):
        options.resolve(lambda dest: None, lambda name: None,
                        environ={"RESNET_HARNESS_LA_TAU": "-1"})


def test_a_study_option_is_declared_once_and_before_pytest_parses(monkeypatch):
    from resnet_harness.study import StudyOption

    class Mine(Case):
        study = "mine"

        @property
        def base_id(self):
            return "mine-1"

    clash = study.Study("mine", "m", (Mine(dataset="cifar10"),),
                        options=(StudyOption("--cb-beta", float, "again"),))
    study.load_builtin()
    with pytest.raises(ValueError, match="option --cb-beta is declared by study longtail"):
        study.register(clash)
    # The same StudyOption object, imported from the module that declares it, is shared: the
    # paper's imbalance recipe belongs to two studies and appears once in the option table.
    from resnet_harness.studies.profiles import IMBALANCE

    with monkeypatch.context() as undo:  # the registry as it was, after
        undo.setattr(study, "_STUDIES", dict(study._STUDIES))
        undo.setattr(study, "_BY_CASE", dict(study._BY_CASE))
        undo.setattr(study, "_OPTIONS_PARSED", False)  # as a conftest.py import would be
        study.register(study.Study("mine", "m", (Mine(dataset="cifar10"),),
                                   options=(IMBALANCE,)))
        assert [o.flag for o in study.options()].count("--imbalance") == 1
        assert {s.name for s in study.studies() if IMBALANCE in s.options} == {
            "paper", "architectures", "mine"}
    monkeypatch.setattr(study, "_OPTIONS_PARSED", True)
    late = study.Study("mine", "m", (Mine(dataset="cifar10"),),
                       options=(StudyOption("--mine-knob", float, "a knob"),))
    with pytest.raises(ValueError, match="import its module from your conftest.py"):
        study.register(late)
    assert "mine" not in {s.name for s in study.studies()}


def test_the_guides_hook_table_names_every_moment_and_nothing_else():
    """docs/writing-a-study.md lists the moments a study may override: exactly Hooks' own."""
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "writing-a-study.md").read_text()
    listed = set(re.findall(r"^\| `(on_\w+)\(", guide, flags=re.M))
    moments = {name for name in vars(Hooks) if name.startswith("on_")}
    assert listed == moments


def test_a_study_options_default_is_recorded_as_before_so_older_folders_resume():
    """run.json records every option's effective value; --cb-beta's default stays 0.9999 there
    after the option moved into its study, so a folder made before resumes."""
    from resnet_harness.plugin import options
    from resnet_harness.plugin.resume import setting_differences

    resolved = options.resolve(lambda dest: None, lambda name: None, environ={})
    recorded = resolved.provenance(options.run_config(resolved))
    assert recorded["cb_beta"] == {"value": 0.9999, "from": "default"}
    assert recorded["la_tau"] == {"value": 1.0, "from": "default"}
    older = {"options": {"cb_beta": {"value": 0.9999, "from": "default"},
                         "la_tau": {"value": 1.0, "from": "default"}}}
    current = {dest: entry["value"] for dest, entry in recorded.items()}
    assert setting_differences(older, current) == []
