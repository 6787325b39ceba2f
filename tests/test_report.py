"""The report package: results.csv, report.html, merging of run folders and the CLI.

Rows are written with ``RunFolder`` exactly as the plugin writes them; nothing here trains a model
or imports TensorFlow.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resnet_harness.__main__ import main
from resnet_harness.studies.paper import CASES, CASES_BY_ID, get_case
from resnet_harness.training.metrics import compute_metrics
from resnet_harness.storage.schema import SCORES as SCALAR_METRICS
from resnet_harness.report import build_report, cells, collect_rows, table
from resnet_harness.studies.paper_report import paper_tables, table8_frame
from resnet_harness.storage import schema
from resnet_harness.storage.rundir import RunFolder

REPO = Path(__file__).resolve().parents[1]


def case_id(table: str, dataset: str, balance: str = "balanced", split: float | None = None,
            regularization: str = "none") -> str:
    """The id of the matrix case with these fields (ids are the matrix's, never spelled here)."""
    wanted = (table, dataset, balance, split, regularization)
    return next(c.id for c in CASES if (c.table, c.dataset, c.balance, c.split,
                                         c.regularization) == wanted)


T7_CIFAR_BAL = case_id("table7", "cifar10")
T7_CIFAR_IMB = case_id("table7", "cifar10", "imbalanced")
T7_FMNIST_BAL = case_id("table7", "fashion_mnist")
T9_CIFAR_90 = case_id("table9", "cifar10", split=0.9)
T10_L2 = case_id("table10", "fashion_mnist", regularization="l2")
T10_DROP3 = case_id("table10", "fashion_mnist", regularization="dropout0.3")
FAIL_TEXT = "ValueError: input <32x32> & labels don't match"
RUN_INFO = {"command_line": "pytest experiments --scale smoke", "scale": "smoke", "seed": 0,
            "started_at": "2026-11-27T00:00:00+00:00", "device": "CPU", "git_commit": "abc1234",
            "versions": {"python": "3.12.1", "numpy": "2.4.6"}, "options": {"workers": 2}}


def make_row(case_id: str, *, rng_seed: int = 0, scale: str = "smoke",
             finished_at: str = "2026-11-27T01:00:00+00:00") -> tuple[dict, dict]:
    """A passed row with metrics computed from random but class-leaning predictions."""
    case = get_case(case_id)
    rng = np.random.default_rng(rng_seed)
    y_true = np.repeat(np.arange(10), 16)
    proba = rng.dirichlet(np.ones(10), size=len(y_true))
    proba[np.arange(len(y_true)), y_true] += rng.uniform(0, 0.6, size=len(y_true))
    proba /= proba.sum(axis=1, keepdims=True)
    reduced = [0, 1, 2] if case.imbalanced else []
    train_counts = [29 if k in reduced else 32 for k in range(10)]
    row = {
        "case_id": case.id, "table": case.table, "dataset": case.dataset,
        "balance": case.balance, "split": case.split, "regularization": case.regularization,
        "scale": scale, "seed": 0, "status": "passed", "error": None,
        "metrics": compute_metrics(y_true, proba, 10),
        "train_time_s": 10.0 + rng_seed, "test_time_s": 1.25, "peak_rss_mb": 2100.5 + rng_seed,
        "steady_train_time_s": 8.0 + rng_seed, "rss_added_mb": 300.25 + rng_seed,
        "peak_gpu_mb": None, "train_counts": train_counts, "test_counts": [16] * 10,
        "counts_before_imbalance": [32] * 10, "reduced_classes": reduced,
        "class_names": [f"class{k}" for k in range(10)],
        "config": {"epochs": 1, "weights": "none", "batch_size": 32, "augment": True,
                   "head": {"dense_units": None, "dropout": case.head.dropout}},
        "paper": dict(case.paper.as_dict(), source=case.paper.source),
        "bounds": {"violations": []},
        "provenance": {"device": "CPU", "git_commit": "abc1234", "worker": "gw0",
                       "finished_at": finished_at, "command_line": "pytest experiments"},
    }
    arrays = {"y_true": y_true, "proba": proba, "y_pred": proba.argmax(axis=1)}
    return row, arrays


def failed_row(case_id: str) -> dict:
    """A case that raised while loading data (status "error"): no metrics, times or counts."""
    case = get_case(case_id)
    return {"case_id": case.id, "table": case.table, "dataset": case.dataset,
            "balance": case.balance, "split": case.split, "regularization": case.regularization,
            "scale": "smoke", "seed": 0, "status": "error", "error": FAIL_TEXT,
            "paper": dict(case.paper.as_dict(), source=case.paper.source),
            "provenance": {"finished_at": "2026-11-27T01:05:00+00:00"}}


def write_run(path: Path, rows: list[tuple[dict, dict | None]], started: tuple[str, ...] = ()
              ) -> RunFolder:
    folder = RunFolder(path).create(dict(RUN_INFO))
    for row, arrays in rows:
        folder.mark_started(row["case_id"], {"scale": "smoke"})
        folder.write_row(row, arrays)
    for case_id in started:
        folder.mark_started(case_id, {"scale": "smoke", "worker": "gw1"})
    return folder


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, dict[str, dict], dict[str, Path]]:
    """Every case of the matrix in one run folder, built into one report: one failed case, one
    that started and never finished, the rest passed."""
    run_dir = tmp_path_factory.mktemp("study") / "run"
    rows = {cid: make_row(cid, rng_seed=i) for i, cid in enumerate(CASES_BY_ID)
            if cid not in (T7_FMNIST_BAL, T10_DROP3)}
    rows[T7_FMNIST_BAL] = (failed_row(T7_FMNIST_BAL), None)
    write_run(run_dir, list(rows.values()), started=(T10_DROP3,))
    paths = build_report([run_dir], run_dir.parent / "out", title="study <all cases>")
    return run_dir, {cid: row for cid, (row, _) in rows.items()}, paths


