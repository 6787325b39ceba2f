"""The selected cases as one SLURM job array, through submitit (``--slurm``).

The pytest process a user starts collects and validates the selection as for a local run, then
submits one array task per case instead of running them. Each task runs ``python -m pytest`` with
the user's own arguments in the same folder, told by two environment variables which run folder
to write into and which case to keep: the same plugin, the same code path, the same row and
identity as a local run (the task is a :class:`~resnet_harness.plugin.worker.Worker` without
xdist). When the array is done, the submitting process builds the report from the run folder as
after a local run; with ``--slurm-wait off`` it returns at once and ``python -m resnet_harness
attach RUN_FOLDER`` waits and builds the report later.

Preemption and time limits: submitit asks SLURM for ``USR2`` before the limit and on preemption,
calls :meth:`CaseTask.checkpoint` and requeues the task; the case's pytest (a child process that
ignores ``USR2``) is killed with it, so the requeued task starts the case again cleanly (no
checkpoint inside a case: rows are written only when a case ends). ``scontrol requeue`` does the
same without submitit. A case that fails keeps its error in its row, as locally; a task that dies
before writing a row is listed with its log.

The state shown while waiting comes from the run folder (a row per finished case) and ``squeue``
(queued, running), so it needs no SLURM accounting database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from pathlib import Path
from typing import Any, Callable, Iterable

TASK_RUN_DIR = "RESNET_HARNESS_SLURM_RUN_DIR"  # a task: the run folder to write into
TASK_CASE = "RESNET_HARNESS_SLURM_CASE"  # a task: the one case id it runs
def _poll_s(text: str | None, default: float = 10.0) -> float:
    """Seconds between two looks at the queue (``RESNET_HARNESS_SLURM_POLL_S``): a positive
    number; empty, unset or not a positive number is the default (read when the plugin
    loads: a bad value must not stop it loading with a traceback)."""
    try:
        value = float(text) if text and text.strip() else default
    except ValueError:
        return default
    return value if value > 0 and value == value else default


POLL_S = _poll_s(os.environ.get("RESNET_HARNESS_SLURM_POLL_S"))
SUBMITTED = "submitted.json"  # in <run>/slurm/: the array's job id and each task's case


# submitit asks SLURM for USR2 this long before a task's limit (its default signal_delay_s) and
# requeues the task then: a limit this short signals a task before its case can end.
SIGNAL_DELAY_S = 90
MIN_TIME_MIN = 3


def parse_minutes(text: str) -> int:
    """A time limit in whole minutes (``90``) or ``H:MM`` (``1:30``), at least
    :data:`MIN_TIME_MIN`."""
    value = str(text).strip()
    try:
        if ":" in value:
            hours, minutes = value.split(":")
            if not 0 <= int(minutes) <= 59 or len(minutes) != 2:
                raise ValueError(minutes)
            total = int(hours) * 60 + int(minutes)
        else:
            total = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"slurm time limit {text!r} is not minutes (90) or H:MM with minutes 00-59 "
            "(1:30)") from None
    if total <= 0:
        raise argparse.ArgumentTypeError(f"slurm time limit {text!r} must be above 0 minutes")
    if total < MIN_TIME_MIN:
        raise argparse.ArgumentTypeError(
            f"slurm time limit {text!r} is shorter than {MIN_TIME_MIN} minutes: submitit has "
            f"SLURM signal each task {SIGNAL_DELAY_S} s before its limit and requeues it, so "
            f"its case would never end; give at least {MIN_TIME_MIN} (a reduced case takes "
            "about 2-5 minutes on a CPU core)")
    return total


def parse_count(text: str) -> int:
    """A whole number >= 0 (GPUs, CPUs, GB of memory, tasks at once)."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def parse_extra(text: str) -> tuple[str, str]:
    """``KEY=VALUE``: any other ``#SBATCH`` option (``account=lab``, ``qos=high``)."""
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(
            f"slurm option {text!r} is not KEY=VALUE, e.g. account=mylab or qos=high")
    return key.strip().replace("-", "_"), value.strip()


@dataclass(frozen=True)
class Partition:
    """What the largest node of a SLURM partition offers one task (``sinfo``)."""

    name: str
    default: bool = False
    gpus: int = 0
    cpus: int = 0
    mem_mb: int | None = None
    time_min: int | None = None  # None: no limit


class ClusterError(RuntimeError):
    """The cluster cannot be asked or cannot run the request; one line with the fix."""


