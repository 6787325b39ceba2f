"""Fixtures shared by the test files: a pytester project laid out as a user's (a root conftest
that loads the opt-in plugin, the paper's experiments module, strict markers)."""

from __future__ import annotations

import pytest

from helpers import CONFTEST, EXPERIMENTS

# No process a test started outlives the session, Ctrl-C included (tests/reaper.py).
from reaper import pytest_configure, pytest_unconfigure  # noqa: E402,F401


@pytest.fixture
def study(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with the plugin loaded and the paper's experiments module; add files or an ini
    to it, then ``study.runpytest...``."""
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    return pytester
