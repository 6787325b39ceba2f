"""MLflow tracking against a real SQLite store, read back with MLflow's own client; and no
MLflow import without the option."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from helpers import CONFTEST, EXPERIMENTS, FAST
from resnet_harness.plugin.tracking import case_params, numeric_metrics, parse_tracking_uri

try:  # imported here, before pytester snapshots sys.modules: its restore breaks a re-import
    import mlflow
except ImportError:
    mlflow = None

CIFAR_TABLE7 = ("-k", "table7 and cifar10")

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


def test_no_mlflow_import_without_the_option(study):
    study.makeconftest(CONFTEST + REPORT_MLFLOW_IMPORT)
    result = study.runpytest_subprocess(*FAST, "-k", "table7 and cifar10 and imbalanced")
    result.assert_outcomes(passed=1)
    assert json.loads((study.path / "modules.json").read_text()) == []


def _client(db):
    if mlflow is None:
        pytest.skip("the mlflow extra is not installed")
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")


def test_session_logged_to_sqlite_and_read_back_with_mlflows_client(study, tmp_path):
    db = tmp_path / "store" / "mlruns.db"
    db.parent.mkdir()
    client = _client(db)
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "-n", "2", "--mlflow",
                                        f"sqlite:///{db}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["mlflow: 2 case runs under parent run * in sqlite:///*"])
    (experiment,) = [e for e in client.search_experiments() if e.name == "resnet-harness"]
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if r is not parent}
    assert parent.info.status == "FINISHED"
    assert parent.data.params["scale"] == "smoke" and parent.data.params["backbone"] == "tiny"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"report.html",
                                                                           "results.csv"}
    assert set(children) == {"table7-cifar10-balanced-split_orig-reg_none",
                             "table7-cifar10-imbalanced-split_orig-reg_none"}
    (run_dir,) = (study.path / "reports" / "runs").iterdir()
    for case_id, child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        tags = child.data.tags
        assert (tags["table"], tags["dataset"], tags["scale"], tags["seed"]) == (
            "table7", "cifar10", "smoke", "0")
        assert tags["balance"] in ("balanced", "imbalanced")
        from resnet_harness.storage import identity
        assert tags["identity"] == identity.key(identity.parts(json.loads(
            (run_dir / "cases" / f"{case_id}.json").read_text())))
        assert tags["environment"].endswith("no GPU") and tags["identity_settings"]
        row = json.loads((run_dir / "cases" / f"{case_id}.json").read_text())
        assert child.data.params["epochs"] == "1" and child.data.params["backbone"] == "tiny"
        metrics = child.data.metrics
        assert metrics["accuracy"] == pytest.approx(row["metrics"]["accuracy"])
        assert metrics["recall_c9"] == pytest.approx(row["metrics"]["per_class"]["recall"][9])
        assert metrics["train_time_s"] == pytest.approx(row["train_time_s"])
        assert metrics["peak_rss_mb"] == pytest.approx(row["peak_rss_mb"])
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert artifacts == {f"{case_id}.json", f"{case_id}.npz"}
        local = client.download_artifacts(child.info.run_id, f"{case_id}.json",
                                          str(tmp_path / case_id))
        assert json.loads(Path(local).read_text()) == row
    # artifacts beside the database, not in the folder pytest ran in
    assert (db.parent / "mlartifacts").is_dir()


def test_a_session_that_dies_leaves_its_finished_cases_logged(study, tmp_path):
    db = tmp_path / "mlruns.db"
    client = _client(db)
    study.makeconftest(CONFTEST + DIE_AFTER_FIRST_CASE)
    result = study.runpytest_subprocess(*FAST, *CIFAR_TABLE7, "--mlflow", f"sqlite:///{db}")
    assert result.ret == 3
    runs = client.search_runs([client.get_experiment_by_name("resnet-harness").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (child,) = [r for r in runs if r is not parent]
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
