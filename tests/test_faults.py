"""Bad input and faults beside the table of ``test_bad_input``: data that would be silently
mislabelled, limits, weights files, write faults (disk full as an injected ``ENOSPC``), SIGTERM,
and corrupt run folders. Each is refused with one line naming the input and the fix, or fails
only the case concerned; never a traceback, never INTERNALERROR, never silent acceptance."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import (CONFTEST, EXPERIMENTS, FAST, fashion_arrays, write_cifar_batches,
                     write_idx_folder, write_image_folders, write_resnet50_weights)
from resnet_harness.__main__ import main
from resnet_harness.training.data.sources import DataError, load_local
from resnet_harness.storage.atomic import atomic_write_json
from resnet_harness.storage.rundir import RunFolder

REPO = Path(__file__).resolve().parents[1]
T7_CIFAR_BAL = "table7-cifar10-balanced-split_orig-reg_none"
T7_CIFAR_IMB = "table7-cifar10-imbalanced-split_orig-reg_none"


def _no_crash(text: str) -> None:
    assert "Traceback" not in text and "INTERNALERROR" not in text, text


# ---------------------------------------------------------------------------------------------
# Data that would train wrong labels or give meaningless metrics: refused by the data check.


def _rename(folder: Path, old: str, new: str) -> None:
    for split in ("train", "test"):
        (folder / split / old).rename(folder / split / new)


def _images_car(root):  # the example: "car" instead of "automobile"
    _rename(write_image_folders(root), "automobile", "car")


def _images_empty_class(root):
    folder = write_image_folders(root)
    for image in (folder / "train" / "cat").iterdir():
        image.unlink()


def _images_missing_class(root):
    folder = write_image_folders(root)
    shutil.rmtree(folder / "train" / "truck")


def _images_twice(root):
    folder = write_image_folders(root)
    shutil.copytree(folder / "train" / "cat", folder / "train" / "Cat_")
    shutil.rmtree(folder / "train" / "dog")


def _images_index_10(root):
    _rename(write_image_folders(root, numeric=True), "9", "10")


def _images_mixed(root):
    _rename(write_image_folders(root, numeric=True), "3", "cat")


def _images_tiff(root):
    folder = write_image_folders(root)
    (folder / "train" / "cat" / "scan.tiff").write_bytes(b"II*\x00")


def _images_nested(root):
    folder = write_image_folders(root)
    shutil.copytree(folder / "train" / "dog", folder / "train" / "dog" / "more")


def _images_only_in_test_wrong(root):
    folder = write_image_folders(root)
    (folder / "test" / "ship").rename(folder / "test" / "boat")


def _idx_labels(train=None, test=None):
    def build(root):
        x_train, y_train, x_test, y_test = fashion_arrays(20, 10)
        write_idx_folder(root, gz=True, arrays=(
            x_train, y_train if train is None else train, x_test,
            y_test if test is None else test))
    return build


def _cifar_labels_0_to_4(root):
    write_cifar_batches(root, per_batch=4, n_test=10)
    base = root / "cifar-10-batches-py"
    import pickle

    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with (base / name).open("rb") as handle:
            batch = pickle.load(handle)
        batch[b"labels"] = [v % 5 for v in batch[b"labels"]]
        with (base / name).open("wb") as handle:
            pickle.dump(batch, handle)


BAD_DATA = [
    ("cifar10", _images_car, "has class folders that are not cifar10 classes: car; expected the "
                             "cifar10 class names (airplane, automobile, bird"),
    ("cifar10", _images_empty_class, "class folder * holds no images"),
    ("cifar10", _images_missing_class, "has no class folder for truck; every class needs one"),
    ("cifar10", _images_twice, "has more than one folder for the classes cat"),
    ("cifar10", _images_index_10, "not cifar10 classes: 10;"),
    ("cifar10", _images_mixed, "train mixes class folders named by index (0, 1, 2, 4, 5, 6, 7, "
                               "8, 9) with folders named by class; name every class folder by "
                               "its class name (airplane, automobile, *) or every one by its "
                               "index 0-9"),
    ("cifar10", _images_tiff, "train/cat/scan.tiff is not an image the harness reads (.bmp, "
                              ".jpeg, .jpg, .png); convert or remove it"),
    ("cifar10", _images_nested, "class folder */train/dog holds a sub-folder 'more'; images must "
                                "lie directly in their class folder"),
    ("cifar10", _images_only_in_test_wrong, "test has class folders that are not cifar10 "
                                            "classes: boat"),
    ("fashion_mnist", _idx_labels(train=np.zeros(20, np.uint8)),
     "fashion_mnist train labels from idx:* cover 1 of the 10 classes (none of class 1, 2, 3"),
    ("fashion_mnist", _idx_labels(test=np.arange(10, dtype=np.uint8) % 9),
     "fashion_mnist test labels from idx:* cover 9 of the 10 classes (none of class 9)"),
    ("cifar10", _cifar_labels_0_to_4, "cifar10 train labels from cifar-batches:* cover 5 of the "
                                      "10 classes (none of class 5, 6, 7, 8, 9)"),
]


@pytest.mark.parametrize("dataset, build, message", BAD_DATA,
                         ids=[b.__name__.strip("_") for _, b, _ in BAD_DATA])
def test_bad_data_is_refused_with_one_line(tmp_path, dataset, build, message):
    import fnmatch

    build(tmp_path / "data")
    with pytest.raises(DataError) as exc:
        load_local(tmp_path / "data", dataset, cache_dir=tmp_path / "cache")
    text = str(exc.value)
    assert "\n" not in text and fnmatch.fnmatch(text, f"*{message}*"), text


def test_hidden_folders_beside_the_class_folders_are_not_classes(tmp_path):
    folder = write_image_folders(tmp_path / "data")
    (folder / "train" / ".ipynb_checkpoints").mkdir()
    raw = load_local(folder, "cifar10")
    assert np.bincount(raw.y_train).tolist() == [2] * 10


def test_mislabelled_folder_stops_the_run_before_training_even_with_a_cache(pytester, tmp_path):
    """A cache decoded before the folder was renamed must not hide the wrong name."""
    folder = write_image_folders(tmp_path / "cifar")
    cache = tmp_path / "cache"
    load_local(folder, "cifar10", cache_dir=cache)
    _rename(folder, "automobile", "car")
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    pytester.syspathinsert(REPO)
    os.environ["RESNET_HARNESS_CACHE_DIR"] = str(cache)
    try:
        result = pytester.runpytest("--backbone", "tiny", "--data-dir", f"cifar10={folder}",
                                    "-k", "table7-cifar10-balanced", "-p", "no:cacheprovider")
    finally:
        del os.environ["RESNET_HARNESS_CACHE_DIR"]
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*resnet-harness: * has class folders that are not cifar10 "
                                 "classes: car; *rename or remove them*"])
    _no_crash(result.stdout.str())
    assert not (pytester.path / "reports").exists()


# ---------------------------------------------------------------------------------------------
# Options, environment variables and ini keys: a one-line usage error before anything trains.


def _weights(tmp_path: Path, kind: str) -> str:
    path = tmp_path / "resnet50_notop.h5"
    if kind == "text":
        path.write_text("not weights at all\n")
    elif kind == "truncated":
        write_resnet50_weights(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "with-top":  # include_top=True adds the 1000-class Dense layer
        from resnet_harness.training.weights import resnet50_notop_shapes

        write_resnet50_weights(path, resnet50_notop_shapes() + [(2048, 1000), (1000,)])
    elif kind == "other-architecture":
        write_resnet50_weights(path, [(3, 3, 3, 64), (64,)] * 13)
    elif kind == "suffix":
        path = write_resnet50_weights(tmp_path / "resnet50.bin")
    elif kind == "keras3-named-h5":
        write_resnet50_weights(path, keras3=True)
    elif kind == "regrouped":
        write_resnet50_weights(path, one_per_layer=True)
    elif kind == "legacy-named-weights.h5":
        path = write_resnet50_weights(tmp_path / "resnet50.weights.h5")
    return str(path)


BAD_WEIGHTS = [
    ("text", "cannot be read as HDF5 (file signature not found); it is truncated or not a Keras "
             "weights file"),
    ("truncated", "cannot be read as HDF5 (truncated file"),
    ("with-top", "is not ResNet50 without its top: 320 weight arrays, expected 318 (unexpected "
                 "shapes [(1000,), (2048, 1000)])"),
    ("other-architecture", "is not ResNet50 without its top: 26 weight arrays, expected 318"),
    ("suffix", "does not end in .weights.h5, .h5, .hdf5"),
    ("regrouped", "groups its 318 weight arrays into 318 layers, ResNet50 has 106, so Keras "
                  "cannot load it"),
    ("keras3-named-h5", "has no 'layer_names' (not the legacy Keras layout"),
    ("legacy-named-weights.h5", "holds the legacy Keras layout but its name ends in .weights.h5"),
]


@pytest.mark.parametrize("kind, message", BAD_WEIGHTS, ids=[k for k, _ in BAD_WEIGHTS])
def test_bad_weights_file_is_a_usage_error(pytester, tmp_path, kind, message):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    # The project as a test path: its conftest loads the plugin before an option's value that
    # is an existing path (outside the project) could be taken for one.
    result = pytester.runpytest(str(pytester.path), "--weights", _weights(tmp_path, kind))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.lines if message in line]
    assert len(lines) == 1 and "argument --weights: weights file" in lines[0], \
        result.stderr.lines
    assert any(fix in lines[0] for fix in ("pass Keras' resnet50_weights_tf_dim_ordering_tf_"
                                           "kernels_notop.h5", "rename it"))
    _no_crash(result.stderr.str() + result.stdout.str())


@pytest.mark.parametrize("name, keras3", [("resnet50_notop.h5", False),
                                         ("resnet50.weights.h5", True)])
def test_a_resnet50_notop_weights_file_passes_the_check(pytester, tmp_path, name, keras3):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    path = write_resnet50_weights(tmp_path / name, keras3=keras3)
    result = pytester.runpytest(str(pytester.path), "--weights", str(path), "--collect-only",
                                "-q")
    assert result.ret == pytest.ExitCode.OK


def test_files_that_pass_the_check_load_into_keras_resnet50(tmp_path):
    """The check's idea of ResNet50 notop is Keras': real files of both layouts pass it and
    load (15 s: builds ResNet50 three times)."""
    import keras

    from resnet_harness.training.weights import check_weights_file
    from keras.src.legacy.saving import legacy_h5_format
    import h5py

    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    keras3, legacy = tmp_path / "r.weights.h5", tmp_path / "r_notop.h5"
    model.save_weights(keras3)
    with h5py.File(legacy, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    for path in (keras3, legacy):
        check_weights_file(path)
        keras.applications.ResNet50(include_top=False, weights=str(path), input_shape=(32, 32, 3))


def _a_file(tmp_path: Path) -> str:
    (tmp_path / "afile").write_text("x")
    return str(tmp_path / "afile")


# (args, environment, ini, message); {file} is a path of an existing file.
BAD_SETTINGS = [
    (["--epochs", "99999999999999999999"], {}, "",
     "argument --epochs: '99999999999999999999' epochs is more than the limit of 10,000"),
    (["--epochs", "10001"], {}, "", "epochs is more than the limit of 10,000"),
    (["--max-train-samples", "1000000000000"], {}, "",
     "argument --max-train-samples: '1000000000000' is more images than the largest data set "
     "holds (70,000, Fashion-MNIST train + test); use at most 70000"),
    (["--max-test-samples", "1e20"], {}, "",
     "argument --max-test-samples: '1e20' is not an integer; use a whole number from 10 to 70000"),
    (["--max-train-samples", "1e12"], {}, "", "'1e12' is not an integer"),
    ([], {"RESNET_HARNESS_MAX_TRAIN_SAMPLES": "100000000000000000000"}, "",
     "environment variable RESNET_HARNESS_MAX_TRAIN_SAMPLES: '100000000000000000000' is more "
     "images"),
    ([], {}, "harness_epochs = 1000000", "ini key harness_epochs: '1000000' epochs is more"),
    (["--report-dir", ""], {}, "", "argument --report-dir: report dir '' is empty; pass a folder"),
    (["--report-dir", "{file}"], {}, "", "is a file, not a folder; pass a folder path"),
    (["--report-dir", "{file}/runs"], {}, "", "cannot be created: '{file}' is a file"),
    ([], {"RESNET_HARNESS_REPORT_DIR": "{file}"}, "",
     "environment variable RESNET_HARNESS_REPORT_DIR: report dir '{file}' is a file"),
    ([], {}, "harness_report_dir = {file}/x", "ini key harness_report_dir: report dir"),
    ([], {"RESNET_HARNESS_DETERMINISTIC": "maybe"}, "",
     "environment variable RESNET_HARNESS_DETERMINISTIC: 'maybe' is not a yes/no value"),
    ([], {}, "harness_deterministic = maybe",
     "ini key harness_deterministic: 'maybe' is not a yes/no value; use one of: 1, 0, true, false, yes, no, on, off"),
]


@pytest.mark.parametrize("args, env, ini, message", BAD_SETTINGS,
                         ids=[" ".join(a) or next(iter(e), i) for a, e, i, _ in BAD_SETTINGS])
def test_bad_setting_is_a_one_line_usage_error(pytester, monkeypatch, tmp_path, args, env, ini,
                                               message):
    afile = _a_file(tmp_path)
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    if ini:
        pytester.makeini(f"[pytest]\n{ini.format(file=afile)}\n")
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(file=afile))
    result = pytester.runpytest(str(pytester.path), *[a.format(file=afile) for a in args])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = message.format(file=afile)
    assert len([line for line in result.stderr.lines if message in line]) == 1, \
        result.stderr.lines
    _no_crash(result.stderr.str() + result.stdout.str())


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("0", False),
                                             ("off", False)])
def test_deterministic_environment_variable_is_read(pytester, monkeypatch, value, expected):
    from resnet_harness.plugin import options

    def run_config(config):
        return options.run_config(options.resolve(config.getoption, config.getini))

    monkeypatch.setenv("RESNET_HARNESS_DETERMINISTIC", value)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nharness_deterministic = true\n")  # the environment beats ini
    config = pytester.parseconfigure()
    assert run_config(config).deterministic is expected
    assert run_config(pytester.parseconfigure("--deterministic")).deterministic is True


@pytest.mark.parametrize("args, message", [
    (["--max-train-samples", "10"],
     f"{T7_CIFAR_IMB}: the sample caps leave 1 training images in a reduced class (0, 1, 2) and "
     "removing 10% of them removes no image, so the imbalanced case would be balanced; raise "
     "--max-train-samples to at least 60 or --imbalance-fraction above 0.5"),
    (["--imbalance-fraction", "0.000001"], "removes no image, so the imbalanced case would be "
                                           "balanced; raise --imbalance-fraction above 0.0156"),
    (["--max-train-samples", "40", "--imbalance-fraction", "0.9"],
     "removes every image, so the class would be missing, not reduced; lower "
     "--imbalance-fraction"),
    (["--imbalance", "table2"], "removing 1% of them removes no image"),  # 32 per class at smoke
    (["-k", "split90", "--max-train-samples", "10", "--max-test-samples", "10"],
     "table9-cifar10-balanced-split90_10-reg_none: the sample caps leave no test image of class "
     "0, 1, 2, 3, 4, 5, 6, 7 (2 test images for 10 classes); raise --max-test-samples (a split "
     "case divides train + test caps by its ratio)"),
    (["--scale", "paper"], f"{T7_CIFAR_BAL} would load 'imagenet' weights but --backbone tiny "
                           "has none; pass --weights none"),
])
def test_caps_that_change_what_a_case_means_are_refused(pytester, args, message):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    if "-k" not in args:
        args = ["-k", "table7-cifar10", *args]
    result = pytester.runpytest(*FAST, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"*resnet-harness: *{message}*"])
    _no_crash(result.stdout.str())
    assert not (pytester.path / "reports").exists()


# ---------------------------------------------------------------------------------------------
# Write faults inside a run: the case fails with one line, the session goes on; a report that
# cannot be written makes the exit status non-zero and says how to rebuild it.

# Every file the harness writes goes through atomic._write_temp; this makes it fail as on a
# full disk for the files that match {condition}.
FAIL_WRITES = """
import errno, os
import resnet_harness.storage.atomic as results

