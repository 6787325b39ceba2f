"""``--resume`` reuses a row only when it has the identity this session would give it, a run
folder holds one set of settings, and every session writing a folder holds its lock."""

from __future__ import annotations

import json

import pytest

from helpers import CONFTEST, EXPERIMENTS, FAST, fashion_arrays, write_idx_folder
from resnet_harness.storage import identity
from resnet_harness.storage.rundir import RunFolder

CASE = "table7-fashion_mnist-balanced"
REFUSED = "was run with other settings"


@pytest.fixture
def first_run(pytester) -> tuple[pytest.Pytester, str]:
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    first = pytester.runpytest_subprocess(*FAST, "-k", CASE)
    first.assert_outcomes(passed=1)
    return pytester, str((pytester.path / "reports" / "latest").resolve())


def _superseded(run_dir: str) -> list:
    return sorted((RunFolder(run_dir).path / "superseded").glob("*/cases/*.json"))


def test_identical_configuration_is_skipped(first_run):
    pytester, run_dir = first_run
    again = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir)
    again.assert_outcomes(skipped=1)


# Each option that changes a result, given another value on resume: refused, naming it.
@pytest.mark.parametrize("extra, named", [
    (("--scale", "reduced"), "--scale: 'smoke' in the folder, 'reduced' now"),
    (("--seed", "3"), "--seed: 0 in the folder, 3 now"),
    (("--deterministic",), "--deterministic: False in the folder, True now"),
    (("--epochs", "2"), "--epochs: None in the folder, 2 now"),
    (("--imbalance", "table2"), "--imbalance: 'text' in the folder, 'table2' now"),
    (("--seeds", "0-1"), "--seeds: None in the folder, [0, 1] now"),
])
def test_other_settings_are_refused_by_name(first_run, extra, named):
    pytester, run_dir = first_run
    before = RunFolder(run_dir).row_path(f"{CASE}-split_orig-reg_none").read_bytes()
    other = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir, *extra)
    assert other.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [x for x in other.stderr.str().splitlines() if x.startswith("ERROR:")]
    assert REFUSED in line and named in line and "--resume-mismatch rerun" in line
    assert RunFolder(run_dir).row_path(f"{CASE}-split_orig-reg_none").read_bytes() == before


def test_other_data_source_is_refused_then_rerun_on_request(first_run, tmp_path):
    """A row computed on the synthetic stand-in is never reused for real data: the resume is
    refused; with --resume-mismatch rerun the old rows are set aside and the case runs again."""
    pytester, run_dir = first_run
    write_idx_folder(tmp_path / "fmnist")
    args = ("--backbone", "tiny", "-p", "no:cacheprovider", "-k", CASE, "--resume", run_dir,
            "--data-dir", f"fashion_mnist={tmp_path / 'fmnist'}")
    refused = pytester.runpytest_subprocess(*args)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--data-source: 'synthetic' in the folder, 'auto' now*"])
    rerun = pytester.runpytest_subprocess(*args, "--resume-mismatch", "rerun")
    rerun.assert_outcomes(passed=1)
    (row,) = RunFolder(run_dir).rows()
    assert "fmnist" in row["data_source"]
    info = json.loads((RunFolder(run_dir).path / "run.json").read_text())
    assert info["options"]["data_source"]["value"] == "auto"  # the folder's settings are new
    (old,) = sorted((RunFolder(run_dir).path / "superseded").glob("*/cases/*.json"))
    assert json.loads(old.read_text())["data_source"].startswith("synthetic")
    assert "other settings" in (old.parent.parent / "why.txt").read_text()


def _edit_row(run_dir: str, change) -> None:
    folder = RunFolder(run_dir)
    (path,) = folder.cases_dir.glob("*.json")
    row = json.loads(path.read_text())
    change(row)
    path.write_text(json.dumps(row))


@pytest.mark.parametrize("change, named", [
    (lambda r: r["provenance"].update(git_commit="0" * 40), "code.commit"),
    (lambda r: r["provenance"]["versions"].update(tensorflow="2.0.0"), "libraries.tensorflow"),
    (lambda r: r["provenance"]["environment"].update(isa=["avx512f"]), "environment.isa"),
    (lambda r: r["provenance"]["environment"].update(onednn_max_isa="AVX2"),
     "environment.onednn_max_isa"),
])
def test_rows_of_other_code_libraries_or_environment(first_run, change, named):
    """Named and refused; kept or rerun only when the user says so."""
    pytester, run_dir = first_run
    _edit_row(run_dir, change)
    refused = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [x for x in refused.stderr.str().splitlines() if x.startswith("ERROR:")]
    assert "rows made with other code, libraries or environment" in line and named in line
    assert CASE in line and "--resume-mismatch keep" in line
    kept = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir,
                                         "--resume-mismatch", "keep")
    kept.assert_outcomes(skipped=1)
    kept.stdout.fnmatch_lines([f"resume: 1 row(s) ({CASE}*{named}*kept as they are*"])
    assert not _superseded(run_dir)
    rerun = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir,
                                          "--resume-mismatch", "rerun")
    rerun.assert_outcomes(passed=1)
    assert len(_superseded(run_dir)) == 1
    (row,) = RunFolder(run_dir).rows()
    (old,) = _superseded(run_dir)
    found = identity.differences(identity.parts(row), identity.parts(json.loads(old.read_text())))
    assert [d for d in found if d.startswith(named)]


