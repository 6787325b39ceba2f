"""MLflow tracking (opt-in, ``--mlflow URI``): one parent run per pytest session, one nested run
per finished case.

Only the controller process writes (SQLite allows one writer; xdist workers would collide), and it
logs each case as soon as its row is in the controller's run folder, so a session that dies
leaves its finished cases logged. Nothing imports MLflow unless the option is given.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import Any

EXPERIMENT = "resnet-harness"  # MLFLOW_EXPERIMENT_NAME overrides it, as in MLflow itself
TAG_KEYS = ("case_id", "table", "dataset", "balance", "split", "regularization", "scale", "seed",
            "status")
_STATUS = {"passed": "FINISHED"}


def parse_tracking_uri(text: str) -> str:
    """An MLflow tracking URI: ``sqlite:///FILE.db``, ``http(s)://server``, ``file:PATH`` or a
    folder."""
    value = str(text).strip()
    if not value:
        raise argparse.ArgumentTypeError(
            "mlflow needs a tracking URI, e.g. sqlite:///mlruns.db or http://localhost:5000")
    return value


def _missing_mlflow() -> str:
    return ('--mlflow needs MLflow: pip install -e ".[mlflow]" (or pip install mlflow-skinny '
            'sqlalchemy alembic sqlparse)')


def numeric_metrics(row: dict[str, Any]) -> dict[str, float]:
    """Every finite number of a row: the flat table's columns (scores, per-class recall, times,
    memory, counts), each per-class list of the metrics, and the row's other top-level numbers."""
    from resnet_harness.analysis.table import flatten_row

    out: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if math.isfinite(value):
            out.setdefault(key, float(value))

    for key, value in flatten_row(row).items():
        put(key, value)
    per_class = (row.get("metrics") or {}).get("per_class") or {}
    for name, values in per_class.items():
        if isinstance(values, (list, tuple)):
            for k, value in enumerate(values):
                put(f"{name}_c{k}", value)
    for key, value in row.items():
        put(key, value)
    return out


def case_params(row: dict[str, Any]) -> dict[str, str]:
    """A case's configuration as MLflow params (strings of at most 6000 characters)."""
    params = {key: row.get(key) for key in ("case_id", "table", "dataset", "balance", "split",
                                             "regularization", "scale", "seed")}
    params.update(row.get("config") or {})
    return {str(k): str(v)[:6000] for k, v in params.items() if v is not None}


def case_tags(row: dict[str, Any]) -> dict[str, str]:
    """A case run's tags: its status and place, and the digests of its identity
    (``identity``, ``identity_settings``, ...; ``storage.identity``), so that MLflow's search
    finds the runs made the same way (``tags.identity_settings = '...'``)."""
    from resnet_harness.storage import identity

    tags = {k: row.get(k) for k in TAG_KEYS if row.get(k) is not None}
    tags.update(identity.part_keys(identity.parts(row)))
    tags["environment"] = identity.describe_environment(
        (row.get("provenance") or {}).get("environment"))
    return {k: str(v) for k, v in tags.items()}


class MlflowTracker:
    """Logs one session into an MLflow tracking store through ``MlflowClient``."""

    def __init__(self, uri: str, run_info: dict[str, Any], run_dir: Path):
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise RuntimeError(_missing_mlflow()) from None
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            experiment_id = self.client.create_experiment(name, artifact_location=_artifacts(uri))
        else:
            experiment_id = experiment.experiment_id
        self.experiment_id = experiment_id
        # run.json records each option as {"value": ..., "from": ...} (options.Resolved).
        options = {k: v.get("value") if isinstance(v, dict) else v
                   for k, v in (run_info.get("options") or {}).items()}
        tags = {"run_dir": str(run_dir), "scale": str(run_info.get("scale")),
                "seed": str(run_info.get("seed")), "git_commit": str(run_info.get("git_commit")),
                "worker": str(run_info.get("worker"))}
        self.parent = self.client.create_run(experiment_id, run_name=Path(run_dir).name,
                                             tags=tags).info.run_id
        self._log(self.parent, params={k: str(v)[:6000] for k, v in options.items()
                                       if v not in (None, "", [], {})})
        self.logged: dict[str, str] = {}  # case id -> nested run id
        self.errors: list[str] = []

    def _log(self, run_id: str, metrics=None, params=None, tags=None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        stamp = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, stamp, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, v) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()])

    def log_case(self, folder, case_id: str) -> None:
        """Log the finished case ``case_id`` of run folder ``folder`` as a nested run (once)."""
        if case_id in self.logged:
            return
        import json

        row_path = folder.row_path(case_id)
        try:
            row = json.loads(row_path.read_text())
            run_id = self.client.create_run(
                self.experiment_id, run_name=case_id,
                tags={"mlflow.parentRunId": self.parent}).info.run_id
            self.logged[case_id] = run_id
            self._log(run_id, metrics=numeric_metrics(row), params=case_params(row),
                      tags=case_tags(row))
            self.client.log_artifact(run_id, str(row_path))
            npz = row_path.with_suffix(".npz")
            if npz.is_file():
                self.client.log_artifact(run_id, str(npz))
            self.client.set_terminated(run_id, _STATUS.get(row.get("status"), "FAILED"))
        except Exception as exc:  # noqa: BLE001 - tracking must not fail the case
            self.errors.append(f"{case_id}: {type(exc).__name__}: {exc}".splitlines()[0])

    def finish(self, report_paths: dict[str, Path] | None, failed: bool) -> None:
        """Attach the session's report to the parent run and close it."""
        try:
            for key in ("html", "csv"):
                path = (report_paths or {}).get(key)
                if path and Path(path).is_file():
                    self.client.log_artifact(self.parent, str(path))
            self.client.set_terminated(self.parent, "FAILED" if failed else "FINISHED")
        except Exception as exc:  # noqa: BLE001 - the rows are logged; say what failed
            self.errors.append(f"report: {type(exc).__name__}: {exc}".splitlines()[0])


def _artifacts(uri: str) -> str | None:
    """Artifacts of a new experiment in a SQLite store go beside the database file, not into
    whatever folder pytest happened to run in."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    database = Path(uri[len(prefix):])
    return (database.parent.resolve() / "mlartifacts").as_uri()