@pytest.fixture()
def small_run(tmp_path: Path) -> Path:
    """A run folder with two cases, for tests that build their own report."""
    write_run(tmp_path / "run", [make_row(T7_CIFAR_BAL), make_row(T10_L2, rng_seed=1)])
    return tmp_path / "run"


def test_csv_has_one_line_per_case_with_the_rows_values(study):
    _, rows, paths = study
    csv = pd.read_csv(paths["csv"]).set_index("case_id")

    assert sorted(csv.index) == sorted([*rows, T10_DROP3])
    columns = list(pd.read_csv(paths["csv"]).columns)
    assert columns[:len(table.id_columns())] == list(table.id_columns())
    expected = (list(SCALAR_METRICS) + [f"recall_class_{k}" for k in range(3)]
                + [f"recall_c{k}" for k in range(10)]
                + [f.name for f in schema.FIELDS if not f.in_metrics]
                + [f"train_count_c{k}" for k in range(10)] + [f"test_count_c{k}" for k in range(10)]
                + ["epochs", "weights", "train_samples", "test_samples"]
                + [f"paper_{k}" for k in schema.PAPER_KEYS])
    assert set(expected) <= set(columns)
    passed = [cid for cid, row in rows.items() if row["status"] == "passed"]
    assert len(passed) == len(CASES_BY_ID) - 2
    for case_id in passed:
        row, line = rows[case_id], csv.loc[case_id]
        assert line["status"] == "passed"
        for name in SCALAR_METRICS:
            assert line[name] == pytest.approx(row["metrics"][name], rel=1e-12)
        for k in range(10):
            assert line[f"recall_c{k}"] == pytest.approx(row["metrics"]["per_class"]["recall"][k])
            assert line[f"train_count_c{k}"] == row["train_counts"][k]
            assert line[f"test_count_c{k}"] == 16
        assert line["train_samples"] == sum(row["train_counts"])
        assert line["peak_rss_mb"] == row["peak_rss_mb"]
        for key in schema.PAPER_KEYS:
            if key in row["paper"]:
                assert line[f"paper_{key}"] == row["paper"][key]
            else:
                assert pd.isna(line[f"paper_{key}"])
        assert line["scale"] == "smoke" and line["epochs"] == 1
    imbalanced, balanced = csv.loc[T7_CIFAR_IMB], csv.loc[T7_CIFAR_BAL]
    assert [imbalanced[f"recall_class_{k}"] for k in range(3)] == \
        [imbalanced[f"recall_c{k}"] for k in range(3)]
    assert pd.isna(balanced["recall_class_0"])
    assert balanced["paper_train_time_s"] == 1496.23
    assert csv.loc[T9_CIFAR_90, "paper_accuracy"] == 0.8577
    assert pd.isna(csv.loc[T9_CIFAR_90, "paper_roc_auc"])  # Table 9 reports no AUC
    failed = csv.loc[T7_FMNIST_BAL]
    assert (failed["status"], failed["error"]) == ("error", FAIL_TEXT)
    assert pd.isna(failed["accuracy"]) and pd.isna(failed["train_time_s"])
    unfinished = csv.loc[T10_DROP3]
    assert unfinished["status"] == "unfinished"
    assert (unfinished["dataset"], unfinished["regularization"]) == ("fashion_mnist", "dropout0.3")
    assert unfinished["paper_accuracy"] == 0.6606  # filled in from the matrix


