"""A table of bad inputs: each stops pytest before anything trains, with one line saying what is
wrong and how to fix it."""

from __future__ import annotations


import numpy as np
import pytest

from helpers import CONFTEST, EXPERIMENTS


BAD_OPTIONS = [
    (["--scale", "huge"], "unknown scale 'huge'; use one of: smoke, reduced, paper"),
    (["--epochs", "0"], "'0' must be 1 or more"),
    (["--max-train-samples", "5"], "'5' is below the 10 classes; use at least 10"),
    (["--max-test-samples", "many"], "'many' is not an integer"),
    (["--seed", "-1"], "seed '-1' must be in [0, 2**32)"),
    (["--weights", "/no/such.h5"], "weights '/no/such.h5' is neither 'imagenet', 'none' nor an "
                                   "existing weights file"),
    (["--data-dir", "/no/such/dir"], "data dir '/no/such/dir' does not exist or is not a folder"),
    (["--data-dir", "mnist=/tmp"], "unknown data set 'mnist' in --data-dir 'mnist=/tmp'; use one "
                                   "of: cifar10, fashion_mnist"),
    (["--data-source", "web"], "unknown data source 'web'; use auto or synthetic"),
    (["--imbalance", "table5"], "unknown imbalance reading 'table5'; use one of: text, table4, "
                                "table6, table2"),
    (["--imbalance-classes", "0,12"], "classes '0,12' must be distinct integers in [0, 10)"),
    (["--imbalance-fraction", "1.5"], "'1.5' must lie strictly between 0 and 1"),
    (["--hflip", "yes"], "'yes' must be 'on' or 'off'"),
    (["--xla", "1"], "'1' must be 'on' or 'off'"),
    (["--mixed-precision", "fp16"], "'fp16' must be 'on' or 'off'"),
    (["--backbone", "vgg"], "unknown backbone 'vgg'; use resnet50 or tiny"),
    (["--tolerance", "speed=1"], "tolerance 'speed=1' must be METRIC=VALUE"),
    (["--baseline", "/no/base.csv"], "baseline /no/base.csv does not exist"),
    (["--resume", "/tmp"], "--resume: /tmp is not a run folder (no cases/ inside)"),
    (["--progress", "often"], "progress must be auto, off or a number of seconds >= 0, got "
                              "'often'"),
    (["--mlflow", ""], "mlflow needs a tracking URI, e.g. sqlite:///mlruns.db"),
    (["--seeds", "0-4294967295"], "at most 1000"),
    (["--seeds", "0-100000"], "at most 1000"),
    (["--seed", "7", "--seeds", "0-1"], "--seed 7 and --seeds [0, 1] both given: --seeds sets "
                                        "every case's seed; drop --seed"),
    (["--resume-mismatch", "ignore"], "resume mismatch policy 'ignore' must be one of refuse, "
                                      "rerun, keep"),
    (["--report-dir", "r/" + "x" * 300], "report dir has a component of 300 bytes"),
    (["--report-dir", "/".join(["y" * 250] * 20)], "over the file system's 4096"),
    (["--baseline", "b" * 256 + ".csv"], "path has a component of 260 bytes"),
    (["--report-dir", "reports-\udcff"], "report dir 'reports-\ufffd' is not valid UTF-8; "
                                         "rename it or pass another path"),
]


