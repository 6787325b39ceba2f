"""MLflow tracking (opt-in, ``--mlflow URI``): one parent run per pytest session, one nested run
per case, open while the case runs.

What a session leaves in the experiment (``resnet-harness``, or ``MLFLOW_EXPERIMENT_NAME``):

* the parent run (named after the run folder): the options as params; tags ``seeds``, ``scale``,
  ``run_dir``, ``git_commit``; the session's figures as metrics (``cases_passed``, ...,
  ``<table>/accuracy_mean``, ``claims_supported``, ...); ``results.csv``, ``report.html``,
  ``claims.csv``, ``comparisons.csv``, ``seeds.csv`` and ``run.json`` as artifacts. It ends
  FINISHED, FAILED (a failed case, report or baseline) or KILLED (interrupted).
* a case run (named after the case) from the moment its test starts to its end, as the reports
  of the process that ran it time them (the controller gets them from xdist workers too):
  FINISHED when the test passed, FAILED when it failed, KILLED when the case started and
  left no row (its process died or was stopped) or was still open at the session's end. A case
  the session skipped (resumed, decided) has its run deleted. Its row's figures are metrics at
  the last epoch's step, fit's per-epoch figures ``fit/<name>`` (``fit/loss``,
  ``fit/val_accuracy``, ``fit/epoch_seconds``, ...) are metrics at step = epoch index, and every
  case run holds the same artifact names: ``row.json``, ``predictions.npz``, ``confusion.png``.

Only the controller process writes (SQLite allows one writer; xdist workers would collide), and
it logs each case as soon as the row is in its run folder, so a session that dies leaves its
finished cases logged. Nothing imports MLflow unless the option is given.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

EXPERIMENT = "resnet-harness"  # MLFLOW_EXPERIMENT_NAME overrides it, as in MLflow itself
TAG_KEYS = ("case_id", "table", "dataset", "balance", "split", "regularization", "scale", "seed",
            "status")
PARENT_ARTIFACTS = ("results.csv", "report.html", "claims.csv", "comparisons.csv", "seeds.csv",
                    "run.json")
SUMMARY_SCORES = ("accuracy", "balanced_accuracy", "f1_macro")
PROBE_TIMEOUT_S = 3.0  # per step of the up-front check of an http(s) server
# Set for the session (before MLflow is imported) unless the user set them.
ENV_DEFAULTS = {
    # MLflow's own (7 retries with backoff factor 2, 120 s timeout) held a session against a
    # server that was not there for 4 min 12 s; a server lost mid-session cost that per call.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    # MLflow prints "View run ... / View experiment ..." to stdout whenever a run of an http
    # store ends: among pytest's progress dots, once per case.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # and its INFO lines ("Creating initial MLflow database tables...") to stderr
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}
_FRESH_SLACK_S = 2.0  # file systems with coarse modification times


class TrackingError(Exception):
    """The tracking store cannot be used; one line saying why and what to do."""


EXPERIMENT_KIND, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


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


def check_reachable(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`TrackingError` when nothing accepts connections at an http(s) ``uri``, or
    the server there does not answer an HTTP request, within ``timeout`` seconds each (other
    stores are local and checked by opening them)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        check_local_store(uri)
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TrackingError(
            f"no MLflow server answers at {uri} ({reason}); start one (mlflow server --host "
            f"{parts.hostname} --port {port}) or pass another --mlflow URI") from None
    try:
        import requests  # MLflow's own HTTP library
    except ImportError:
        return  # no MLflow either: opening the store says what to install

    try:  # any answer will do (a proxy's 401 or 404 too): MLflow's client takes it from here
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.Timeout:
        raise TrackingError(
            f"the server at {uri} accepts connections but sent no answer within {timeout:g} s; "
            "check that it is an MLflow server and not stuck, or pass another --mlflow URI"
        ) from None
    except requests.RequestException:
        pass  # TLS and the like: MLflow's own settings (MLFLOW_TRACKING_INSECURE_TLS, ...) decide


def check_local_store(uri: str) -> None:
    """Raise :class:`TrackingError` when a local store cannot work: an sqlite file that is a
    folder or whose folder cannot take a new file, a file-store path that is a file, or a
    folder that cannot be created or written (MLflow would retry for minutes, or print its
    file-store notice and fail later)."""
    scheme, _, rest = uri.partition(":") if ":" in uri else ("", "", uri)
    if scheme == "sqlite":
        path = Path(rest[3:] if rest.startswith("///") else rest).expanduser()
        if path.is_dir():
            raise TrackingError(f"--mlflow {uri}: {path} is a folder, not a database file; pass "
                                "sqlite:///PATH/mlruns.db")
        where = path if path.exists() else path.parent
        if not where.exists():
            raise TrackingError(f"--mlflow {uri}: the folder {where} does not exist (sqlite:/// "
                                "takes a path relative to here, sqlite://// an absolute one); "
                                "create it or pass another path")
        _writable(where, uri, "sqlite:///PATH.db in a folder you can write")
        return
    if scheme not in ("", "file"):
        return  # databricks, postgresql, ...: MLflow's own client says what is wrong
    path = Path(rest).expanduser()
    if path.is_file():
        raise TrackingError(f"--mlflow {uri}: {path} is a file; MLflow's file store needs a "
                            "folder: pass a folder, or sqlite:///PATH.db for a database")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    _writable(existing, uri, "a folder you can write")


def _writable(path: Path, uri: str, fix: str) -> None:
    target = path if path.is_dir() else path.parent
    try:
        if path.is_file():
            with open(path, "ab"):
                pass
        else:
            with tempfile.NamedTemporaryFile(dir=target, prefix=".mlflow-probe-"):
                pass
    except OSError as exc:
        raise TrackingError(f"--mlflow {uri}: cannot write in {target} "
                            f"({exc.strerror or type(exc).__name__}); pass {fix}") from None


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


def epoch_times(history: dict[str, list], fit_end_ms: int, start_ms: int) -> list[int]:
    """The end of each epoch in ms since the epoch, counted back from ``fit_end_ms`` by the
    row's ``epoch_seconds`` and kept within ``[start_ms, fit_end_ms]``; every epoch at
    ``fit_end_ms`` when the row has no usable epoch times."""
    n = max((len(v) for v in history.values()), default=0)
    seconds = history.get("epoch_seconds") or []
    if len(seconds) != n or any(not isinstance(s, (int, float)) for s in seconds):
        return [fit_end_ms] * n
    remaining, out = float(sum(seconds)), []
    for value in seconds:
        remaining -= value
        out.append(min(fit_end_ms, max(start_ms, round(fit_end_ms - 1000 * remaining))))
    return out


def history_metrics(row: dict[str, Any], fit_end_ms: int,
                    start_ms: int) -> list[tuple[str, float, int, int]]:
    """``(key, value, timestamp_ms, step)`` of every finite per-epoch figure of the row's
    ``history``: key ``fit/<name>``, step the epoch index, timestamp that epoch's end."""
    history = row.get("history") or {}
    if not isinstance(history, dict):
        return []
    stamps = epoch_times(history, fit_end_ms, start_ms)
    out = []
    for name, values in sorted(history.items()):
        for step, value in enumerate(values or []):
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):
                out.append((f"fit/{name}", float(value), stamps[step], step))
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