_real = results._write_temp


def _full(path, data):
    if {condition}:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return _real(path, data)


results._write_temp = _full
"""




def _run_dir(root: Path) -> Path:
    (run_dir,) = sorted((root / "reports" / "runs").iterdir())
    return run_dir


def test_disk_full_while_writing_a_row_fails_that_case_only(study):
    study.makeconftest(CONFTEST + FAIL_WRITES.format(
        condition=f"path.name == '{T7_CIFAR_BAL}.npz'"))
    result = study.runpytest_subprocess(*FAST, "-k", "table7-cifar10")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        f"*{T7_CIFAR_BAL}: cannot write its row to * (OSError: No space left on device *"
        f"{T7_CIFAR_BAL}.npz); free disk space or pass a writable --report-dir*"])
    _no_crash(result.stdout.str())
    assert "During handling" not in result.stdout.str()
    frame = pd.read_csv(_run_dir(study.path) / "results.csv")
    status = dict(zip(frame["case_id"], frame["status"]))
    assert status == {T7_CIFAR_BAL: "unfinished", T7_CIFAR_IMB: "passed"}


DATA_ERROR_INSIDE_A_CASE = """
import resnet_harness.training.runner as runner
from resnet_harness.training.data import DataError


def _failing(cfg, *args, **kwargs):
    raise DataError("injected: the data of this case is wrong; fix it")