def test_csv_round_trips_through_read_csv(study):
    run_dir, _, paths = study
    frame = table.case_frame(collect_rows([run_dir])[0])
    pd.testing.assert_frame_equal(pd.read_csv(paths["csv"]), frame, check_dtype=False)


def test_paper_tables_put_measured_beside_paper(study):
    run_dir, rows, _ = study
    frame = table.case_frame(collect_rows([run_dir])[0])
    tables = paper_tables(frame)

    t7 = tables["table7"].set_index(["dataset", "metric"])
    assert len(t7) == 10
    acc = rows[T7_CIFAR_BAL]["metrics"]["accuracy"]
    assert t7.loc[("cifar10", "accuracy"), "balanced_measured"] == pytest.approx(acc)
    assert t7.loc[("cifar10", "accuracy"), "balanced_paper"] == 0.67
    assert t7.loc[("cifar10", "accuracy"), "balanced_diff"] == pytest.approx(acc - 0.67)
    f1 = rows[T7_CIFAR_IMB]["metrics"]["f1_macro"]
    assert t7.loc[("cifar10", "f1"), "imbalanced_measured"] == pytest.approx(f1)
    assert pd.isna(t7.loc[("fashion_mnist", "accuracy"), "balanced_measured"])  # failed case
    assert t7.loc[("fashion_mnist", "accuracy"), "balanced_paper"] == 0.66

    t8 = tables["table8"].set_index(["dataset", "metric"])
    assert t8.loc[("cifar10", "memory_mb"), "balanced_measured"] == \
        rows[T7_CIFAR_BAL]["rss_added_mb"]
    assert t8.loc[("cifar10", "train_time_s"), "imbalanced_paper"] == 2163.77

    t9 = tables["table9"].set_index(["dataset", "split"])
    assert len(t9) == 10
    assert t9.loc[("cifar10", 0.9), "accuracy_paper"] == 0.8577
    assert t9.loc[("cifar10", 0.9), "accuracy_measured"] == \
        pytest.approx(rows[T9_CIFAR_90]["metrics"]["accuracy"])

    t10 = tables["table10"].set_index("regularization")
    assert t10.loc["l2", "roc_auc_measured"] == \
        pytest.approx(rows[T10_L2]["metrics"]["roc_auc_ovr_macro"])
    assert t10.loc["l2", "roc_auc_paper"] == 0.9348
    assert pd.isna(t10.loc["none", "accuracy_paper"])  # control row: not in the paper
    assert pd.isna(t10.loc["dropout0.3", "accuracy_measured"])  # unfinished
    assert t10.loc["dropout0.3", "accuracy_paper"] == 0.6606


def test_html_is_self_contained_and_shows_results_beside_the_paper(study):
    _, rows, paths = study
    html = paths["html"].read_text(encoding="utf-8")

    assert "1496.23" in html and "0.8577" in html
    table7 = html[html.index("Table 7: performance"):html.index("Table 8: training")]
    assert f'{rows[T7_CIFAR_BAL]["metrics"]["accuracy"]:.4f}' in table7 and "0.67" in table7
    assert re.search(r"https?://|src=\"//|href=\"//|url\(|@import|<script|<link", html) is None
    sources = re.findall(r'src="([^"]*)"', html)
    forests = html.count('alt="forest plot')  # one per family of comparisons that ran
    assert forests >= 4 and 'href="#family-table7"' in html
    assert len(sources) == 3 + forests  # and the overview plots; per-case figures are tables
    passed = len(CASES_BY_ID) - 2
    assert html.count("<table class=\"cm\">") == passed
    assert html.count("<table class=\"recall\">") == passed
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(rf"passed: {len(CASES_BY_ID) - 2}<.*unfinished: 1<.*error: 1<", html)
    assert "<title>study &lt;all cases&gt;</title>" in html
    links = set(re.findall(r'href="#([^"]+)"', html))
    assert len(links) > len(CASES_BY_ID) and links <= set(re.findall(r'id="([^"]+)"', html))
    # The failed case is marked and its error escaped, never injected as markup.
    assert re.search(rf'<tr class="error"><td class="l"><a href="#[^"]*">{T7_FMNIST_BAL}<', html)
    assert "input &lt;32x32&gt; &amp; labels don&#x27;t match" in html
    assert "<32x32>" not in html
    unfinished = html[html.index('id="unfinished"'):]
    assert T10_DROP3 in unfinished[:unfinished.index("</ul>")]
    assert "abc1234" in html and "pytest experiments --scale smoke" in html  # provenance
    assert len(html) < 1_000_000
    assert paths["html"].stat().st_mode & 0o044 == 0o044  # readable by others