SINFO_FORMAT = "%P|%G|%c|%m|%l"


def read_partitions(run: Callable[..., Any] = subprocess.run) -> list[Partition]:
    """The cluster's partitions from ``sinfo`` (each one's largest node); :class:`ClusterError`
    when ``sinfo`` cannot reach the cluster (no configuration, controller down)."""
    try:
        done = run(["sinfo", "-h", "-o", SINFO_FORMAT], capture_output=True, text=True,
                   timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ClusterError(f"--slurm cannot ask the cluster (sinfo: {type(exc).__name__}); "
                           "run from a cluster's login node, or drop --slurm") from None
    said = " ".join((done.stderr or "").split())[:300]
    if done.returncode != 0 or not done.stdout.strip():
        raise ClusterError(f"--slurm cannot reach a SLURM cluster (sinfo: "
                           f"{said or 'no partitions'}); check SLURM_CONF and that slurmctld "
                           "runs, or drop --slurm")
    found: dict[str, Partition] = {}
    for line in done.stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5:
            continue
        name, gres, cpus, mem, limit = fields
        default = name.endswith("*")
        name = name.rstrip("*")
        node = Partition(name, default, _gpus_of(gres), _int(cpus) or 0, _int(mem),
                         _slurm_minutes(limit))
        old = found.get(name)
        if old is not None:
            node = Partition(name, default or old.default, max(old.gpus, node.gpus),
                             max(old.cpus, node.cpus),
                             max(old.mem_mb or 0, node.mem_mb or 0) or None, node.time_min)
        found[name] = node
    return list(found.values())


def _int(text: str) -> int | None:
    digits = re.match(r"\d+", text.strip())
    return int(digits.group()) if digits else None


def _gpus_of(gres: str) -> int:
    """GPUs per node from a GRES string: ``gpu:4``, ``gpu:a100:4(S:0-1)``, ``(null)``."""
    total = 0
    for item in gres.split(","):
        parts = re.sub(r"\(.*?\)", "", item).split(":")
        if parts[0] == "gpu":
            total += _int(parts[-1]) or (1 if len(parts) == 1 else 0)
    return total


def _slurm_minutes(text: str) -> int | None:
    """Minutes of a SLURM time (``infinite``, ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``)."""
    text = text.strip().lower()
    if not text or text in ("infinite", "unlimited", "n/a"):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":") if p.isdigit()]
    if days:
        parts += [0] * (3 - len(parts))
        hours, minutes, _seconds = parts[:3]
    elif len(parts) == 3:
        hours, minutes, _seconds = parts
    else:
        hours, minutes = 0, parts[0] if parts else 0
    return (int(days) if days.isdigit() else 0) * 1440 + hours * 60 + minutes


# What one case took on this project's 2-core CPU (README, docs/results.md): a time limit
# under it, after submitit's signal delay, requeues the case at every limit without end.
CPU_CASE_MINUTES = {"smoke": 2, "reduced": 30, "paper": 600}


def time_limit_warning(time_min: int, scale: str, gpus: int) -> str | None:
    """A warning when ``--slurm-time`` leaves a case less than it took here on a CPU (a CPU
    task), ``None`` otherwise; on a GPU the times are not known, so nothing is said."""
    expected = CPU_CASE_MINUTES.get(scale)
    usable = time_min - SIGNAL_DELAY_S / 60
    if gpus or expected is None or usable >= expected:
        return None
    return (f"slurm: warning: --slurm-time {time_min} leaves each task {usable:.1f} min before "
            f"submitit's signal; a {scale}-scale case took about {expected} min on a 2-core CPU "
            "here, and a task that reaches its limit is requeued to start its case again: "
            "raise --slurm-time or ask for a GPU")


