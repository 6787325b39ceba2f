"""The pytest plugin. Opt-in: a project loads it from its root ``conftest.py``::

    pytest_plugins = ["resnet_harness.plugin"]

(or ``-p resnet_harness.plugin``); an environment where resnet-harness is merely installed sees
none of its options, markers or hooks. Hooks only hand work to the process's
:class:`~resnet_harness.plugin.controller.Controller` (the process a user started) or
:class:`~resnet_harness.plugin.worker.Worker` (an xdist worker); options live in ``options`` and
are validated by ``parse_*`` functions. Studies come from the registry
(:mod:`resnet_harness.study`): the built-in ones are loaded here, a project's own study registers
itself when its experiments module imports it.

The plugin is inert in a session that collects no study case and is given no harness option: it
then sets no environment variable, pins no GPU and writes nothing.
"""

from __future__ import annotations

import argparse

import pytest

import resnet_harness.plugin.options as options
from resnet_harness import study
from resnet_harness.plugin.homecoming import CASE_KEY, ROW_KEY

GROUP = "resnet-harness"
MARKERS = (("experiment", "a case of a study's matrix"),
           ("cifar10", "CIFAR-10 cases"), ("fashion_mnist", "Fashion-MNIST cases"),
           ("tolerance(**metrics)", "per-case baseline tolerances, e.g. tolerance(accuracy=0.02)"))
SESSION_KEY = pytest.StashKey[object]()


def pytest_addoption(parser: pytest.Parser) -> None:
    # The built-in studies register their backbones on import: --backbone and --weights
    # NAME=PATH are parsed before pytest_configure.
    study.load_builtin()
    group = parser.getgroup(GROUP, "resnet-harness: studies as experiment matrices")
    options.add_options(group, parser)


def _register_markers(config: pytest.Config, found: study.Study) -> None:
    known = set(config.getini("markers"))
    for name, text in ((found.name, found.title), *found.markers):
        line = f"{name}: {text}"
        if line not in known:
            config.addinivalue_line("markers", line)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS:
        config.addinivalue_line("markers", f"{name}: {text}")
    for found in study.load_builtin():
        _register_markers(config, found)
    from resnet_harness.plugin.controller import Controller
    from resnet_harness.plugin.session import SessionError
    from resnet_harness.plugin.watch import watch_for
    from resnet_harness.plugin.worker import Worker

    from resnet_harness.plugin import slurm

    try:
        resolved = options.resolve(config.getoption, config.getini)
        # An xdist worker, or a SLURM task (``--slurm``), runs cases into another process's
        # run folder; the process a user started owns the folder and the report.
        if hasattr(config, "workerinput") or slurm.task_run_dir():
            session = Worker(config, resolved)
        else:
            session = Controller(config, resolved)
    except (argparse.ArgumentTypeError, SessionError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "resnet_harness_session")
    watch = watch_for(config, session.folder, run_info=session.run_info,
                      progress=session.run.progress,
                      mlflow_uri=None if slurm.task_run_dir() else session.run.mlflow)
    session.runner.watch = watch
    config.pluginmanager.register(watch, "resnet_harness_watch")


def case_param(case: study.Case):
    """``pytest.param`` of one case: its id, ``experiment``, its study's marker and its own
    markers (data set, table, profile, ...)."""
    names = dict.fromkeys(("experiment", case.study) + tuple(case.markers))
    marks = [getattr(pytest.mark, name) for name in names]
    if case.tolerances:
        marks.append(pytest.mark.tolerance(**dict(case.tolerances)))
    return pytest.param(case, id=case.id, marks=marks)


def case_params(config: pytest.Config, cases) -> list:
    """``pytest.param`` of every case of ``cases`` (a :class:`~resnet_harness.study.Study` or a
    sequence of its cases) this session runs, each seed of ``--seeds`` its own."""
    if isinstance(cases, study.Study):
        cases = cases.cases
    cases = list(cases)
    for name in dict.fromkeys(case.study for case in cases):
        _register_markers(config, study.get(name))
    session = config.stash.get(SESSION_KEY, None)
    return [case_param(case) for case in (session.run.cases(cases) if session else cases)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An opt-in study (``Study.opt_in``) runs only when asked for by name (``-m`` or ``-k``
    naming its marker), so ``pytest experiments`` stays the paper's matrix."""
    asked = f"{config.option.markexpr} {config.option.keyword}"
    hidden = [s.name for s in study.studies() if s.opt_in and s.name not in asked]
    dropped = [item for item in items if any(item.get_closest_marker(n) for n in hidden)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


class CaseCheck:
    """What the ``harness`` fixture hands a test: runs a case for that test's item."""

    def __init__(self, session, item: pytest.Item):
        self.session, self.item = session, item

    def check(self, case: study.Case) -> dict:
        """Run ``case``, save its row and fail the test, naming metric, value and bound, when a
        bound is broken or a baseline figure regressed. Returns the row."""
        # Closest marker last, so a test's own marker beats its class's and module's.
        marks = [dict(mark.kwargs) for mark in reversed(list(self.item.iter_markers("tolerance")))]
        self.item.stash[CASE_KEY] = case.id  # for the report that carries the row home (watch)
        row = self.session.runner.run_case(case, marks)
        self.item.stash[ROW_KEY] = row
        if row["status"] == "failed":
            pytest.fail(f"{case.id}: {row['error']}", pytrace=False)
        return row


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
    from resnet_harness.report.extras import pytest_html_extras

    report.extras = list(getattr(report, "extras", [])) + pytest_html_extras(row)