def test_cli_merges_run_folders_keeping_the_latest_row(tmp_path, capsys):
    old_x, old_arrays = make_row(T7_CIFAR_BAL, rng_seed=1, finished_at="2026-11-27T01:00:00+00:00")
    new_x, new_arrays = make_row(T7_CIFAR_BAL, rng_seed=2, finished_at="2026-11-27T02:00:00+00:00")
    reduced_x = make_row(T7_CIFAR_BAL, rng_seed=3, scale="reduced")
    assert old_x["metrics"]["accuracy"] != new_x["metrics"]["accuracy"]
    first = write_run(tmp_path / "a", [(old_x, old_arrays), make_row(T10_L2)],
                      started=(T7_CIFAR_IMB,))
    second = write_run(tmp_path / "b", [(new_x, new_arrays), make_row(T9_CIFAR_90)])
    other_scale = write_run(tmp_path / "c", [reduced_x])  # one folder holds one scale

    for order, out in (((second, first, other_scale), tmp_path / "m1"),
                       ((other_scale, first, second), tmp_path / "m2")):
        assert main(["report", *(str(f.path) for f in order), "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert str(out / "results.csv") in printed and str(out / "report.html") in printed
        csv = pd.read_csv(out / "results.csv")
        assert sorted(zip(csv["case_id"], csv["scale"])) == sorted(
            [(T7_CIFAR_BAL, "smoke"), (T7_CIFAR_BAL, "reduced"), (T10_L2, "smoke"),
             (T9_CIFAR_90, "smoke"), (T7_CIFAR_IMB, "smoke")])
        kept = csv[(csv["case_id"] == T7_CIFAR_BAL) & (csv["scale"] == "smoke")].iloc[0]
        assert kept["accuracy"] == pytest.approx(new_x["metrics"]["accuracy"])
        assert kept["run_dir"] == str(second.path)
        html = (out / "report.html").read_text(encoding="utf-8")
        provenance = html[html.index('id="provenance"'):]
        assert str(first.path) in provenance and str(second.path) in provenance
        assert "Superseded rows (1)" in provenance
        assert "(made the same way)" in provenance  # the same identity, re-run later


def test_merge_says_how_a_replaced_row_was_made():
    """Merging folders keeps one row per case; a dropped row made another way says how."""
    from resnet_harness.report import _merge

    old, _ = make_row(T7_CIFAR_BAL, rng_seed=1, finished_at="2026-11-27T01:00:00+00:00")
    new, _ = make_row(T7_CIFAR_BAL, rng_seed=2, finished_at="2026-11-27T02:00:00+00:00")
    old = dict(old, data_fingerprint="first")
    new = dict(new, config=dict(new["config"], epochs=9), data_fingerprint="other")
    kept, (dropped,) = _merge([old, new])
    assert kept == [new]
    assert "settings.config.epochs: 9 here" in dropped["replaced_because"]
    assert "data.fingerprint: other here" in dropped["replaced_because"]


def test_cli_defaults_to_the_run_folder_itself(small_run, capsys):
    run_dir = small_run
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "results.csv").is_file() and (run_dir / "report.html").is_file()
    assert str(run_dir / "report.html") in capsys.readouterr().out


def test_cli_rejects_bad_run_folders_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "missing", tmp_path / "empty"):
        assert main(["report", str(bad)]) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0]
        assert ";" in lines[0] and captured.out == ""
    assert not (tmp_path / "empty" / "report.html").exists()
    assert main([]) == 2


def test_empty_run_folder_still_gives_a_report(tmp_path):
    RunFolder(tmp_path / "run").create(dict(RUN_INFO))
    paths = build_report([tmp_path / "run"], tmp_path / "out")
    assert pd.read_csv(paths["csv"]).empty
    html = paths["html"].read_text(encoding="utf-8")
    # No study has a row: the report still stands, without any study's section.
    assert "passed: 0" in html and "study-paper" not in html


def test_latest_link_is_relative_and_replaced(tmp_path, monkeypatch):
    root = tmp_path / "reports"
    first, second = root / "runs" / "one", root / "runs" / "two"
    first.mkdir(parents=True)
    second.mkdir()
    assert RunFolder(first).link_latest(root) == root / "latest"
    assert os.readlink(root / "latest") == os.path.join("runs", "one")
    RunFolder(second).link_latest(root)
    assert (root / "latest").resolve() == second.resolve()
    assert not list(root.glob(".latest.*"))

    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks are not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    assert RunFolder(first).link_latest(root) == root / "latest.txt"
    assert (root / "latest.txt").read_text().strip() == str(first.resolve())


