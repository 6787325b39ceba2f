"""The paper's study, one instance of the Study API: its experiment matrix, comparisons and claims.

"Performance Analysis of ResNet50 on Balanced and Imbalanced Image Classification Datasets": one
case per scenario of its Tables 7, 9 and 10, each carrying the hyper-parameters of Tables 3-6
and the figures the paper reports for it. ``experiments/test_study.py`` only parametrizes over
:data:`CASES`; every scale (smoke, reduced, paper) shrinks these same rows and never forks them.
Its comparisons and claims are declared below as data; its report section (the paper's tables,
measured beside printed) is in :mod:`resnet_harness.studies.paper_report`.

Where the paper contradicts itself the choice made here is named in a comment and can be changed
from the command line: the study's own options, ``--comparison`` (below) and the imbalance
recipe's ``--imbalance``, ``--imbalance-classes``, ``--imbalance-fraction``
(:mod:`resnet_harness.studies.profiles`, shared with the architectures study).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from resnet_harness.studies.profiles import IMBALANCE_OPTIONS, imbalance_config, imbalance_recipe
from resnet_harness.study import (Bounds, Case, Check, Claim, Comparison, Head, PaperFigures,
                                   Study, StudyOption, register)
from resnet_harness.training import values
from resnet_harness.training.config import Imbalance
from resnet_harness.training.data.sources import DATASETS

SPLITS = (0.5, 0.6, 0.7, 0.8, 0.9)  # train fraction of Table 9's pooled train+test data
DROPOUTS = (0.1, 0.3, 0.5, 0.7)  # Table 10 lists 0.3/0.5/0.7; the text adds 0.1


# Reduced-scale floors per data set (issue 10), set from the whole reduced matrix over seeds 0-2
# with bench/spread.py (k = 3): the lowest case mean minus 3 pooled within-case seed standard
# deviations, rounded down to 0.01 (figures in baselines/README.md). A run below its floor is
# further from its case's mean than seed noise takes a run 99.9% of the time, and still far
# above a model that learned nothing (accuracy 0.10, AUC 0.50).
REDUCED_FLOORS: dict[str, dict[str, float]] = {
    "cifar10": {"accuracy": 0.23, "roc_auc_ovr_macro": 0.68},
    "fashion_mnist": {"accuracy": 0.58, "roc_auc_ovr_macro": 0.90},
}


def _bounds(dataset: str, paper: "PaperFigures") -> Bounds:
    return Bounds(reduced=dict(REDUCED_FLOORS[dataset]), paper=paper_floors(paper))


# Paper-scale floors sit this far (absolute) below the paper's own figure for the case. The
# paper's figures are single runs; a faithful re-run differs by seed noise and by the readings
# this harness had to choose (imbalance recipe, Table 9's unstated epochs, averaging), and a
# floor at the paper's figure would fail half of all faithful runs. 0.10 is twice the spread of
# three runs of one CIFAR-10 case measured at reduced scale (AUC 0.674-0.722), and still far
# above chance for every case (the lowest floors: CIFAR-10 AUC 0.55, Table 9's CIFAR-10 50/50
# accuracy 0.211, against chance 0.50 and 0.10).
PAPER_FLOOR_MARGIN = 0.10
# The "learned something" AUC floor that every paper-scale case keeps when the paper gives no AUC.
LEARNED_AUC = 0.55


def paper_floors(paper: PaperFigures, margin: float = PAPER_FLOOR_MARGIN) -> dict[str, float]:
    """Paper-scale floors from the paper's figures: accuracy and ROC AUC each ``margin`` below
    what the paper reports (AUC never below :data:`LEARNED_AUC`)."""
    floors = {"roc_auc_ovr_macro": LEARNED_AUC}
    if paper.roc_auc is not None:
        floors["roc_auc_ovr_macro"] = max(LEARNED_AUC, round(paper.roc_auc - margin, 4))
    if paper.accuracy is not None:
        floors["accuracy"] = round(paper.accuracy - margin, 4)
    return floors


COMPARISON_KINDS = ("study", "controlled")


def parse_comparison(value: str) -> str:
    """``study`` (each arm as the paper ran it) or ``controlled`` (Table 7's imbalanced arm with
    its balanced arm's head, epochs, augmentation and freezing, so only the data differs)."""
    return values.one_of(value, COMPARISON_KINDS, "comparison")


COMPARISON = StudyOption("--comparison", parse_comparison,
                         "study (default: each arm as the paper ran it) or controlled (Table "
                         "7's imbalanced arm with its balanced arm's head, epochs and "
                         "augmentation)", default="study")


@dataclass(frozen=True)
class PaperCase(Case):
    """One scenario of the paper: its table, balance, split and regularization (keyword
    arguments of :class:`~resnet_harness.study.Case` for the rest)."""

    study = "paper"

    table: str  # "table7" | "table9" | "table10"
    balance: str  # "balanced" | "imbalanced"
    regularization: str  # "none" | "l1" | "l2" | "dropout0.3" ...
    # "controlled": Table 7's imbalanced arm with its balanced arm's recipe (in_session); in
    # the row's config, so a controlled row is never taken for the study's arm.
    comparison: str = "study"

    @property
    def base_id(self) -> str:
        """Table, data set, balance, split and regularization, e.g.
        ``table9-cifar10-balanced-split70_30-reg_none``."""
        split = ("split_orig" if self.split is None
                 else f"split{round(self.split * 100)}_{round((1 - self.split) * 100)}")
        return f"{self.table}-{self.dataset}-{self.balance}-{split}-reg_{self.regularization}"

    @property
    def imbalanced(self) -> bool:
        return self.balance == "imbalanced"

    @property
    def markers(self) -> tuple[str, ...]:
        return (self.dataset, self.table, self.balance)

    @property
    def label(self) -> str:
        """``fashion_mnist imbalanced``, ``cifar10 split 70/30``, ``fashion_mnist reg l1``."""
        parts = [self.dataset]
        if self.table == "table7":
            parts.append(self.balance)
        if self.split is not None:
            parts.append(f"split {round(self.split * 100)}/{round((1 - self.split) * 100)}")
        if self.table == "table10":
            parts.append(f"reg {self.regularization}")
        return " ".join(parts)

    def identity(self) -> dict:
        return {"table": self.table, "dataset": self.dataset, "balance": self.balance,
                "split": self.split, "regularization": self.regularization}

    def config_fields(self, cfg) -> dict[str, Any]:
        return {"comparison": self.comparison, **imbalance_config(cfg)}

    def imbalance(self, options: Mapping[str, Any]) -> Imbalance | None:
        """The paper's imbalance recipe (``--imbalance`` and its overrides) for an
        imbalanced case."""
        return imbalance_recipe(options) if self.imbalanced else None

    def in_session(self, options: Mapping[str, Any]) -> "PaperCase":
        """Under ``--comparison controlled``: Table 7's imbalanced arm with its balanced arm's
        head, epochs and augmentation, so the two arms differ in their data only."""
        if COMPARISON.value(options) != "controlled" or self.table != "table7" \
                or not self.imbalanced:
            return self
        balanced = CASES_BY_ID[replace(self, balance="balanced", seed=None).id]
        controlled = replace(self, head=balanced.head, epochs=balanced.epochs,
                             augment=balanced.augment)
        return self if controlled == self else replace(controlled, comparison="controlled")


# Tables 3 and 5: epochs of the balanced runs; Tables 4 and 6: of the imbalanced runs.
EPOCHS = {("cifar10", "balanced"): 25, ("cifar10", "imbalanced"): 25,
          ("fashion_mnist", "balanced"): 5, ("fashion_mnist", "imbalanced"): 7}

_PLAIN = Head()
# Table 6 (Fashion-MNIST imbalanced): frozen ImageNet base, Dense 1024 hidden layer.
_TABLE6 = Head(dense_units=1024, freeze_base=True)


_TABLE7_FMNIST_BALANCED = PaperFigures(0.66, 0.63, 0.73, 0.59, 0.84, 355.95, 134.9, 4868.14,
                                       "Tables 7, 8")


def _table7() -> list[PaperCase]:
    # Table 7 (metrics) and Table 8 (time, memory) describe the same four runs. Precision, recall
    # and F1 are compared with our macro averages (the paper does not say which averaging it used).
    figures = {
        ("cifar10", "balanced"): PaperFigures(0.67, 0.40, 0.37, 0.36, 0.65, 1496.23, 3.5,
                                              2553.05, "Tables 7, 8"),
        ("cifar10", "imbalanced"): PaperFigures(0.73, 0.62, 0.66, 0.72, 0.68, 2163.77, 3.5,
                                                5242.31, "Tables 7, 8"),
        ("fashion_mnist", "balanced"): _TABLE7_FMNIST_BALANCED,
        ("fashion_mnist", "imbalanced"): PaperFigures(0.86, 0.65, 0.77, 0.62, 0.86, 471.38,
                                                      134.9, 9627.61, "Tables 7, 8"),
    }
    cases = []
    for (dataset, balance), paper in figures.items():
        head = _TABLE6 if (dataset, balance) == ("fashion_mnist", "imbalanced") else _PLAIN
        cases.append(PaperCase("table7", balance, "none", dataset=dataset, head=head,
                               epochs=EPOCHS[dataset, balance], augment=balance == "balanced",
                               paper=paper, bounds=_bounds(dataset, paper)))
    return cases


def _table9() -> list[PaperCase]:
    # Table 9: balanced data, train+test pooled and re-split. Its epochs are not given; the
    # balanced tables' epochs are used (its ~100-130 s CIFAR-10 training times hint at fewer).
    reported = {
        "cifar10": [(0.3113, 133.61, 127.95, 3228.08), (0.3377, 129.26, 122.01, 2347.43),
                    (0.3625, 98.56, 3.50, 2429.31), (0.7376, 130.05, 3.2, 2347.43),
                    (0.8577, 98.56, 3.50, 2347.43)],
        "fashion_mnist": [(0.6358, 259.38, 134.9, 2927.45), (0.6725, 252.63, 5.73, 2428.73),
                          (0.6462, 292.54, 4.00, 2543.84), (0.7313, 344.11, 5.45, 2401.57),
                          (0.8607, 263.73, 1.38, 2541.29)],
    }
    cases = []
    for dataset, rows in reported.items():
        for split, (acc, train_s, test_s, mem) in zip(SPLITS, rows):
            paper = PaperFigures(accuracy=acc, train_time_s=train_s, test_time_s=test_s,
                                 memory_mb=mem, source="Table 9")
            cases.append(PaperCase("table9", "balanced", "none", dataset=dataset, split=split,
                                   head=_PLAIN, epochs=EPOCHS[dataset, "balanced"],
                                   augment=True, paper=paper, bounds=_bounds(dataset, paper)))
    return cases


def _table10() -> list[PaperCase]:
    # Table 10: Fashion-MNIST, balanced, its own split, the Table 5 schedule. The "none" row is
    # not in the paper: it is the control that the regularized rows are compared against.
    reported = {
        "l1": (0.3860, 0.8803, 375.18, 2.84, 2652.21),
        "l2": (0.6286, 0.9348, 372.81, 2.85, 3720.61),
        "dropout0.1": None,  # named in the text, absent from Table 10
        "dropout0.3": (0.6606, 0.9447, 490.34, 2.54, 4499.43),
        "dropout0.5": (0.6129, 0.9388, 398.42, 2.72, 4725.57),
        "dropout0.7": (0.5627, 0.9207, 373.61, 2.87, 5128.71),
        "none": None,
    }
    cases = []
    for reg, figures in reported.items():
        if reg.startswith("dropout"):
            head = Head(dropout=float(reg[len("dropout"):]))
        elif reg in ("l1", "l2"):
            head = Head(regularizer=reg)
        else:
            head = _PLAIN
        paper = (PaperFigures(accuracy=figures[0], roc_auc=figures[1], train_time_s=figures[2],
                              test_time_s=figures[3], memory_mb=figures[4], source="Table 10")
                 if figures else PaperFigures(source="not reported"))
        note = "control row, not in the paper" if reg == "none" else (
            "named in the text, not in Table 10" if figures is None else "")
        # Rows the paper does not report take their floors from Table 7's Fashion-MNIST balanced
        # run: the same data, head (no or weaker regularization) and schedule.
        reference = paper if figures else _TABLE7_FMNIST_BALANCED
        cases.append(PaperCase("table10", "balanced", reg, dataset="fashion_mnist", head=head,
                               epochs=EPOCHS["fashion_mnist", "balanced"], augment=True,
                               paper=paper, note=note, bounds=_bounds("fashion_mnist", reference)))
    return cases


CASES: tuple[PaperCase, ...] = tuple(_table7() + _table9() + _table10())
CASES_BY_ID: dict[str, PaperCase] = {case.id: case for case in CASES}


def get_case(case_id: str) -> PaperCase:
    """The case with this id; a ``KeyError`` that lists the valid ids otherwise."""
    try:
        return CASES_BY_ID[case_id]
    except KeyError:
        raise KeyError(f"unknown case id {case_id!r}; known: {', '.join(CASES_BY_ID)}") from None


def case_id(table: str, dataset: str, balance: str = "balanced", split: float | None = None,
            reg: str = "none") -> str:
    """The id (without seed) of the matrix row with these attributes."""
    (case,) = [c for c in CASES
               if (c.table, c.dataset, c.balance, c.split, c.regularization)
               == (table, dataset, balance, split, reg)]
    return case.id


# -- comparisons: what the paper's tables set side by side --------------------------------------

def _comparisons() -> tuple[Comparison, ...]:
    out = []
    table7 = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr_macro", "reduced_recall",
              "train_time", "memory")
    for dataset in DATASETS:  # Table 7/8: imbalanced against balanced
        out.append(Comparison("table7", "balance", case_id("table7", dataset),
                              case_id("table7", dataset, "imbalanced"), table7))
    for dataset in DATASETS:  # Table 9: each split against the next larger one
        for small, large in zip(SPLITS, SPLITS[1:]):
            out.append(Comparison("table9-splits", "split", case_id("table9", dataset, split=small),
                                  case_id("table9", dataset, split=large)))
    for split in SPLITS:  # Table 9: Fashion-MNIST against CIFAR-10 at the same split
        out.append(Comparison("table9-datasets", "dataset",
                              case_id("table9", "cifar10", split=split),
                              case_id("table9", "fashion_mnist", split=split)))
    regs = [c.regularization for c in CASES if c.table == "table10"]
    control = case_id("table10", "fashion_mnist")
    for reg in regs:  # Table 10: each regulariser against the no-regularization control
        if reg != "none":
            out.append(Comparison("table10-control", "regularization", control,
                                  case_id("table10", "fashion_mnist", reg=reg),
                                  ("accuracy", "roc_auc_ovr_macro")))
    best = case_id("table10", "fashion_mnist", reg="dropout0.3")
    for reg in regs:  # Table 10's claim: dropout 0.3 beats every other regulariser
        if reg not in ("none", "dropout0.3"):
            out.append(Comparison("table10-dropout0.3", "regularization",
                                  case_id("table10", "fashion_mnist", reg=reg), best))
    out.append(Comparison("table10-l2-l1", "regularization",
                          case_id("table10", "fashion_mnist", reg="l1"),
                          case_id("table10", "fashion_mnist", reg="l2")))
    return tuple(out)