runner.run_case = _failing
"""


def test_an_error_seen_only_inside_a_case_is_one_line_shown_once(study):
    study.makeconftest(CONFTEST + DATA_ERROR_INSIDE_A_CASE)
    result = study.runpytest_subprocess(*FAST, "-k", T7_CIFAR_BAL, "-rN")  # no short summary
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert text.count("injected: the data of this case is wrong; fix it") == 1, text
    assert "During handling" not in text
    _no_crash(text)


def test_report_that_cannot_be_written_exits_non_zero_and_says_how_to_rebuild(study):
    study.makeconftest(CONFTEST + FAIL_WRITES.format(
        condition="path.name == 'report.html'"))
    result = study.runpytest_subprocess(*FAST, "-k", T7_CIFAR_BAL)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    run_dir = _run_dir(study.path).relative_to(study.path)
    result.stdout.fnmatch_lines([
        "*report not written (OSError: No space left on device *report.html); the 1 row is "
        f"safe in {run_dir}/cases; rebuild it with: python -m resnet_harness report {run_dir}"])
    run_dir = study.path / run_dir
    assert not (run_dir / "results.csv").exists() and not (run_dir / "report.html").exists()
    assert not list(run_dir.glob(".*.tmp"))  # no half-written file left behind
    assert main(["report", str(run_dir)]) == 0  # and the hint works
    assert pd.read_csv(run_dir / "results.csv")["status"].tolist() == ["passed"]


def test_a_disk_full_for_every_file_leaves_no_orphan_and_says_no_row_is_safe(study):
    study.makeconftest(CONFTEST + FAIL_WRITES.format(
        condition="path.suffix in ('.json', '.html', '.csv') and path.parent.name != 'started'"
                  " and path.name != 'run.json'"))
    result = study.runpytest_subprocess(*FAST, "-k", T7_CIFAR_BAL)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*report not written (*No space left on device*); no case "
                                 "wrote a row to *cases, so there is nothing to rebuild*"])
    cases = _run_dir(study.path) / "cases"
    assert not list(cases.glob("*.npz"))  # the predictions went with their unwritten row
    _no_crash(result.stdout.str())


def test_csv_is_written_atomically(tmp_path, monkeypatch):
    """Disk full while writing results.csv leaves the old file whole (it used to be 0 bytes)."""
    from resnet_harness.storage import atomic as results
    from resnet_harness.analysis import table

    old = tmp_path / "results.csv"
    old.write_text("case_id,status\nx,passed\n")

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results.os, "fdopen", lambda fd, mode: _Full(fd))
    with pytest.raises(OSError):
        table.write_csv(pd.DataFrame({"case_id": ["y"], "status": ["failed"]}), old)
    assert old.read_text() == "case_id,status\nx,passed\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


class _Full:
    """A file object whose writes fail as on a full disk."""

    def __init__(self, fd):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---------------------------------------------------------------------------------------------
# SIGTERM (what CI and schedulers send) is handled like Ctrl-C; cases never started: "not run".

SLOW_SECOND_CASE = """
import pathlib, time
import resnet_harness.training.runner as runner

