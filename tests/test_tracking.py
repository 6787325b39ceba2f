"""MLflow tracking against a real SQLite store, read back with MLflow's own client: case runs
open while their case runs and end with its status, per-epoch curves, the same artifact names in
every case run, the session's figures and files on the parent run; an unreachable server stops
the session at once; MLflow's own console lines stay out of pytest's output; and no MLflow import
without the option. ``bench/mlflow_server_check.py`` runs the same against a real
``mlflow server``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import socket
import time
from pathlib import Path

import pytest

from helpers import CONFTEST, FAST
from test_schema import passed_row
from resnet_harness.plugin.tracking import (ENV_DEFAULTS, TrackingError, case_params,
                                            check_reachable, epoch_times, history_metrics,
                                            numeric_metrics, parse_tracking_uri,
                                            session_metrics)
from resnet_harness.storage.rundir import RunFolder

try:  # imported here, before pytester snapshots sys.modules: its restore breaks a re-import
    import mlflow
except ImportError:
    mlflow = None

CIFAR_TABLE7 = ("-k", "table7 and cifar10")
BALANCED = "table7-cifar10-balanced-split_orig-reg_none"
IMBALANCED = "table7-cifar10-imbalanced-split_orig-reg_none"
CASE_ARTIFACTS = {"row.json", "predictions.npz", "confusion.png"}
PARENT_ARTIFACTS = {"results.csv", "report.html", "claims.csv", "comparisons.csv", "seeds.csv",
                    "run.json"}

REPORT_MLFLOW_IMPORT = """
import json, sys


def pytest_sessionfinish(session):
    with open("modules.json", "w") as handle:
        json.dump(sorted(name for name in sys.modules if name.split(".")[0] == "mlflow"), handle)
"""

DIE_AFTER_FIRST_CASE = """
import os


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        os._exit(3)  # as a SIGKILL would: no sessionfinish, no report
"""

# Patches the runner the harness calls: {case: what happens instead of (or before) training}.
INJECT = """
import os, signal
import pytest
import resnet_harness.training.runner as runner

_real = runner.run_case
ACTIONS = {actions!r}


def _injected(cfg, *args, **kwargs):
    action = ACTIONS.get(cfg.case.id)
    if action == "error":
        raise RuntimeError("injected failure")
    if action == "interrupt":
        raise KeyboardInterrupt
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return _real(cfg, *args, **kwargs)


runner.run_case = _injected


def pytest_runtest_setup(item):
    if ACTIONS.get(getattr(getattr(item, "callspec", None), "id", None)) == "skip":
        pytest.skip("injected skip")
