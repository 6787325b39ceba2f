"""``--resume`` reuses a row only when everything that can change its result is the same, and
holds a lock on the folder so that two sessions never train into it at once."""

from __future__ import annotations

import pytest

from helpers import CONFTEST, EXPERIMENTS, FAST, write_idx_folder
from resnet_harness.storage.rundir import RunFolder

CASE = "table7-fashion_mnist-balanced"


@pytest.fixture
def first_run(pytester) -> tuple[pytest.Pytester, str]:
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    first = pytester.runpytest_subprocess(*FAST, "-k", CASE)
    first.assert_outcomes(passed=1)
    return pytester, str((pytester.path / "reports" / "latest").resolve())


def test_identical_configuration_is_skipped(first_run):
    pytester, run_dir = first_run
    again = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir)
    again.assert_outcomes(skipped=1)


def test_other_data_is_run_again(first_run, tmp_path):
    """A row computed on the synthetic stand-in is never reused for real data."""
    pytester, run_dir = first_run
    write_idx_folder(tmp_path / "fmnist")
    other = pytester.runpytest_subprocess(
        "--backbone", "tiny", "-p", "no:cacheprovider", "-k", CASE, "--resume", run_dir,
        "--data-dir", f"fashion_mnist={tmp_path / 'fmnist'}")
    assert "skipped" not in other.stdout.str().splitlines()[-1]
    (row,) = RunFolder(run_dir).rows()
    assert "IDX" in row["data_source"] or "fmnist" in row["data_source"]


def test_determinism_is_part_of_the_identity(first_run):
    pytester, run_dir = first_run
    other = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir,
                                          "--deterministic")
    other.assert_outcomes(passed=1)
    (row,) = RunFolder(run_dir).rows()
    assert row["config"]["deterministic"] is True


def test_a_folder_in_use_is_refused(first_run):
    pytester, run_dir = first_run
    with RunFolder(run_dir).lock().acquire(timeout=1):
        busy = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir)
    assert busy.ret == pytest.ExitCode.USAGE_ERROR
    busy.stderr.fnmatch_lines([f"ERROR: run folder {run_dir} is in use by another pytest "
                               "session; wait for it to end or resume another folder"])