def test_report_does_not_import_tensorflow(small_run, tmp_path):
    run_dir = small_run
    code = ("import sys; from resnet_harness.__main__ import main; "
            f"rc = main(['report', {str(run_dir)!r}, '--out', {str(tmp_path / 'o')!r}]); "
            "assert rc == 0; assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_confusion_html_shades_by_share_of_the_true_class_and_prints_counts():
    page = cells.confusion_html([[3, 1], [0, 4]], ["cat", "<dog>"])
    rows = re.findall(r"<tr><th class=\"l\">(.*?)</th>(.*?)</tr>", page)
    assert [name for name, _ in rows] == ["cat", "&lt;dog&gt;"]
    cat = re.findall(r'background:(#[0-9a-f]{6});color:(#[0-9a-f]+)" title="(\d+) \((\d+)%\)">'
                     r"(\d*)<", rows[0][1])
    # 3 of 4 is 75%: dark with white text; 1 of 4 light with dark text.
    assert [(count, share, text) for _, _, count, share, text in cat] == [
        ("3", "75", "3"), ("1", "25", "1")]
    assert cat[0][1] == "#fff" and cat[1][1] == "#222"
    dog = re.findall(r'background:(#[0-9a-f]{6})[^>]*>(\d*)<', rows[1][1])
    assert dog == [("#f7fbff", ""), ("#08306b", "4")]  # 0 and 100%: the map's two ends
    assert "<dog>" not in page


def test_recall_html_draws_bars_marks_reduced_classes_and_the_mean():
    page = cells.recall_html([0.5, 1.0, None], ["a", "b", "c"], reduced=[1])
    widths = re.findall(r'class="bar" style="width:([\d.]+)%;background:(#[0-9a-f]{6})', page)
    assert widths == [("50.0", cells.MEASURED), ("100.0", cells.REDUCED),
                      ("0.0", cells.MEASURED)]
    assert "macro 0.750" in page and "left:75.0%" in page  # mean of the known values
    assert "orange: reduced classes" in page and ">–<" in page


def test_differences_to_the_paper_are_coloured_at_paper_scale_only(tmp_path):
    """A smaller run is not "better" than the paper because it took less time: below paper scale
    the Δ cells carry no colour, in the summary tables and per case."""
    for scale, coloured in (("reduced", False), ("paper", True)):
        run = write_run(tmp_path / scale, [make_row(T7_CIFAR_BAL, scale=scale)])
        html = build_report([run.path], tmp_path / f"{scale}-out")["html"].read_text()
        for part in (html[html.index("Table 7: performance"):html.index('id="results"')],
                     html[html.index('id="cases"'):html.index('id="provenance"')]):
            assert bool(re.search(r'<td class="(better|worse|close)">', part)) is coloured
            assert ('<td class="plain">' in part) is (not coloured)


def test_scores_as_trained_and_warnings_appear_beside_the_reported_ones(tmp_path):
    row, arrays = make_row(T7_CIFAR_BAL, scale="reduced")
    row.update(metrics_as_trained=dict(row["metrics"], accuracy=0.1, roc_auc_ovr_macro=0.61),
               bn_recalibrated=True, train_accuracy=0.47, train_inference_accuracy=0.11,
               warnings=["inference-mode accuracy on training images 0.110 trails it"])
    paths = build_report([write_run(tmp_path / "run", [(row, arrays)]).path], tmp_path / "out")
    html = paths["html"].read_text()
    assert "acc. as trained" in html and "<th>as trained</th>" in html
    assert "0.1000" in html and "0.6100" in html
    assert html.count("0.110 trails it") == 2  # all-cases table and the case's section
    line = pd.read_csv(paths["csv"]).iloc[0]
    assert line["accuracy_as_trained"] == 0.1 and line["accuracy"] == row["metrics"]["accuracy"]
    assert line["train_accuracy"] == 0.47 and "trails it" in line["warnings"]
    t8 = table8_frame(table.case_frame([row])).set_index(["dataset", "metric"])
    assert t8.loc[("cifar10", "train_time_s"), "balanced_measured"] == row["steady_train_time_s"]


def test_scores_as_trained_are_not_shown_when_nothing_changed(small_run, tmp_path):
    html = build_report([small_run], tmp_path / "out")["html"].read_text()
    assert "as trained" not in html


def test_terminal_summary_shows_warnings_and_says_what_smoke_figures_are(tmp_path):
    from resnet_harness.report.summary import summary_lines

    row, arrays = make_row(T7_CIFAR_BAL)
    row["warnings"] = ["inference-mode accuracy on training images 0.110 trails it"]
    lines = summary_lines(write_run(tmp_path / "smoke", [(row, arrays)]))
    assert "  warning: inference-mode accuracy on training images 0.110 trails it" in lines
    assert lines[-1] == ("smoke scale: these figures check the pipeline end to end (1 epoch, "
                         "a few hundred images); they carry no meaning as results")
    assert "steady_s" in lines[0] and "added_MB" in lines[0] and " 8.0 " in lines[1]
    # --epochs 2 at smoke scale: the note says what ran (the history's length, else config)
    two = dict(row, history={"loss": [1.0, 0.9]}, config=dict(row["config"], epochs=2))
    assert "(2 epochs, " in summary_lines(write_run(tmp_path / "two", [(two, arrays)]))[-1]
    reduced = make_row(T7_CIFAR_BAL, scale="reduced")
    assert not any(line.startswith("smoke scale") for line in
                   summary_lines(write_run(tmp_path / "reduced", [reduced])))


def learning_history(epochs: int = 6, rng_seed: int = 0, validation: bool = True) -> dict:
    """A per-epoch history as the runner saves it: loss falling, accuracy rising."""
    rng = np.random.default_rng(rng_seed)
    loss = [2.3 / (1 + 0.5 * e) + float(rng.uniform(0, 0.05)) for e in range(epochs)]
    history = {"loss": loss, "accuracy": [1 - v / 2.5 for v in loss],
               "epoch_seconds": [30.0] * epochs}
    if validation:
        history.update(val_loss=[v + 0.2 for v in loss], val_accuracy=[1 - v / 2.2 for v in loss])
    return history


def seeded_rows(case_id: str, seeds: range, history: bool = True) -> list[tuple[dict, dict]]:
    """One row per seed as ``--seeds`` writes them (``<case>-seed<n>``, ``seed`` n)."""
    out = []
    for seed in seeds:
        row, arrays = make_row(case_id, rng_seed=seed)
        row.update(case_id=f"{case_id}-seed{seed}", seed=seed)
        if history:
            row["history"] = learning_history(rng_seed=seed)
        out.append((row, arrays))
    return out


def section_of(html: str, anchor_id: str) -> str:
    start = html.index(f'<section class="case passed" id="{anchor_id}">')
    return html[start:html.index("</section>", start)]


def path_points(svg: str) -> list[list[tuple[float, float]]]:
    """The polylines of the SVG's paths (each ``M`` starts one), each a list of (x, y)."""
    return [[tuple(map(float, p.split(","))) for p in re.split(r"[L ]+", line) if p]
            for d in re.findall(r'<path d="([^"]+)"', svg) for line in d.split("M") if line]


def test_case_sections_draw_the_learning_curves_of_rows_that_have_a_history(tmp_path):
    with_history, arrays = make_row(T7_CIFAR_BAL)
    with_history["history"] = learning_history(epochs=6)
    run = write_run(tmp_path / "run", [(with_history, arrays), make_row(T10_L2, rng_seed=1)])
    html = build_report([run.path], tmp_path / "out")["html"].read_text()

    drawn = section_of(html, f"case-{T7_CIFAR_BAL}-smoke")
    assert drawn.count('<svg class="curves"') == 1
    svg = drawn[drawn.index("<svg"):drawn.index("</svg>")]
    assert svg.count("stroke-dasharray") == 2  # val_loss and val_accuracy, dashed
    loss, val_loss, accuracy, val_accuracy = path_points(svg)
    assert [len(points) for points in (loss, val_loss, accuracy, val_accuracy)] == [6] * 4
    xs = [x for x, _ in loss]
    assert xs == sorted(xs) and len(set(xs)) == 6  # one point per epoch, in order
    assert loss[0][1] < loss[-1][1]  # falling loss: lower on the plot (SVG y grows downwards)
    assert accuracy[0][1] > accuracy[-1][1]  # rising accuracy: higher on the plot
    assert all(v[1] < t[1] for v, t in zip(val_loss, loss))  # validation loss above it
    # The row written before rows kept a history: no curve, a note, and the report stands.
    old = section_of(html, f"case-{T10_L2}-smoke")
    assert "<svg" not in old and "No learning curve" in old
    overlays = html[html.index('id="curves"'):html.index('id="counts"')]
    assert overlays.count('<svg class="curves"') == 1  # the tables with any curve: Table 7
    assert f'<a href="#case-{T7_CIFAR_BAL}-smoke">' in overlays and T10_L2 not in overlays
    assert 'href="#curves"' in html


def test_rows_without_history_give_a_report_without_curves(small_run, tmp_path):
    html = build_report([small_run], tmp_path / "out")["html"].read_text()
    assert "<svg" not in html and 'id="curves"' not in html and 'href="#curves"' not in html
    assert html.count('<table class="cm">') == 2


def test_a_cases_seeds_share_one_section_one_heat_map_and_a_table_of_their_figures(tmp_path):
    seeds = range(1, 6)
    rows = seeded_rows(T7_CIFAR_BAL, seeds) + seeded_rows(T10_L2, seeds)
    run = write_run(tmp_path / "run", rows)
    html = build_report([run.path], tmp_path / "out")["html"].read_text()

    assert html.count('<section class="case') == 2  # one per case, not one per seed
    assert html.count('<table class="cm">') == 2
    cases_part = html[html.index('id="cases"'):html.index('id="provenance"')]
    assert cases_part.count('<svg class="curves"') == 2
    section = section_of(html, f"case-{T7_CIFAR_BAL}-smoke")
    assert f"{T7_CIFAR_BAL} · 5 seeds" in section and "seeds: 1–5" in section
    # The heat map is the mean of the seeds' matrices, a decimal where they differ.
    matrices = np.array([r["metrics"]["confusion_matrix"] for r, _ in rows[:5]], dtype=float)
    heat = section[section.index('<table class="cm">'):]
    first_cell = re.search(r'title="([\d.]+) \(\d+%\)"', heat).group(1)
    assert float(first_cell) == pytest.approx(matrices[:, 0, 0].mean(), abs=0.05)
    assert "mean confusion matrix of 5 seeds" in heat
    # Every seed's figures in one table, each line the target of its link in "All cases".
    accuracies = [r["metrics"]["accuracy"] for r, _ in rows[:5]]
    for (row, _), accuracy in zip(rows[:5], accuracies):
        line = re.search(rf'<tr class="passed" id="case-{row["case_id"]}-smoke">(.*?)</tr>',
                         section).group(1)
        assert f"<td>{accuracy:.4f}</td>" in line
    stats = dict(re.findall(r'<tr class="stat"><td>(\w+)</td><td></td><td>([\d.]+)</td>',
                            section))
    assert float(stats["mean"]) == pytest.approx(np.mean(accuracies), abs=1e-4)
    assert float(stats["min"]) == pytest.approx(min(accuracies), abs=1e-4)
    assert float(stats["sd"]) == pytest.approx(np.std(accuracies, ddof=1), abs=1e-4)
    assert f"<td>{np.mean(accuracies):.4f}</td>" in section[section.index("mean of 5"):]
    links = set(re.findall(r'href="#([^"]+)"', html))
    assert {f"case-{r['case_id']}-smoke" for r, _ in rows} <= links
    assert links <= set(re.findall(r'id="([^"]+)"', html))
    # Five seeds or fewer: each seed's curve; the overlay shows the case's mean.
    curve = section[section.index("<svg"):section.index("</svg>")]
    # Per panel (loss, accuracy), a training and a validation line per seed.
    assert len(path_points(curve)) == 2 * 2 * 5 and "<polygon" not in curve
    counts = html[html.index('id="counts"'):html.index('id="cases"')]
    assert f"{T7_CIFAR_BAL} (5 seeds)" in counts and counts.count("<tr>") == 1 + 2


def test_report_size_grows_by_a_table_line_per_seed_not_a_section(tmp_path):
    sizes = {}
    for count in (1, 20):
        rows = seeded_rows(T7_CIFAR_BAL, range(1, count + 1)) + seeded_rows(
            T7_CIFAR_IMB, range(1, count + 1))
        run = write_run(tmp_path / f"run{count}", rows)
        html = build_report([run.path], tmp_path / f"out{count}")["html"].read_text()
        assert html.count('<table class="cm">') == 2 and html.count("<img") == \
            sizes.get("images", html.count("<img"))
        sizes[count], sizes["images"] = len(html.encode()), html.count("<img")
    assert sizes[20] < 2 * sizes[1]  # 20 times the rows, well under twice the bytes
    assert (sizes[20] - sizes[1]) / (2 * 19) < 3000  # bytes per further seed's row


def test_curves_of_many_seeds_are_their_mean_and_a_band_and_gaps_break_the_line():
    from resnet_harness.report import curves

    many = [learning_history(rng_seed=s, validation=False) for s in range(curves.SEED_LINES + 1)]
    svg = curves.case_svg(many)
    assert svg.count("<polygon") == 2 and len(path_points(svg)) == 2  # loss, accuracy
    mean = curves.mean_curve(many)["loss"]
    assert mean[0] == pytest.approx(np.mean([h["loss"][0] for h in many]))
    gap = {"loss": [2.0, 1.5, None, 1.0, 0.9], "accuracy": [0.1, None, 0.3, 0.4, 0.5]}
    svg = curves.case_svg([gap])
    loss, accuracy = svg.split('class="t">accuracy')
    assert [len(p) for p in path_points(loss)] == [2, 2]  # broken at the missing epoch
    assert "<circle" in accuracy and [len(p) for p in path_points(accuracy)] == [3]
    assert curves.case_svg([{"epoch_seconds": [1.0]}]) == "" == curves.case_svg([])
    assert curves.mean_curve([{"loss": [None, 1.0]}, {"loss": [None, 3.0]}])["loss"] == \
        [None, 2.0]


def test_confusion_html_of_a_mean_matrix_prints_one_decimal():
    page = cells.confusion_html([[2.5, 1.5], [0.0, 4.0]], ["a", "b"])
    assert re.findall(r'title="([^"]+)">([^<]*)<', page) == [
        ("2.5 (62%)", "2.5"), ("1.5 (38%)", "1.5"), ("0 (0%)", ""), ("4 (100%)", "4")]


def test_a_seed_that_stopped_with_an_error_is_a_line_of_its_cases_section(tmp_path):
    rows = seeded_rows(T7_CIFAR_IMB, range(1, 4))
    broken = dict(failed_row(T7_CIFAR_IMB), case_id=f"{T7_CIFAR_IMB}-seed1", seed=1)
    run = write_run(tmp_path / "run", [(broken, None)] + rows[1:])
    html = build_report([run.path], tmp_path / "out")["html"].read_text()

    start = html.index(f'<section class="case error" id="case-{T7_CIFAR_IMB}-smoke">')
    section = html[start:html.index("</section>", start)]
    assert "error: 1" in section and "passed: 2" in section
    assert "errors in 1 of 3 seeds" in section
    line = re.search(rf'<tr class="error" id="case-{T7_CIFAR_IMB}-seed1-smoke">(.*?)</tr>',
                     section).group(1)
    assert "input &lt;32x32&gt; &amp; labels don&#x27;t match" in line
    # The heat map and means are of the two seeds that measured; the names and the reduced
    # classes come from them, not from the seed that stopped before it had any.
    assert "mean confusion matrix of 2 seeds" in section and "orange: reduced classes" in section
    assert "<th>mean of 2</th>" in section and "class0" in section


def test_the_terminal_summary_fits_a_narrow_terminal(tmp_path):
    from resnet_harness.report.summary import summary_lines

    rows = [make_row(T7_CIFAR_BAL), make_row(T7_CIFAR_IMB)]
    folder = write_run(tmp_path / "run", rows)
    full = summary_lines(folder)
    assert max(map(len, full)) > 80  # what a wide table gives
    narrow = summary_lines(folder, width=80)
    # A path is one word that no width can break (the temporary folder's depth varies).
    too_wide = [line for line in narrow if len(line) > 80 and len(line.split()) > 1]
    assert not too_wide, too_wide
    assert narrow[0].split()[:3] == ["case", "status", "acc"]
    assert "(columns cut to fit 80; every figure is in results.csv and the report)" in narrow
    assert summary_lines(folder, width=400) == full  # wide enough: nothing cut or wrapped


def test_a_report_evaluates_the_claims_once_and_every_output_shows_that_evaluation(
        small_run, monkeypatch):
    """claims.csv, the report's claims section, the study sections and the terminal summary
    render one evaluation (issue 33), so they can never disagree."""
    from resnet_harness.analysis import claims
    from resnet_harness.report.summary import summary_lines

    calls = []
    real = claims.evaluate
    monkeypatch.setattr(claims, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    paths = build_report([small_run], small_run)
    assert len(calls) == 1
    lines = summary_lines(RunFolder(small_run), analysis=paths.analysis)
    assert len(calls) == 1 and any(line.startswith("claims (") for line in lines)
    assert paths.analysis.claims and paths["csv"].is_file()


def test_a_one_epoch_curve_is_a_labelled_point_whose_tick_does_not_cover_the_axis_label():
    import re

    from resnet_harness.report import curves

    svg = curves.case_svg([{"loss": [1.2345], "accuracy": [0.25]}])
    loss, accuracy = svg.split('class="t">accuracy')
    for panel, value in ((loss, "1.2"), (accuracy, "0.25")):
        assert panel.count("<circle") == 1 and "<path" not in panel
        assert ">epoch 1 of 1</text>" in panel and ">epoch</text>" not in panel
        texts = re.findall(r'<text x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>', panel)
        assert any(t == value for _, _, t in texts), texts  # the point's value beside it
        spots = [(x, y) for x, y, _ in texts]
        assert len(spots) == len(set(spots))  # no two texts drawn at one place