@dataclass(frozen=True)
class Settings:
    """What each array task asks SLURM for (``--slurm-*`` options or ``harness_slurm_*`` ini).

    Without a cluster to ask, GPUs default to 1 and CPUs to 4; :meth:`for_cluster` takes the
    defaults from the partition instead and refuses what no node of it can run."""

    partition: str | None = None
    time_min: int = 60
    gpus: int = 1
    cpus: int = 4
    mem_gb: int | None = None
    parallelism: int | None = None
    wait: bool = True
    extra: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "Settings":
        given = {"partition": values.get("slurm_partition"),
                 "time_min": values.get("slurm_time"), "gpus": values.get("slurm_gpus"),
                 "cpus": values.get("slurm_cpus"), "mem_gb": values.get("slurm_mem"),
                 "parallelism": values.get("slurm_parallelism"),
                 "wait": values.get("slurm_wait"),
                 "extra": tuple(values.get("slurm_option") or ())}
        return cls(**{k: v for k, v in given.items() if v is not None})

    @classmethod
    def for_cluster(cls, values: dict[str, Any], partitions: list[Partition]) -> "Settings":
        """Settings whose defaults fit the partition the tasks go to (GPUs: 1 where its nodes
        have GPUs, else 0; CPUs: 4 or the node's, if fewer); :class:`ClusterError` naming what
        the partition offers when a request exceeds every node of it."""
        name = values.get("slurm_partition")
        names = ", ".join(p.name for p in partitions)
        part = next((p for p in partitions if p.name == name), None) if name else next(
            (p for p in partitions if p.default), partitions[0] if partitions else None)
        if part is None:
            raise ClusterError(f"--slurm-partition {name!r} is not a partition of this cluster "
                               f"({names}); pass one of them")
        settings = cls.from_values(values)
        gpus, cpus = values.get("slurm_gpus"), values.get("slurm_cpus")
        settings = dataclass_replace(
            settings, gpus=(1 if part.gpus else 0) if gpus is None else gpus,
            cpus=min(4, part.cpus or 4) if cpus is None else cpus)
        offers = (f"partition {part.name} offers {part.gpus} GPUs, {part.cpus} CPUs, "
                  f"{'?' if part.mem_mb is None else part.mem_mb // 1024} GB and "
                  f"{'no time limit' if part.time_min is None else f'{part.time_min} minutes'}"
                  " per node")
        too_much = [what for what, asked, most in (
            (f"{settings.gpus} GPUs (--slurm-gpus)", settings.gpus, part.gpus),
            (f"{settings.cpus} CPUs (--slurm-cpus)", settings.cpus, part.cpus or None),
            (f"{settings.mem_gb} GB (--slurm-mem)", (settings.mem_gb or 0) * 1024,
             part.mem_mb),
            (f"{settings.time_min} minutes (--slurm-time)", settings.time_min, part.time_min))
            if most is not None and asked > most]
        if too_much:
            raise ClusterError(f"--slurm asks each task for {' and '.join(too_much)}, more than "
                               f"any node can give: {offers}; ask for less or pass "
                               f"--slurm-partition (partitions: {names})")
        return settings

    def executor_parameters(self) -> dict[str, Any]:
        """submitit's ``update_parameters`` keywords: one task of one node per case."""
        params: dict[str, Any] = {"timeout_min": self.time_min, "nodes": 1,
                                  "tasks_per_node": 1, "cpus_per_task": self.cpus,
                                  "slurm_additional_parameters": dict(self.extra)}
        if self.gpus:
            params["slurm_gpus_per_task"] = self.gpus
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        if self.parallelism:
            params["slurm_array_parallelism"] = self.parallelism
        return params


class TaskError(RuntimeError):
    """A task's pytest ended without a result for its case; the message names its log."""


