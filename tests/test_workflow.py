"""The nightly GitHub Actions workflow is valid YAML with the shape the project relies on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "nightly.yml"
CRON_FIELD = r"(\*|\d+(-\d+)?(,\d+(-\d+)?)*)(/\d+)?"


def test_nightly_workflow_parses_and_runs_reduced_scale_against_the_baseline():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    (schedule,) = triggers["schedule"]
    fields = schedule["cron"].split()
    assert len(fields) == 5 and all(re.fullmatch(CRON_FIELD, f) for f in fields)
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] and job["timeout-minutes"] <= 360
    steps = job["steps"]
    assert all(("uses" in step) != ("run" in step) for step in steps)
    script = "\n".join(step.get("run", "") for step in steps)
    assert "pip install -e" in script
    assert "pytest experiments --scale reduced" in script and "--baseline" in script
    upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload and upload[0]["if"] == "always()" and "reports/latest/" in upload[0]["with"]["path"]


def test_nightly_tolerances_are_valid_options():
    from resnet_harness.analysis.baseline import parse_tolerance

    workflow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = workflow["jobs"].values()
    script = "\n".join(step.get("run", "") for step in job["steps"])
    values = re.findall(r"--tolerance (\S+)", script)
    assert values
    scores = dict(parse_tolerance(v) for v in values)["scores"]
    assert scores <= 0.05  # issue 10: the nightly must catch a drop of a few points
    # bench/regression_guard.py proves the guard with the nightly's own tolerances.
    guard = (WORKFLOW.parents[2] / "bench" / "regression_guard.py").read_text()
    assert f'"scores={scores:g}"' in guard
