"""Rows come home through xdist: a worker reached over SSH (an sshd on the loopback address,
``chdir`` into another folder) writes its rows there, and the controller's run folder, CSV and
report still hold every case. Skipped, with the reason, where no sshd can be started (CI installs
openssh-server, see .ci/run)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import FAST

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def loopback_ssh(tmp_path):
    """An sshd on 127.0.0.1 that accepts a key made here; yields an ssh config file naming the
    host ``harness-loopback``."""
    if not os.path.isfile(SSHD) or shutil.which("ssh") is None or shutil.which("ssh-keygen") \
            is None:
        pytest.skip("no OpenSSH server here (apt-get install openssh-server; .ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("sshd on the loopback address needs root here (it switches users)")
    home = tmp_path / "ssh"
    home.mkdir()
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)],
                       check=True)
    (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
    port = _free_port()
    (home / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home / 'host_key'}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\nPidFile {home / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nAcceptEnv *\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"sshd did not start: {server.stderr.read().decode()[-300:]}")
                time.sleep(0.1)
        config = home / "ssh_config"
        config.write_text(
            f"Host harness-loopback\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
            f"  IdentityFile {home / 'client_key'}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
            "  BatchMode yes\n")
        probe = subprocess.run(["ssh", "-F", str(config), "harness-loopback", "true"],
                               capture_output=True, timeout=30)
        if probe.returncode != 0:
            pytest.skip(f"ssh to the loopback sshd failed: {probe.stderr.decode()[-300:]}")
        yield config
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stderr.close()


ROOT = Path(__file__).resolve().parents[1]
# The README's recipe, word for word (its lines joined); the test fills in this machine's host,
# Python and folder.
RECIPE = ("pytest experiments -m table7 --report-dir reports -d "
          "--tx ssh=me@gpu1//python=/srv/resnet-harness/.venv/bin/python"
          "//chdir=/srv/resnet-harness --tx popen")


def _readme_commands() -> str:
    return (ROOT / "README.md").read_text().replace("\\\n", " ").replace("  ", " ")


def _project_copy(folder: Path) -> Path:
    """The project as a user has it: its pytest.ini (``filterwarnings = error`` included),
    root conftest.py and experiments/."""
    folder.mkdir()
    for name in ("pytest.ini", "conftest.py"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "experiments", folder / "experiments",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_the_readmes_many_machines_recipe_runs_as_written(loopback_ssh, tmp_path):
    assert " ".join(RECIPE.split()) in " ".join(_readme_commands().split())
    here = _project_copy(tmp_path / "here")
    remote = _project_copy(tmp_path / "gpu1")  # the project installed on the other host
    (here / "reports").mkdir()  # an existing path given as a separate argument
    python = sys.executable
    if os.environ.get("PYTHONPATH"):  # a checkout used without installing it
        python = f"env PYTHONPATH={os.environ['PYTHONPATH']} {python}"
    command = [word.replace("me@gpu1", f"-F {loopback_ssh} harness-loopback")
               .replace("/srv/resnet-harness/.venv/bin/python", python)
               .replace("/srv/resnet-harness", str(remote)) for word in shlex.split(RECIPE)]
    assert command[0] == "pytest"
    # Tests only: synthetic data and the tiny backbone, two of table 7's four cases.
    extra = [*FAST, "-k", "cifar10", "--max-worker-restart", "0"]
    done = subprocess.run([sys.executable, "-m", *command, *extra], cwd=here,
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    (tmp_path / "output.txt").write_text(output)
    assert done.returncode == 0, output[-3000:]
    assert "2 passed" in output and "INTERNALERROR" not in output
    # Each worker's epoch line reaches this piped log, the one over SSH (gw0) too.
    for worker in ("gw0", "gw1"):
        assert f"  [{worker}] case table7-cifar10-" in output, output[-3000:]
    (run_dir,) = (here / "reports" / "runs").iterdir()
    (remote_run,) = (remote / "reports" / "runs").iterdir()
    assert remote_run.name == run_dir.name
    remote_rows = {p.name: p.read_bytes() for p in (remote_run / "cases").iterdir()}
    assert len(remote_rows) == 2  # the remote case's row and its predictions, nothing else
    for name, data in remote_rows.items():
        assert (run_dir / "cases" / name).read_bytes() == data  # came home, byte for byte
    frame = pd.read_csv(run_dir / "results.csv")
    assert len(frame) == 2 and set(frame["status"]) == {"passed"}
    rows = [json.loads((run_dir / "cases" / f"{case}.json").read_text())
            for case in frame["case_id"]]
    assert {row["provenance"]["worker"] for row in rows} == {"gw0", "gw1"}
    # Both rows, the one made over SSH too, record what the user typed (not xdist's "-c").
    typed = json.loads((run_dir / "run.json").read_text())["command_line"]
    assert "--tx popen" in typed
    assert {row["provenance"]["command_line"] for row in rows} == {typed}
    assert (run_dir / "report.html").is_file() and "report: " in output
    # nothing copied to the other host (no rsync of pytest or the project), no scratch left
    assert sorted(p.name for p in remote.iterdir() if p.name != "__pycache__") == [
        "conftest.py", "experiments", "pytest.ini", "reports"]
    # the other host keeps a run folder of its own rows (mergeable with `python -m
    # resnet_harness report`); its worker's live progress came home on a channel
    assert sorted(p.name for p in remote_run.iterdir()) == ["cases", "run.json", "started"]


def test_deprecated_rsyncdir_is_not_an_internal_error_under_the_projects_ini(tmp_path):
    """``filterwarnings = error`` must not turn xdist's rsync deprecation into INTERNALERROR."""
    here = _project_copy(tmp_path / "here")
    done = subprocess.run([sys.executable, "-m", "pytest", "experiments", "--rsyncdir",
                           "experiments", "--collect-only", "-q", "-m", "table7", *FAST],
                          cwd=here, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert "INTERNALERROR" not in done.stdout + done.stderr
    assert "4 tests collected" in done.stdout or "4/" in done.stdout


def test_attach_and_receive_copy_row_and_predictions_once(tmp_path):
    import numpy as np

    from resnet_harness.plugin import homecoming
    from resnet_harness.storage.rundir import RunFolder

    from test_schema import passed_arrays, passed_row

    worker = RunFolder(tmp_path / "worker").create()
    worker.write_row(dict(passed_row(), case_id="c1"), passed_arrays())

    class Report:
        pass

    report = Report()
    homecoming.attach(report, worker, "c1", with_files=True)
    homecoming.attach(Report(), worker, "missing", with_files=True)  # no row: nothing attached
    controller = RunFolder(tmp_path / "controller")
    assert homecoming.receive(report, controller, {"scale": "smoke"}) == "c1"
    assert not hasattr(report, homecoming.ATTRIBUTE)  # taken off the report
    for name in ("c1.json", "c1.npz"):
        assert (controller.cases_dir / name).read_bytes() == \
            (worker.cases_dir / name).read_bytes()
    assert controller.run_info() == {"scale": "smoke"}
    assert controller.load_predictions("c1")["proba"].shape == (80, 10)
    # the same bytes again (a local worker shares the folder): not rewritten
    stamp = (controller.cases_dir / "c1.json").stat().st_mtime_ns
    again = Report()
    homecoming.attach(again, worker, "c1", with_files=True)
    homecoming.receive(again, controller)
    assert (controller.cases_dir / "c1.json").stat().st_mtime_ns == stamp
    assert homecoming.receive(Report(), controller) is None
