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
             getattr(pytest.mark, case.table), getattr(pytest.mark, case.balance)]
    if case.tolerances:
        marks.append(pytest.mark.tolerance(**dict(case.tolerances)))
    return pytest.param(case, id=case.id, marks=marks)


def case_params(config: pytest.Config) -> list:
    """``pytest.param`` of every case this session runs (each seed of ``--seeds`` its own)."""
    from .matrix import CASES

    session = config.stash.get(SESSION_KEY, None)
    cases = session.run.cases() if session is not None else list(CASES)
    return [case_param(case) for case in cases]


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
