"""``--resume``: a run folder holds one set of settings, and a row is reused only when it was made
the way this session would make it (``storage.identity``).

Before anything runs, the controller compares the folder with the session:

* the settings recorded in ``run.json`` (every option that changes a result) -- a difference is
  refused, naming each one, unless ``--resume-mismatch rerun``, which sets every row of the
  folder aside (``superseded/<time>/``) and runs the selection afresh;
* the code, libraries and environment of every stored row -- rows made another way are named
  and refused unless the user says ``rerun`` (each is set aside and run again when its case
  comes) or ``keep`` (reused as they are, their provenance saying how they were made).

When its case comes, each row is checked in full (its data's fingerprint included): a row whose
meaning differs (another data content, another case definition) is set aside and run again.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from resnet_harness.storage import identity
from resnet_harness.storage.rundir import RunFolder, predictions_problem
from resnet_harness.storage.schema import RowError
from resnet_harness.training import provenance

POLICIES = ("refuse", "rerun", "keep")
# Options that shape the session (where to write, what to show or compare with), not a result.
# ``seeds`` is checked on its own: a resume may add seeds, whose rows are other files.
SESSION_ONLY = frozenset(("report_dir", "progress", "mlflow", "baseline", "tolerance", "resume",
                          "resume_mismatch", "data_dir", "equivalence_delta", "seeds",
                          "slurm", "slurm_partition", "slurm_time", "slurm_gpus", "slurm_cpus",
                          "slurm_mem", "slurm_parallelism", "slurm_wait", "slurm_option"))


def parse_policy(value: str) -> str:
    """refuse (default), rerun or keep."""
    if value not in POLICIES:
        raise argparse.ArgumentTypeError(
            f"resume mismatch policy {value!r} must be one of {', '.join(POLICIES)}")
    return value


class ResumeError(Exception):
    """The folder cannot be resumed as asked; one line naming each difference and the way on."""


def _option_values(info: dict[str, Any]) -> dict[str, Any]:
    options = info.get("options")
    if not isinstance(options, dict):
        return {}
    return {dest: entry.get("value") for dest, entry in options.items()
            if isinstance(entry, dict)}


def setting_differences(info: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Each result-changing option whose value in ``run.json`` (``info``) differs from this
    session's (``current``: ``Resolved.provenance`` values), as ``--scale: reduced in the
    folder, smoke now``. A folder without recorded options is compared on scale and seed."""
    stored = _option_values(info)
    if not stored:
        stored = {k: info[k] for k in ("scale", "seed") if k in info}
    out = []
    for dest in sorted(set(stored) & set(current) - SESSION_ONLY):
        if stored[dest] != current[dest]:
            out.append(f"--{dest.replace('_', '-')}: {stored[dest]!r} in the folder, "
                       f"{current[dest]!r} now")
    if "seeds" in stored and (stored["seeds"] is None) != (current.get("seeds") is None):
        out.append(f"--seeds: {stored['seeds']!r} in the folder, {current.get('seeds')!r} now "
                   "(case ids with and without seeds would mix)")
    return out


def stale_rows(folder: RunFolder) -> dict[str, list[str]]:
    """``{case_id: differences}`` of the folder's rows made with other code, libraries or
    environment than this process has (GPUs are compared when the case comes)."""
    here = identity.parts({"provenance": {
        "versions": provenance.versions(), "git_commit": provenance.git_commit(),
        "environment": provenance.environment(with_gpus=False)}})
    out = {}
    for row in folder.rows():
        if row.get("status") not in ("passed", "failed"):
            continue
        theirs = identity.parts(row)
        theirs["environment"] = {k: v for k, v in theirs["environment"].items() if k != "gpus"}
        found = identity.differences(here, theirs, ("code", "libraries", "environment"))
        if found:
            out[row["case_id"]] = found
    return out


def summarise(stale: dict[str, list[str]], limit: int = 3) -> str:
    """``5 rows (a, b, c, ...): code.commit: x here, y there; ...`` -- the commonest differences."""
    common = Counter(d for found in stale.values() for d in found).most_common(limit)
    ids = sorted(stale)
    names = ", ".join(ids[:limit]) + (", ..." if len(ids) > limit else "")
    return f"{len(ids)} row(s) ({names}): " + "; ".join(d for d, _ in common)


def check_folder(folder: RunFolder, current: dict[str, Any], policy: str) -> list[str]:
    """Check a folder about to be resumed; returns the lines to show in the terminal.

    ``current``: this session's option values. :class:`ResumeError` when the folder was made with
    other settings, or holds rows of other code, libraries or environment, and ``policy`` does
    not say what to do.
    """
    info = folder.run_info()
    settings = setting_differences(info, current)
    lines = []
    if settings:
        if policy != "rerun":
            raise ResumeError(
                f"{folder.path} was run with other settings ({'; '.join(settings)}); resume it "
                "with the same options, start a new run folder (drop --resume), or pass "
                "--resume-mismatch rerun to set its rows aside and rerun everything")
        moved = folder.supersede(None, "resumed with other settings: " + "; ".join(settings))
        return [f"resume: other settings ({'; '.join(settings)}); the folder's earlier results "
                f"were moved to {moved} and every selected case runs again"]
    stale = stale_rows(folder)
    if stale:
        text = summarise(stale)
        if policy == "refuse":
            raise ResumeError(
                f"{folder.path} holds rows made with other code, libraries or environment: "
                f"{text}; pass --resume-mismatch rerun to run them again or --resume-mismatch "
                "keep to reuse them as they are")
        lines.append(f"resume: {text}: " + ("kept as they are (--resume-mismatch keep)"
                                            if policy == "keep" else
                                            "set aside and run again when selected"))
    return lines


def reusable(folder: RunFolder, case_id: str, expected: dict[str, Any],
             policy: str) -> tuple[bool, str]:
    """Whether the stored row of ``case_id`` stands for the row ``expected`` (an identity) and
    why; a row that does not is set aside (``superseded/``) so that the case runs again."""
    try:
        row = folder.row(case_id)
    except RowError as exc:
        folder.supersede([case_id], f"unreadable or invalid row: {exc}")
        return False, f"its stored row was invalid ({exc}); set aside"
    if row is None:
        return False, "no row yet"
    if row.get("status") != "passed":
        return False, f"its stored row is {row.get('status')}"
    if row.get("predictions_file"):
        problem = predictions_problem(folder.path / row["predictions_file"], row)
        if problem:
            folder.supersede([case_id], problem)
            return False, f"{problem}; set aside"
    stored = identity.parts(row)
    meaning = identity.differences(expected, stored, identity.MEANING)
    other = identity.differences(expected, stored, identity.VERSIONS + ("environment",))
    if not meaning and (not other or policy == "keep"):
        return True, "kept though made another way: " + "; ".join(other) if other else "same"
    folder.supersede([case_id], "made another way: " + "; ".join(meaning + other))
    return False, "made another way (" + "; ".join((meaning + other)[:3]) + "); set aside"
