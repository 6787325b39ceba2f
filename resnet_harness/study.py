"""The Study API: what a study declares, and the registry that answers "the study of this case".

A study is one module that builds a :class:`Study` and passes it to :func:`register`:

- its **cases**, frozen dataclasses deriving from :class:`Case` (an id scheme, the data variant
  they ask for, the head, the schedule, the figures a publication reports for them, bounds);
- its **training hooks**, a :class:`Hooks` object per case run whose methods all do nothing by
  default, in the manner of Keras' ``Callback``: named for the moment they run (which training
  images to keep, the training set itself, the model and loss, the batches, the start of fit,
  a post-hoc transform of saved predictions, the row), given their context once;
- the **row fields** it adds (:class:`~resnet_harness.storage.schema.Field` entries, registered
  into the schema with titles) and the identity keys its rows carry;
- its **comparisons** and **claims**, as data (:class:`Comparison`, :class:`Check`,
  :class:`Claim`), evaluated by :mod:`resnet_harness.analysis`;
- its **report section**, a function of the rows.

The runner, schema, bounds, claims, report, baseline and tracking code ask this registry for
"the study of this case" and never import a particular study. ``docs/writing-a-study.md`` walks
through a third study.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

from resnet_harness.storage import schema
from resnet_harness.storage.identity import split_seed
from resnet_harness.training.config import Imbalance
from resnet_harness.training.model import Head

__all__ = ["Bounds", "Case", "Check", "Claim", "Comparison", "Head", "Hooks", "PaperFigures",
           "Study", "StudyOption", "claims", "comparisons", "find_case", "get", "options",
           "register", "split_seed", "studies", "study_of"]


# -- what a case is -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PaperFigures:
    """What the study's source publication reports for one case; ``None`` where it reports
    nothing. The report puts our figures beside these."""

    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    roc_auc: float | None = None
    train_time_s: float | None = None
    test_time_s: float | None = None
    memory_mb: float | None = None
    source: str = ""  # which table(s) the figures come from

    def as_dict(self) -> dict[str, float]:
        """The reported figures only, keyed by metric name."""
        keys = ("accuracy", "precision", "recall", "f1", "roc_auc", "train_time_s",
                "test_time_s", "memory_mb")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class Bounds:
    """Sanity floors a case must clear, per scale (metric -> minimum). Range and count checks
    apply at every scale; smoke has no floors (one epoch on a few hundred images)."""

    reduced: dict[str, float] = field(default_factory=lambda: {"roc_auc_ovr_macro": 0.55})
    paper: dict[str, float] = field(default_factory=lambda: {"roc_auc_ovr_macro": 0.55})

    def floors(self, scale: str) -> dict[str, float]:
        """Floors for one scale name."""
        return dict(getattr(self, scale, {}) or {})


class Hooks:
    """A case run's hooks, in the manner of Keras' ``Callback``: one instance per run of a case
    (:meth:`Case.hooks` makes it, the run binds it once), its context on the instance, its
    methods named for the moment they run and given that moment's payload only. Every method
    does nothing by default; a study overrides what it needs. State a study carries from one
    moment to a later one (a parameter count from the model to the row) lives on the instance.

    Context, set by :meth:`bind` before the first moment: ``self.cfg`` (the case's
    :class:`~resnet_harness.training.config.CaseConfig`: scale, seed, the session's options),
    ``self.case``, ``self.seed``; and from :meth:`on_training_set` on, ``self.train_counts``
    (training images per class as selected, by their true labels).

    The moments, in the order a case runs them:

    ``on_select_training`` -> ``on_training_set`` -> ``on_build_model`` / ``on_build_loss`` ->
    ``on_batches`` -> ``on_fit_start`` -> (``fit``) -> ``on_row``; a post-hoc case runs
    ``on_select_training`` -> ``on_training_set`` -> ``on_predictions`` -> ``on_row`` instead
    of training. Declarations are read, not run: :attr:`loss_name`, :attr:`predictions_from`
    and :attr:`score_every_epoch`; :meth:`expected_train_counts` answers the bounds check.
    """

    #: ``ModelCache`` key of the loss :meth:`on_build_loss` makes; None: sparse cross-entropy.
    loss_name: str | None = None
    #: The case id (without seed) whose saved predictions this case transforms with
    #: :meth:`on_predictions` instead of training (post-hoc methods); None: this case trains.
    predictions_from: str | None = None
    #: Score the test set at every epoch's end: the row then holds the best epoch's test
    #: accuracy, chosen by the test set (optimistic) and by the validation set (the published
    #: way), beside the last epoch's; each epoch's scoring is left out of the training times.
    score_every_epoch: bool = False

    cfg: Any = None
    case: Any = None
    seed: int = 0
    train_counts: list[int] | None = None

    def bind(self, cfg) -> "Hooks":
        """Give the hooks their run's context (once, by the run); returns ``self``."""
        if self.cfg is not None and self.cfg is not cfg:
            raise RuntimeError(f"{type(self).__name__} is bound to another case run already; "
                               "Case.hooks() must return a new object on each call")
        self.cfg, self.case, self.seed = cfg, cfg.case, cfg.seed
        return self

    # -- the data -------------------------------------------------------------------------

    def on_select_training(self, train_idx, y_train):
        """While the data variant is made, after the session's imbalance recipe: ``(indices
        kept, classes reduced)`` of the capped training set, or None to keep it. Seeded by
        ``self.seed``."""
        return None

    def on_training_set(self, x_train, y_train, rng):
        """Once the images the model trains on are chosen (validation held out): the training
        images and labels to train on, ``(x_train, y_train)`` -- new arrays (the inputs are
        read-only: the data variant may be shared). ``rng`` is a ``numpy`` generator seeded by
        the case's seed; what it changes must follow from the case's fields, so that the case's
        identity says it (label noise: the noise rate is a field). The default keeps both."""
        return x_train, y_train

    def expected_train_counts(self, counts_before: Sequence[int]) -> list[int] | None:
        """The per-class training counts :meth:`on_select_training` must leave (the bounds
        check them), or None for the session's imbalance recipe."""
        return None

    # -- the model --------------------------------------------------------------------------

    def on_build_model(self) -> dict[str, Any]:
        """Extra keywords of ``training.model.build_model`` for this case's model: ``logits``,
        ``optimizer`` ("adam" | "sgd"), ``momentum``, ``weight_decay``, ``output_bias``; they
        key the model cache, so cases with other options get other models."""
        return {}

    def on_build_loss(self):
        """The Keras loss to compile (once per cached model, when :attr:`loss_name` is set)."""
        return None

    # -- training -------------------------------------------------------------------------

    def on_batches(self) -> dict[str, Any]:
        """How training batches are drawn, as keywords of the input pipeline:
        ``class_balanced`` (draw classes uniformly, or by ``class_weights``: per-class
        probabilities) and ``augmentation_kind`` ("rotate_shift_flip": the paper's rotation,
        shift and flip; "crop_flip": 4-pixel padding, random 32x32 crop per image, horizontal flip)."""
        return {}

    def on_fit_start(self, model) -> dict[str, Any]:
        """Before ``fit``: configure ``model`` for this case; returns extra ``fit`` arguments
        (``class_weight``, ``callbacks``)."""
        return {}

    def on_predictions(self, proba):
        """A post-hoc case (:attr:`predictions_from`): the transform of the saved test
        probabilities."""
        return proba

    # -- the row ----------------------------------------------------------------------------

    def on_row(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Extra fields of the result row (declared in the study's ``fields``/``row_keys``),
        from the test ``metrics``."""
        return {}


@dataclass(frozen=True, kw_only=True)
class Case:
    """A case of a study: data set, variant, head, schedule, published figures and bounds.

    A study derives its own frozen dataclass, adds its fields and defines :attr:`base_id`.
    """

    study: ClassVar[str] = ""  # the registered study's name

    dataset: str
    head: Head = Head()
    epochs: int = 1
    augment: bool = False  # rotation/shift/flip of the training data
    split: float | None = None  # train share of pooled train+test data; None: the own split
    paper: PaperFigures = PaperFigures()
    weights: str = "imagenet"  # smoke and reduced scales replace it with random init
    batch_size: int = 32
    learning_rate: float = 1e-3
    backbone: str | None = None  # None: the session's --backbone (default resnet50)
    # A case that sets validation_split runs its own validation protocol (share held out, and
    # patience when early_stopping is set) whatever --validation-split/--early-stopping say, so
    # that arms with and without early stopping run in one session. None: the session's.
    validation_split: float | None = None
    early_stopping: int | None = None  # patience in epochs (on --early-stopping-monitor)
    bounds: Bounds = Bounds()
    tolerances: tuple[tuple[str, float], ...] = ()  # per-case baseline tolerances
    note: str = ""
    seed: int | None = None  # set only under --seeds: one case per seed, the seed in its id

    @property
    def base_id(self) -> str:
        """The id without a seed; unique within the study and across studies."""
        raise NotImplementedError

    @property
    def id(self) -> str:
        """The test id: :attr:`base_id`, with ``-seed3`` appended under ``--seeds``."""
        return self.base_id + ("" if self.seed is None else f"-seed{self.seed}")

    @property
    def imbalanced(self) -> bool:
        """Whether the training set must come out imbalanced (the bounds check it)."""
        return False

    @property
    def markers(self) -> tuple[str, ...]:
        """pytest markers of the case, beyond ``experiment`` and the study's own."""
        return (self.dataset,)

    @property
    def label(self) -> str:
        """A short name for comparison tables (``cifar10 exp100 focal``)."""
        return self.base_id

    def identity(self) -> dict[str, Any]:
        """Row keys that place the case: the study's one identity declaration. Keys beyond the
        core's become the study's row keys; those holding one value (not an object) become
        ``results.csv`` columns."""
        return {"dataset": self.dataset, "split": self.split}

    def config_fields(self, cfg) -> dict[str, Any]:
        """Study settings stored in the row's ``config`` (so that resume compares them)."""
        return {}

    def in_session(self, options: Mapping[str, Any]) -> "Case":
        """The case a session with these study options (``StudyOption.dest`` -> value) runs in
        this one's place; itself by default. A study's option may swap in another arm, as the
        paper's ``--comparison controlled`` does."""
        return self

    def imbalance(self, options: Mapping[str, Any]) -> "Imbalance | None":
        """How this case's training set is thinned before training (which classes lose which
        share: ``training.config.Imbalance``), from the session's study options; None: kept
        as drawn. A study that selects its own subset uses ``Hooks.on_select_training``."""
        return None

    def hooks(self) -> Hooks:
        """A new :class:`Hooks` object for one run of this case (called once per run)."""
        return Hooks()


# -- comparisons and claims, as data ---------------------------------------------------------------

class _Arms:
    """The case ids a :class:`Comparison` or :class:`Check` reads: ``baseline`` and
    ``treatment``, or with ``baseline_minus``/``treatment_minus`` a difference of differences."""

    def __post_init__(self) -> None:
        if (self.baseline_minus is None) != (self.treatment_minus is None):
            raise ValueError(f"{type(self).__name__.lower()} {self.treatment} vs "
                             f"{self.baseline}: set both baseline_minus and treatment_minus "
                             "(a difference of differences) or neither")

    @property
    def is_difference(self) -> bool:
        return self.baseline_minus is not None

    @property
    def arms(self) -> tuple[str, ...]:
        """Every case id read (two, or four for a difference)."""
        return tuple(a for a in (self.baseline, self.baseline_minus, self.treatment,
                                 self.treatment_minus) if a is not None)

    @property
    def key(self) -> tuple[str, ...]:
        """What identifies the comparison (a :class:`Check` with the same key names it)."""
        # A plain comparison keeps its historical (baseline, treatment) key.
        if self.baseline_minus is None:
            return (self.baseline, self.treatment)
        return (self.baseline, self.baseline_minus, self.treatment, self.treatment_minus)


@dataclass(frozen=True)
class Comparison(_Arms):
    """Treatment arm against baseline arm (case ids without seed), paired by seed, on
    ``measures``; Holm's correction runs over a ``family``. ``factor`` names what the study
    varies between the arms (its fields are not confounds: see ``Study.factor_fields``).

    A *difference* comparison sets ``baseline_minus`` and ``treatment_minus`` too: each arm is
    then, per seed, the figure of its case minus that of its ``_minus`` case (for time and
    memory their ratio), e.g. the imbalance cost of two backbones (imbalanced minus balanced)
    compared with each other: a difference of differences, paired by seed over all four cases.
    """

    family: str
    factor: str
    baseline: str
    treatment: str
    measures: tuple[str, ...] = ("accuracy",)
    baseline_minus: str | None = None
    treatment_minus: str | None = None

    @property
    def name(self) -> str:
        if self.is_difference:
            return (f"({_label(self.treatment)} - {_label(self.treatment_minus)}) vs "
                    f"({_label(self.baseline)} - {_label(self.baseline_minus)})")
        return f"{_label(self.treatment)} vs {_label(self.baseline)}"


@dataclass(frozen=True)
class Check(_Arms):
    """A claim says: ``treatment`` moves ``measure`` in direction ``expect`` against
    ``baseline`` (``higher``, ``lower``, ``not lower`` or ``equivalent``: within the session's
    equivalence margin). ``baseline_minus``/``treatment_minus`` name a difference
    :class:`Comparison`.

    ``margin`` gives the check its own margin instead of the session's ``--equivalence-delta``
    (a score's difference, or a time's or memory's relative change): "20% label noise costs
    less than 5 points" is ``Check(clean, noisy, "accuracy", "not lower", margin=0.05)``. The
    check is then decided by where the comparison's interval (at the level its verdict used)
    lies against the margin: ``not lower`` holds when it lies above ``-margin`` and fails when
    it lies below; ``equivalent`` holds inside ``±margin`` and fails wholly outside;
    ``higher`` holds above ``+margin`` (``lower``: below ``-margin``) and fails when it lies
    wholly on the other side of it."""

    baseline: str
    treatment: str
    measure: str
    expect: str
    baseline_minus: str | None = None
    treatment_minus: str | None = None
    margin: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.expect not in EXPECTATIONS:
            raise ValueError(f"check {self.treatment} vs {self.baseline}: expect "
                             f"{self.expect!r} is not one of {', '.join(EXPECTATIONS)}")
        if self.margin is not None and not 0 < self.margin < float("inf"):
            raise ValueError(f"check {self.treatment} vs {self.baseline}: margin "
                             f"{self.margin!r} must be a number > 0")


EXPECTATIONS = ("higher", "lower", "not lower", "equivalent")


@dataclass(frozen=True)
class Claim:
    """A checkable statement of a study: supported when every check holds."""

    key: str
    statement: str
    source: str
    checks: tuple[Check, ...]


# -- a study's own options -------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyOption:
    """A command-line option a study declares for itself (``Study.options``). It joins the
    "resnet-harness" option group with the harness's own: read from ``--flag``, the environment
    (``RESNET_HARNESS_<NAME>``) and the ini file (``harness_<name>``), parsed by ``parse`` (an
    ``argparse.ArgumentTypeError`` naming the bad value), recorded in ``run.json`` and compared
    by ``--resume``. A case's hooks read it with :meth:`value`; its ``config_fields`` put it in
    the row's identity where it changes a result.

    The options exist once pytest parses the command line: a study with options is imported
    before that (a built-in study, or a project's study imported by its ``conftest.py``).
    """

    flag: str
    parse: Callable[[str], Any]
    help: str
    default: Any = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def value(self, cfg) -> Any:
        """This option's value in a case run (``cfg``: its ``CaseConfig``, or the session's
        study options as a mapping); the default when the session did not set it."""
        options = cfg if isinstance(cfg, Mapping) else getattr(cfg, "study_options", None)
        found = (options or {}).get(self.dest)
        return self.default if found is None else found


_OPTIONS_PARSED = False  # set once pytest has declared the options (plugin.options)


def options() -> tuple[StudyOption, ...]:
    """Every registered study's options, in registration order, each once (studies may share
    one)."""
    return tuple({id(o): o for s in _STUDIES.values() for o in s.options}.values())


def options_declared() -> None:
    """Called when pytest declares the options: a study with options registered later would
    have options nobody can set, which :func:`register` then refuses."""
    global _OPTIONS_PARSED
    _OPTIONS_PARSED = True


# -- the study ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Study:
    """One study: everything the harness needs to run, judge, compare and report it."""

    name: str  # also its pytest marker
    title: str
    cases: tuple[Case, ...]
    markers: tuple[tuple[str, str], ...] = ()  # (marker, description) beyond the data sets
    opt_in: bool = False  # runs only when -m/-k names it (plain `pytest experiments` skips it)
    comparisons: tuple[Comparison, ...] = ()
    claims: tuple[Claim, ...] = ()
    fields: tuple[schema.Field, ...] = ()  # row fields it adds (the schema registers them)
    options: tuple[StudyOption, ...] = ()  # command-line options of its own
    # Derived at registration from its cases' one identity declaration (``Case.identity``):
    # the keys its rows carry beyond the core's, and of those the ones that hold one value
    # (not an object), which results.csv shows as columns. Left empty by a study.
    row_keys: tuple[str, ...] = ()
    identity_columns: tuple[str, ...] = ()
    factor_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Its report section: section(rows, ctx) -> HTML (ctx: report.html.SectionContext), or
    # "module:function" naming it, imported when a report is built (pandas stays out of a run).
    report: Callable[..., str] | str | None = None
    module: str = ""  # importable module that registers it (set by register)

    def __post_init__(self) -> None:
        ids = [case.id for case in self.cases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"study {self.name}: case ids must be unique")
        for case in self.cases:
            share = case.validation_split
            if case.early_stopping is not None and share is None:
                raise ValueError(f"study {self.name}: {case.id} sets early_stopping without a "
                                 "validation_split to watch")
            if share is not None and not 0.0 < share < 1.0:
                raise ValueError(f"study {self.name}: {case.id} validation_split {share} must "
                                 "lie strictly between 0 and 1")

    @property
    def cases_by_id(self) -> dict[str, Case]:
        return {case.id: case for case in self.cases}

    def case(self, case_id: str) -> Case | None:
        """The case of ``case_id`` (a seeded id gives the case with that seed), or None."""
        base, seed = split_seed(str(case_id))
        case = self.cases_by_id.get(base)
        return case if case is None or seed is None else replace(case, seed=seed)


_STUDIES: dict[str, Study] = {}
_BY_CASE: dict[str, Study] = {}
def register(study: Study, module: str | None = None) -> Study:
    """Make ``study`` known to every layer (its fields and row keys to the schema). Registering
    the same name again replaces it (a module imported twice). Returns the study."""
    study = replace(study, module=module or study.module)
    clash = [c.id for c in study.cases if _BY_CASE.get(c.id, study).name != study.name]
    if clash:
        raise ValueError(f"study {study.name}: case ids {clash[:3]} belong to another study")
    for case in study.cases:
        if type(case).study != study.name:
            raise ValueError(f"study {study.name}: {type(case).__name__}.study is "
                             f"{type(case).study!r}; set it to {study.name!r}")
    # Two studies may share one option (the same object, from a module both import: the
    # paper's imbalance recipe); two declarations of one flag would leave one unheard.
    taken = {o.flag: (s.name, o) for s in _STUDIES.values() if s.name != study.name
             for o in s.options}
    clash = [o.flag for o in study.options if o.flag in taken and taken[o.flag][1] is not o]
    if clash:
        raise ValueError(f"study {study.name}: option {clash[0]} is declared by study "
                         f"{taken[clash[0]][0]} already; give it another name, or declare "
                         "the same StudyOption object in both (import it from one module)")
    known = {o.flag for o in _STUDIES[study.name].options} if study.name in _STUDIES else set()
    if study.options and _OPTIONS_PARSED and {o.flag for o in study.options} - known:
        raise ValueError(f"study {study.name} declares options after pytest parsed the command "
                         "line; import its module from your conftest.py so that its options "
                         "exist when pytest starts")
    study = _with_identity(study)
    schema.register_fields(study.fields)
    schema.register_keys(study.row_keys, study.name)
    _STUDIES[study.name] = study
    _BY_CASE.update({case.id: study for case in study.cases})
    return study


def _with_identity(study: Study) -> Study:
    """``study`` with its row keys and identity columns derived from ``Case.identity`` (what a
    study declares once); a study that also lists them must list what its cases declare."""
    declared = [case.identity() for case in study.cases]
    keys = list(dict.fromkeys(k for identity in declared for k in identity))
    row_keys = tuple(k for k in keys if k not in schema.IDENTITY_KEYS)
    columns = tuple(k for k in keys if all(not isinstance(identity.get(k), (dict, list, tuple))
                                           for identity in declared))
    missing = [k for k in row_keys if k not in (study.row_keys or row_keys)]
    if missing:
        raise ValueError(f"study {study.name}: its cases' identity() holds {', '.join(missing)}, "
                         "which its row_keys leave out; drop row_keys (they follow from "
                         "identity()) or add them")
    return replace(study, row_keys=study.row_keys or row_keys,
                   identity_columns=study.identity_columns or columns)


def studies() -> tuple[Study, ...]:
    """Every registered study, in registration order."""
    return tuple(_STUDIES.values())


def get(name: str) -> Study:
    """The study called ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return _STUDIES[name]
    except KeyError:
        raise KeyError(f"unknown study {name!r}; known: {', '.join(_STUDIES)}") from None


def study_of(case_id: str) -> Study | None:
    """The study whose case ``case_id`` is (seeded ids too), or None."""
    return _BY_CASE.get(split_seed(str(case_id))[0])


def find_case(case_id: str) -> Case | None:
    """The case of ``case_id`` in any registered study (a seeded id gives that seed), or None."""
    found = study_of(case_id)
    return found.case(case_id) if found else None


# The studies that ship with the harness, by module: loaded by name like any other study.
BUILTIN = {"paper": "resnet_harness.studies.paper", "longtail": "resnet_harness.studies.longtail",
           "architectures": "resnet_harness.studies.architectures"}


def load_builtin() -> tuple[Study, ...]:
    """Register the studies that ship with the harness (the paper's, the long-tail and the
    architectures study)."""
    for module in BUILTIN.values():
        importlib.import_module(module)
    return studies()


def load(rows: Iterable[Mapping[str, Any]], problems: list[str] | None = None) -> None:
    """Import the modules of the studies that ``rows`` name and that are not registered yet (a
    report rebuilt in a fresh process, an xdist controller that collected nothing). A module
    that cannot be imported is named once in ``problems``: its rows are still shown, its
    comparisons, claims and section are not."""
    failed: set[str] = set()
    for row in rows:
        name, module = row.get("study"), row.get("study_module")
        if isinstance(name, str) and name not in _STUDIES and isinstance(module, str) and module \
                and module not in failed:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                failed.add(module)
                if problems is not None:
                    problems.append(
                        f"study {name!r}: its module {module} cannot be imported ({exc}); its "
                        "rows are shown without its comparisons, claims and section: run from "
                        "the folder that holds the module, or put that folder on PYTHONPATH")


def complete_row(row: Mapping[str, Any], run_info: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """A copy of ``row`` with its case's identity and published figures filled in from its
    study: corrupt or unfinished rows carry little more than a case id, and still land in the
    right place of every table."""
    out = dict(row)
    case = find_case(str(row.get("case_id")))
    if case is not None:
        out.setdefault("study", case.study)
        for key, value in case.identity().items():
            out.setdefault(key, value)
        if not out.get("paper") and (case.paper.as_dict() or case.paper.source):
            out["paper"] = dict(case.paper.as_dict(), source=case.paper.source)
    for key in ("scale", "seed"):
        if out.get(key) is None and run_info and run_info.get(key) is not None:
            out[key] = run_info[key]
    return out


def comparisons() -> tuple[Comparison, ...]:
    """Every registered study's comparisons."""
    return tuple(c for s in _STUDIES.values() for c in s.comparisons)


def claims() -> tuple[Claim, ...]:
    """Every registered study's claims."""
    return tuple(c for s in _STUDIES.values() for c in s.claims)


def factor_fields(factor: str) -> tuple[str, ...]:
    """The row fields that ``factor`` changes by design (not confounds), from every study."""
    for s in _STUDIES.values():
        if factor in s.factor_fields:
            return tuple(s.factor_fields[factor])
    return (factor,)


def report_section(found: Study) -> Callable[..., str] | None:
    """The study's report-section function (a ``"module:function"`` name is imported now)."""
    if isinstance(found.report, str):
        module, _, name = found.report.partition(":")
        return getattr(importlib.import_module(module), name)
    return found.report


def _label(case_id: str) -> str:
    case = find_case(case_id)
    return case.label if case is not None else case_id
