"""The result row: one registry of its measured fields, the keys a row may hold, the builders of
the rows that stand for cases without a result, and the check that reads one back.

Everything that shows or compares a figure -- ``results.csv``, the baseline comparison, the
terminal summary, the report's tables and the pytest-html extras -- iterates :data:`FIELDS`, so
adding a metric means one :class:`Field` entry here plus the code that computes it (in
``metrics.compute_metrics`` for a score of the predictions, in ``runner`` for anything else).
A study adds its own fields and identity keys through :func:`register_fields` and
:func:`register_keys` (``resnet_harness.study.register`` calls both); the collections below are
updated in place, so every reader sees them.

A row is a JSON object. :func:`validate_row` refuses an unknown or missing key, naming the file,
so a mistyped key fails where it is written or read instead of showing as "—" in the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

SCHEMA_VERSION = 2  # 1: rows before the registry; same keys, read as they are


@dataclass(frozen=True)
class Field:
    """One measured figure of a row.

    ``kind`` is ``score`` (0..1, from the test predictions), ``group_score`` (0..1, a score
    of a group of classes that only some rows have: the long-tail study's head/middle/tail),
    ``interval`` (an end of a score's 95% bootstrap interval over the test set),
    ``diagnostic`` (a learning
    diagnostic such as the training loss or accuracy), ``time`` (seconds), ``memory`` (MB),
    ``rate`` (images per second) or ``count``. ``tolerance`` says how a baseline comparison
    treats it: ``absolute`` (a score may drop by at most that much) or ``relative`` (a share of
    the baseline value); ``None`` keeps it out of baseline comparisons. ``source`` is where the
    row holds it: at the top level (``row``), or under ``key`` (default: the name) in the
    ``metrics`` or ``metrics_as_trained`` object.
    """

    name: str
    kind: str
    better: str | None  # "higher" | "lower" | None (no direction)
    fmt: str = ".4f"
    tolerance: str | None = None
    default_tolerance: float | None = None
    paper_key: str | None = None  # the PaperFigures attribute it is compared with
    source: str = "row"  # "row" | "metrics" | "metrics_as_trained"
    label: str | None = None  # column title in the terminal summary; None: not shown there
    doc: str = ""
    key: str | None = None  # its key inside ``source`` when that is not the name
    index: int | None = None  # the item of a stored list (an interval's low or high end)
    # A group score's classes, from its row (e.g. the long-tail study's tail: the 3 classes
    # with the fewest training images): its test-set noise is that of those classes' images.
    classes: Callable[[Mapping[str, Any]], Sequence[int]] | None = None
    title: str | None = None  # its name in comparisons and claims; None: the name, spaced

    @property
    def heading(self) -> str:
        """How comparisons, claims and the report name it (``F1 (macro)``)."""
        return self.title or self.name.replace("_", " ")

    def declaration(self) -> tuple:
        """What two registrations of one name must agree on (``classes`` by its qualified
        name: a module imported again makes a new function of the same definition)."""
        return (self.kind, self.better, self.fmt, self.tolerance, self.default_tolerance,
                self.paper_key, self.source, self.label, self.key, self.index, self.title,
                getattr(self.classes, "__qualname__", self.classes))

    @property
    def in_metrics(self) -> bool:
        """Whether it is a pure function of the reported test predictions (``metrics``)."""
        return self.source == "metrics"

    def format(self, value: Any) -> str:
        """``value`` as shown in the terminal and the extras; "-" when missing."""
        number = as_number(value)
        return "-" if number is None else format(number, self.fmt)

    def is_better(self, a: float, b: float) -> bool:
        """Whether ``a`` is better than ``b`` for this field (never, without a direction)."""
        return (a > b) if self.better == "higher" else (a < b) if self.better == "lower" else False


def _score(name: str, paper_key: str | None = None, label: str | None = None, doc: str = "",
           title: str | None = None):
    return Field(name, "score", "higher", ".3f", "absolute", 0.05, paper_key, "metrics", label,
                 doc, title=title)


def _as_trained(score: Field) -> Field:
    # The same score before BatchNorm re-estimation (--bn-recalibrate): shown beside the
    # reported one, never compared with a baseline or the paper.
    return Field(f"{score.name}_as_trained", "score", "higher", score.fmt,
                 source="metrics_as_trained", key=score.name,
                 label="acc_tr" if score.name == "accuracy" else None,
                 doc=f"{score.name} as fit left the model, before BatchNorm re-estimation")


# The order here is the order of the CSV columns, the summary and the report's metric tables.
FIELDS: tuple[Field, ...] = (
    _score("accuracy", "accuracy", "acc"),
    _score("balanced_accuracy", None, "bal_acc", "mean per-class recall"),
    # The paper does not say how it averaged precision/recall/F1; macro is compared with it.
    _score("precision_macro", "precision"),
    _score("recall_macro", "recall"),
    _score("f1_macro", "f1", "f1_mac", title="F1 (macro)"),
    _score("precision_weighted"),
    _score("recall_weighted"),
    _score("f1_weighted"),
    _score("roc_auc_ovr_macro", "roc_auc", "auc", "one-vs-rest, macro over present classes",
           title="ROC AUC"),
    Field("auc_classes", "count", None, "d", source="metrics",
          doc="classes present in the test labels, over which the AUC is averaged"),
    # Learning diagnostics (diagnostics.py): what fit saw against the model in inference mode.
    Field("train_loss", "diagnostic", "lower", ".4f", doc="final training loss of fit"),
    Field("train_accuracy", "diagnostic", "higher", ".3f", doc="final training accuracy of fit"),
    Field("train_inference_accuracy", "diagnostic", "higher", ".3f",
          doc="inference-mode accuracy on a fixed stratified training sample (reported model)"),
    Field("train_inference_accuracy_as_trained", "diagnostic", "higher", ".3f",
          doc="the same, before BatchNorm re-estimation"),
    # Epoch selection (a study's Hooks.score_every_epoch): the reported scores are the last
    # epoch's; published long-tail figures are a chosen epoch's.
    Field("test_accuracy_best_epoch", "diagnostic", "higher", ".3f",
          doc="the best test accuracy over the epochs: the test set chose the epoch "
              "(optimistic)"),
    Field("test_best_epoch", "count", None, "d", doc="that epoch (1-based)"),
    Field("test_accuracy_at_validation_best", "diagnostic", "higher", ".3f",
          doc="test accuracy at the epoch the validation set chose (--early-stopping-monitor)"),
    # Noisy on shared machines: relative tolerances (1.0 = may take twice as long). The paper's
    # time and memory are compared with the figures that do not depend on run order.
    Field("train_time_s", "time", "lower", ".1f", "relative", 1.0, label="train_s",
          doc="wall time of fit, graph tracing of the first step included: depends on run order"),
    Field("steady_train_time_s", "time", "lower", ".1f", "relative", 1.0, "train_time_s",
          label="steady_s", doc="fit without its first step (graph tracing)"),
    Field("test_time_s", "time", "lower", ".1f", "relative", 1.0, "test_time_s",
          label="test_s", doc="wall time of predicting the test set (reported model)"),
    Field("first_step_s", "time", "lower", ".1f",
          doc="first training step, i.e. graph tracing: depends on run order"),
    Field("bn_recalibration_s", "time", "lower", ".1f", doc="BatchNorm re-estimation"),
    Field("evaluation_s", "time", "lower", ".1f",
          doc="everything after fit: predictions, re-estimation, diagnostics"),
    Field("train_images_per_s", "rate", "higher", ".1f",
          doc="training throughput after the first step"),
    Field("test_images_per_s", "rate", "higher", ".1f"),
    Field("peak_rss_mb", "memory", "lower", ".0f", "relative", 0.25, label="peak_MB",
          doc="peak resident memory of the process during the case: grows with run order"),
    # Not guarded against a baseline: the first case of an architecture also adds the model it
    # builds and traces (~1 GB for ResNet50; tens of MB otherwise), so it depends on run order.
    Field("rss_added_mb", "memory", "lower", ".0f", paper_key="memory_mb", label="added_MB",
          doc="peak during the case minus the process's level before it"),
    Field("rss_before_mb", "memory", None, ".0f", doc="resident memory before the case"),
    Field("rss_model_ready_mb", "memory", None, ".0f",
          doc="resident memory once the model was built or reset"),
    Field("peak_gpu_mb", "memory", "lower", ".0f", doc="TensorFlow's peak GPU memory"),
    Field("gpu_added_mb", "memory", "lower", ".0f",
          doc="TensorFlow's GPU peak during the case minus what was in use at its start"),
    Field("train_samples", "count", None, "d"),
    Field("test_samples", "count", None, "d"),
    Field("train_inference_samples", "count", None, "d",
          doc="size of the training sample of the inference-mode diagnostic"),
    Field("as_trained_test_samples", "count", None, "d",
          doc="test images the *_as_trained scores are computed on"),
    Field("predicted_classes", "count", None, "d",
          doc="classes the reported model predicted at least once (1: degenerate)"),
)
FIELDS += tuple(_as_trained(f) for f in FIELDS if f.kind == "score")
# The per-run 95% bootstrap intervals (stats.run_intervals) as flat columns of results.csv, so a
# spreadsheet or pandas sees how far one test set lets a run see without parsing JSON.
FIELDS += tuple(Field(f"{name}_ci_{end}", "interval", None, ".3f", source="intervals", key=name,
                      index=index, doc=f"{end} end of the 95% bootstrap interval of {name}")
                for name in ("accuracy", "balanced_accuracy", "f1_macro")
                for index, end in enumerate(("low", "high")))
FIELDS: list[Field] = list(FIELDS)  # studies append theirs (register_fields)
FIELDS_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
# The reported test scores: what bounds, baselines and comparisons look at.
SCORES: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind == "score" and f.in_metrics)
# Scores that only some studies' rows have (e.g. the long-tail study's head/middle/tail).
GROUP_SCORES: list[str] = []
# Paper figure name -> our field compared with it (our macro averages for precision/recall/F1).
PAPER_METRIC: dict[str, str] = {f.paper_key: f.name for f in FIELDS if f.paper_key}
# The figures a publication may report for a case (``study.PaperFigures``).
PAPER_KEYS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc",
                               "train_time_s", "test_time_s", "memory_mb")
DEFAULT_TOLERANCES: dict[str, float] = {f.name: f.default_tolerance for f in FIELDS
                                        if f.tolerance}
SUMMARY_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.label)
STATUSES = ("passed", "failed", "error", "unfinished", "not_run", "corrupt")

# Keys a row may hold besides the fields above. Identity: known before a case runs.
# A study adds the keys its cases place themselves with (Case.identity; register_keys).
IDENTITY_KEYS = ("case_id", "study", "study_module", "dataset", "split", "scale", "seed",
                 "config", "paper", "class_names", "note")
RESULT_KEYS = ("metrics", "metrics_as_trained", "train_counts", "test_counts", "counts_before_imbalance",
               "reduced_classes", "removal_fraction", "data_source", "data_fingerprint",
               "provenance",
               # 95% bootstrap intervals over the test set: {metric: [low, high]} (stats.py)
               "intervals", "interval_method",
               # BatchNorm re-estimation and learning diagnostics (calibration.py, evaluation.py)
               "bn_recalibrated", "bn_recalibration", "inference_gap_margin", "warnings",
               "model_reused",
               # per-epoch figures of fit: {name: [value per epoch]} (runner.fit_history)
               "history",
               # --validation-split / --early-stopping (runner.validation_fields)
               "validation_counts", "best_epoch", "stopped_early",
               # digests of the row's identity parts (storage/identity.py), stamped when written
               "identity")
VERDICT_KEYS = ("status", "error", "bounds", "baseline")
OPTIONAL_KEYS = ("traceback", "predictions_file", "predictions_error", "schema",
                 "predictions_digest",  # rundir.predictions_digest: rows made before it lack it
                 # each test image's label and predicted class, and the test set's name
                 # (storage/outcomes.py): what pairs two runs image by image
                 "test_outcomes", "test_set",
                 # added when read: the folder a row came from, and the row that replaced it
                 "run_dir", "replaced_by", "replaced_because")
_TOP_LEVEL_FIELDS = tuple(f.name for f in FIELDS if f.source == "row")
KNOWN_KEYS: set[str] = set(IDENTITY_KEYS + RESULT_KEYS + VERDICT_KEYS + OPTIONAL_KEYS
                           + _TOP_LEVEL_FIELDS)
# The registered studies' names: a row of a study not registered in this process may hold keys
# that only its study knows.
KNOWN_STUDIES: set[str] = set()
REQUIRED = {
    "passed": ("case_id", "scale", "seed", "config", "status", "metrics", "train_counts",
               "test_counts", "train_time_s", "test_time_s", "peak_rss_mb"),
    "error": ("case_id", "scale", "seed", "status", "error"),
    "unfinished": ("case_id", "status"),
    "not_run": ("case_id", "status"),
    "corrupt": ("case_id", "status", "error"),
}
REQUIRED["failed"] = REQUIRED["passed"]


def register_fields(fields: Iterable[Field]) -> None:
    """Add a study's fields to the registry: the one home of a figure's kind, direction,
    format, title and how a baseline compares it. A name registered again with the same
    declaration is kept as it is; with another, ``ValueError`` names what differs (two studies
    would otherwise read one column two ways)."""
    for field in fields:
        known = FIELDS_BY_NAME.get(field.name)
        if known is not None:
            if known.declaration() != field.declaration():
                names = ("kind", "better", "fmt", "tolerance", "default_tolerance", "paper_key",
                         "source", "label", "key", "index", "title", "classes")
                differs = [f"{n}: {a!r} registered, {b!r} now" for n, a, b in
                           zip(names, known.declaration(), field.declaration()) if a != b]
                raise ValueError(f"field {field.name!r} is registered already with another "
                                 f"declaration ({'; '.join(differs)}); give the new figure "
                                 "another name, or declare it as the registered one")
            continue
        FIELDS.append(field)
        FIELDS_BY_NAME[field.name] = field
        if field.kind == "group_score":
            GROUP_SCORES.append(field.name)
        if field.tolerance:
            DEFAULT_TOLERANCES[field.name] = field.default_tolerance
        if field.source == "row":
            KNOWN_KEYS.add(field.name)


def register_keys(keys: Iterable[str], study: str | None = None) -> None:
    """Allow a study's identity keys in rows; ``study`` marks its rows as fully checkable."""
    KNOWN_KEYS.update(keys)
    if study:
        KNOWN_STUDIES.add(study)


class RowError(ValueError):
    """A row that is not a result row of this harness; the message names its file."""


def as_number(value: Any) -> float | None:
    """A finite or infinite float from a stored value; None for missing, NaN, text or bools.

    Non-finite floats are stored as null or as the strings "inf"/"-inf".
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def value(row: Mapping[str, Any], name: str) -> Any:
    """The stored value of field ``name`` in ``row`` (None when absent)."""
    field = FIELDS_BY_NAME[name]
    holder = row if field.source == "row" else (row.get(field.source) or {})
    found = holder.get(field.key or name) if isinstance(holder, Mapping) else None
    if field.index is None:
        return found
    return found[field.index] if isinstance(found, (list, tuple)) and len(found) > field.index \
        else None


def numbers(row: Mapping[str, Any], names=None) -> dict[str, float]:
    """``{field: float}`` for every field of ``names`` (default all) that ``row`` has as a number."""
    out = {}
    for name in names or FIELDS_BY_NAME:
        number = as_number(value(row, name))
        if number is not None:
            out[name] = number
    return out


def validate_row(row: Any, source: str = "row") -> dict[str, Any]:
    """``row`` itself when it is a well-formed result row, else :class:`RowError` naming
    ``source`` (a file path) and what is wrong."""
    if not isinstance(row, dict):
        raise RowError(f"{source}: a result row must be a JSON object, found "
                       f"{type(row).__name__}")
    unknown = sorted(set(row) - KNOWN_KEYS)
    if unknown and (not isinstance(row.get("study"), str) or row["study"] in KNOWN_STUDIES):
        raise RowError(f"{source}: unknown row keys {', '.join(unknown)}; register them in "
                       "resnet_harness/schema.py or remove them")
    status = row.get("status")
    if status not in STATUSES:
        raise RowError(f"{source}: status {status!r} is not one of {', '.join(STATUSES)}")
    missing = [key for key in REQUIRED[status] if key not in row]
    if missing:
        raise RowError(f"{source}: a {status} row lacks {', '.join(missing)}")
    if not isinstance(row["case_id"], str) or not row["case_id"]:
        raise RowError(f"{source}: case_id must be a non-empty string")
    for key in ("config", "paper", "metrics", "metrics_as_trained", "provenance", "bounds",
                "baseline", "intervals", "bn_recalibration"):
        if row.get(key) is not None and not isinstance(row[key], dict):
            raise RowError(f"{source}: {key} must be an object, found {type(row[key]).__name__}")
    for key in ("train_counts", "test_counts", "counts_before_imbalance", "reduced_classes",
                "validation_counts"):
        counts = row.get(key)
        if counts is not None and not (isinstance(counts, list) and all(
                isinstance(c, int) and not isinstance(c, bool) for c in counts)):
            raise RowError(f"{source}: {key} must be a list of integers")
    for field in FIELDS:
        problem = figure_problem(field, value(row, field.name))
        if problem:
            raise RowError(f"{source}: {field.name} {problem}; the file was edited or damaged: "
                           "delete it or run the case again")
    seed = row.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise RowError(f"{source}: seed is {str(seed)!r}, not a whole number; the file was "
                       "edited or damaged: delete it or run the case again")
    _check_counts(row, source)
    _check_history(row.get("history"), source)
    check_outcomes(row, source)
    return row


RECOMPUTED = ("accuracy", "balanced_accuracy", "f1_macro")  # functions of the outcomes alone
RECOMPUTE_TOLERANCE = 1e-9  # float64 sums in another order; a CSV keeps 17 digits


def check_outcomes(row: Mapping[str, Any], source: str) -> None:
    """Refuse (:class:`RowError`) a row whose ``test_outcomes`` cannot be decoded, do not match
    its ``test_counts``, or do not give its accuracy, balanced accuracy and macro F1."""
    text = row.get("test_outcomes")
    if text is None:
        return
    from resnet_harness.storage import outcomes

    try:
        y_true, y_pred = outcomes.decode(text)
    except outcomes.OutcomeError as exc:
        raise RowError(f"{source}: {exc}; the file was edited or damaged: delete it or run the "
                       "case again") from None
    counts = row.get("test_counts")
    if isinstance(counts, list) and (len(y_true) != sum(counts) or np.bincount(
            y_true, minlength=len(counts)).tolist() != list(counts)):
        raise RowError(f"{source}: test_outcomes hold {len(y_true)} test labels that do not "
                       "match test_counts; the file was edited or damaged: delete it or run "
                       "the case again")
    if not isinstance(counts, list) or not counts:
        return
    # The scores must recompute from the outcomes they were computed from: a figure edited, or
    # a row given another run's outcomes, is caught here by every reader of rows.
    recomputed = outcomes.confusion_scores(outcomes.confusion(y_true, y_pred, len(counts)))
    for name in RECOMPUTED:
        stored = as_number(value(row, name))
        if stored is not None and abs(stored - float(recomputed[name])) > RECOMPUTE_TOLERANCE:
            raise RowError(f"{source}: {name} is {stored!r} but its test_outcomes give "
                           f"{float(recomputed[name])!r}; the file was edited or damaged: "
                           "delete it or run the case again")


def _check_history(history: Any, source: str) -> None:
    if history is None:
        return
    if not isinstance(history, dict):
        raise RowError(f"{source}: history must be an object of per-epoch lists")
    lengths = set()
    for name, values in history.items():
        if not isinstance(values, list) or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                for v in values):
            raise RowError(f"{source}: history[{name!r}] must be a list of numbers (null for "
                           "a non-finite value)")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise RowError(f"{source}: history lists have different lengths {sorted(lengths)}; "
                       "the file was edited or damaged: delete it or run the case again")


# Kinds whose values are shares (0..1) and kinds that cannot be negative. A diagnostic (the
# training loss) may be infinite or missing: a diverged fit is a result, not damage.
_UNIT_KINDS = ("score", "group_score", "interval")
_NON_NEGATIVE_KINDS = ("time", "rate", "count", "memory")


def figure_problem(field: Field, stored: Any) -> str | None:
    """What is wrong with ``stored`` as a value of ``field`` -- ``"is '2.0', not a share 0..1"``
    -- or None when it is sound or absent. One rule for every reader of rows: a row file, a
    ``results.csv`` cell (text) and a baseline alike, so each refuses the same values in the same
    words."""
    if stored is None or (isinstance(stored, str) and not stored.strip()) or (
            isinstance(stored, float) and math.isnan(stored)):
        return None
    number = as_number(stored)
    shown = repr(str(stored).strip())
    if field.kind == "diagnostic":
        if number is None and str(stored).strip().lower() not in ("nan", "inf", "-inf"):
            return f"is {shown}, not a number"
        if number is not None and math.isfinite(number) and number < 0:
            return f"is {shown}, below 0"
        if field.better == "higher" and number is not None and not 0.0 <= number <= 1.0:
            return f"is {shown}, not a share 0..1"
        return None
    unit = field.kind in _UNIT_KINDS
    if number is None or not math.isfinite(number) or number < 0 or (unit and number > 1):
        return f"is {shown}, not a {'share 0..1' if unit else 'number >= 0'}"
    if field.kind == "count" and number != int(number):
        return f"is {shown}, not a whole number"
    return None


def _check_counts(row: Mapping[str, Any], source: str) -> None:
    # The per-class counts and the sample sizes are stored separately; they must agree.
    for part in ("train", "test"):
        counts, total = row.get(f"{part}_counts"), as_number(row.get(f"{part}_samples"))
        if isinstance(counts, list) and total is not None and sum(counts) != total:
            raise RowError(f"{source}: {part}_samples is {total:g} but {part}_counts add up to "
                           f"{sum(counts)}; the file was edited or damaged: delete it or run "
                           "the case again")
        if isinstance(counts, list) and any(c < 0 for c in counts):
            raise RowError(f"{source}: {part}_counts holds a negative count")


# -- rows of cases without a result ----------------------------------------------------------------

def unfinished_row(case_id: str, run_dir: Any, info: Mapping[str, Any] | None = None,
                   run_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The row shown for a case that started and never wrote its result (the process died)."""
    info = info or {}
    said = info.get("scheduler")  # how SLURM ended the task, where it ran as one
    row = {"case_id": case_id, "status": "unfinished", "run_dir": str(run_dir),
           "error": (f"ended in SLURM without a row: {said}" if said else
                     "started but never finished (the process died inside this case)"),
           "scale": info.get("scale"), "seed": info.get("seed"),
           "provenance": {"started_at": info.get("started_at"), "worker": info.get("worker")}}
    return _from_run(row, run_info)


def not_run_row(case_id: str, run_dir: Any,
                run_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The row shown for a case that was selected but never started (the run was interrupted or
    stopped early, e.g. by Ctrl-C, SIGTERM or ``-x``)."""
    row = {"case_id": case_id, "status": "not_run", "run_dir": str(run_dir),
           "error": "selected but never started (the run was interrupted or stopped early)"}
    return _from_run(row, run_info)


def corrupt_row(case_id: str, message: str) -> dict[str, Any]:
    """The row shown for a case file that could not be read as a row."""
    return {"case_id": case_id, "status": "corrupt", "error": message}


def _from_run(row: dict[str, Any], run_info: Mapping[str, Any] | None) -> dict[str, Any]:
    # The run's scale and seed where the case left none (``study.complete_row`` adds the rest).
    for key in ("scale", "seed"):
        if row.get(key) is None and run_info and run_info.get(key) is not None:
            row[key] = run_info[key]
    return row
