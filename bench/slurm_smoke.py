"""submitit on the one-node SLURM test cluster of ``.ci/slurm.sh``: a smoke check, not a test.

1. ``executor.map_array`` of a function over 4 inputs, at most 2 at a time
   (``slurm_array_parallelism=2``); checks the results, that the tasks ran with this process's
   Python (submitit starts them with ``sys.executable`` through ``srun``) and that two ran at once.
2. A ``submitit.helpers.Checkpointable`` task interrupted while it runs, the way submitit simulates
   a preemption (``job._interrupt()``: ``scancel --signal`` SIGTERM then USR2 to the job's step;
   submitit's handler checkpoints the task, calls ``scontrol requeue`` and exits). SLURM starts it
   again, it resumes from its checkpoint and finishes.

Prints what it sees and the times, and a last line of JSON with the figures.

    .ci/slurm.sh start
    SLURM_CONF=/tmp/slurm-test/etc/slurm.conf .venv/bin/python bench/slurm_smoke.py
    .ci/slurm.sh stop

Options: ``--folder`` (submitit's folder, shared storage: a local folder on one node; default
``bench/out/slurm_smoke/<date-time>``), ``--timeout`` (seconds to wait for each part, 300),
``--interrupt`` (``submitit``: ``job._interrupt()``, the default; ``usr2``: a bare
``scancel --signal=USR2``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import submitit

HERE = Path(__file__).resolve().parent


def square(x: int) -> dict:
    """The array task: a little work, and where and how it ran."""
    start = time.time()
    time.sleep(3)
    return {
        "x": x,
        "y": x * x,
        "start": start,
        "end": time.time(),
        "host": socket.gethostname(),
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "array_job_id": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "python": sys.executable,
        "prefix": sys.prefix,
    }


class Counter(submitit.helpers.Checkpointable):
    """Counts to ``n`` one step every ``step_s``; its state is the count.

    ``Checkpointable.checkpoint`` returns a DelayedSubmission of ``self``, so on preemption the
    count so far is pickled and the requeued run starts from it.
    """

    def __init__(self) -> None:
        self.count = 0
        self.runs: list[dict] = []  # one entry per start of the task

    def __call__(self, n: int, step_s: float, progress: str) -> dict:
        self.runs.append(
            {
                "restart_count": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
                "count_at_start": self.count,
                "time": time.time(),
            }
        )
        while self.count < n:
            time.sleep(step_s)
            self.count += 1
            Path(progress).write_text(f"{self.count} {os.environ.get('SLURM_RESTART_COUNT', '0')}")
        return {"count": self.count, "runs": self.runs, "python": sys.executable}


def squeue_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T %r"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip()


def wait_done(jobs, timeout: float, what: str) -> None:
    """job.wait() without an end: a job that dies without writing its result (and no sacct here,
    so submitit sees the state UNKNOWN) would hang it forever."""
    deadline = time.time() + timeout
    while not all(j.done() for j in jobs):
        if time.time() > deadline:
            for j in jobs:
                print(f"--- {j.job_id} stderr:\n{j.stderr()}", file=sys.stderr)
            raise SystemExit(f"{what}: not done after {timeout:.0f} s")
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parser.add_argument("--folder", default=str(HERE / "out" / "slurm_smoke" / stamp))
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--interrupt", choices=["submitit", "usr2"], default="submitit")
    args = parser.parse_args()

    if subprocess.run(["sinfo", "-h"], capture_output=True, check=False).returncode != 0:
        print("sinfo fails: is the cluster up (.ci/slurm.sh start) and SLURM_CONF exported?", file=sys.stderr)
        return 2
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    accounting = "accounting_storage/none" not in config
    if not accounting:
        # No accounting: sacct fails, and submitit's status polling only logs that twice a call.
        # Turn the polling off; job.state stays UNKNOWN and done() relies on the result files.
        submitit.slurm.slurm.SlurmInfoWatcher._make_command = lambda self: None
        print("no SLURM accounting (sacct fails): submitit's sacct polling turned off, job.state is UNKNOWN")
    folder = Path(args.folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"submitit {submitit.__version__}, python {sys.executable}, folder {folder}")
    print(f"SLURM_CONF={os.environ.get('SLURM_CONF')}")
    figures: dict = {"submitit": submitit.__version__, "accounting": accounting}

    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    executor.update_parameters(
        slurm_partition="debug", timeout_min=5, cpus_per_task=1, slurm_array_parallelism=2, mem_gb=1
    )

    # 1. the job array
    t0 = time.time()
    jobs = executor.map_array(square, [0, 1, 2, 3])
    t_submit = time.time() - t0
    print(f"array: submitted {[j.job_id for j in jobs]} in {t_submit:.2f} s")
    time.sleep(1.5)
    print(subprocess.run(["squeue"], capture_output=True, text=True).stdout, end="")
    wait_done(jobs, args.timeout, "array")
    results = [j.result() for j in jobs]
    t_array = time.time() - t0
    for r in results:
        print(
            f"  x={r['x']} y={r['y']} job {r['array_job_id']}_{r['array_task_id']} on {r['host']}"
            f" ran {r['start'] - t0:5.2f}..{r['end'] - t0:5.2f} s python {r['python']}"
        )
    assert [r["y"] for r in results] == [0, 1, 4, 9], results
    assert all(r["python"] == sys.executable for r in results), "the tasks ran another Python"
    # most tasks running at once
    events = sorted([(r["start"], 1) for r in results] + [(r["end"], -1) for r in results])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most == 2, f"{most} tasks ran at once, expected 2 (slurm_array_parallelism=2)"
    print(f"array: 4 tasks, at most {most} at once, end to end {t_array:.2f} s (submit to last result)")
    how = "from sacct" if accounting else "no sacct"
    print(f"array: submitit's job.state ({how}): {jobs[0].state!r}")
    figures.update(array_end_to_end_s=round(t_array, 2), array_most_at_once=most)

    # 2. a Checkpointable task, interrupted and requeued
    progress = folder / "counter.progress"
    n, step_s = 20, 0.5
    t0 = time.time()
    job = executor.submit(Counter(), n, step_s, str(progress))
    print(f"checkpointable: submitted {job.job_id}")
    deadline = time.time() + args.timeout
    while not (progress.exists() and int(progress.read_text().split()[0]) >= 4):
        if time.time() > deadline or job.done():
            raise SystemExit("checkpointable: never got to step 4")
        time.sleep(0.1)
    count_at_interrupt = int(progress.read_text().split()[0])
    t_int = time.time()
    if args.interrupt == "submitit":
        job._interrupt()  # scancel --signal SIGTERM, then --signal USR2
        how = "job._interrupt()"
    else:
        subprocess.check_call(["scancel", "--signal=USR2", job.job_id])
        how = f"scancel --signal=USR2 {job.job_id}"
    print(f"checkpointable: {how} at step {count_at_interrupt}")
    seen: list[str] = []
    t_running_again = None
    while not job.done():
        state = squeue_state(job.job_id)
        if state and (not seen or seen[-1] != state):
            seen.append(state)
            print(f"  {time.time() - t_int:6.2f} s  squeue: {state}")
        if state.startswith("RUNNING") and len(seen) > 1 and t_running_again is None:
            t_running_again = time.time() - t_int
        if time.time() - t_int > args.timeout:
            print(job.stderr(), file=sys.stderr)
            raise SystemExit("checkpointable: not done in time")
        time.sleep(0.1)
    result = job.result()
    t_done = time.time() - t_int
    info = subprocess.run(
        ["scontrol", "show", "job", job.job_id], capture_output=True, text=True, check=False
    ).stdout
    restarts = next((w.split("=")[1] for w in info.split() if w.startswith("Restarts=")), "?")
    print(f"checkpointable: result count={result['count']}, runs:")
    for run in result["runs"]:
        print(
            f"  SLURM_RESTART_COUNT={run['restart_count']} started at count {run['count_at_start']}"
            f" ({run['time'] - t0:.2f} s after submit)"
        )
    print(f"checkpointable: scontrol show job {job.job_id}: Restarts={restarts}")
    assert result["count"] == n
    assert len(result["runs"]) == 2, result["runs"]
    assert result["runs"][1]["restart_count"] == 1
    assert result["runs"][1]["count_at_start"] >= count_at_interrupt, "did not resume from the checkpoint"
    print(
        f"checkpointable: interrupt -> running again {t_running_again if t_running_again is None else round(t_running_again, 2)} s,"
        f" interrupt -> result {t_done:.2f} s (the rest of the work: {(n - result['runs'][1]['count_at_start']) * step_s:.1f} s)"
    )
    log = job.stdout() or ""  # submitit logs INFO and up there; stderr repeats the warnings
    for line in log.splitlines():
        if any(k in line for k in ("Caught signal", "Bypassing signal", "Requeued job", "Calling checkpoint", "Exiting", "Starting with")):
            print(f"  log: {line.strip()}")
    figures.update(
        requeue_to_running_s=None if t_running_again is None else round(t_running_again, 2),
        requeue_to_result_s=round(t_done, 2),
        resumed_at=result["runs"][1]["count_at_start"],
        interrupted_at=count_at_interrupt,
        interrupt=args.interrupt,
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
