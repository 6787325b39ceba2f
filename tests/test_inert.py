"""The plugin is opt-in. In an environment where resnet-harness is installed, a project that does
not load it sees none of its options or markers, deselects nothing and keeps its environment; a
project that loads it (root conftest) but runs no study case stays untouched too, until a
harness option asks for it."""

from __future__ import annotations

import json
import os

import pytest

from helpers import CONFTEST

UNRELATED = """
import json, os

def _dump(name):
    keep = {k: v for k, v in os.environ.items()
            if k.startswith(("TF_", "CUDA_", "RESNET_HARNESS_"))}
    with open(os.path.join(os.environ["ENV_OUT"], name + ".json"), "w") as handle:
        json.dump(keep, handle)

def test_one():
    _dump(os.environ.get("PYTEST_XDIST_WORKER", "main") + "-one")

def test_two():
    _dump(os.environ.get("PYTEST_XDIST_WORKER", "main") + "-two")
"""


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL", "TF_FORCE_GPU_ALLOW_GROWTH",
                 "RESNET_HARNESS_PARENT_CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    out = tmp_path / "env"
    out.mkdir()
    monkeypatch.setenv("ENV_OUT", str(out))
    return out


def test_unrelated_project_under_xdist_keeps_its_environment(pytester, clean_env):
    pytester.makepyfile(test_unrelated=UNRELATED)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    dumps = {p.stem: json.loads(p.read_text()) for p in clean_env.glob("*.json")}
    assert len(dumps) == 2 and all(name.startswith("gw") for name in dumps)
    before = {k: v for k, v in os.environ.items()
              if k.startswith(("TF_", "CUDA_", "RESNET_HARNESS_"))}
    assert before["CUDA_VISIBLE_DEVICES"] == "0,1"
    for name, env in dumps.items():
        assert env == before, name  # nothing added, nothing pinned
    assert not (pytester.path / "reports").exists()
    assert "= resnet-harness =" not in result.stdout.str()  # no summary section


def test_unrelated_project_sees_no_option_marker_or_deselection(pytester, clean_env):
    pytester.makepyfile(test_unrelated=UNRELATED + """
import pytest

@pytest.mark.longtail
def test_marked_like_a_study():
    pass
""")
    shown = pytester.runpytest_subprocess("--help", "-p", "no:cacheprovider").stdout.str()
    assert "--scale" not in shown and "resnet-harness" not in shown and "--seeds" not in shown
    markers = pytester.runpytest_subprocess("--markers", "-p", "no:cacheprovider").stdout.str()
    assert "table7" not in markers and "longtail:" not in markers
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)  # its own "longtail" test is not deselected
    assert "deselected" not in result.stdout.str()


def test_loaded_but_unused_it_stays_inert(pytester, clean_env):
    pytester.makepyfile(test_unrelated=UNRELATED, conftest=CONFTEST)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    before = {k: v for k, v in os.environ.items()
              if k.startswith(("TF_", "CUDA_", "RESNET_HARNESS_"))}
    for env in (json.loads(p.read_text()) for p in clean_env.glob("*.json")):
        assert env == before
    assert "--scale" in pytester.runpytest_subprocess("--help").stdout.str()
    assert not (pytester.path / "reports").exists()


def test_a_harness_option_activates_it(pytester, clean_env):
    """In a project that loads it, asking for the harness (an option) is what turns it on,
    even without its cases."""
    pytester.makepyfile(test_unrelated=UNRELATED, conftest=CONFTEST)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--seed", "1")
    result.assert_outcomes(passed=2)
    dumps = {p.stem: json.loads(p.read_text()) for p in clean_env.glob("*.json")}
    pinned = {env["CUDA_VISIBLE_DEVICES"] for env in dumps.values()}
    assert pinned <= {"0", "1"} and all(env.get("TF_ENABLE_ONEDNN_OPTS") == "1"
                                        for env in dumps.values())
    assert not (pytester.path / "reports").exists()  # no case ran: no run folder
