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
