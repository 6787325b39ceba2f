"""The README's set-up block, as a newcomer runs it.

The shape of the block is checked always (three commands, one activated venv, one command form).
Running it for real (a fresh copy of the project, a fresh venv, ``pip install``, the smoke
matrix) takes minutes and needs the package index, so it runs where
``RESNET_HARNESS_README_CHECK=1`` says so (``.ci/run`` does); without network access to data it
runs step 2 on the synthetic data set, through the environment variable every option reads.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def setup_block() -> list[str]:
    """The commands of the first ``bash`` block under "Set up, run, test", comments dropped."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Set up, run, test"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_setup_block_is_three_commands_in_one_activated_venv():
    setup, run, tests = setup_block()
    assert setup.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e ")
    assert run == "pytest experiments" and tests == "pytest"
    readme = (REPO / "README.md").read_text()
    # one command form throughout: the venv is activated once, never addressed by path
    assert ".venv/bin/pytest" not in readme and ".venv/bin/pip" not in readme
    assert "../shared" not in readme  # no path that exists only beside this repository


@pytest.mark.skipif(os.environ.get("RESNET_HARNESS_README_CHECK") != "1",
                    reason="runs the README's set-up for real (minutes, package index): "
                           "RESNET_HARNESS_README_CHECK=1, as .ci/run sets")
def test_the_setup_block_runs_as_written_in_a_fresh_copy(tmp_path):
    project = tmp_path / "resnet-harness"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, project / name)
    setup, run, _ = setup_block()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST"))}
    env["RESNET_HARNESS_DATA_SOURCE"] = "synthetic"
    done = subprocess.run(["bash", "-c", f"set -e; {setup}; {run}"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=2400)
    tail = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, tail
    assert re.search(r"\b21 passed\b", done.stdout), tail
    assert (project / "reports" / "latest" / "report.html").is_file()