def session_metrics(folder) -> dict[str, float]:
    """The session's figures for the parent run: cases per status (``cases_passed``, ...,
    ``cases_not_run``), the mean of the headline scores over the rows that have them, overall
    (``accuracy_mean``) and per study (``paper/accuracy_mean``, ``longtail/cases``), and the
    claims per verdict (``claims_supported``, ...) as ``claims.csv`` gives them."""
    from resnet_harness.storage.schema import STATUSES

    rows = folder.rows()
    out = {f"cases_{status}": 0.0 for status in STATUSES}
    for row in rows:
        key = f"cases_{row.get('status')}"
        out[key] = out.get(key, 0.0) + 1
    out["cases_unfinished"] += len(folder.unfinished())
    out["cases_not_run"] += len(folder.not_run())
    out["cases"] = float(sum(v for k, v in out.items() if k.startswith("cases_")))
    groups: dict[str, list[dict]] = {"": rows}
    for row in rows:
        groups.setdefault(f"{row.get('study') or 'other'}/", []).append(row)
    for prefix, members in groups.items():
        if prefix:
            out[f"{prefix}cases"] = float(len(members))
        for score in SUMMARY_SCORES:
            values = [v for v in ((r.get("metrics") or {}).get(score) for r in members)
                      if isinstance(v, (int, float)) and math.isfinite(v)]
            if values:
                out[f"{prefix}{score}_mean"] = sum(values) / len(values)
    try:
        with open(folder.claims_paths["claims"], newline="") as handle:
            for record in csv.DictReader(handle):
                key = "claims_" + (record.get("verdict") or "unknown").replace(" ", "_")
                out[key] = out.get(key, 0.0) + 1
    except OSError:
        pass  # no claims.csv (the report failed): the other figures stand
    return out


