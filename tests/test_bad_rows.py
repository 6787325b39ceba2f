"""Every entry point that reads rows, fed one shared table of damaged rows (``bad_rows.py``).

Run folders are read by ``report``, ``claims``, ``attach`` and ``--resume``: a damaged row is
named in one line and never counted as passed (``corrupt`` in the report, set aside and run
again on resume). Results CSVs are read by ``claims``, ``save-baseline`` and ``--baseline``: a
damaged line is refused in one line naming file, line and case. Every reader says the same
words for the same damage.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bad_rows import BYSTANDER, CSV_ROWS, JSON_ROWS, VICTIM, damage_csv, damage_run, sound_run
from resnet_harness.__main__ import main


@pytest.fixture(scope="module")
def sound(tmp_path_factory) -> Path:
    """The sound run folder with its report (``results.csv``), copied by each test."""
    from resnet_harness.report import build_report

    run = sound_run(tmp_path_factory.mktemp("sound") / "run")
    build_report([run], run)
    return run


def _copy(sound: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sound, tmp_path / "run"))


def _call(argv: list[str]) -> tuple[int, list[str], str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)
    return code, err.getvalue().strip().splitlines(), out.getvalue()


def _said(lines: list[str], says: tuple[str, ...], prefix: str) -> None:
    """One line of ``lines`` starts with ``prefix`` and holds every phrase of ``says``."""
    assert "Traceback" not in "\n".join(lines)
    assert any(line.startswith(prefix) and all(s in line for s in says) for line in lines), \
        (says, lines)


def _statuses(run: Path) -> dict[str, str]:
    frame = pd.read_csv(run / "results.csv")
    return dict(zip(frame["case_id"], frame["status"]))


def test_the_sound_folder_is_read_without_a_word(sound, tmp_path):
    """The baseline of every test below: nothing damaged, nothing said, both rows passed."""
    run = _copy(sound, tmp_path)
    code, err, _ = _call(["report", str(run)])
    assert code == 0 and err == []
    assert _statuses(run) == {VICTIM: "passed", BYSTANDER: "passed"}
    code, err, _ = _call(["claims", str(run / "results.csv"), "--out", str(tmp_path / "c")])
    assert code == 0 and err == [], err


def _ids(table):
    return [bad.name for bad in table]


# -- run folders ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", JSON_ROWS, ids=_ids(JSON_ROWS))
def test_report_names_the_damaged_row_and_marks_it_corrupt(sound, tmp_path, bad):
    run = _copy(sound, tmp_path)
    damage_run(run, bad)
    code, err, _ = _call(["report", str(run)])
    assert code == 0
    _said(err, bad.says, "warning: ")
    assert _statuses(run) == {VICTIM: "corrupt", BYSTANDER: "passed"}


@pytest.mark.parametrize("bad", JSON_ROWS, ids=_ids(JSON_ROWS))
def test_claims_on_a_run_folder_name_the_damaged_row_and_leave_it_out(sound, tmp_path, bad):
    run = _copy(sound, tmp_path)
    damage_run(run, bad)
    out = tmp_path / "claims"
    code, err, _ = _call(["claims", str(run), "--out", str(out)])
    assert code == 0
    _said(err, bad.says, "warning: ")
    cases = pd.read_csv(out / "claims.csv") if (out / "claims.csv").stat().st_size else None
    assert cases is None or VICTIM not in " ".join(map(str, cases.to_numpy().ravel()))


@pytest.mark.parametrize("bad", JSON_ROWS, ids=_ids(JSON_ROWS))
def test_attach_names_the_damaged_row_and_marks_it_corrupt(sound, tmp_path, bad, monkeypatch):
    """``attach`` on a finished array (SLURM holds no task): its report reads the rows."""
    run = _copy(sound, tmp_path)
    damage_run(run, bad)
    (run / "slurm").mkdir()
    (run / "slurm" / "submitted.json").write_text(json.dumps(
        {"job_id": "77", "cases": [VICTIM, BYSTANDER]}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("squeue", "scontrol", "sacct"):  # a cluster that has forgotten the array
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    code, err, out = _call(["attach", str(run)])
    _said(err, bad.says, "warning: ")
    assert _statuses(run) == {VICTIM: "corrupt", BYSTANDER: "passed"}
    assert code == 1  # the damaged case came home without a usable row


@pytest.mark.parametrize("bad", JSON_ROWS, ids=_ids(JSON_ROWS))
def test_resume_sets_the_damaged_row_aside_to_run_it_again(sound, tmp_path, bad):
    from resnet_harness.plugin.resume import reusable
    from resnet_harness.storage.rundir import RunFolder

    run = _copy(sound, tmp_path)
    damage_run(run, bad)
    folder = RunFolder(run)
    reuse, why = reusable(folder, VICTIM, {}, "refuse")
    assert not reuse and all(s in why for s in bad.says), why
    assert not (run / "cases" / f"{VICTIM}.json").exists()  # set aside: the case runs again
    assert list((run / "superseded").rglob(f"{VICTIM}.json"))


# -- results CSVs -----------------------------------------------------------------------------------

def _damaged_csv(sound: Path, tmp_path: Path, bad) -> Path:
    run = _copy(sound, tmp_path)
    damage_csv(run / "results.csv", bad)
    return run


@pytest.mark.parametrize("bad", CSV_ROWS, ids=_ids(CSV_ROWS))
def test_claims_refuse_a_damaged_results_csv_in_one_line(sound, tmp_path, bad):
    run = _damaged_csv(sound, tmp_path, bad)
    code, err, _ = _call(["claims", str(run / "results.csv"), "--out", str(tmp_path / "c")])
    assert code == 2 and len(err) == 1, err
    _said(err, bad.says, f"error: {run / 'results.csv'}")
    assert not (tmp_path / "c" / "claims.csv").exists()


@pytest.mark.parametrize("bad", CSV_ROWS, ids=_ids(CSV_ROWS))
def test_save_baseline_refuses_a_damaged_results_csv_in_one_line(sound, tmp_path, bad):
    run = _damaged_csv(sound, tmp_path, bad)
    dest = tmp_path / "baseline.csv"
    code, err, _ = _call(["save-baseline", str(run), str(dest)])
    assert code == 2 and len(err) == 1, err
    _said(err, bad.says, f"error: {run / 'results.csv'}")
    assert not dest.exists()


@pytest.mark.parametrize("bad", CSV_ROWS, ids=_ids(CSV_ROWS))
def test_pytest_refuses_a_damaged_baseline_before_anything_runs(sound, bad, pytester):
    from helpers import CONFTEST, EXPERIMENTS

    run = _damaged_csv(sound, pytester.path, bad)
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    result = pytester.runpytest("--baseline", str(run / "results.csv"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, lines
    assert all(s in lines[0] for s in bad.says) and "--baseline" in lines[0], lines
    assert not (pytester.path / "reports" / "runs").exists()


# -- what editors do to a sound CSV is not damage ----------------------------------------------------

@pytest.mark.parametrize("edit", ["crlf", "bom", "blank-line-at-end"])
def test_a_csv_saved_by_an_editor_reads_as_the_original(sound, tmp_path, edit):
    run = _copy(sound, tmp_path)
    csv = run / "results.csv"
    text = csv.read_bytes()
    edited = {"crlf": text.replace(b"\n", b"\r\n"), "bom": b"\xef\xbb\xbf" + text,
              "blank-line-at-end": text + b"\n"}[edit]
    csv.write_bytes(edited)
    code, err, _ = _call(["claims", str(csv), "--out", str(tmp_path / "edited")])
    assert code == 0 and err == [], err
    csv.write_bytes(text)
    code, err, _ = _call(["claims", str(csv), "--out", str(tmp_path / "original")])
    assert code == 0
    for name in ("claims.csv", "comparisons.csv"):
        assert (tmp_path / "edited" / name).read_bytes() == \
            (tmp_path / "original" / name).read_bytes(), name
