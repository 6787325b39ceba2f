"""The row schema: one registry from which every consumer derives its fields, builders, and the
check that refuses unknown, missing or mistyped keys, naming the file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from resnet_harness import study
from resnet_harness.storage import schema
from resnet_harness.training import rows
from resnet_harness.analysis.baseline import DEFAULT_TOLERANCES, measured_values
from resnet_harness.training.config import RunConfig
from resnet_harness.studies.paper import CASES
from resnet_harness.training.metrics import compute_metrics
from resnet_harness.analysis import table
from resnet_harness.report import build_report
from resnet_harness.report.extras import pytest_html_extras
from resnet_harness.storage import outcomes
from resnet_harness.storage.rundir import RunFolder, predictions_digest
from resnet_harness.report.summary import summary_lines

CFG = RunConfig(data_source="synthetic").for_case(CASES[0])


def passed_arrays() -> dict:
    """The predictions :func:`passed_row`'s scores were computed from (80 test images)."""
    rng = np.random.default_rng(0)
    y_true = np.repeat(np.arange(10), 8)
    proba = rng.dirichlet(np.ones(10), size=len(y_true))
    return {"y_true": y_true, "proba": proba, "y_pred": proba.argmax(axis=1)}


def passed_row(**extra) -> dict:
    arrays = passed_arrays()
    measured = {
        "metrics": compute_metrics(arrays["y_true"], arrays["proba"], 10), "train_time_s": 3.5, "test_time_s": 0.5,
        "first_step_s": 1.0, "train_images_per_s": 50.0, "test_images_per_s": 160.0,
        "steady_train_time_s": 2.5, "rss_added_mb": 300.0, "peak_rss_mb": 900.0, "peak_gpu_mb": None, "train_samples": 80, "test_samples": 80,
        "train_counts": [8] * 10, "test_counts": [8] * 10, "counts_before_imbalance": [8] * 10,
        "reduced_classes": [], "removal_fraction": 0.0, "data_source": "synthetic",
        "provenance": {"finished_at": "2026-11-27T00:00:00+00:00"}}
    measured.update(extra)
    return dict(rows.measured_row(CFG, **measured), status="passed", error=None)


def test_scores_in_the_registry_are_what_compute_metrics_computes():
    metrics = compute_metrics(np.arange(10), np.eye(10), 10)
    in_metrics = [f.name for f in schema.FIELDS if f.in_metrics]
    assert set(in_metrics) <= set(metrics)
    assert all(isinstance(metrics[name], (int, float)) for name in in_metrics)


def test_every_consumer_derives_its_fields_from_the_registry(tmp_path):
    row = passed_row()
    folder = RunFolder(tmp_path / "run").create({})
    folder.write_row(row)
    paths = build_report([folder.path], folder.path)
    columns = list(pd.read_csv(paths["csv"]).columns)
    for field in schema.FIELDS:
        assert field.name in columns  # the CSV
    assert set(DEFAULT_TOLERANCES) == {f.name for f in schema.FIELDS if f.tolerance}
    assert set(measured_values(row)) == set(DEFAULT_TOLERANCES)  # the baseline comparison
    header = summary_lines(folder)[0].split()
    assert [f.label for f in schema.SUMMARY_FIELDS] == header[2:]  # the terminal summary
    pytest.importorskip("pytest_html")
    extras = pytest_html_extras(row)[0]["content"]
    for field in schema.FIELDS:
        assert (f"<td>{field.name}</td>" in extras) == bool(field.better)  # pytest-html
    paper_columns = [c for c in columns if c.startswith("paper_")]
    assert paper_columns == [f"paper_{k}" for k in schema.PAPER_KEYS] + ["paper_source"]
    assert set(schema.PAPER_METRIC.values()) <= set(columns)
    assert set(table.RESOURCE_KEYS) == {"train_time_s", "test_time_s", "memory_mb"}


def test_a_typo_in_a_measured_key_fails_where_it_is_written():
    with pytest.raises(schema.RowError, match="unknown row keys train_tme_s"):
        rows.measured_row(CFG, train_tme_s=1.0)