class CaseTask:
    """One array task: ``python -m pytest ARGS`` in ``cwd``, keeping only ``case_id``.

    submitit pickles the instance; :meth:`checkpoint` makes it requeueable (same case again)."""

    def __init__(self, args: list[str], cwd: str, run_dir: str):
        self.args, self.cwd, self.run_dir = list(args), cwd, run_dir

    def __call__(self, case_id: str) -> dict[str, Any]:
        env = dict(os.environ, **{TASK_RUN_DIR: self.run_dir, TASK_CASE: case_id})
        command = [sys.executable, "-m", "pytest", *self.args, "-p", "no:cacheprovider"]
        # USR2 is submitit's: the parent requeues the task and the child dies with the step.
        done = subprocess.run(command, cwd=self.cwd, env=env, check=False,
                              preexec_fn=_ignore_usr2)
        if done.returncode not in (0, 1):  # 1: the case failed, its row says why
            raise TaskError(f"{case_id}: pytest exited with code {done.returncode}; its output "
                            "is in this task's log")
        return {"case_id": case_id, "exit_code": done.returncode}

    def checkpoint(self, case_id: str):
        """Requeue this task as it is: the case runs again from its start."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, case_id)


def _ignore_usr2() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def task_case() -> str | None:
    """The case this process runs as a SLURM task (None when it is not one)."""
    return os.environ.get(TASK_CASE) or None


def task_run_dir() -> str | None:
    """The run folder this process writes into as a SLURM task (None when it is not one)."""
    return os.environ.get(TASK_RUN_DIR) or None


def task_arguments(args: Iterable[str]) -> list[str]:
    """The user's pytest arguments as a task runs them: without ``--slurm`` (a task never
    submits; the other ``--slurm-*`` options are inert there)."""
    return [arg for arg in args if arg != "--slurm"]


def refuse_with(values: dict[str, Any], config) -> str | None:
    """Why ``--slurm`` cannot run with this session's other options (None when it can)."""
    from resnet_harness.training.config import AutoSeeds

    if getattr(config.option, "dist", "no") not in (None, "no") or getattr(
            config.option, "numprocesses", None) or getattr(config.option, "tx", None):
        return ("--slurm runs each case as its own SLURM task; drop -n/-d/--tx (xdist), or "
                "drop --slurm to run here")
    if isinstance(values.get("seeds"), AutoSeeds):
        return ("--slurm with --seeds auto would hold a task slot while a round waits for the "
                "one before; give the seeds (--seeds 0-4) or run --seeds auto here")
    if values.get("mlflow"):
        return ("--slurm does not log to MLflow yet; drop --mlflow and log the folder later "
                "from a local run, or run here with --mlflow")
    if shutil.which("sbatch") is None:
        return ("--slurm needs SLURM's sbatch on this machine's PATH; run from a cluster's "
                "login node, or drop --slurm")
    try:
        import submitit  # noqa: F401
    except ImportError:
        return '--slurm needs submitit: pip install -e ".[slurm]" (or pip install submitit)'
    try:
        Settings.for_cluster(values, read_partitions())
    except ClusterError as exc:
        return str(exc)
    return None