COMPARISONS = _comparisons()
# Fields that a comparison's declared factor changes by design: not confounds.
FACTOR_FIELDS = {
    "balance": ("balance", "imbalance", "comparison"),
    "split": ("split",),
    "regularization": ("regularization", "head.dropout", "head.regularizer"),
    "dataset": ("dataset",),
}


# -- claims: what the paper's text concludes ------------------------------------------------------

def _t7(dataset: str, measure: str, expect: str = "higher") -> Check:
    return Check(case_id("table7", dataset), case_id("table7", dataset, "imbalanced"), measure,
                 expect)


def _t10(baseline: str, treatment: str) -> Check:
    return Check(case_id("table10", "fashion_mnist", reg=baseline),
                 case_id("table10", "fashion_mnist", reg=treatment), "accuracy", "higher")


CLAIMS: tuple[Claim, ...] = (
    Claim("imbalanced-beats-balanced-cifar10",
          "CIFAR-10: imbalanced training beats balanced on F1, AUC and accuracy",
          "Table 7, conclusion",
          tuple(_t7("cifar10", m) for m in ("f1_macro", "roc_auc_ovr_macro", "accuracy"))),
    Claim("imbalanced-beats-balanced-fashion_mnist",
          "Fashion-MNIST: imbalanced training beats balanced on F1, AUC and accuracy",
          "Table 7, conclusion",
          tuple(_t7("fashion_mnist", m) for m in ("f1_macro", "roc_auc_ovr_macro", "accuracy"))),
    Claim("imbalanced-costs-more",
          "Imbalanced training takes longer and more memory than balanced (both data sets)",
          "Table 8",
          tuple(_t7(d, m) for d in ("cifar10", "fashion_mnist") for m in ("train_time", "memory"))),
    Claim("cifar10-accuracy-rises-with-split",
          "CIFAR-10 test accuracy rises with the training share (50/50 to 90/10)", "Table 9",
          tuple(Check(case_id("table9", "cifar10", split=a), case_id("table9", "cifar10", split=b),
                      "accuracy", "higher") for a, b in zip(SPLITS, SPLITS[1:]))),
    Claim("fashion_mnist-beats-cifar10-every-split",
          "Fashion-MNIST reaches a higher test accuracy than CIFAR-10 at every split",
          "Table 9, conclusion",
          tuple(Check(case_id("table9", "cifar10", split=s),
                      case_id("table9", "fashion_mnist", split=s), "accuracy", "higher")
                for s in SPLITS)),
    Claim("dropout0.3-best-regulariser",
          "Dropout 0.3 is the best regulariser on Fashion-MNIST (accuracy)", "Table 10",
          tuple(_t10(r, "dropout0.3") for r in ("l1", "l2", "dropout0.1", "dropout0.5",
                                                 "dropout0.7"))),
    Claim("l2-beats-l1", "L2 regularisation beats L1 on Fashion-MNIST (accuracy)", "Table 10",
          (_t10("l1", "l2"),)),
    Claim("reduced-classes-keep-recall",
          "Fashion-MNIST: the reduced classes keep their recall under the 10% reduction",
          "Fashion-MNIST discussion", (_t7("fashion_mnist", "reduced_recall", "not lower"),)),
)


STUDY = register(Study(
    name="paper", title="Measured against the paper", cases=CASES,
    markers=(("experiment", "a case of a study's matrix"),
             ("table7", "the paper's Table 7/8 cases (balanced vs imbalanced)"),
             ("table9", "the paper's Table 9 cases (train/test splits)"),
             ("table10", "the paper's Table 10 cases (regularization)"),
             ("balanced", "cases on balanced data"), ("imbalanced", "cases on imbalanced data")),
    comparisons=COMPARISONS, claims=CLAIMS, factor_fields=FACTOR_FIELDS,
    options=(COMPARISON, *IMBALANCE_OPTIONS),
    report="resnet_harness.studies.paper_report:section"), __name__)