@pytest.mark.parametrize("content, message", [
    ("[]", "must be a JSON object, found list"),
    ('"text"', "must be a JSON object, found str"),
    ("{}", "status None is not one of"),
    ('{"case_id": "x", "status": "passed"}', "a passed row lacks scale, seed, config, metrics"),
    ('{"case_id": "x", "status": "error", "scale": "smoke", "seed": 0, "error": "e", '
     '"colour": 1}', "unknown row keys colour"),
    ('{"case_id": "x", "status": "error", "scale": "smoke", "seed": 0, "error": "e", '
     '"metrics": "high"}', "metrics must be an object, found str"),
    ('{"case_id": "x", "status": "error", "scale": "smoke", "seed": 0, "error": "e", '
     '"train_time_s": "slow"}', "train_time_s is 'slow', not a number >= 0"),
    ('{"case_id": "x", "status": "error", "scale": "smoke", "seed": 0, "error": "e", '
     '"train_counts": [1, "2"]}', "train_counts must be a list of integers"),
    ('{"case_id": 3, "status": "unfinished"}', "case_id must be a non-empty string"),
    ("{not json", "cannot read"),
])
def test_reading_a_bad_row_names_the_file_and_the_problem(tmp_path, content, message):
    folder = RunFolder(tmp_path / "run").create({})
    path = folder.cases_dir / "table7-cifar10-balanced-split_orig-reg_none.json"
    path.write_text(content)
    with pytest.raises(schema.RowError) as exc:
        folder.row(path.stem)
    assert str(path) in str(exc.value) and message in str(exc.value)
    (corrupt,) = folder.rows()  # the report's reading: a corrupt row, never an exception
    assert corrupt["status"] == "corrupt" and message in corrupt["error"]
    # completed from its study when the report reads it, so it lands in its table
    assert study.complete_row(corrupt)["table"] == "table7"


def test_rows_round_trip_through_the_folder(tmp_path):
    folder = RunFolder(tmp_path / "run").create({})
    row = passed_row()
    folder.write_row(row)
    stored = folder.row(row["case_id"])
    assert stored["schema"] == schema.SCHEMA_VERSION
    assert json.loads(json.dumps(row, default=str))["metrics"]["accuracy"] == \
        stored["metrics"]["accuracy"]
    error = rows.error_row(CFG, "DataError: no data", "trace")
    folder.write_row(error)
    assert folder.row(CFG.case.id)["status"] == "error"


def test_a_row_written_with_predictions_carries_their_digest(tmp_path):
    folder = RunFolder(tmp_path / "run").create({})
    labels = np.repeat(np.arange(10), 8)  # the row's test_counts: 8 per class
    arrays = {"y_true": labels, "y_pred": labels % 3,
              "proba": np.eye(10, dtype=np.float32)[labels % 3]}
    folder.write_row(passed_row(metrics=compute_metrics(labels, arrays["proba"], 10)), arrays)
    (stored,) = folder.rows()
    assert stored["predictions_digest"] == predictions_digest(arrays)
    # Each image's label and prediction travel with the row, and what detection of a
    # degenerate run needs.
    y_true, y_pred = outcomes.decode(stored["test_outcomes"])
    np.testing.assert_array_equal(y_true, labels)
    np.testing.assert_array_equal(y_pred, labels % 3)
    assert stored["predicted_classes"] == 3
    with np.load(tmp_path / "run" / stored["predictions_file"]) as saved:
        assert predictions_digest({k: saved[k] for k in saved.files}) == stored["predictions_digest"]
    changed = dict(arrays, y_pred=np.r_[1, arrays["y_pred"][1:]])
    assert predictions_digest(changed) != predictions_digest(arrays)
    assert predictions_digest(dict(arrays, proba=arrays["proba"].astype(np.float64))) != \
        predictions_digest(arrays)


def test_outcomes_that_disagree_with_the_row_are_refused(tmp_path):
    row = passed_row()
    arrays = passed_arrays()
    good = outcomes.encode(arrays["y_true"], arrays["y_pred"])
    assert schema.validate_row(dict(row, test_outcomes=good))
    swapped = outcomes.encode(np.repeat(np.arange(10), 7), np.zeros(70, int))
    other_run = outcomes.encode(arrays["y_true"], arrays["y_true"])  # right labels, 80/80
    for bad, words in ((swapped, "do not match test_counts"), ("z1:!!!", "cannot be decoded"),
                       ("plain", "must start with"),
                       (other_run, "accuracy is .* but its test_outcomes give 1.0")):
        with pytest.raises(schema.RowError, match=words):
            schema.validate_row(dict(row, test_outcomes=bad), "x.json")