@dataclass
class Submission:
    """An array in flight: its job id, each task's case, and where its logs are."""

    folder: Path  # <run>/slurm
    job_id: str
    cases: list[str]
    requeued: set[str] = field(default_factory=set)

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / SUBMITTED).write_text(json.dumps(
            {"job_id": self.job_id, "cases": self.cases}, indent=1))

    @classmethod
    def load(cls, run_dir: Path) -> "Submission":
        path = Path(run_dir) / "slurm" / SUBMITTED
        try:
            data = json.loads(path.read_text())
            return cls(path.parent, str(data["job_id"]), list(data["cases"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TaskError(f"{path}: no SLURM submission recorded here ({exc}); pass the run "
                            "folder a --slurm session printed") from None

    def log(self, index: int) -> Path:
        """The task's log file (submitit writes stdout and stderr there; a one-case array is
        submitted as a plain job, whose log has no array index)."""
        array = self.folder / f"{self.job_id}_{index}_0_log.out"
        single = self.folder / f"{self.job_id}_{index}_log.out"
        return single if len(self.cases) == 1 and single.exists() and not array.exists() \
            else array


def submit(cases: list[str], args: list[str], cwd: Path, run_dir: Path,
           settings: Settings) -> Submission:
    """Submit ``cases`` as one job array; each task runs ``args`` keeping its case."""
    import submitit

    folder = run_dir / "slurm"
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(name="resnet-harness", stderr_to_stdout=True,
                               **settings.executor_parameters())
    task = CaseTask(task_arguments(args), str(cwd), str(run_dir.resolve()))
    try:
        jobs = executor.map_array(task, cases)
    except Exception as exc:  # noqa: BLE001 - submitit wraps sbatch's refusal in its own types
        text = str(exc)
        said = [line.strip() for line in text.splitlines() if "error" in line.lower()]
        raise ClusterError(f"sbatch refused the job array ({(said or [text.strip()])[-1][:300]})"
                           "; check the --slurm-* options against the cluster (sinfo), or "
                           "drop --slurm") from None
    submission = Submission(folder, str(jobs[0].job_id).split("_")[0], list(cases))
    submission.save()
    return submission


def _ask(command: list[str]) -> str:
    """What a SLURM client command prints; "" when it cannot be run or does not answer in a
    minute (the waiter then reads it as "SLURM does not say")."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def queue_states(job_id: str) -> dict[int, str]:
    """``{array index: state}`` of the array's tasks SLURM still holds (``squeue``); a task
    not listed has ended."""
    states = {}
    for line in _ask(["squeue", "-h", "-r", "-j", job_id, "-o", "%K %T"]).splitlines():
        index, _, state = line.strip().partition(" ")
        if index.isdigit():
            states[int(index)] = state
        elif index == "N/A":  # a one-case array: submitit submits it as a plain job
            states[0] = state
    return states


# squeue reasons of a pending job that no waiting will change: the request exceeds what the
# partition, its nodes or the account allow (SLURM's squeue(1), "JOB REASON CODES").
NEVER_STARTS = {
    "PartitionConfig": "the request exceeds what the partition's nodes offer",
    "PartitionNodeLimit": "the request needs more nodes than the partition allows",
    "PartitionTimeLimit": "the time limit exceeds the partition's",
    "BadConstraints": "no node has the features or resources asked for",
    "InvalidAccount": "the account is not valid",
    "InvalidQOS": "the QOS is not valid",
}
# What sacct (or the task's log) says of a task that ended, in words.
OUTCOMES = {
    "TIMEOUT": "timed out (it reached --slurm-time)",
    "CANCELLED": "cancelled (scancel)",
    "PREEMPTED": "preempted",
    "NODE_FAIL": "its node failed",
    "BOOT_FAIL": "its node failed to boot",
    "OUT_OF_MEMORY": "out of memory (raise --slurm-mem)",
    "FAILED": "its process exited with an error",
    "DEADLINE": "it missed its deadline",
    "COMPLETED": "it completed without writing a row",
}
_LOG_SIGNS = (("DUE TO TIME LIMIT", "TIMEOUT"), ("DUE TO PREEMPTION", "PREEMPTED"),
              ("DUE TO NODE FAILURE", "NODE_FAIL"), ("oom_kill", "OUT_OF_MEMORY"),
              ("Out Of Memory", "OUT_OF_MEMORY"), ("CANCELLED AT", "CANCELLED"))


def pending_reasons(job_id: str) -> dict[int, str]:
    """``{array index: reason}`` of the array's pending tasks (``squeue %r``)."""
    reasons = {}
    for line in _ask(["squeue", "-h", "-r", "-t", "PENDING", "-j", job_id, "-o",
                      "%K %r"]).splitlines():
        index, _, reason = line.strip().partition(" ")
        if reason and reason != "None" and (index.isdigit() or index == "N/A"):
            reasons[int(index) if index.isdigit() else 0] = reason.strip("()")
    return reasons


def ended_states(job_id: str) -> dict[int, str]:
    """``{array index: SLURM state}`` of the array's finished tasks from accounting
    (``sacct``); empty where accounting is not kept."""
    states = {}
    for line in _ask(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State"]).splitlines():
        job, _, state = line.strip().partition("|")
        index = job.split("_", 1)[1] if "_" in job else "0" if job == job_id else ""
        if index.isdigit() and state:
            states[int(index)] = state.split()[0].rstrip("+")
    return states


def outcome(submission: "Submission", index: int, states: dict[int, str]) -> str | None:
    """How SLURM ended the task ``index`` in words (``timed out (...)``), from accounting, else
    from the signs slurmstepd leaves in its log; None when neither tells."""
    state = states.get(index)
    if state is None:
        try:
            text = submission.log(index).read_text(errors="replace")
        except OSError:
            text = ""
        state = next((found for sign, found in _LOG_SIGNS if sign in text), None)
    return None if state is None else f"{OUTCOMES.get(state, state.lower())} [{state}]"


def restart_counts(job_id: str) -> dict[int, int]:
    """``{array index: times requeued}`` from ``scontrol show job`` (SLURM keeps a finished
    task's record for ``MinJobAge``, 300 s by default); empty when it cannot tell."""
    counts = {}
    for line in _ask(["scontrol", "-o", "show", "job", job_id]).splitlines():
        fields = dict(part.partition("=")[::2] for part in line.split() if "=" in part)
        index, restarts = fields.get("ArrayTaskId", ""), fields.get("Restarts", "")
        if index.isdigit() and restarts.isdigit():
            counts[int(index)] = int(restarts)
    return counts


@dataclass
class Tally:
    """Where each case of an array stands."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # ended without a row

    @property
    def finished(self) -> bool:
        return not self.running and not self.queued

    def line(self, submission: Submission, reasons: dict[int, str] | None = None) -> str:
        waiting = sorted({reasons[submission.cases.index(c)] for c in self.queued
                          if submission.cases.index(c) in (reasons or {})})
        parts = [f"{len(self.done)} done", f"{len(self.failed)} failed",
                 f"{len(self.running)} running",
                 f"{len(self.queued)} queued" + (f" ({', '.join(waiting)})" if waiting else "")]
        if submission.requeued:
            parts.append(f"{len(submission.requeued)} requeued")
        if self.lost:
            parts.append(f"{len(self.lost)} ended without a row")
        return f"slurm: job {submission.job_id}, {len(submission.cases)} cases: " + \
            ", ".join(parts)


def tally(submission: Submission, run_dir: Path, states: dict[int, str]) -> Tally:
    """Each case's state from its row (finished) or SLURM's queue (queued, running)."""
    from resnet_harness.storage.rundir import RunFolder
    from resnet_harness.storage.schema import RowError

    folder, out = RunFolder(run_dir), Tally()
    for index, case_id in enumerate(submission.cases):
        state = states.get(index)
        if state in ("RUNNING", "COMPLETING", "CONFIGURING"):
            out.running.append(case_id)
            continue
        if state is not None:  # PENDING, REQUEUED, REQUEUE_HOLD, SUSPENDED, ...
            out.queued.append(case_id)
            continue
        try:
            row = folder.row(case_id)
        except RowError:
            row = {"status": "corrupt"}
        if row is None:
            out.lost.append(case_id)
        elif row.get("status") == "passed":
            out.done.append(case_id)
        else:
            out.failed.append(case_id)
    return out


def wait(submission: Submission, run_dir: Path, write: Callable[[str], None],
         poll_s: float = POLL_S) -> Tally:
    """Wait until no task is queued or running, writing a line whenever the tally changes."""
    seen_running: set[str] = set()
    last = None
    while True:
        states = queue_states(submission.job_id)
        current = tally(submission, run_dir, states)
        # A task seen running and now queued again was requeued (preempted, timed out, or
        # requeued by hand).
        submission.requeued |= seen_running & set(current.queued)
        submission.requeued |= {submission.cases[index] for index, count in
                                restart_counts(submission.job_id).items()
                                if count and index < len(submission.cases)}
        seen_running |= set(current.running)
        reasons = pending_reasons(submission.job_id) if current.queued else {}
        line = current.line(submission, reasons)
        if line != last:
            write(line)
            last = line
        _refuse_never_starting(submission, current, reasons)
        if current.finished:
            _name_outcomes(submission, run_dir, current, write)
            return current
        time.sleep(poll_s)


def _refuse_never_starting(submission: Submission, current: Tally,
                           reasons: dict[int, str]) -> None:
    """Cancel an array none of whose waiting tasks can ever start, and say why in one line
    (``ClusterError``): waiting would never end."""
    waiting = [reasons.get(submission.cases.index(c)) for c in current.queued]
    if current.running or not waiting or not all(r in NEVER_STARTS for r in waiting):
        return
    _ask(["scancel", submission.job_id])
    reason = waiting[0]
    raise ClusterError(
        f"SLURM can never start job {submission.job_id}: its tasks wait with reason {reason} "
        f"({NEVER_STARTS[reason]}); cancelled it. Ask for less (--slurm-cpus, --slurm-mem, "
        "--slurm-gpus, --slurm-time) or name another --slurm-partition")


def _name_outcomes(submission: Submission, run_dir: Path, current: Tally,
                   write: Callable[[str], None]) -> None:
    """Each case that ended without a row gets SLURM's word for how it ended, in the terminal
    and on its started mark (the report's "unfinished" line then says it); then the count."""
    from resnet_harness.storage.rundir import RunFolder

    folder = RunFolder(run_dir)
    states = ended_states(submission.job_id) if current.lost else {}
    restarts = restart_counts(submission.job_id) if current.lost else {}
    for case_id in current.lost:
        index = submission.cases.index(case_id)
        said = outcome(submission, index, states) or "SLURM does not say how"
        if restarts.get(index):
            said += f", after {restarts[index]} requeue(s)"
        folder.mark_started(case_id, dict(folder.started_info(case_id), scheduler=said))
        write(f"slurm: {case_id} ended without a row: {said}; its log: "
              f"{submission.log(index)}")
    write(f"slurm: {len(submission.cases)} cases submitted: {len(current.done)} passed, "
          f"{len(current.failed)} failed, {len(current.lost)} ended without a row")