"""


def test_parse_tracking_uri():
    assert parse_tracking_uri(" sqlite:///x.db ") == "sqlite:///x.db"
    with pytest.raises(argparse.ArgumentTypeError, match="sqlite:///mlruns.db"):
        parse_tracking_uri("")


def test_numeric_metrics_and_params_of_a_row():
    row = {"case_id": "c", "table": "table7", "seed": 1, "status": "passed",
           "metrics": {"accuracy": 0.5, "per_class": {"recall": [0.1, 0.2], "f1": [0.3, None]}},
           "train_time_s": 2.0, "peak_rss_mb": 100.0, "first_step_s": 0.5, "flag": True,
           "config": {"epochs": 3, "weights": None, "imbalance": {"reading": "text"}}}
    metrics = numeric_metrics(row)
    assert metrics["accuracy"] == 0.5 and metrics["recall_c1"] == 0.2
    assert metrics["f1_c0"] == 0.3 and "f1_c1" not in metrics
    assert metrics["train_time_s"] == 2.0 and metrics["first_step_s"] == 0.5
    assert "flag" not in metrics and "seed" in metrics
    params = case_params(row)
    assert params["epochs"] == "3" and "weights" not in params
    assert params["imbalance"] == "{'reading': 'text'}" and params["table"] == "table7"


def test_history_becomes_per_epoch_metrics_timed_back_from_the_end_of_fit():
    row = {"history": {"loss": [2.0, None, 1.0], "accuracy": [0.1, 0.2, 0.3],
                       "epoch_seconds": [1.5, 2.0, 0.5]}}
    assert epoch_times(row["history"], 10_000, 0) == [7_500, 9_500, 10_000]
    # never before the run started, never after fit ended
    assert epoch_times(row["history"], 10_000, 8_000) == [8_000, 9_500, 10_000]
    entries = history_metrics(row, 10_000, 0)
    assert [(k, s, t) for k, _, t, s in entries if k == "fit/loss"] == [
        ("fit/loss", 0, 7_500), ("fit/loss", 2, 10_000)]  # the non-finite epoch is left out
    assert [v for k, v, _, _ in entries if k == "fit/accuracy"] == [0.1, 0.2, 0.3]
    assert [v for k, v, _, _ in entries if k == "fit/epoch_seconds"] == [1.5, 2.0, 0.5]
    # without usable epoch times every epoch is stamped at the end
    assert epoch_times({"loss": [1.0, 0.5]}, 10_000, 0) == [10_000, 10_000]
    assert history_metrics({"status": "error"}, 10_000, 0) == []


def test_session_metrics_count_statuses_and_average_per_study(tmp_path):
    folder = RunFolder(tmp_path).create()
    row = passed_row()
    accuracy = row["metrics"]["accuracy"]
    folder.write_row(dict(row, case_id="a"))
    folder.write_row(dict(row, case_id="b", status="failed",
                          metrics=dict(row["metrics"], accuracy=accuracy / 2)))
    folder.write_row(dict(row, case_id="c", study="longtail"))
    folder.mark_started("d", {})  # started, no row
    folder.record_selected(["a", "b", "c", "d", "e"])  # e never started
    folder.claims_paths["claims"].write_text(
        "claim,verdict\nx,supported\ny,not run\nz,not run\n")
    figures = session_metrics(folder)
    assert {k: figures[k] for k in ("cases_passed", "cases_failed", "cases_error",
                                    "cases_unfinished", "cases_not_run", "cases")} == {
        "cases_passed": 2, "cases_failed": 1, "cases_error": 0, "cases_unfinished": 1,
        "cases_not_run": 1, "cases": 5}
    assert row["study"] == "paper"
    assert figures["paper/accuracy_mean"] == pytest.approx(0.75 * accuracy)
    assert figures["paper/cases"] == 2 and figures["longtail/cases"] == 1
    assert figures["longtail/accuracy_mean"] == pytest.approx(accuracy)
    assert figures["accuracy_mean"] == pytest.approx(2.5 * accuracy / 3)
    assert figures["claims_supported"] == 1 and figures["claims_not_run"] == 2


def test_mlflows_view_run_lines_are_silenced(monkeypatch, capsys):
    """MLflow prints "View run ..." to stdout whenever a run of an http store ends; the
    harness's environment defaults switch that off (MLflow's own code path, store stubbed)."""
    if mlflow is None:
        pytest.skip("the mlflow extra is not installed")
    from mlflow.entities import Run, RunData, RunInfo
    from mlflow.store.tracking.rest_store import RestStore

    info = RunInfo("r1", "1", "", "RUNNING", 0, None, "active", run_name="case")
    monkeypatch.setattr(RestStore, "get_run", lambda self, run_id: Run(info, RunData()))
    monkeypatch.setattr(RestStore, "update_run_info", lambda self, *a, **k: None)
    client = mlflow.MlflowClient(tracking_uri="http://127.0.0.1:1")
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    client.set_terminated("r1")
    assert "View run case" in capsys.readouterr().out  # what users saw among the dots
    for key, value in ENV_DEFAULTS.items():
        monkeypatch.setenv(key, value)
    client.set_terminated("r1")
    assert capsys.readouterr().out == ""


def test_a_server_lost_mid_session_stops_the_logging_at_once(tmp_path, monkeypatch):
    """After a failed connection nothing more is sent (each call would wait out its retries);
    the summary says so once."""
    if mlflow is None:
        pytest.skip("the mlflow extra is not installed")
    import requests
    from types import SimpleNamespace

    from resnet_harness import study as registry
    from resnet_harness.plugin.tracking import MlflowTracker

    registry.load_builtin()
    for key in ENV_DEFAULTS:
        monkeypatch.delenv(key, raising=False)  # the tracker sets them; undone after the test
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'm.db'}", {"seeds": [0, 1]},
                            RunFolder(tmp_path / "run"))
    calls = []

    def lost(*args, **kwargs):
        calls.append(args)
        try:
            raise requests.exceptions.ConnectionError("Connection refused")
        except requests.exceptions.ConnectionError:  # as MLflow's rest_utils re-raises it
            raise mlflow.exceptions.MlflowException("API request to /runs/create failed")

    monkeypatch.setattr(tracker.client, "create_run", lost)
    monkeypatch.setattr(tracker.client, "set_terminated", lost)
    now = time.time()
    for seed in (0, 1):
        tracker.pytest_runtest_logreport(SimpleNamespace(
            nodeid=f"test_study.py::test_case[{BALANCED}-seed{seed}]", when="setup",
            skipped=False, failed=False, passed=True, start=now, stop=now))
    tracker.pytest_sessionfinish(SimpleNamespace(exitstatus=pytest.ExitCode.OK))
    assert len(calls) == 1 and tracker.errors == []
    lines = []
    tracker.pytest_terminal_summary(SimpleNamespace(write_line=lambda text, **_: lines.append(
        text)))
    assert lines[-1].startswith(f"mlflow: the server stopped answering ({BALANCED}-seed0: "
                                "MlflowException: API request to /runs/create failed); nothing "
                                "was logged after that")


def test_no_mlflow_import_without_the_option(study):
    study.makeconftest(CONFTEST + REPORT_MLFLOW_IMPORT)
    result = study.runpytest_subprocess(*FAST, "-k", "table7 and cifar10 and imbalanced")
    result.assert_outcomes(passed=1)
    assert json.loads((study.path / "modules.json").read_text()) == []


def _client(db):
    if mlflow is None:
        pytest.skip("the mlflow extra is not installed")
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")


def _runs(client):
    """``(parent, {run name: case run})`` of the one session in the store."""
    experiment = client.get_experiment_by_name("resnet-harness")
    # MLflow 3's UI opens it on the training runs, not its GenAI overview
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parent, {r.info.run_name: r for r in runs if r is not parent}


def _seconds(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def _check_case_run(client, run, row: dict) -> None:
    """A finished case run against its row: open for the whole case, the row's figures at
    the last epoch's step, fit's curves at step = epoch index within the run, the files under
    the same names in every case run."""
    info = run.info
    # provenance times are whole seconds, cut off
    assert info.start_time / 1000 <= _seconds(row["provenance"]["started_at"]) + 1
    assert info.end_time / 1000 >= _seconds(row["provenance"]["finished_at"])
    assert (info.end_time - info.start_time) / 1000 >= row["train_time_s"] + row["evaluation_s"]
    epochs = row["history"]["epoch_seconds"]
    for name in ("fit/loss", "fit/accuracy", "fit/epoch_seconds"):
        history = client.get_metric_history(info.run_id, name)
        assert [m.step for m in history] == list(range(len(epochs)))
        key = name.partition("/")[2]
        assert [m.value for m in history] == pytest.approx(row["history"][key])
        stamps = [m.timestamp for m in history]
        assert all(info.start_time <= t <= info.end_time for t in stamps)
        assert stamps[1] - stamps[0] == pytest.approx(1000 * epochs[1], abs=2)
    (accuracy,) = client.get_metric_history(info.run_id, "accuracy")
    assert accuracy.value == pytest.approx(row["metrics"]["accuracy"])
    assert accuracy.step == len(epochs) - 1
    assert {a.path for a in client.list_artifacts(info.run_id)} == CASE_ARTIFACTS


def test_session_logged_to_sqlite_and_read_back_with_mlflows_client(study, tmp_path):
    db = tmp_path / "store" / "mlruns.db"
    db.parent.mkdir()
    client = _client(db)
    killed_id = f"{IMBALANCED}-seed1"
    study.makeconftest(CONFTEST + INJECT.format(actions={killed_id: "kill"}))
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "-n", "2", "--seeds", "0,1",
                                        "--epochs", "2", "--mlflow", f"sqlite:///{db}")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["mlflow: 4 case runs under parent run * in sqlite:///*",
                                 "mlflow: browse them with: mlflow ui --backend-store-uri *"])
    parent, children = _runs(client)
    assert parent.info.status == "FAILED" and parent.data.tags["seeds"] == "0,1"
    assert parent.data.params["scale"] == "smoke" and parent.data.params["backbone"] == "tiny"
    assert set(children) == {f"{case}-seed{seed}" for case in (BALANCED, IMBALANCED)
                             for seed in (0, 1)}
    (run_dir,) = (study.path / "reports" / "runs").iterdir()
    from resnet_harness.storage import identity

    for case_id, child in children.items():
        if case_id == killed_id:
            continue
        row = json.loads((run_dir / "cases" / f"{case_id}.json").read_text())
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        tags = child.data.tags
        assert (tags["table"], tags["dataset"], tags["scale"], tags["seed"], tags["status"]) == (
            "table7", "cifar10", "smoke", case_id[-1], "passed")
        assert tags["identity"] == identity.key(identity.parts(row))
        assert tags["environment"].endswith("no GPU") and tags["identity_settings"]
        assert child.data.params["epochs"] == "2" and child.data.params["backbone"] == "tiny"
        metrics = child.data.metrics
        assert metrics["recall_c9"] == pytest.approx(row["metrics"]["per_class"]["recall"][9])
        assert metrics["train_time_s"] == pytest.approx(row["train_time_s"])
        assert metrics["peak_rss_mb"] == pytest.approx(row["peak_rss_mb"])
        _check_case_run(client, child, row)  # the same three artifact names in each
        local = client.download_artifacts(child.info.run_id, "row.json", str(tmp_path / case_id))
        assert json.loads(Path(local).read_text()) == row
    # the worker running this case died inside it: no row, the run ended KILLED
    killed = children[killed_id]
    assert killed.info.status == "KILLED" and killed.data.tags["status"] == "unfinished"
    assert killed.info.end_time is not None and not client.list_artifacts(killed.info.run_id)
    # artifacts beside the database, not in the folder pytest ran in
    assert (db.parent / "mlartifacts").is_dir()


def test_statuses_and_the_parents_figures_and_files(study, tmp_path):
    db = tmp_path / "mlruns.db"
    client = _client(db)
    # in this order: passes, raises, is skipped, is interrupted (Ctrl-C)
    study.makeconftest(CONFTEST + INJECT.format(actions={
        f"{IMBALANCED}-seed0": "error", f"{BALANCED}-seed1": "skip",
        f"{IMBALANCED}-seed1": "interrupt"}))
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "--seeds", "0,1", "--epochs", "2",
                                        "--mlflow", f"sqlite:///{db}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    # MLflow's own lines ("View run ...", INFO logging) stay out; only the harness's are there
    mentions = [line for line in result.stdout.lines + result.stderr.lines
                if "mlflow" in line.lower()]
    assert mentions and all(line.startswith("mlflow: ") for line in mentions), mentions
    parent, children = _runs(client)
    statuses = {name: run.info.status for name, run in children.items()}
    # the skipped case's run is deleted (search_runs shows active runs only)
    assert statuses == {f"{BALANCED}-seed0": "FINISHED", f"{IMBALANCED}-seed0": "FAILED",
                        f"{IMBALANCED}-seed1": "KILLED"}
    assert children[f"{IMBALANCED}-seed0"].data.tags["status"] == "error"
    interrupted = children[f"{IMBALANCED}-seed1"]
    assert interrupted.data.tags["status"] == "unfinished"
    assert interrupted.info.end_time >= interrupted.info.start_time
    (run_dir,) = (study.path / "reports" / "runs").iterdir()
    row = json.loads((run_dir / "cases" / f"{BALANCED}-seed0.json").read_text())
    _check_case_run(client, children[f"{BALANCED}-seed0"], row)
    assert parent.info.status == "KILLED" and parent.data.tags["seeds"] == "0,1"
    assert "seed" not in parent.data.tags
    figures = parent.data.metrics
    assert (figures["cases_passed"], figures["cases_error"], figures["cases_unfinished"],
            figures["cases_not_run"]) == (1, 1, 1, 1)
    assert figures["paper/accuracy_mean"] == pytest.approx(row["metrics"]["accuracy"])
    assert any(key.startswith("claims_") for key in figures)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == PARENT_ARTIFACTS
    local = client.download_artifacts(parent.info.run_id, "claims.csv", str(tmp_path / "down"))
    assert Path(local).read_bytes() == (run_dir / "claims.csv").read_bytes()


def test_a_session_that_dies_leaves_its_finished_cases_logged(study, tmp_path):
    db = tmp_path / "mlruns.db"
    client = _client(db)
    study.makeconftest(CONFTEST + DIE_AFTER_FIRST_CASE)
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "--mlflow", f"sqlite:///{db}")
    assert result.ret == 3
    parent, children = _runs(client)
    (child,) = children.values()
    assert parent.info.status == "RUNNING"  # never closed: the session died
    assert child.info.status == "FINISHED" and "accuracy" in child.data.metrics


def test_unusable_tracking_uri_stops_with_one_line(study, tmp_path):
    if mlflow is None:
        pytest.skip("the mlflow extra is not installed")
    (tmp_path / "file").write_text("")
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "--mlflow",
                                        f"sqlite:///{tmp_path}/file/sub/x.db")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*resnet-harness: --mlflow sqlite:///*"])


def test_a_local_store_that_cannot_work_is_refused_up_front(tmp_path):
    (tmp_path / "afile.txt").write_text("not a store")
    tmp = str(tmp_path)  # absolute: sqlite:/// + tmp is sqlite://// + the path without its /
    for uri, words in (
            ("sqlite:////proc/mlruns.db", "cannot write in /proc"),
            (f"sqlite:///{tmp}", f"{tmp} is a folder, not a database file"),
            (f"sqlite:///{tmp}/missing/x.db", f"the folder {tmp}/missing does not exist"),
            (f"{tmp}/afile.txt", "afile.txt is a file; MLflow's file store needs a folder"),
            (f"file:{tmp}/afile.txt", "afile.txt is a file; MLflow's file store needs a folder"),
            ("/proc/mlruns", "cannot write in /proc")):
        with pytest.raises(TrackingError, match=re.escape(words)):
            check_reachable(uri)
    for fine in (f"sqlite:///{tmp}/x.db", f"{tmp}/new/store", f"file:{tmp}/store"):
        check_reachable(fine)


def test_unreachable_server_stops_the_session_within_seconds(study):
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "--mlflow",
                                        f"http://127.0.0.1:{port}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # The harness's own probe answers (one connection, no retry), not MLflow's client, whose
    # retries took 4 min 12 s; times are compared in bench/mlflow_server_check.py, not here.
    result.stderr.fnmatch_lines([f"*resnet-harness: --mlflow http://127.0.0.1:{port}: no MLflow "
                                 f"server answers at * (Connection refused); start one (mlflow "
                                 f"server --host 127.0.0.1 --port {port}) or pass another*"])
    assert not (study.path / "reports" / "runs").exists()


def test_a_server_that_accepts_but_never_answers_is_refused_up_front():
    with socket.socket() as sock:  # the kernel completes the handshake; nobody reads
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(TrackingError, match=f"the server at {uri} accepts connections but "
                                                "sent no answer within 0.3 s; check that it is"):
            check_reachable(uri, timeout=0.3)
