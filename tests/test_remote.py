"""Rows come home through xdist: a worker reached over SSH (an sshd on the loopback address,
``chdir`` into another folder) writes its rows there, and the controller's run folder, CSV and
report still hold every case. Skipped, with the reason, where no sshd can be started (CI installs
openssh-server, see .ci/run)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import CONFTEST, EXPERIMENTS, FAST

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


def test_rows_of_a_worker_over_ssh_come_home(pytester: pytest.Pytester, loopback_ssh, tmp_path):
    test_file = pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    # An ini file travels with the tests, so both workers find the same rootdir and test ids.
    pytester.makeini("[pytest]\n")
    remote_dir = tmp_path / "remote-host"
    remote_dir.mkdir()
    python = sys.executable
    if os.environ.get("PYTHONPATH"):  # a checkout used without installing it
        python = f"env PYTHONPATH={os.environ['PYTHONPATH']} {python}"
    spec = f"ssh_config={loopback_ssh}//ssh=harness-loopback//python={python}//chdir={remote_dir}"
    # One worker over SSH and one local: the two cases go one to each (round robin).
    # --rsyncdir: the worker gets its own copy of the test folder, as a real remote host would.
    result = pytester.runpytest_subprocess(
        str(test_file), "--rsyncdir", str(pytester.path), *FAST, "-k", "table7 and cifar10", "-d", "--tx", spec, "--tx",
        f"popen//python={sys.executable}", "--progress", "off", "--max-worker-restart", "0",
        timeout=600)
    result.assert_outcomes(passed=2)
    (run_dir,) = (pytester.path / "reports" / "runs").iterdir()
    (remote_run,) = (remote_dir / "reports" / "runs").iterdir()
    assert remote_run.name == run_dir.name
    remote_rows = {p.name: p.read_bytes() for p in (remote_run / "cases").iterdir()}
    assert len(remote_rows) == 2  # the remote case's row and its predictions, nothing else
    for name, data in remote_rows.items():
        assert (run_dir / "cases" / name).read_bytes() == data  # came home, byte for byte
    frame = pd.read_csv(run_dir / "results.csv")
    assert len(frame) == 2 and set(frame["status"]) == {"passed"}
    workers = {json.loads((run_dir / "cases" / f"{case}.json").read_text())["provenance"]
               ["worker"] for case in frame["case_id"]}
    assert workers == {"gw0", "gw1"}
    result.stdout.fnmatch_lines(["report: *report.html"])


def test_attach_and_receive_copy_row_and_predictions_once(tmp_path):
    import numpy as np

    from resnet_harness.plugin import homecoming
    from resnet_harness.storage.rundir import RunFolder

    from test_schema import passed_row

    worker = RunFolder(tmp_path / "worker").create()
    worker.write_row(dict(passed_row(), case_id="c1"),
                     {"proba": np.eye(3), "y_true": np.arange(3), "y_pred": np.arange(3)})

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
    assert controller.load_predictions("c1")["proba"].shape == (3, 3)
    # the same bytes again (a local worker shares the folder): not rewritten
    stamp = (controller.cases_dir / "c1.json").stat().st_mtime_ns
    again = Report()
    homecoming.attach(again, worker, "c1", with_files=True)
    homecoming.receive(again, controller)
    assert (controller.cases_dir / "c1.json").stat().st_mtime_ns == stamp
    assert homecoming.receive(Report(), controller) is None
