"""The plugin is installed into every pytest run of the environment: in a project that has
nothing to do with it, it must set no environment variable, pin no GPU and write nothing."""

from __future__ import annotations

import json
import os

import pytest

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


def test_a_harness_option_activates_it(pytester, clean_env):
    """Asking for the harness (an option) is what turns it on, even without its cases."""
    pytester.makepyfile(test_unrelated=UNRELATED)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--seed", "1")
    result.assert_outcomes(passed=2)
    dumps = {p.stem: json.loads(p.read_text()) for p in clean_env.glob("*.json")}
    pinned = {env["CUDA_VISIBLE_DEVICES"] for env in dumps.values()}
    assert pinned <= {"0", "1"} and all(env.get("TF_ENABLE_ONEDNN_OPTS") == "1"
                                        for env in dumps.values())
    assert not (pytester.path / "reports").exists()  # no case ran: no run folder
