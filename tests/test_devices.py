"""One GPU per xdist worker, chosen before TensorFlow loads."""

from __future__ import annotations

import pytest

from resnet_harness.training import devices


@pytest.mark.parametrize("index, visible, count, expected", [
    (0, None, 2, "0"), (1, None, 2, "1"), (2, None, 2, "0"),  # round-robin past the GPUs
    (0, "2,3", 8, "2"), (1, "2,3", 8, "3"), (2, "2,3", 8, "2"),  # into the caller's list
    (1, " 5 , 7 ", 0, "7"), (0, None, 0, None),  # CPU-only: leave it alone
    (0, "", 4, None), (0, "-1", 4, None),  # the caller hid every GPU on purpose
])
def test_gpu_for_worker(index, visible, count, expected):
    assert devices.gpu_for_worker(index, visible, count) == expected


def test_worker_index():
    assert devices.worker_index("gw0") == 0 and devices.worker_index("gw12") == 12
    assert devices.worker_index(None) is None and devices.worker_index("main") is None
    assert devices.worker_index("gwx") is None


def test_pin_worker_sets_the_environment_of_a_worker(monkeypatch):
    env = {"PYTEST_XDIST_WORKER": "gw1", "CUDA_VISIBLE_DEVICES": "4,6"}
    assert devices.pin_worker(env) == "6"
    assert env["CUDA_VISIBLE_DEVICES"] == "6"
    assert env["RESNET_HARNESS_PARENT_CUDA_VISIBLE_DEVICES"] == "4,6"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    monkeypatch.setattr(devices, "count_gpus", lambda: 3)
    env = {"PYTEST_XDIST_WORKER": "gw4"}
    assert devices.pin_worker(env) == "1" and env["CUDA_VISIBLE_DEVICES"] == "1"


def test_pin_worker_leaves_the_controller_and_cpu_machines_alone(monkeypatch):
    monkeypatch.setattr(devices, "count_gpus", lambda: 0)
    env = {"PYTEST_XDIST_WORKER": "gw0"}
    assert devices.pin_worker(env) is None and "CUDA_VISIBLE_DEVICES" not in env
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert devices.pin_worker(env) is None and env["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_count_gpus_without_nvidia_smi(monkeypatch):
    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    assert devices.count_gpus() == 0


def test_each_host_spreads_its_workers_over_its_own_gpus(monkeypatch):
    """Hosts A (2 GPUs) and B (3 GPUs), their --tx specs interleaved, plus a local worker: each
    host's workers take distinct GPUs of that host, whatever their global gwN numbers (by gwN,
    A's gw0 and gw2 would both take GPU 0)."""
    import execnet

    from resnet_harness.plugin import hosts

    txs = ["ssh=me@a//python=/v/bin/python//chdir=/srv/h", "ssh=-F cfg b//chdir=/srv/h",
           "ssh=me@a//chdir=/srv/h", "ssh=-F cfg b//chdir=/srv/h", "ssh=-F cfg b//chdir=/x",
           "popen", "popen//chdir=/tmp/w"]
    slots = hosts.host_slots([execnet.XSpec(tx) for tx in txs])
    assert slots == [(0, 2, "ssh=me@a"), (0, 3, "ssh=-F cfg b"), (1, 2, "ssh=me@a"),
                     (1, 3, "ssh=-F cfg b"), (2, 3, "ssh=-F cfg b"), (0, 2, "local"),
                     (1, 2, "local")]
    gpus = {"ssh=me@a": 2, "ssh=-F cfg b": 3, "local": 1}
    chosen: dict[str, list[str]] = {}
    for number, (slot, _, host) in enumerate(slots):
        monkeypatch.setattr(devices, "count_gpus", lambda host=host: gpus[host])
        env = {"PYTEST_XDIST_WORKER": f"gw{number}"}
        chosen.setdefault(host, []).append(devices.pin_worker(env, slot=slot))
    assert chosen == {"ssh=me@a": ["0", "1"], "ssh=-F cfg b": ["0", "1", "2"],
                      "local": ["0", "0"]}  # more workers than GPUs: round-robin
    # a host's own CUDA_VISIBLE_DEVICES list is what its workers spread over
    env = {"PYTEST_XDIST_WORKER": "gw3", "CUDA_VISIBLE_DEVICES": "5,7"}
    assert devices.pin_worker(env, slot=1) == "7"


def test_configure_node_tells_a_worker_its_slot_also_when_it_replaces_a_dead_one():
    import execnet

    from resnet_harness.plugin import hosts

    specs = [execnet.XSpec(tx) for tx in ("ssh=a", "popen", "ssh=a")]
    for number, spec in enumerate(specs):
        spec.id = f"gw{number}"

    class Node:
        def __init__(self, spec):
            self.nodemanager = type("Manager", (), {"specs": specs})()
            self.gateway = type("Gateway", (), {"spec": spec})()
            self.workerinput = {}

    node = Node(specs[2])
    hosts.configure_node(node)
    assert node.workerinput[hosts.HOST_SLOT_KEY] == [1, 2, "ssh=a"]
    stranger = Node(execnet.XSpec("ssh=c"))
    stranger.gateway.spec.id = "gw9"
    hosts.configure_node(stranger)
    assert stranger.workerinput[hosts.HOST_SLOT_KEY] == [0, 1, "ssh=c"]