def start_tracking(config: pytest.Config, uri: str, folder, run_info) -> "MlflowTracker":
    """Open the tracking store, start the session's parent run and register the tracker as a
    plugin; on failure stop the session with one line (a usage error)."""
    try:
        check_reachable(uri)
        tracker = MlflowTracker(uri, run_info(), folder)
    except Exception as exc:  # noqa: BLE001 - one line, then stop
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        pytest.exit(f"resnet-harness: --mlflow {uri}: {text}",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    config.pluginmanager.register(tracker, "resnet_harness_mlflow")
    return tracker


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ms(seconds: float | None) -> int | None:
    """Epoch seconds (a report's ``start``/``stop``; 0 when unset) as MLflow's milliseconds."""
    return int(seconds * 1000) if seconds else None


def _is_network_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is a failed connection or a timeout; MLflow
    re-raises those as ``MlflowException`` inside the ``except`` that caught them."""
    seen = 0
    while exc is not None and seen < 10:
        if type(exc).__module__.split(".")[0] in ("requests", "urllib3") or isinstance(
                exc, (ConnectionError, TimeoutError)):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class MlflowTracker:
    """Logs one session into an MLflow tracking store through ``MlflowClient``; a pytest
    plugin of the controller process (registered by :func:`start_tracking`)."""

    def __init__(self, uri: str, run_info: dict[str, Any], folder):
        for key, value in ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise TrackingError(_missing_mlflow()) from None
        self.uri, self.folder = uri, folder
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            # MLflow 3's UI opens an experiment of no kind on its GenAI overview; this kind
            # opens the training runs.
            experiment_id = self.client.create_experiment(
                name, artifact_location=_artifacts(uri), tags={EXPERIMENT_KIND: TRAINING_KIND})
        else:
            experiment_id = experiment.experiment_id
            if EXPERIMENT_KIND not in (experiment.tags or {}):
                self.client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, TRAINING_KIND)
        self.experiment_id = experiment_id
        # run.json records each option as {"value": ..., "from": ...} (options.Resolved).
        options = {k: v.get("value") if isinstance(v, dict) else v
                   for k, v in (run_info.get("options") or {}).items()}
        seeds = run_info.get("seeds")
        tags = {"run_dir": str(folder.path), "scale": str(run_info.get("scale")),
                "seeds": ",".join(map(str, seeds)) if isinstance(seeds, list)
                else str(seeds if seeds is not None else run_info.get("seed")),
                "git_commit": str(run_info.get("git_commit")),
                "worker": str(run_info.get("worker"))}
        self.parent = self.client.create_run(experiment_id, run_name=folder.path.name,
                                             tags=tags).info.run_id
        self.client.log_batch(self.parent, params=_params(
            {k: v for k, v in options.items() if v not in (None, "", [], {})}))
        self.cases: dict[str, tuple[str, str, int]] = {}  # nodeid -> (case id, run id, start ms)
        self.open: set[str] = set()  # nodeids whose case run has not ended
        self.logged = 0  # case runs kept (skipped cases' runs are deleted)
        self.errors: list[str] = []
        self.down: str | None = None  # why the server stopped answering, once it did

    def _attempt(self, what: str, action) -> bool:
        """Run ``action()``; a failure becomes a line of the summary, and a lost server stops
        all further calls (each would wait out its retries)."""
        if self.down:
            return False
        try:
            action()
            return True
        except Exception as exc:  # noqa: BLE001 - tracking must not fail the case
            line = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if _is_network_error(exc):
                self.down = f"{what}: {line}"
            else:
                self.errors.append(f"{what}: {line}")
            return False

    # -- cases -----------------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report) -> None:
        """Open a case run on the setup report, end it on the call report (or on a failed or
        skipped one). Runs inside watch's wrapper, after the row came home into the folder."""
        if report.when == "setup" and not report.skipped:
            self._start_case(report)
        if report.nodeid not in self.cases:
            return
        case_id, run_id, start = self.cases[report.nodeid]
        end = _ms(getattr(report, "stop", None)) or _now_ms()
        if report.nodeid not in self.open:
            if report.failed:  # a teardown error after the case had ended
                self._attempt(case_id, lambda: self.client.set_terminated(run_id, "FAILED", end))
            return
        if report.skipped:  # resumed or decided: the case did not run in this session
            self.open.discard(report.nodeid)
            if self._attempt(case_id, lambda: self.client.delete_run(run_id)):
                self.logged -= 1
        elif report.when == "call" or report.failed:
            self.open.discard(report.nodeid)
            self._end_case(case_id, run_id, start, max(end, start), report.passed)

    def _start_case(self, report) -> None:
        case_id = _case_of(report.nodeid)
        if case_id is None:
            return
        # The report's own start, taken where the test ran: under xdist the controller hears of
        # a case late whenever it is busy (0.4 s to seconds, measured), and a run's start time
        # cannot be changed once it exists.
        start = _ms(getattr(report, "start", None)) or _now_ms()

        def create() -> None:
            run = self.client.create_run(
                self.experiment_id, start_time=start, run_name=case_id,
                tags={"mlflow.parentRunId": self.parent, "case_id": case_id,
                      "status": "running"})
            self.cases[report.nodeid] = (case_id, run.info.run_id, start)
            self.open.add(report.nodeid)
            self.logged += 1

        self._attempt(case_id, create)

    def _end_case(self, case_id: str, run_id: str, start: int, end: int, passed: bool) -> None:
        row_path = self.folder.row_path(case_id)
        fresh = row_path.is_file() and row_path.stat().st_mtime >= start / 1000 - _FRESH_SLACK_S
        if fresh:
            self._attempt(case_id, lambda: self._log_row(run_id, row_path, start, end))
        if passed:
            status = "FINISHED"
        elif not fresh and self.folder.started_info(case_id):
            status = "KILLED"  # started and left no row: its process died or was stopped
            self._attempt(case_id, lambda: self.client.set_tag(run_id, "status", "unfinished"))
        else:
            status = "FAILED"
        self._attempt(case_id, lambda: self.client.set_terminated(run_id, status, end))

    def _log_row(self, run_id: str, row_path: Path, start: int, end: int) -> None:
        import json

        from mlflow.entities import Metric, RunTag

        from resnet_harness.report import plots  # matplotlib only when a case is logged

        row = json.loads(row_path.read_text())
        history = row.get("history") if isinstance(row.get("history"), dict) else {}
        last = max((len(v) for v in history.values()), default=1) - 1
        evaluation = row.get("evaluation_s")
        # fit ended the evaluation's seconds before the test did (late by the time taken to
        # judge and write the row: milliseconds to tens of them).
        fit_end = end - round(1000 * evaluation) if isinstance(evaluation, (int, float)) else end
        metrics = [Metric(k, v, end, max(last, 0)) for k, v in numeric_metrics(row).items()]
        metrics += [Metric(*entry) for entry in history_metrics(row, max(fit_end, start), start)]
        self.client.log_batch(run_id, metrics=metrics, params=_params(case_params(row)),
                              tags=[RunTag(k, v) for k, v in case_tags(row).items()])
        with tempfile.TemporaryDirectory(prefix="resnet-harness-mlflow-") as tmp:
            shutil.copyfile(row_path, Path(tmp) / "row.json")
            npz = row_path.with_suffix(".npz")
            if npz.is_file():
                shutil.copyfile(npz, Path(tmp) / "predictions.npz")
            matrix = (row.get("metrics") or {}).get("confusion_matrix")
            if matrix:
                (Path(tmp) / "confusion.png").write_bytes(plots.confusion_png(
                    matrix, row.get("class_names") or [], row.get("case_id", "")))
            self.client.log_artifacts(run_id, tmp)

    # -- end -------------------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Close what is still open (KILLED), give the parent the session's figures and report
        files, and end it; trylast: after the controller wrote the report."""
        for nodeid in sorted(self.open):
            case_id, run_id, _ = self.cases[nodeid]
            self._attempt(case_id, lambda: self.client.set_tag(run_id, "status", "unfinished"))
            self._attempt(case_id, lambda: self.client.set_terminated(run_id, "KILLED"))
        self.open.clear()
        status = session.exitstatus
        if status == pytest.ExitCode.INTERRUPTED:
            end = "KILLED"
        elif status in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            end = "FINISHED"
        else:
            end = "FAILED"
        if self.folder.has_started():
            self._attempt("session figures", lambda: self._log_session())
        self._attempt("parent run", lambda: self.client.set_terminated(self.parent, end))

    def _log_session(self) -> None:
        from mlflow.entities import Metric

        stamp = _now_ms()
        self.client.log_batch(self.parent, metrics=[
            Metric(k, v, stamp, 0) for k, v in session_metrics(self.folder).items()])
        for name in PARENT_ARTIFACTS:
            path = self.folder.path / name
            if path.is_file():
                self.client.log_artifact(self.parent, str(path))

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter) -> None:
        """Where the runs are and how to look at them (after the harness's own summary)."""
        write = terminalreporter.write_line
        write(f"mlflow: {self.logged} case runs under parent run {self.parent} in {self.uri}")
        if self.uri.startswith(("http://", "https://")):
            write(f"mlflow: {self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/"
                  f"{self.parent}")
        else:  # the [mlflow] extra's skinny client has no UI
            write(f"mlflow: browse them with: mlflow ui --backend-store-uri {self.uri} "
                  "(needs pip install mlflow), then http://127.0.0.1:5000")
        for error in self.errors:
            write(f"mlflow: not logged: {error}", red=True)
        if self.down:
            write(f"mlflow: the server stopped answering ({self.down}); nothing was logged "
                  f"after that, the rows are in {self.folder.cases_dir}", red=True)


def _params(params: dict[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(str(k), str(v)[:6000]) for k, v in params.items()]


def _case_of(nodeid: str) -> str | None:
    """The study case a test id runs (its parameter id), or None for any other test."""
    from resnet_harness import study

    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    case_id = nodeid.rpartition("[")[2][:-1]
    return case_id if study.find_case(case_id) is not None else None


def _artifacts(uri: str) -> str | None:
    """Artifacts of a new experiment in a SQLite store go beside the database file, not into
    whatever folder pytest happened to run in."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    database = Path(uri[len(prefix):])
    return (database.parent.resolve() / "mlartifacts").as_uri()
