"""``--slurm`` without a cluster: its options, what each task asks SLURM for, how a task's
command is made, and how the waiting side reads a case's state from rows and the queue. The
real cluster (submission, requeue, a failing task, the report) is tests/test_slurm.py."""

from __future__ import annotations

import argparse
import os
import re

import pandas as pd

import pytest

from resnet_harness.plugin import slurm
from resnet_harness.storage.rundir import RunFolder

from test_schema import passed_row


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30", 90), (" 5 ", 5), ("0:45", 45)])
def test_time_limits(text, minutes):
    assert slurm.parse_minutes(text) == minutes


@pytest.mark.parametrize("parse, text, message", [
    (slurm.parse_minutes, "1h", r"is not minutes \(90\) or H:MM"),
    (slurm.parse_minutes, "0", "must be above 0 minutes"),
    (slurm.parse_minutes, "1:99", "H:MM with minutes 00-59"),
    (slurm.parse_minutes, "1", "shorter than 3 minutes: submitit has SLURM signal each task 90 s "
                               "before its limit"),
    (slurm.parse_count, "two", "is not a whole number"),
    (slurm.parse_count, "-1", "must be 0 or more"),
    (slurm.parse_extra, "account", "is not KEY=VALUE"),
    (slurm.parse_extra, "=x", "is not KEY=VALUE"),
])
def test_bad_values_are_one_line_errors(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)


def test_settings_become_submitit_parameters():
    values = {"slurm_partition": "gpu", "slurm_time": 90, "slurm_gpus": 2, "slurm_cpus": 8,
              "slurm_mem": 32, "slurm_parallelism": 4, "slurm_wait": False,
              "slurm_option": [("account", "lab"), ("qos", "high")]}
    settings = slurm.Settings.from_values(values)
    assert settings.wait is False
    assert settings.executor_parameters() == {
        "timeout_min": 90, "nodes": 1, "tasks_per_node": 1, "cpus_per_task": 8,
        "slurm_gpus_per_task": 2, "slurm_partition": "gpu", "mem_gb": 32,
        "slurm_array_parallelism": 4,
        "slurm_additional_parameters": {"account": "lab", "qos": "high"}}
    # defaults: one GPU and four CPUs per task, an hour, the cluster's partition and memory
    assert slurm.Settings.from_values({}).executor_parameters() == {
        "timeout_min": 60, "nodes": 1, "tasks_per_node": 1, "cpus_per_task": 4,
        "slurm_gpus_per_task": 1, "slurm_additional_parameters": {}}
    # CPU nodes: no GPU asked for
    assert "slurm_gpus_per_task" not in slurm.Settings(gpus=0).executor_parameters()


def test_a_task_runs_the_users_arguments_without_submitting_again():
    args = ["experiments", "-m", "table7", "--slurm", "--slurm-gpus", "0", "--seeds", "0-2"]
    assert slurm.task_arguments(args) == ["experiments", "-m", "table7", "--slurm-gpus", "0",
                                          "--seeds", "0-2"]


def test_a_case_stands_where_its_row_or_the_queue_puts_it(tmp_path):
    folder = RunFolder(tmp_path / "run").create({})
    folder.write_row(dict(passed_row(), case_id="a"))
    folder.write_row(dict(passed_row(), case_id="b", status="failed", error="bound broken"))
    submission = slurm.Submission(tmp_path / "run" / "slurm", "77",
                                  ["a", "b", "c", "d", "e", "f"])
    # c runs, d waits, e was requeued, f left the queue without a row
    states = {2: "RUNNING", 3: "PENDING", 4: "REQUEUED"}
    tally = slurm.tally(submission, folder.path, states)
    assert (tally.done, tally.failed, tally.running, tally.queued, tally.lost) == (
        ["a"], ["b"], ["c"], ["d", "e"], ["f"])
    assert not tally.finished
    assert tally.line(submission) == ("slurm: job 77, 6 cases: 1 done, 1 failed, 1 running, "
                                      "2 queued, 1 ended without a row")
    assert slurm.tally(submission, folder.path, {}).finished