_real = runner.run_case
_calls = []


def _slow(cfg, *args, **kwargs):
    _calls.append(cfg.case.id)
    if len(_calls) == 2:
        pathlib.Path("second-case-started").write_text(cfg.case.id)
        time.sleep(120)
    return _real(cfg, *args, **kwargs)


runner.run_case = _slow
"""


def test_sigterm_writes_report_and_csv_and_lists_cases_not_run(study):
    study.makeconftest(CONFTEST + SLOW_SECOND_CASE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *FAST, "-k", "table7"], cwd=study.path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marker = study.path / "second-case-started"
    deadline = time.monotonic() + 240
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), process.communicate(timeout=60)[0]
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    _no_crash(output)
    run_dir = _run_dir(study.path)
    frame = pd.read_csv(run_dir / "results.csv")
    status = dict(zip(frame["case_id"], frame["status"]))
    assert sorted(status.values()) == ["not_run", "not_run", "passed", "unfinished"], status
    assert status[marker.read_text()] == "unfinished"
    html = (run_dir / "report.html").read_text()
    assert "Not run (2)" in html
    assert output.count(" not run") >= 2 and "report: " in output


def test_stopped_early_with_x_lists_the_rest_as_not_run(study):
    study.makeconftest(CONFTEST + FAIL_WRITES.format(condition=f"path.name == '{T7_CIFAR_BAL}.npz'"))
    result = study.runpytest_subprocess(*FAST, "-k", "table7", "-x")
    result.assert_outcomes(failed=1)
    frame = pd.read_csv(_run_dir(study.path) / "results.csv")
    assert sorted(frame["status"]) == ["not_run"] * 3 + ["unfinished"]
    result.stdout.fnmatch_lines(["table7-cifar10-imbalanced-split_orig-reg_none *not run*"])


# ---------------------------------------------------------------------------------------------
# The command line: save-baseline and report on bad files.


def _results_csv(path: Path, text: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.csv").write_text(text)
    return path


GOOD_CSV = "case_id,scale,status,accuracy\nt7,smoke,passed,0.5\n"


@pytest.mark.parametrize("csv, dest, message", [
    (GOOD_CSV, "{file}/base.csv", "cannot write the baseline to {file}/base.csv ("),
    (GOOD_CSV, "{tmp}", "baseline destination {tmp} is a folder; pass a file path"),
    ("", "{tmp}/base.csv", "results.csv is empty; pass a results.csv written by resnet-harness"),
    ("name,value\na,1\n", "{tmp}/base.csv", "results.csv lacks the columns case_id, scale, "
                                            "status; pass a results.csv written by"),
    ("case_id,scale,status\nt7,smoke,failed\n", "{tmp}/base.csv",
     "results.csv has no passed case (1 rows); a baseline holds passed cases only"),
    ("\x00\x01\x02garbage", "{tmp}/base.csv", "holds NUL bytes from byte 0 on"),
], ids=["unwritable", "folder", "empty", "foreign", "no-passed", "binary"])
def test_save_baseline_bad_input_is_one_line_exit_2(tmp_path, capsys, csv, dest, message):
    afile = _a_file(tmp_path)
    run = _results_csv(tmp_path / "run", csv)
    fill = {"file": afile, "tmp": str(tmp_path)}
    assert main(["save-baseline", str(run), dest.format(**fill)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert message.format(**fill) in err[0], err


def test_save_baseline_writes_passed_rows(tmp_path, capsys):
    run = _results_csv(tmp_path / "run", GOOD_CSV + "t9,smoke,failed,0.1\n")
    assert main(["save-baseline", str(run), str(tmp_path / "b" / "base.csv")]) == 0
    assert pd.read_csv(tmp_path / "b" / "base.csv")["case_id"].tolist() == ["t7"]


def _run_folder(tmp_path: Path) -> Path:
    """A run folder with one sound row and its predictions, as the plugin writes them."""
    from test_report import RUN_INFO, make_row, write_run

    run = tmp_path / "run"
    write_run(run, [make_row(T7_CIFAR_BAL)])
    assert RUN_INFO
    return run


ROW = f"cases/{T7_CIFAR_BAL}.json"
BAD_FILES = [
    ("run.json", b'{"scale": "smo', "run.json is unreadable or not a run description"),
    ("run.json", b"[1, 2]", "run.json is unreadable or not a run description (list)"),
    ("cases/x.json", b"[]", "x.json: a result row must be a JSON object, found list"),
    ("cases/x.json", b"{}", "x.json: status None is not one of passed"),
    ("cases/x.json", b'"text"', "x.json: a result row must be a JSON object, found str"),
    ("cases/x.json", b'{"case_id": "x", "status": "error", "scale": "smoke", "seed": 0, '
     b'"error": "e", "metrics": "all good"}', "x.json: metrics must be an object, found str"),
    ("cases/x.json", b'{"case_id": "x", "status": "passed", "metrics": [1, 2], "config": 3}',
     "x.json: a passed row lacks scale, seed"),
    ("cases/x.json", b'{"case_id": "x", "status": "error", "scale": "smoke", "seed": 0, '
     b'"error": "e", "colour": "red"}', "x.json: unknown row keys colour"),
    ("cases/x.json", b'{"case_id": "x", "status": "passed"', "cannot read"),
    (f"cases/{T7_CIFAR_BAL}.npz", b"garbage, not a zip",
     f"predictions file {{run}}/cases/{T7_CIFAR_BAL}.npz is not an .npz archive"),
    (f"cases/{T7_CIFAR_BAL}.npz", "truncated", "cannot be read (BadZipFile"),
    (f"cases/{T7_CIFAR_BAL}.npz", "foreign", "is not a harness predictions file (no y_true, "
                                             "proba, y_pred)"),
]


@pytest.mark.parametrize("name, content, message", BAD_FILES,
                         ids=[f"{n}:{c[:12]!r}" for n, c, _ in BAD_FILES])
def test_report_on_a_corrupt_run_folder_names_the_file_and_goes_on(tmp_path, capsys, name,
                                                                   content, message):
    run = _run_folder(tmp_path)
    path = run / name
    if content == "truncated":
        content = path.read_bytes()[:100]
    elif content == "foreign":
        import io

        buffer = io.BytesIO()
        np.savez(buffer, weights=np.zeros(3))
        content = buffer.getvalue()
    path.write_bytes(content)
    assert main(["report", str(run)]) == 0
    captured = capsys.readouterr()
    _no_crash(captured.err + captured.out)
    frame = pd.read_csv(run / "results.csv")
    assert T7_CIFAR_BAL in set(frame["case_id"])  # the sound row is still reported
    assert all(line.startswith("warning: ") for line in captured.err.splitlines())
    shown = captured.err + " ".join(str(e) for e in frame["error"].dropna())
    assert message.format(run=run) in shown, shown
    if name.startswith("cases/x"):
        assert frame.set_index("case_id").loc["x", "status"] == "corrupt"
    if name.endswith(".npz"):  # figures whose source is damaged are not "passed"
        assert frame.set_index("case_id").loc[T7_CIFAR_BAL, "status"] == "corrupt"
    assert (run / "report.html").is_file()


def test_every_top_level_field_of_a_row_of_the_wrong_type_does_not_crash_the_report(tmp_path):
    """Fuzz: each field of a sound row replaced by values of other JSON types (one report per
    value, every field broken in the row of another case)."""
    from resnet_harness.studies.paper import CASES
    from resnet_harness.report import build_report
    from test_report import make_row

    keys = [k for k in make_row(T7_CIFAR_IMB)[0] if k != "case_id"] + ["baseline"]
    chunks = [keys[:len(CASES)], keys[len(CASES):]]
    for i, value in enumerate(("text", [1, "a"], 7.5, True, {"k": "v"})):
        for j, chunk in enumerate(chunks):
            run = tmp_path / f"run{i}-{j}"
            folder = RunFolder(run).create({"scale": "smoke"})
            for key, case in zip(chunk, CASES):
                row, arrays = make_row(case.id)
                path = folder.write_row(row, arrays)
                # Written over the sound row: write_row itself refuses a malformed row.
                atomic_write_json(path, dict(json.loads(path.read_text()), **{key: value}))
            try:
                build_report([run], run)
            except Exception as exc:
                raise AssertionError(f"{value!r} in {chunk}: {type(exc).__name__}: {exc}") from exc
            assert len(pd.read_csv(run / "results.csv")) == len(chunk)


REAPED = '''
import subprocess
import sys
import time


def test_waits_on_a_child(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (tmp_path.parent.parent / "child.pid").write_text(str(child.pid))
    time.sleep(600)
'''


def test_ctrl_c_on_the_suite_leaves_no_child_process(pytester):
    """A test interrupted (SIGINT, as Ctrl-C sends) while a process it started runs: the
    suite's reaper (tests/reaper.py) ends that process with the session."""
    import psutil

    pytester.makeconftest('pytest_plugins = ["reaper"]\n')
    pytester.makepyfile(test_waiting=REAPED)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    outer = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                              f"--basetemp={pytester.path / 'base'}"],
                             cwd=pytester.path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    pid_file = pytester.path / "child.pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline and outer.poll() is None:
        time.sleep(0.2)
    assert pid_file.exists(), outer.communicate(timeout=30)[0]
    child = psutil.Process(int(pid_file.read_text()))
    outer.send_signal(signal.SIGINT)
    outer.communicate(timeout=120)
    try:
        child.wait(timeout=15)
    except psutil.TimeoutExpired:
        child.kill()
        pytest.fail("the interrupted test's child process outlived the session")
