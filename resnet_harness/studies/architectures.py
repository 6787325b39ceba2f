"""The architectures study, one instance of the Study API: ResNet50 against other Keras backbones
on the paper's data, head and optimiser, and the paper's Table 7 with and without early stopping.

The paper's literature review holds that ResNets "beat (or achieve comparable performance with)"
VGG16, DenseNet and MobileNet, its Table 11 sets ResNet-18 (70%) and MobileNet (68%) beside its
ResNet-50 on CIFAR-10, its conclusion calls ResNet50 robust to class imbalance and names "the
absence of a validation set" as a limitation. This study asks those questions of our own runs.
It is opt-in: ``pytest experiments`` runs it only when ``-m``/``-k`` names ``architectures``.

Backbone cases (ids ``arch-<dataset>-<backbone>-<variant>``): each Keras application that takes
32x32 inputs -- ResNet50 (the reference), MobileNetV2, DenseNet121, VGG16, EfficientNetB0 --
with ``include_top=False``, the paper's head (global average pooling, Dense softmax: the default
``Head``) and optimiser (Adam 1e-3, batch 32). One recipe for every variant of a data set: the
paper's balanced one (Tables 3 and 5: 25 epochs on CIFAR-10, 5 on Fashion-MNIST, rotation, shift
and flip), so that the variants differ in their training set only:

- ``balanced``: the data set as it comes (the ResNet50 case is Table 7's balanced run);
- ``imbalanced``: the paper's recipe (``--imbalance``, as ``paper.py``'s imbalanced cases);
- ``exp100``: the long-tail study's exponential profile, rho = 100 (``studies/profiles.py``, shared with it).

Weights: random init at smoke and reduced scale (the scales do that), ImageNet at paper scale;
``--weights BACKBONE=PATH`` gives one backbone's cases a local notop file. Every backbone gets
the images in [0, 1], as the study fed ResNet50 (no ``preprocess_input``); EfficientNet, which
divides its input by 255 itself, gets them times 255, so that it too sees [0, 1] after its own
layers.

Table 7 with and without early stopping (ids ``arch-table7-<dataset>-<balance>-<protocol>``):
the paper's four Table 7 runs (ResNet50, its heads, epochs and augmentation), each holding out a
stratified 10% of its training set for validation. ``holdout`` trains every epoch (the paper's
recipe on 90% of the data); ``earlystop`` stops after 3 epochs without a lower validation loss
(or, under ``--early-stopping-monitor val_accuracy``, a higher validation accuracy) and keeps
the best weights. The arms differ in the stopping rule only, and carry their protocol
as case fields, so both run in one session whatever ``--validation-split`` says.

Comparisons and claims are declared below as data; the imbalance costs of two backbones are
compared by difference comparisons (``Comparison.baseline_minus``/``treatment_minus``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from html import escape
from typing import Any, Mapping, Sequence

from resnet_harness.storage.schema import Field
from resnet_harness.studies import paper
from resnet_harness.studies.profiles import (IMBALANCE_OPTIONS, PROFILES, apply_profile,
                                             imbalance_config, imbalance_recipe)
from resnet_harness.study import (Bounds, Case, Check, Claim, Comparison, Hooks, PaperFigures,
                                  Study, register)
from resnet_harness.training.data.sources import DATASETS
from resnet_harness.training.model import INPUT_SHAPE, ModelError, register_backbone

# -- backbones -------------------------------------------------------------------------------------

REFERENCE = "resnet50"
# Registered name -> keras.applications class. ResNet50 is the harness's own "resnet50".
KERAS_APPLICATIONS = {"resnet50": "ResNet50", "mobilenetv2": "MobileNetV2",
                      "densenet121": "DenseNet121", "vgg16": "VGG16",
                      "efficientnetb0": "EfficientNetB0"}
OTHERS = tuple(name for name in KERAS_APPLICATIONS if name != REFERENCE)
# Keras 3's EfficientNet starts with Rescaling(1/255): give it [0, 255] as its weights expect.
INPUT_SCALE = {"efficientnetb0": 255.0}


def keras_application(application: str, input_scale: float = 1.0):
    """A backbone builder (``training.model.register_backbone``'s contract) for
    ``keras.applications.<application>(include_top=False)`` on 32x32x3 images in [0, 1],
    multiplied by ``input_scale`` first."""

    def build(weights: str, weight_decay: float = 0.0):
        import keras

        if weight_decay:
            raise ModelError(f"{application} from keras.applications takes no weight decay here")
        make = getattr(keras.applications, application)
        try:
            with warnings.catch_warnings():
                # MobileNetV2 warns that its ImageNet weights were made for 224x224 inputs and
                # loads them anyway, as the study loads ResNet50's at 32x32.
                warnings.filterwarnings("ignore", message="`input_shape` is undefined or non-")
                base = make(include_top=False, input_shape=INPUT_SHAPE,
                            weights=None if weights == "none" else weights)
        except Exception as exc:  # noqa: BLE001 - download and file errors all mean "no weights"
            if weights == "imagenet":
                raise ModelError(
                    f"cannot load ImageNet weights for {application} (download failed: "
                    f"{type(exc).__name__}); use --weights none for random init, or --weights "
                    "BACKBONE=PATH to a local notop weights file") from None
            raise ModelError(f"cannot build {application} with weights {weights!r}: {exc}"
                             ) from None
        if input_scale == 1.0:
            return base
        inputs = keras.Input(INPUT_SHAPE, name="image")
        x = keras.layers.Rescaling(input_scale, name="input_scale")(inputs)
        return keras.Model(inputs, base(x), name=base.name)

    build.__name__ = f"{application.lower()}_backbone"
    return build


for _name in OTHERS:
    register_backbone(_name, keras_application(KERAS_APPLICATIONS[_name],
                                               INPUT_SCALE.get(_name, 1.0)))


# -- cases -----------------------------------------------------------------------------------------

VARIANTS = ("balanced", "imbalanced", "exp100")
PROTOCOLS = ("holdout", "earlystop")
VALIDATION_SPLIT = 0.1  # share held out by both Table 7 protocols; the paper names none
PATIENCE = 3  # epochs without a better --early-stopping-monitor figure before ``earlystop`` stops
EPOCHS = {dataset: paper.EPOCHS[dataset, "balanced"] for dataset in DATASETS}

# No reduced-scale floor: floors come from measured seed spreads (paper.REDUCED_FLOORS) and these
# backbones, and the Table 7 arms on 90% of their data, have not been measured at reduced scale
# yet. Range and count checks always apply; at paper scale the "learned something" AUC floor.
_BOUNDS = Bounds(reduced={}, paper={"roc_auc_ovr_macro": paper.LEARNED_AUC})
_NOT_IN_PAPER = PaperFigures(source="not in the paper (architectures study)")


@dataclass(frozen=True)
class ArchitectureCase(Case):
    """A backbone on a data set variant, or (with ``protocol``) a Table 7 run with a held-out
    validation set, trained to the end (``holdout``) or early-stopped (``earlystop``)."""

    study = "architectures"

    variant: str = "balanced"  # balanced | imbalanced | exp100
    protocol: str | None = None  # None: a backbone case; holdout | earlystop: a Table 7 arm

    @property
    def base_id(self) -> str:
        """``arch-cifar10-mobilenetv2-exp100`` or ``arch-table7-cifar10-imbalanced-earlystop``."""
        if self.protocol:
            return f"arch-table7-{self.dataset}-{self.variant}-{self.protocol}"
        return f"arch-{self.dataset}-{self.backbone}-{self.variant}"

    @property
    def imbalanced(self) -> bool:
        return self.variant != "balanced"

    @property
    def markers(self) -> tuple[str, ...]:
        if self.protocol:
            return (self.dataset, "table7", self.variant, "early_stopping")
        return (self.dataset, self.backbone, self.variant)

    @property
    def label(self) -> str:
        if self.protocol:
            return f"{self.dataset} table7 {self.variant} {self.protocol}"
        return f"{self.dataset} {self.backbone} {self.variant}"

    def identity(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": None,
                "architecture": {"backbone": self.backbone, "variant": self.variant,
                                 "protocol": self.protocol}}

    def config_fields(self, cfg) -> dict[str, Any]:
        return {"architecture": {"variant": self.variant}, **imbalance_config(cfg)}

    def imbalance(self, options: Mapping[str, Any]):
        """The paper's imbalance recipe for the ``imbalanced`` variant (``exp100`` selects its
        own subset in ``on_select_training``)."""
        return imbalance_recipe(options) if self.variant == "imbalanced" else None

    def hooks(self) -> "ArchitectureHooks":
        return ArchitectureHooks(self)


class ArchitectureHooks(Hooks):
    """The exp100 variant's training subset, and the model's parameter count in the row."""

    def __init__(self, case: ArchitectureCase):
        self.case = case
        self.parameters: int | None = None  # from the model at fit start to the row

    def on_select_training(self, train_idx, y_train):
        if self.case.variant != "exp100":
            return None
        return apply_profile(PROFILES["exp100"], train_idx, y_train, self.seed)

    def expected_train_counts(self, counts_before: Sequence[int]) -> list[int] | None:
        return PROFILES["exp100"].counts(counts_before) if self.case.variant == "exp100" else None

    def on_fit_start(self, model) -> dict[str, Any]:
        self.parameters = int(model.count_params())
        return {}

    def on_row(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        return {} if self.parameters is None else {"parameters": self.parameters}


def arch_id(dataset: str, backbone: str, variant: str = "balanced") -> str:
    """The id (without seed) of a backbone case (formatted by the case itself)."""
    return ArchitectureCase(dataset=dataset, backbone=backbone, variant=variant).base_id


def table7_id(dataset: str, variant: str, protocol: str) -> str:
    """The id (without seed) of a Table 7 arm with a validation set."""
    return ArchitectureCase(dataset=dataset, variant=variant, protocol=protocol).base_id


def _cases() -> list[ArchitectureCase]:
    cases = []
    for dataset in DATASETS:
        table7 = {c.balance: c for c in paper.CASES
                  if c.table == "table7" and c.dataset == dataset}
        # Balanced first for each backbone: it builds the backbone's model, the other variants
        # reuse it, so time and memory pair like with like across backbones.
        for backbone in KERAS_APPLICATIONS:
            for variant in VARIANTS:
                reference = (backbone, variant) == (REFERENCE, "balanced")
                cases.append(ArchitectureCase(
                    dataset=dataset, backbone=backbone, variant=variant,
                    epochs=EPOCHS[dataset], augment=True, bounds=_BOUNDS,
                    paper=table7["balanced"].paper if reference else _NOT_IN_PAPER,
                    note=f"{KERAS_APPLICATIONS[backbone]}, the paper's head, Adam and balanced "
                         "recipe" + (" (Table 7's balanced run)" if reference else "")))
    for dataset in DATASETS:
        for variant in ("balanced", "imbalanced"):
            source = paper.CASES_BY_ID[paper.case_id("table7", dataset, variant)]
            for protocol in PROTOCOLS:
                stop = PATIENCE if protocol == "earlystop" else None
                cases.append(ArchitectureCase(
                    dataset=dataset, backbone=REFERENCE, variant=variant, protocol=protocol,
                    head=source.head, epochs=source.epochs, augment=source.augment,
                    paper=source.paper, bounds=Bounds(reduced={}, paper=source.bounds.paper),
                    validation_split=VALIDATION_SPLIT, early_stopping=stop,
                    note=f"{source.id} with {VALIDATION_SPLIT:.0%} held out for validation, "
                         + (f"early stopping (patience {PATIENCE})" if stop else
                            "every epoch trained")))
    return cases


CASES: tuple[ArchitectureCase, ...] = tuple(_cases())
CASES_BY_ID: dict[str, ArchitectureCase] = {case.id: case for case in CASES}


# -- comparisons and claims ------------------------------------------------------------------------

SCORES = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr_macro")
COSTS = ("train_time", "memory")  # the paper's efficiency argument: steady time, added memory
TABLE7_SCORES = SCORES + ("reduced_recall",)


def _comparisons() -> tuple[Comparison, ...]:
    out = []
    for dataset in DATASETS:
        for variant in VARIANTS:  # ResNet50 (treatment) against each backbone, same data
            out.extend(Comparison(f"architectures-{dataset}-{variant}", "backbone",
                                  arch_id(dataset, other, variant),
                                  arch_id(dataset, REFERENCE, variant), SCORES + COSTS)
                       for other in OTHERS)
        for variant in VARIANTS[1:]:  # ResNet50's imbalance cost against each backbone's
            out.extend(Comparison(f"architectures-imbalance-{dataset}-{variant}", "backbone",
                                  arch_id(dataset, other, variant),
                                  arch_id(dataset, REFERENCE, variant), ("accuracy",),
                                  baseline_minus=arch_id(dataset, other),
                                  treatment_minus=arch_id(dataset, REFERENCE))
                       for other in OTHERS)
        for protocol in PROTOCOLS:  # Table 7's comparison under each protocol
            out.append(Comparison(f"architectures-table7-{protocol}", "variant",
                                  table7_id(dataset, "balanced", protocol),
                                  table7_id(dataset, "imbalanced", protocol),
                                  TABLE7_SCORES + COSTS))
        # Table 7's imbalance effect with early stopping against without
        out.append(Comparison(f"architectures-early-stopping-{dataset}", "early_stopping",
                              table7_id(dataset, "imbalanced", "holdout"),
                              table7_id(dataset, "imbalanced", "earlystop"), TABLE7_SCORES,
                              baseline_minus=table7_id(dataset, "balanced", "holdout"),
                              treatment_minus=table7_id(dataset, "balanced", "earlystop")))
    return tuple(out)


COMPARISONS = _comparisons()
FACTOR_FIELDS = {"backbone": ("backbone",),
                 "early_stopping": ("early_stopping", "early_stopping_monitor"),
                 "variant": ("imbalance", "architecture.variant")}


def _imbalance_check(dataset: str, other: str, variant: str) -> Check:
    return Check(arch_id(dataset, other, variant), arch_id(dataset, REFERENCE, variant),
                 "accuracy", "not lower", baseline_minus=arch_id(dataset, other),
                 treatment_minus=arch_id(dataset, REFERENCE))


_NAMES = ", ".join(KERAS_APPLICATIONS[o] for o in OTHERS)
CLAIMS: tuple[Claim, ...] = (
    *(Claim(f"resnet50-loses-no-more-to-{variant}",
            f"ResNet50 loses no more accuracy to imbalance ({label}) than {_NAMES} "
            "(imbalanced minus balanced accuracy, paired by seed, both data sets)",
            "literature review (ResNets beat or match VGG16, DenseNet, MobileNet) and "
            "conclusion (ResNet50's robustness to class imbalance); not tested there",
            tuple(_imbalance_check(d, o, variant) for d in DATASETS for o in OTHERS))
      for variant, label in (("imbalanced", "the paper's recipe"), ("exp100", "exp100"))),
    Claim("resnet50-beats-mobilenet-cifar10",
          "ResNet50 beats MobileNet on CIFAR-10 (accuracy, balanced training set; our "
          "MobileNetV2 stands for Table 11's MobileNet)",
          "Table 11, literature figures: ResNet-18 70% (Panigrahi 2024), MobileNet 68% "
          "(Howard et al. 2017), the paper's ResNet-50 73%",
          (Check(arch_id("cifar10", "mobilenetv2"), arch_id("cifar10", REFERENCE), "accuracy",
                 "higher"),)),
    Claim("early-stopping-changes-no-table7-verdict",
          "Early stopping changes no Table 7 verdict: each score's imbalanced-minus-balanced "
          "difference with early stopping is equivalent (within ±delta) to the one without",
          "conclusion ('the absence of a validation set' as a limitation)",
          tuple(Check(table7_id(d, "imbalanced", "holdout"), table7_id(d, "imbalanced",
                                                                        "earlystop"), m,
                      "equivalent", baseline_minus=table7_id(d, "balanced", "holdout"),
                      treatment_minus=table7_id(d, "balanced", "earlystop"))
                for d in DATASETS for m in TABLE7_SCORES)),
)

# Table 11 of the paper: figures it cites from other work (other networks, input sizes and
# recipes), shown beside ours as literature and never compared. (Alam et al. 2024's 82% is on
# medical images, so it sits beside nothing here.)
LITERATURE: tuple[tuple[str, str, str, float, str], ...] = (
    # (data set, our backbone it sits beside, their network, accuracy, source)
    ("cifar10", "resnet50", "ResNet", 0.76, "He et al. (2016), via Table 11"),
    ("cifar10", "resnet50", "ResNet-18", 0.70, "Panigrahi (2024), via Table 11"),
    ("cifar10", "mobilenetv2", "MobileNet (v1)", 0.68, "Howard et al. (2017), via Table 11"),
    ("cifar10", "resnet50", "ResNet-50 (the paper's, imbalanced)", 0.73, "Table 11 = Table 7"),
    ("fashion_mnist", "resnet50", "ResNet-50 (the paper's, imbalanced)", 0.86,
     "Table 11 = Table 7"),
)

FIELDS = (Field("parameters", "count", None, "d",
                doc="architectures study: parameters of the model trained (backbone and head)"),)


# -- report section --------------------------------------------------------------------------------

_CSS = {"better": "better", "worse": "worse", "equivalent": "close"}
COST_FIELDS = (("parameters", "parameters", ".3g"), ("steady_train_time_s", "train s", ".1f"),
               ("train_images_per_s", "train img/s", ".0f"),
               ("test_images_per_s", "test img/s", ".0f"), ("rss_added_mb", "added MB", ".0f"),
               ("peak_gpu_mb", "GPU MB", ".0f"))


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))
              and not isinstance(r.get(key), bool) and math.isfinite(r[key])]
    return sum(values) / len(values) if values else math.nan


def _num(value: float, spec: str = ".3f") -> str:
    return "—" if value is None or math.isnan(value) else format(value, spec)


def _verdict(result) -> str:
    if result is None or not result.n:
        return "<td>—</td>"
    relative = result.measure in COSTS
    text = _num(result.mean, "+.1%" if relative else "+.3f")
    if result.n >= 2:
        spec = "+.0%" if relative else "+.3f"
        text += f" [{_num(result.low, spec)}, {_num(result.high, spec)}]"
    css = _CSS.get(result.verdict, "")
    return (f'<td class="{css}">{text}<br><span class="note">{escape(result.verdict)} '
            f"n={result.n}</span></td>")


def section(rows: Sequence[dict[str, Any]], ctx) -> str:
    """The study's report section: accuracy and imbalance cost per backbone with the
    literature beside, time and memory per backbone, and Table 7 with and without early
    stopping; verdicts as ``comparisons.compare`` gives them (paired by seed, Holm)."""
    from resnet_harness.analysis.comparisons import case_summaries, compare, usable_rows

    table = usable_rows(rows)
    by_case: dict[str, list[dict[str, Any]]] = {}
    for (base, _), row in table.items():
        by_case.setdefault(base, []).append(row)
    summaries = case_summaries(rows, SCORES)
    # The report's own results (evaluated once); a caller without them compares here.
    results = {(*r.comparison.key, r.measure): r
               for r in (getattr(ctx, "results", ()) or compare(rows, ctx.delta, COMPARISONS))}

    def acc(case_id: str, measure: str = "accuracy") -> float:
        found = summaries.get(case_id, {}).get(measure)
        return found.mean if found else math.nan

    parts = ['<p class="note">ResNet50 is the treatment of every comparison: a verdict '
             "says how ResNet50 fares against the backbone of its row. Imbalance cost: "
             "imbalanced minus balanced accuracy (the difference comparison pairs all four "
             "runs of a seed). Literature figures come from other networks, inputs and "
             "recipes: shown, never compared.</p>"]
    for dataset in DATASETS:
        head = "".join(f"<th>{v} acc.</th>" + ("" if v == "balanced" else f"<th>{v} cost</th>")
                       + "<th>vs ResNet50</th>" for v in VARIANTS)
        lines = []
        for backbone in KERAS_APPLICATIONS:
            cells = [f'<td class="l">{escape(KERAS_APPLICATIONS[backbone])}</td>']
            for variant in VARIANTS:
                case = arch_id(dataset, backbone, variant)
                cells.append(f"<td>{_num(acc(case))}</td>")
                if variant == "balanced":
                    key = (case, arch_id(dataset, REFERENCE), "accuracy")
                else:
                    cost = acc(case) - acc(arch_id(dataset, backbone))
                    key = (case, arch_id(dataset, backbone), arch_id(dataset, REFERENCE, variant),
                           arch_id(dataset, REFERENCE), "accuracy")
                    cells.append(f"<td>{_num(cost, '+.3f')}</td>")
                cells.append(_verdict(results.get(key)) if backbone != REFERENCE
                             else "<td>reference</td>")
            cited = [f"{escape(name)} {value:.0%} <span class=\"note\">{escape(source)}</span>"
                     for d, ours, name, value, source in LITERATURE
                     if (d, ours) == (dataset, backbone)]
            cells.append(f'<td class="l">{"<br>".join(cited) or "—"}</td>')
            lines.append("<tr>" + "".join(cells) + "</tr>")
        parts.append(f"<h3>{escape(dataset)}: accuracy and imbalance cost</h3><table><tr>"
                     f'<th class="l">backbone</th>{head}<th class="l">literature (Table 11)'
                     f"</th></tr>{''.join(lines)}</table>")
    parts.append(_cost_tables(by_case, results))
    parts.append(_early_stopping_table(by_case, acc, results))
    return "".join(parts)


def _cost_tables(by_case, results) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label, _ in COST_FIELDS)
    lines = []
    for dataset in DATASETS:
        for backbone in KERAS_APPLICATIONS:
            case = arch_id(dataset, backbone)
            found = by_case.get(case, [])
            cells = "".join(f"<td>{_num(_mean(found, key), spec)}</td>"
                            for key, _, spec in COST_FIELDS)
            verdicts = "".join(
                _verdict(results.get((case, arch_id(dataset, REFERENCE), m)))
                if backbone != REFERENCE else "<td>reference</td>" for m in COSTS)
            lines.append(f'<tr><td class="l">{escape(dataset)}</td><td class="l">'
                         f"{escape(KERAS_APPLICATIONS[backbone])}</td><td>{len(found)}</td>"
                         f"{cells}{verdicts}</tr>")
    return ("<h3>Time and memory per backbone (balanced variant, means over seeds)</h3>"
            '<p class="note">Steady training time leaves out the first step (graph tracing); '
            "added MB is the process's peak during the case above its level before it; the "
            "verdicts are ResNet50's time and memory relative to the backbone's (runs that "
            "built their model pair only with runs that built theirs).</p>"
            f'<table><tr><th class="l">data set</th><th class="l">backbone</th><th>seeds</th>'
            f"{head}<th>ResNet50 train time</th><th>ResNet50 memory</th></tr>"
            f"{''.join(lines)}</table>")


def _monitor(row) -> str:
    # "val_accuracy" -> "validation accuracy"; rows keep the monitor only when not val_loss
    monitor = (row.get("config") or {}).get("early_stopping_monitor", "val_loss")
    return str(monitor).replace("val_", "validation ", 1)


def _early_stopping_table(by_case, acc, results) -> str:
    lines, monitors = [], set()
    for dataset in DATASETS:
        ids = {(v, p): table7_id(dataset, v, p) for v in ("balanced", "imbalanced")
               for p in PROTOCOLS}
        stopped = "; ".join(
            f"{v} {p}: best epoch {_num(_mean(by_case.get(i, []), 'best_epoch'), '.1f')}"
            for (v, p), i in ids.items() if p == "earlystop")
        monitors.update(_monitor(row) for (v, p), i in ids.items() if p == "earlystop"
                        for row in by_case.get(i, []))
        for measure in TABLE7_SCORES:
            effects = [acc(ids["imbalanced", p], measure) - acc(ids["balanced", p], measure)
                       for p in PROTOCOLS]
            key = (ids["imbalanced", "holdout"], ids["balanced", "holdout"],
                   ids["imbalanced", "earlystop"], ids["balanced", "earlystop"], measure)
            lines.append(f'<tr><td class="l">{escape(dataset)}</td><td class="l">'
                         f"{escape(measure)}</td>"
                         + "".join(f"<td>{_num(e, '+.3f')}</td>" for e in effects)
                         + _verdict(results.get(key)) + f'<td class="l note">{escape(stopped)}'
                         "</td></tr>")
    return ("<h3>Table 7 with and without early stopping</h3>"
            f'<p class="note">Both protocols hold out {VALIDATION_SPLIT:.0%} of the training '
            f"set; early stopping: patience {PATIENCE} on "
            f"{' and '.join(sorted(monitors)) or 'validation loss'}, best weights kept. "
            "Imbalanced minus balanced (reduced recall: of the reduced classes) under each; "
            "the verdict compares the two (equivalent: early stopping changes nothing beyond "
            "±delta).</p>"
            '<table><tr><th class="l">data set</th><th class="l">score</th><th>without</th>'
            '<th>with early stopping</th><th>difference</th><th class="l">stopping</th></tr>'
            f"{''.join(lines)}</table>")


STUDY = register(Study(
    name="architectures", title="Architectures: ResNet50 against other backbones", cases=CASES,
    opt_in=True,
    markers=(*((name, f"architectures study: the {app} backbone")
               for name, app in KERAS_APPLICATIONS.items()),
             ("early_stopping", "architectures study: Table 7 with a validation set, with and "
                                "without early stopping")),
    comparisons=COMPARISONS, claims=CLAIMS, fields=FIELDS, options=IMBALANCE_OPTIONS,
    factor_fields=FACTOR_FIELDS, report=section), __name__)