def test_wait_counts_a_task_seen_running_then_queued_as_requeued(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path / "run").create({})
    submission = slurm.Submission(tmp_path / "run" / "slurm", "5", ["a"])
    queue = iter([{0: "PENDING"}, {0: "RUNNING"}, {0: "PENDING"}, {0: "RUNNING"}, {}])

    def states(job_id):
        found = next(queue)
        if not found:  # the task ended: its row is there
            folder.write_row(dict(passed_row(), case_id="a"))
        return found

    monkeypatch.setattr(slurm, "queue_states", states)
    monkeypatch.setattr(slurm, "restart_counts", lambda job_id: {})
    lines: list[str] = []
    tally = slurm.wait(submission, folder.path, lines.append, poll_s=0)
    assert tally.done == ["a"] and submission.requeued == {"a"}
    assert lines == ["slurm: job 5, 1 cases: 0 done, 0 failed, 0 running, 1 queued",
                     "slurm: job 5, 1 cases: 0 done, 0 failed, 1 running, 0 queued",
                     "slurm: job 5, 1 cases: 0 done, 0 failed, 0 running, 1 queued, 1 requeued",
                     "slurm: job 5, 1 cases: 0 done, 0 failed, 1 running, 0 queued, 1 requeued",
                     "slurm: job 5, 1 cases: 1 done, 0 failed, 0 running, 0 queued, 1 requeued",
                     "slurm: 1 cases submitted: 1 passed, 0 failed, 0 ended without a row"]


def test_submission_is_saved_and_loaded_and_a_folder_without_one_is_named(tmp_path):
    submission = slurm.Submission(tmp_path / "slurm", "123", ["a", "b"])
    submission.save()
    again = slurm.Submission.load(tmp_path)
    assert (again.job_id, again.cases) == ("123", ["a", "b"])
    assert again.log(1) == tmp_path / "slurm" / "123_1_0_log.out"
    with pytest.raises(slurm.TaskError, match="no SLURM submission recorded here"):
        slurm.Submission.load(tmp_path / "elsewhere")


def test_slurm_refuses_xdist_and_auto_seeds_in_one_line(pytester: pytest.Pytester):
    from helpers import CONFTEST, EXPERIMENTS, FAST

    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    result = pytester.runpytest_subprocess(*FAST, "--slurm", "--seeds", "auto", "-k", "table7")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--slurm with --seeds auto would hold a task slot*"])


class _Done:
    def __init__(self, stdout="", stderr="", returncode=0):
        self.stdout, self.stderr, self.returncode = stdout, stderr, returncode


def _sinfo(text: str, returncode: int = 0, stderr: str = ""):
    return lambda *args, **kwargs: _Done(text, stderr, returncode)


CLUSTER = ("debug*|(null)|2|4096|infinite\n"
           "gpu|gpu:a100:4(S:0-1)|32|256000|1-00:00:00\n"
           "gpu|gpu:2|16|128000|1-00:00:00\n")


def test_partitions_are_read_from_sinfo_with_each_ones_largest_node():
    parts = {p.name: p for p in slurm.read_partitions(_sinfo(CLUSTER))}
    assert parts["debug"] == slurm.Partition("debug", True, 0, 2, 4096, None)
    assert parts["gpu"] == slurm.Partition("gpu", False, 4, 32, 256000, 1440)
    assert [slurm._slurm_minutes(t) for t in ("30", "1:30:00", "2-12", "0:45", "UNLIMITED")] \
        == [30, 90, 3600, 0, None]
    with pytest.raises(slurm.ClusterError, match="cannot reach a SLURM cluster .sinfo: sinfo: "
                                                 "error: Could not establish a configuration "
                                                 "source.; check SLURM_CONF"):
        slurm.read_partitions(_sinfo("", 1, "sinfo: error: Could not establish a configuration "
                                            "source\n"))


def test_defaults_fit_the_partition_and_impossible_requests_name_what_it_offers():
    parts = slurm.read_partitions(_sinfo(CLUSTER))
    cpu = slurm.Settings.for_cluster({}, parts)  # the default partition: no GPUs, 2 CPUs
    assert (cpu.gpus, cpu.cpus) == (0, 2)
    gpu = slurm.Settings.for_cluster({"slurm_partition": "gpu"}, parts)
    assert (gpu.gpus, gpu.cpus) == (1, 4)
    for values, words in (
            ({"slurm_gpus": 1}, "asks each task for 1 GPUs (--slurm-gpus), more than any node "
                                "can give: partition debug offers 0 GPUs, 2 CPUs, 4 GB and no "
                                "time limit per node"),
            ({"slurm_cpus": 4}, "4 CPUs (--slurm-cpus)"),
            ({"slurm_partition": "gpu", "slurm_time": 2000}, "2000 minutes (--slurm-time), more"
                                                             " than any node can give: partition"
                                                             " gpu offers 4 GPUs"),
            ({"slurm_partition": "gpu", "slurm_mem": 500}, "500 GB (--slurm-mem)"),
            ({"slurm_partition": "big"}, "'big' is not a partition of this cluster (debug, "
                                         "gpu)")):
        with pytest.raises(slurm.ClusterError, match=re.escape(words)):
            slurm.Settings.for_cluster(values, parts)