@pytest.mark.parametrize("args, message", BAD_OPTIONS, ids=[a[0] for a, _ in BAD_OPTIONS])
def test_bad_option(pytester, args, message):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    # The project as a test path: its conftest loads the plugin before an option's value that
    # is an existing path (outside the project) could be taken for one.
    result = pytester.runpytest(str(pytester.path), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # pytest prints its usage line, then the one line that says what is wrong and the fix.
    matching = [line for line in result.stderr.lines if message in line]
    assert len(matching) == 1, result.stderr.lines
    assert "Traceback" not in result.stderr.str() and "INTERNALERROR" not in result.stdout.str()


@pytest.mark.parametrize("ini, message", [
    ("harness_scale = giant", "ini key harness_scale: unknown scale 'giant'"),
    ("harness_epochs = -2", "ini key harness_epochs: '-2' must be 1 or more"),
    ("harness_data_dir = /no/data", "ini key harness_data_dir: data dir '/no/data' does not exist"),
    ("harness_tolerance = accuracy=much", "ini key harness_tolerance: tolerance 'accuracy=much'"),
])
def test_bad_ini_value(pytester, ini, message):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(message in line for line in result.stderr.lines), result.stderr.lines


def test_bad_environment_value(pytester, monkeypatch):
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    monkeypatch.setenv("RESNET_HARNESS_SCALE", "tiny")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("environment variable RESNET_HARNESS_SCALE: unknown scale 'tiny'" in line
               for line in result.stderr.lines)


def test_labels_out_of_range_stop_the_run(pytester, tmp_path):
    import gzip

    import numpy as np

    from helpers import idx_bytes, write_idx_folder

    folder = tmp_path / "fashion"
    write_idx_folder(folder, gz=True)
    labels = np.full(10, 12, dtype=np.uint8)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    pytester.makepyfile(test_study=EXPERIMENTS, conftest=CONFTEST)
    result = pytester.runpytest_subprocess("--data-dir", f"fashion_mnist={folder}", "-k",
                                           "table7-fashion")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*fashion_mnist test labels from idx:* lie in [[]12, 12[]], "
                                 "outside [[]0, 10); the label file is corrupt*"])


# -- `python -m resnet_harness claims` reads a results.csv as the --baseline reader does ---------
GOOD_CSV = ("case_id,scale,seed,status,accuracy,train_time_s\n"
            "table7-cifar10-balanced-split_orig-reg_none-seed0,reduced,0,passed,0.5,10\n")


def _outcomes_csv(accuracy: float | None = None, cell: str | None = None,
                  config: str = "{}") -> str:
    """A one-row results.csv that carries its test outcomes (80 images, 45 right)."""
    from resnet_harness.storage import outcomes

    labels = np.repeat(np.arange(10), 8)
    predicted = np.where(np.arange(80) % 16 < 9, labels, (labels + 1) % 10)
    right = float(np.mean(predicted == labels))
    counts = ",".join(["8"] * 10)
    return ("case_id,scale,seed,status,accuracy,test_outcomes,config,"
            + ",".join(f"test_count_c{k}" for k in range(10)) + "\n"
            + "table7-cifar10-balanced-split_orig-reg_none-seed0,reduced,0,passed,"
            + f"{right if accuracy is None else accuracy},"
            + f"{cell or outcomes.encode(labels, predicted)},{config},{counts}\n")


@pytest.mark.parametrize("text, message", [
    ("case_id,scale,seed,status,accuracy\n", "has a header but no rows"),
    (_outcomes_csv(accuracy=0.9), "accuracy is 0.9 but its test_outcomes give 0.5625"),
    (_outcomes_csv(cell="z1:AAAA"), "test_outcomes cannot be decoded"),
    (_outcomes_csv(config="{broken"), "config is not a JSON object"),
    (GOOD_CSV.replace("0.5", "2.0"), "line 2 (table7-cifar10-balanced-split_orig-reg_none-seed0)"
                                     ": accuracy is '2.0', not a share 0..1"),
    (GOOD_CSV.replace("0.5", "abc"), "accuracy is 'abc', not a share 0..1"),
    (GOOD_CSV.replace(",0,passed", ",x,passed"), "seed is 'x', not a whole number"),
    (GOOD_CSV.replace(",10\n", ",-3\n"), "train_time_s is '-3', not a number >= 0"),
    (GOOD_CSV + GOOD_CSV.splitlines()[1] + "\n", "seed 0 at scale reduced twice (lines 2 and 3)"),
    (GOOD_CSV.replace("case_id,", "case,"), "lacks the columns case_id"),
    (GOOD_CSV.replace(",0.5,", ",,"), "accuracy is empty in a passed row"),
    (GOOD_CSV.replace("passed", "error"), "hold no measured row"),
])
def test_claims_refuse_a_results_csv_they_cannot_trust(tmp_path, text, message):
    import subprocess
    import sys

    csv = tmp_path / "results.csv"
    csv.write_text(text)
    done = subprocess.run([sys.executable, "-m", "resnet_harness", "claims", str(csv), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "out" / "claims.csv").exists()
