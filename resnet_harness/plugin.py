"""The pytest plugin (registered through the ``pytest11`` entry point).

Hooks only hand work to one :class:`~resnet_harness.session.HarnessSession`; options live in
``options`` and are validated by the ``parse_*`` functions of ``config``. The plugin is inert in
a session that collects no experiment case and is given no harness option: it then sets no
environment variable, pins no GPU and writes nothing.
"""

from __future__ import annotations

import argparse

import pytest

from . import options
from .matrix import Case
from .progress import parse_progress
from .tracking import parse_tracking_uri

GROUP = "resnet-harness"
MARKERS = (
    ("cifar10", "CIFAR-10 cases"), ("fashion_mnist", "Fashion-MNIST cases"),
    ("table7", "the paper's Table 7/8 cases (balanced vs imbalanced)"),
    ("table9", "the paper's Table 9 cases (train/test splits)"),
    ("table10", "the paper's Table 10 cases (regularization)"),
    ("balanced", "cases on balanced data"), ("imbalanced", "cases on imbalanced data"),
    ("experiment", "a case of the study's matrix"),
    # The long-tail study (resnet_harness/longtail.py): its table, profiles and methods.
    ("longtail", "the long-tail study's cases (experiments/test_longtail.py)"),
    ("exp100", "long-tail profile: exponential, rho = 100"),
    ("exp10", "long-tail profile: exponential, rho = 10"),
    ("step100", "long-tail profile: step, half the classes at n_max / 100"),
    ("step10", "long-tail profile: step, half the classes at n_max / 10"),
    ("paper", "long-tail profile: the paper's own (10% of classes 0-2 removed)"),
    ("ce", "long-tail method: plain cross-entropy"),
    ("inverse_freq", "long-tail method: inverse-frequency class weights"),
    ("effective_num", "long-tail method: effective-number class weights"),
    ("resampling", "long-tail method: class-balanced resampling"),
    ("focal", "long-tail method: focal loss"),
    ("cb_focal", "long-tail method: class-balanced focal loss"),
    ("la_loss", "long-tail method: logit-adjusted loss"),
    ("posthoc_la", "long-tail method: post-hoc logit adjustment of the ce arm"),
    ("drw", "long-tail method: deferred re-weighting"),
    ("tolerance(**metrics)", "per-case baseline tolerances, e.g. tolerance(accuracy=0.02)"),
)
SESSION_KEY = pytest.StashKey["HarnessSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "resnet-harness: the ResNet50 study's experiment matrix")
    options.add_options(group, parser)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS:
        config.addinivalue_line("markers", f"{name}: {text}")
    from .session import HarnessSession, SessionError

    try:
        resolved = options.resolve(config.getoption, config.getini)
        session = HarnessSession(config, resolved)
    except (argparse.ArgumentTypeError, SessionError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "resnet_harness_session")
    from .watch import Watch

    session.watch = Watch(config, session, progress=session.run.progress,
                          mlflow_uri=session.run.mlflow)
    config.pluginmanager.register(session.watch, "resnet_harness_watch")


def case_param(case: Case):
    """``pytest.param`` of one matrix row: its id and its data-set, table and balance markers."""
    marks = [pytest.mark.experiment, getattr(pytest.mark, case.dataset),
             getattr(pytest.mark, case.table)]
    # A long-tail case's balance is its table ("longtail"); its profile and method are markers.
    marks += [getattr(pytest.mark, name) for name in
              dict.fromkeys((case.balance,) + tuple(getattr(case, "markers", ())))
              if name != case.table]
    if case.tolerances:
        marks.append(pytest.mark.tolerance(**dict(case.tolerances)))
    return pytest.param(case, id=case.id, marks=marks)


def case_params(config: pytest.Config, cases=None) -> list:
    """``pytest.param`` of every case of ``cases`` (default: the paper's matrix) this session
    runs, each seed of ``--seeds`` its own."""
    from .matrix import CASES

    cases = list(CASES if cases is None else cases)
    session = config.stash.get(SESSION_KEY, None)
    return [case_param(case) for case in (session.run.cases(cases) if session else cases)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long-tail study runs only when asked for by name (``-m longtail`` or ``-k``
    naming it), so ``pytest experiments`` stays the paper's matrix."""
    if "longtail" in f"{config.option.markexpr} {config.option.keyword}":
        return
    dropped = [item for item in items if item.get_closest_marker("longtail")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("longtail")]


class CaseCheck:
    """What the ``harness`` fixture hands a test: runs a case for that test's item."""

    def __init__(self, session, item: pytest.Item):
        self.session, self.item = session, item

    def check(self, case: Case) -> dict:
        """Run ``case``, save its row and fail the test, naming metric, value and bound, when a
        bound is broken or a baseline figure regressed. Returns the row."""
        # Closest marker last, so a test's own marker beats its class's and module's.
        marks = [dict(mark.kwargs) for mark in reversed(list(self.item.iter_markers("tolerance")))]
        self.item.stash[CASE_KEY] = case.id  # for the report that carries the row home (watch)
        row = self.session.run_case(case, marks)
        self.item.stash[ROW_KEY] = row
        if row["status"] == "failed":
            pytest.fail(f"{case.id}: {row['error']}", pytrace=False)
        return row


ROW_KEY = pytest.StashKey[dict]()
CASE_KEY = pytest.StashKey[str]()


@pytest.fixture
def harness(request: pytest.FixtureRequest) -> CaseCheck:
    """The harness for this test: ``harness.check(case)`` runs a case and asserts its bounds."""
    return CaseCheck(request.config.stash[SESSION_KEY], request.node)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    row = item.stash.get(ROW_KEY, None)
    # pytest-html registers itself whenever it is installed; build extras only for --html.
    if (report.when != "call" or row is None or not item.config.pluginmanager.hasplugin("html")
            or not item.config.getoption("htmlpath", None)):
        return
    from .report.extras import pytest_html_extras

    report.extras = list(getattr(report, "extras", [])) + pytest_html_extras(row)
