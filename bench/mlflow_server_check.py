"""The ``--mlflow`` option against a real ``mlflow server`` on 127.0.0.1 (README "Tracking runs
in MLflow"): start the server, run a tiny session against it (synthetic data, tiny backbone, two
seeds, two epochs, one injected failure), read everything back through the server with MLflow's
client, then stop the server and time a session against the closed port. Prints each check and
the figures; exits 1 when a check fails.

The harness's ``[mlflow]`` extra is MLflow's skinny client, which cannot run ``mlflow server``;
give this script the ``mlflow`` command of a full install::

    python -m venv /tmp/mlflow && /tmp/mlflow/bin/pip install mlflow
    python bench/mlflow_server_check.py --mlflow-cli /tmp/mlflow/bin/mlflow
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ("--data-source", "synthetic", "--backbone", "tiny", "-p", "no:cacheprovider")
SELECT = ("-k", "table7 and cifar10", "--seeds", "0,1", "--epochs", "2")
FAILING = "table7-cifar10-imbalanced-split_orig-reg_none-seed1"
CONFTEST = f'''pytest_plugins = ["resnet_harness.plugin"]
import resnet_harness.training.runner as runner

_real = runner.run_case


def _failing(cfg, *args, **kwargs):
    if cfg.case.id == "{FAILING}":
        raise RuntimeError("injected failure")
    return _real(cfg, *args, **kwargs)


runner.run_case = _failing
'''
CASE_ARTIFACTS = {"row.json", "predictions.npz", "confusion.png"}
PARENT_ARTIFACTS = {"results.csv", "report.html", "claims.csv", "comparisons.csv", "seeds.csv",
                    "run.json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(cli: str, work: Path, port: int, patience_s: float = 120.0):
    """``mlflow server`` on 127.0.0.1:``port`` with its store and artifacts under ``work``;
    returns ``(process, seconds until /health answered)``."""
    log = open(work / "server.log", "wb")
    process = subprocess.Popen(
        [cli, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{work / 'server.db'}",
         "--artifacts-destination", str(work / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=work)
    start = time.monotonic()
    while time.monotonic() - start < patience_s:
        if process.poll() is not None:
            raise SystemExit(f"mlflow server exited ({process.returncode}); see "
                             f"{work / 'server.log'}; --mlflow-cli must be a full mlflow install")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return process, time.monotonic() - start
        except OSError:
            time.sleep(0.25)
    process.terminate()
    raise SystemExit(f"mlflow server did not answer within {patience_s:.0f} s")


def run_session(project: Path, uri: str) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", *FAST, *SELECT, "--mlflow", uri],
                          cwd=project, env=env, capture_output=True, text=True)
    return done, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow-cli", default=shutil.which("mlflow") or "mlflow",
                        help="the mlflow command of a full MLflow install (default: on PATH)")
    args = parser.parse_args()
    from mlflow import MlflowClient

    failures: list[str] = []

    def check(ok: bool, text: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
        if not ok:
            failures.append(text)

    with tempfile.TemporaryDirectory(prefix="mlflow-check-") as tmp:
        work = Path(tmp)
        project = work / "project"
        project.mkdir()
        shutil.copy(ROOT / "experiments" / "test_study.py", project / "test_study.py")
        (project / "conftest.py").write_text(CONFTEST)
        port = free_port()
        uri = f"http://127.0.0.1:{port}"
        server, startup = start_server(args.mlflow_cli, work, port)
        try:
            print(f"mlflow server {uri}: answered /health after {startup:.1f} s")
            done, seconds = run_session(project, uri)
            print(f"session: exit {done.returncode} in {seconds:.1f} s")
            output = done.stdout + done.stderr
            check(done.returncode == 1, "one case fails (injected), the others pass")
            check("View run" not in output and "View experiment" not in output,
                  "no 'View run' / 'View experiment' lines in pytest's output")
            client = MlflowClient(tracking_uri=uri)
            experiment = client.get_experiment_by_name("resnet-harness")
            runs = client.search_runs([experiment.experiment_id])
            (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
            children = {r.info.run_name: r for r in runs if r is not parent}
            check(parent.info.status == "FAILED" and parent.data.tags.get("seeds") == "0,1",
                  f"parent run {parent.info.status}, tag seeds={parent.data.tags.get('seeds')}")
            figures = parent.data.metrics
            check(figures.get("cases_passed") == 3 and figures.get("cases_error") == 1
                  and "table7/accuracy_mean" in figures,
                  f"parent figures: {json.dumps({k: round(v, 4) for k, v in figures.items()})}")
            names = {a.path for a in client.list_artifacts(parent.info.run_id)}
            check(names >= PARENT_ARTIFACTS, f"parent artifacts: {sorted(names)}")
            statuses = {name: r.info.status for name, r in children.items()}
            check(len(children) == 4 and statuses.pop(FAILING) == "FAILED"
                  and set(statuses.values()) == {"FINISHED"}, f"case runs: {statuses}")
            for name, run in sorted(children.items()):
                info = run.info
                artifacts = {a.path for a in client.list_artifacts(info.run_id)}
                history = client.get_metric_history(info.run_id, "fit/loss")
                steps = [m.step for m in history]
                inside = all(info.start_time <= m.timestamp <= info.end_time for m in history)
                print(f"  {name}: {info.status}, {(info.end_time - info.start_time) / 1000:.2f} s,"
                      f" fit/loss steps {steps}, artifacts {sorted(artifacts)}")
                if name != FAILING:
                    check(steps == [0, 1] and inside and artifacts == CASE_ARTIFACTS,
                          f"{name}: per-epoch history within the run, same artifact names")
            some = sorted(n for n in children if n != FAILING)[0]
            local = client.download_artifacts(children[some].info.run_id, "row.json", tmp)
            check(json.loads(Path(local).read_text())["case_id"] == some,
                  "row.json downloads through the server")
        finally:
            server.terminate()
            server.wait(timeout=30)
        done, seconds = run_session(project, uri)
        line = next((x for x in (done.stdout + done.stderr).splitlines() if "--mlflow" in x), "")
        print(f"closed port: exit {done.returncode} in {seconds:.1f} s: {line.strip()}")
        check(done.returncode == 4 and seconds < 10, "a closed port is a usage error within 10 s")
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