SINFO_FAILS = """#!/bin/sh
echo "sinfo: error: Could not establish a configuration source" >&2
exit 1
"""


def test_a_cluster_that_cannot_be_reached_is_one_line_before_any_folder(pytester, monkeypatch):
    from helpers import CONFTEST, EXPERIMENTS, FAST

    pytest.importorskip("submitit")
    bin_dir = pytester.path / "bin"
    bin_dir.mkdir()
    for name, text in (("sinfo", SINFO_FAILS), ("sbatch", "#!/bin/sh\nexit 1\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    result = pytester.runpytest_subprocess(*FAST, "--slurm", "-k", "table7-cifar10")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text
    result.stderr.fnmatch_lines(["*--slurm cannot reach a SLURM cluster (sinfo: sinfo: error: "
                                 "Could not establish a configuration source); check SLURM_CONF*"])
    runs = pytester.path / "reports" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # no run folder left behind


def test_the_poll_interval_from_the_environment_never_stops_the_plugin_loading():
    assert [slurm._poll_s(text) for text in ("2.5", "", "  ", None, "x", "-1", "nan")] == \
        [2.5, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0]


FAKE_CLUSTER = """
from pathlib import Path
import resnet_harness.plugin.slurm as slurm

slurm.shutil.which = lambda name: "/usr/bin/" + name
slurm.read_partitions = lambda run=None: [slurm.Partition("debug", True, 0, 2, 4096, None)]


def _submit(cases, args, cwd, run_dir, settings):
    return slurm.Submission(Path(run_dir) / "slurm", "4242", list(cases))


def _wait(*args, **kwargs):
    raise KeyboardInterrupt  # Ctrl-C while waiting


slurm.submit = _submit
slurm.wait = _wait
"""


def test_a_controller_stopped_while_waiting_prints_the_attach_command(pytester):
    from helpers import CONFTEST, EXPERIMENTS, FAST

    pytest.importorskip("submitit")
    pytester.makepyfile(test_study=EXPERIMENTS)
    pytester.makeconftest(CONFTEST + FAKE_CLUSTER)
    result = pytester.runpytest_subprocess(*FAST, "--slurm", "-k", "table7-cifar10")
    (run,) = (pytester.path / "reports" / "runs").iterdir()
    result.stdout.fnmatch_lines([
        "*slurm: stopped waiting; job array 4242 goes on in SLURM (scancel 4242 to stop it). "
        f"Later: python -m resnet_harness attach *{run.name}"])


def test_a_one_case_array_is_followed_though_squeue_shows_it_as_a_plain_job(monkeypatch,
                                                                              tmp_path):
    # Measured on the one-node cluster: submitit submits a one-element array as job "8" whose
    # array index squeue prints as N/A; it read as "ended without a row" while still running.
    monkeypatch.setattr(slurm.subprocess, "run", lambda *a, **k: _Done("N/A RUNNING\n"))
    assert slurm.queue_states("8") == {0: "RUNNING"}
    submission = slurm.Submission(tmp_path, "8", ["only-case"])
    (tmp_path / "8_0_log.out").write_text("log")
    assert submission.log(0) == tmp_path / "8_0_log.out"
    assert slurm.Submission(tmp_path, "9", ["a", "b"]).log(1) == tmp_path / "9_1_0_log.out"


class _Scripts:
    """Fake squeue/sacct/scontrol/scancel answers for the waiter, keyed by command."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, command, *args, **kwargs):
        self.calls.append(command)
        return _Done(self.answers.get(command[0], ""))


def test_a_waiting_line_shows_why_tasks_pend(tmp_path):
    submission = slurm.Submission(tmp_path, "7", ["a", "b"])
    tally = slurm.Tally(queued=["a", "b"])
    assert tally.line(submission, {0: "Priority", 1: "Resources"}) == (
        "slurm: job 7, 2 cases: 0 done, 0 failed, 0 running, 2 queued (Priority, Resources)")


def test_an_array_that_can_never_start_is_cancelled_in_one_line(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path / "run").create({})
    submission = slurm.Submission(folder.path / "slurm", "31", ["a", "b"])
    scripts = _Scripts({"squeue": "0 PartitionConfig\n1 PartitionConfig\n"})
    monkeypatch.setattr(slurm.subprocess, "run", scripts)
    monkeypatch.setattr(slurm, "queue_states", lambda job_id: {0: "PENDING", 1: "PENDING"})
    lines: list[str] = []
    with pytest.raises(slurm.ClusterError) as exc:
        slurm.wait(submission, folder.path, lines.append, poll_s=0)
    message = str(exc.value)
    assert "\n" not in message and "can never start job 31" in message
    assert "PartitionConfig (the request exceeds what the partition's nodes offer)" in message
    assert ["scancel", "31"] in scripts.calls
    assert lines == ["slurm: job 31, 2 cases: 0 done, 0 failed, 0 running, 2 queued "
                     "(PartitionConfig)"]


@pytest.mark.parametrize("sacct, log, said", [
    ("31_0|TIMEOUT\n31_1|COMPLETED\n", "", "timed out (it reached --slurm-time) [TIMEOUT]"),
    ("31_0|CANCELLED by 1000\n", "", "cancelled (scancel) [CANCELLED]"),
    ("31_0|OUT_OF_MEMORY\n", "", "out of memory (raise --slurm-mem) [OUT_OF_MEMORY]"),
    ("31_0|NODE_FAIL\n", "", "its node failed [NODE_FAIL]"),
    ("31_0|PREEMPTED\n", "", "preempted [PREEMPTED]"),
    # no accounting: the signs slurmstepd leaves in the task's log
    ("", "slurmstepd: error: *** JOB 31 ON vm CANCELLED AT 2026-12-07T01:00:00 DUE TO TIME "
         "LIMIT ***", "timed out (it reached --slurm-time) [TIMEOUT]"),
    ("", "slurmstepd: error: Detected 1 oom_kill event", "out of memory"),
    ("", "no sign", "SLURM does not say how"),
])
def test_a_case_without_a_row_is_named_by_how_slurm_ended_it(tmp_path, monkeypatch, sacct, log,
                                                            said):
    from resnet_harness.report import build_report

    folder = RunFolder(tmp_path / "run").create({})
    folder.write_row(dict(passed_row(), case_id="b"))
    submission = slurm.Submission(folder.path / "slurm", "31", ["a", "b"])
    submission.folder.mkdir()
    submission.log(0).write_text(log)
    monkeypatch.setattr(slurm.subprocess, "run", _Scripts({"sacct": sacct}))
    monkeypatch.setattr(slurm, "queue_states", lambda job_id: {})
    lines: list[str] = []
    tally = slurm.wait(submission, folder.path, lines.append, poll_s=0)
    assert tally.lost == ["a"] and tally.done == ["b"]
    assert any(line.startswith("slurm: a ended without a row: ") and said in line
               for line in lines), lines
    assert lines[-1] == "slurm: 2 cases submitted: 1 passed, 0 failed, 1 ended without a row"
    paths = build_report([folder.path], folder.path)  # the report and results.csv name it
    frame = pd.read_csv(paths["csv"]).set_index("case_id")
    assert frame.loc["a", "status"] == "unfinished"
    assert frame.loc["a", "error"].startswith("ended in SLURM without a row: ")
    assert said in frame.loc["a", "error"]


def test_a_time_limit_shorter_than_a_cpu_case_is_warned_up_front():
    said = slurm.time_limit_warning(10, "reduced", gpus=0)
    assert said.startswith("slurm: warning: --slurm-time 10 leaves each task 8.5 min before "
                           "submitit's signal; a reduced-scale case took about 30 min")
    assert slurm.time_limit_warning(60, "reduced", gpus=0) is None
    assert slurm.time_limit_warning(5, "smoke", gpus=0) is None  # 3.5 min for a 2-min case
    assert slurm.time_limit_warning(10, "reduced", gpus=1) is None  # GPU times: not known