def test_writing_a_malformed_row_is_refused(tmp_path):
    folder = RunFolder(tmp_path / "run").create({})
    with pytest.raises(schema.RowError, match="unknown row keys accuracy_typo"):
        folder.write_row(dict(passed_row(), accuracy_typo=1.0))
    assert not list(folder.cases_dir.glob("*.json"))


def test_field_format_and_direction():
    accuracy, time = schema.FIELDS_BY_NAME["accuracy"], schema.FIELDS_BY_NAME["train_time_s"]
    assert accuracy.format(0.12345) == "0.123" and accuracy.format(None) == "-"
    assert time.format("inf") == "inf" and time.format(12.34) == "12.3"
    assert accuracy.is_better(0.5, 0.4) and time.is_better(1.0, 2.0)
    assert not schema.FIELDS_BY_NAME["train_samples"].is_better(2, 1)


def _set(path: str, value):
    def change(row):
        holder = row
        *parents, last = path.split(".")
        for key in parents:
            holder = holder[key]
        holder[last] = value
    return change


# A stored row whose figures cannot be true is refused on read, naming the file and the value;
# the report then shows it as corrupt and --resume runs the case again (tests/test_resume.py).
@pytest.mark.parametrize("change, message", [
    (_set("metrics.accuracy", 7.5), "accuracy is '7.5', not a share 0..1"),
    (_set("metrics.roc_auc_ovr_macro", -3), "roc_auc_ovr_macro is '-3', not a share 0..1"),
    (_set("train_time_s", -1.0), "train_time_s is '-1.0', not a number >= 0"),
    (_set("intervals", {"accuracy": [0.2, 1.4]}), "accuracy_ci_high is '1.4', not a share 0..1"),
    (_set("train_samples", 81), "train_samples is 81 but train_counts add up to 80"),
    (_set("test_counts", [8] * 9 + [-8]), "test_samples is 80 but test_counts add up to 64"),
])
def test_rows_out_of_range_are_refused_on_read(tmp_path, change, message):
    folder = RunFolder(tmp_path / "run").create({})
    path = folder.write_row(passed_row())
    row = json.loads(path.read_text())
    change(row)
    path.write_text(json.dumps(row))
    with pytest.raises(schema.RowError) as exc:
        folder.row(row["case_id"])
    assert str(path) in str(exc.value) and message in str(exc.value)
    assert folder.rows()[0]["status"] == "corrupt"


def test_a_file_holding_another_cases_row_is_refused(tmp_path):
    folder = RunFolder(tmp_path / "run").create({})
    path = folder.write_row(passed_row())
    other = folder.cases_dir / "table7-fashion_mnist-balanced-split_orig-reg_none.json"
    other.write_bytes(path.read_bytes())
    with pytest.raises(schema.RowError, match="holds the row of 'table7-cifar10-balanced"):
        folder.row(other.stem)
    statuses = {r["case_id"]: r["status"] for r in folder.rows()}
    assert statuses == {path.stem: "passed", other.stem: "corrupt"}  # neither case vanishes


@pytest.mark.parametrize("arrays, message", [
    ({"y_true": np.zeros(5, int), "proba": np.full((5, 10), 0.1), "y_pred": np.zeros(5, int)},
     "holds 5 predictions, its row 80 test images of 10 classes"),
    ({"y_true": np.zeros(80, int), "proba": np.full((80, 10), 0.1), "y_pred": np.zeros(80, int)},
     "has other test labels than its row's test_counts"),
    # Another seed's file: same shape, same labels, other predictions (issue 34: swapped files
    # were read as this row's).
    ({"y_true": np.repeat(np.arange(10), 8), "proba": np.full((80, 10), 0.1),
      "y_pred": np.ones(80, int)}, "not the one its row was written with"),
])
def test_predictions_of_another_run_are_named(tmp_path, arrays, message):
    from resnet_harness.storage.rundir import predictions_problem

    folder = RunFolder(tmp_path / "run").create({})
    row = passed_row()
    folder.write_row(row, passed_arrays())
    stored = folder.row(row["case_id"])
    npz = folder.path / stored["predictions_file"]
    assert predictions_problem(npz, stored) is None
    np.savez(npz, **arrays)
    assert message in predictions_problem(npz, stored)