def test_changed_data_content_is_run_again(pytester, tmp_path):
    """Same options, same folder, other images: the stored row's fingerprint no longer matches,
    so the row is set aside and the case runs again instead of being trusted."""
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    data = tmp_path / "fmnist"
    x_train, y_train, x_test, y_test = fashion_arrays()
    write_idx_folder(data, arrays=(x_train, y_train, x_test, y_test))
    args = ("--backbone", "tiny", "-p", "no:cacheprovider", "-k", CASE,
            "--data-dir", f"fashion_mnist={data}")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)
    run_dir = str((pytester.path / "reports" / "latest").resolve())
    first = RunFolder(run_dir).rows()[0]["data_fingerprint"]
    write_idx_folder(data, arrays=(255 - x_train, y_train, x_test, y_test))
    again = pytester.runpytest_subprocess(*args, "--resume", run_dir)
    again.assert_outcomes(passed=1)
    assert RunFolder(run_dir).rows()[0]["data_fingerprint"] != first
    (old,) = _superseded(run_dir)
    assert "data.fingerprint" in (old.parent.parent / "why.txt").read_text()


def test_an_invalid_stored_row_is_named_and_run_again(first_run):
    pytester, run_dir = first_run
    _edit_row(run_dir, lambda r: r["metrics"].update(accuracy=7.5))
    again = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir)
    again.assert_outcomes(passed=1)
    (old,) = _superseded(run_dir)
    assert "accuracy" in (old.parent.parent / "why.txt").read_text()


def test_a_garbage_predictions_file_is_run_again(first_run):
    """The report's warning says such a case runs again on resume: it does."""
    pytester, run_dir = first_run
    (npz,) = RunFolder(run_dir).cases_dir.glob("*.npz")
    npz.write_bytes(b"not a zip")
    again = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir)
    again.assert_outcomes(passed=1)
    (old,) = _superseded(run_dir)
    assert "not an .npz archive" in (old.parent.parent / "why.txt").read_text()
    assert npz.read_bytes()[:2] == b"PK"


def test_a_folder_in_use_is_refused(first_run):
    pytester, run_dir = first_run
    with RunFolder(run_dir).lock().acquire(timeout=1):
        busy = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir)
    assert busy.ret == pytest.ExitCode.USAGE_ERROR
    busy.stderr.fnmatch_lines([f"ERROR: run folder {run_dir} is in use by another pytest "
                               "session; wait for it to end or resume another folder"])


LOCK_PROBE = """
import subprocess, sys
from pathlib import Path

def test_zz_fresh_folder_is_locked():
    (folder,) = [p for p in (Path("reports") / "runs").iterdir()]
    probe = ("import sys; from filelock import FileLock, Timeout\\n"
             "try:\\n FileLock(sys.argv[1]).acquire(timeout=0)\\n"
             "except Timeout:\\n sys.exit(3)\\n")
    done = subprocess.run([sys.executable, "-c", probe, str(folder / ".lock")])
    assert done.returncode == 3, "a fresh run's folder must be locked while it runs"
"""


def test_a_fresh_run_holds_its_lock(pytester):
    """A fresh session locks its folder before any case runs, so a --resume of a folder another
    session is still writing is refused whichever session came first."""
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST, test_zz_probe=LOCK_PROBE)
    result = pytester.runpytest_subprocess(*FAST, "-k", f"{CASE} or fresh_folder")
    result.assert_outcomes(passed=2)


def test_a_lock_that_cannot_be_taken_is_one_line(first_run):
    """An unwritable folder (read-only file system; here its lock path is a folder) is a
    one-line error, not an INTERNALERROR."""
    pytester, run_dir = first_run
    lock = RunFolder(run_dir).path / RunFolder.LOCK
    lock.unlink(missing_ok=True)
    lock.mkdir()
    result = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--resume", run_dir)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stderr.str() + result.stdout.str()
    result.stderr.fnmatch_lines([f"ERROR: cannot lock run folder {run_dir} (*); pass a "
                                 "--report-dir (or --resume a folder) on a writable file system"])


def test_seed_and_seeds_together_are_refused(pytester):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    result = pytester.runpytest_subprocess(*FAST, "-k", CASE, "--seed", "7", "--seeds", "0-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --seed 7 and --seeds * both given: --seeds sets every "
                                 "case's seed; drop --seed"])


def test_run_json_records_the_seed_list(pytester):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    pytester.runpytest_subprocess(*FAST, "-k", CASE, "--seeds", "0-1").assert_outcomes(passed=2)
    info = json.loads((pytester.path / "reports" / "latest" / "run.json").read_text())
    assert info["seed"] is None and info["seeds"] == [0, 1]
    rows = RunFolder(pytester.path / "reports" / "latest").rows()
    assert sorted(r["seed"] for r in rows) == [0, 1]
