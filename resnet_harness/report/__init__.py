"""The report of one or more run folders: ``results.csv`` and a self-contained ``report.html``.

Reads only the rows saved by :class:`resnet_harness.storage.rundir.RunFolder`, so a report can be
rebuilt at any time without training and without TensorFlow::

    from resnet_harness.report import build_report
    build_report(["reports/runs/2026-11-27T00-00-00"], "reports/runs/2026-11-27T00-00-00")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from resnet_harness import study
from resnet_harness.analysis import claims
from resnet_harness.analysis.baseline import guard as baseline_guard
from resnet_harness.analysis.sequential import Design, design_of
from resnet_harness.analysis import table
from resnet_harness.report import cases, html
from resnet_harness.storage import identity, schema
from resnet_harness.storage.atomic import atomic_write_files
from resnet_harness.storage.rundir import RunFolder, find_rows, predictions_problem

__all__ = ["build_report", "claims_report", "collect_rows"]


def _folders(run_dirs: Sequence[Path | str]) -> list[RunFolder]:
    seen: dict[Path, RunFolder] = {}
    for run_dir in run_dirs:
        path = Path(run_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"run folder {path} does not exist or is not a folder")
        seen.setdefault(path.resolve(), RunFolder(path))
    return list(seen.values())


def _checked_predictions(row: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """``row`` as far as its predictions file vouches for it. A file that is absent (not kept,
    not copied) is named (in ``problems`` and as ``predictions_error``) and dropped from the
    row. A file that is there but unreadable, or not the one the row was written with, makes
    the row ``corrupt``: its figures no longer agree with their source."""
    name = row.get("predictions_file")
    if not isinstance(name, str) or not name:
        return row
    path = Path(row["run_dir"]) / name
    problem = predictions_problem(path, row)
    if problem is None:
        return row
    if not path.exists():
        problems.append(problem)
        return dict(row, predictions_file=None, predictions_error=problem)
    return {k: row.get(k) for k in ("case_id", "run_dir", "scale", "seed")} | {
        "status": "corrupt", "error": problem}


def _renderable(row: dict[str, Any]) -> dict[str, Any]:
    """``row``, or a ``corrupt`` row naming its file when a field has a type no reader expects
    (a list where the scale belongs, a string for the counts): one bad file must not stop the
    report of all the others. The row schema validates fields properly; this is the backstop."""
    try:
        flat = table.flatten_row(row)
        bad = [k for k in table.id_columns() if not isinstance(flat.get(k), _SCALARS)]
        bad += [k for k, v in flat.items() if (k in table.INTEGER_COLUMNS or k.startswith(
            ("train_count_", "test_count_"))) and not _integer(v)]
        if bad:
            raise TypeError(f"{', '.join(bad)} not a scalar")
        cases.render_case(row, flat)
        return row
    except Exception as exc:  # noqa: BLE001 - whatever the field, the file is unusable
        case_id = row.get("case_id")
        where = RunFolder(str(row.get("run_dir"))).row_path(str(case_id))
        return {"case_id": case_id, "status": "corrupt", "run_dir": row.get("run_dir"),
                "scale": row.get("scale") if isinstance(row.get("scale"), str) else None,
                "error": f"{where} is not a usable result row ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); delete it or run the "
                         "case again"}


_SCALARS = (str, int, float, type(None))


def _integer(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value != value or float(value).is_integer()  # NaN is "missing"


def _how_made(kept: dict[str, Any], dropped: dict[str, Any]) -> str:
    """How two rows of one case differ in identity (``storage.identity``): the report says
    whether a merge replaced a result by a re-run of the same thing or by another result."""
    if kept.get("status") in table.PENDING or dropped.get("status") in table.PENDING:
        return ""
    found = identity.differences(identity.parts(kept), identity.parts(dropped),
                                 identity.MEANING + identity.VERSIONS + ("environment",),
                                 strict=False)
    return "; ".join(found[:4]) if found else "made the same way"


def _merge(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Keep one row per (case id, scale): a finished row over an unfinished one, then the latest
    ``finished_at`` (later folders win ties). Returns the kept rows and the dropped ones."""
    best: dict[tuple[Any, Any], tuple[tuple, dict[str, Any]]] = {}
    dropped = []
    for order, row in enumerate(rows):
        key = (row.get("case_id"), row.get("scale"))
        rank = (row.get("status") not in table.PENDING, table.finished_at(row), order)
        if key in best:
            loser, winner = sorted([best[key], (rank, row)], key=lambda item: item[0])
            dropped.append(dict(loser[1], replaced_by=winner[1].get("run_dir"),
                                replaced_because=_how_made(winner[1], loser[1])))
            best[key] = winner
        else:
            best[key] = (rank, row)
    return [row for _, row in best.values()], dropped


class ReportPaths(dict):
    """``{"csv": path, "html": path}`` of a built report, with the :class:`claims.Analysis` and
    the baseline's verdict (``guard``) it rendered, so the terminal shows the same verdicts
    without evaluating them again."""

    def __init__(self, paths: dict[str, Path], analysis: "claims.Analysis", guard=None):
        super().__init__(paths)
        self.analysis, self.guard = analysis, guard


def collect_rows(run_dirs: Sequence[Path | str], problems: list[str] | None = None
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Merged rows of several run folders, unfinished cases included as ``status="unfinished"``.

    Returns ``(rows, superseded, runs)``: the kept rows, the rows the merge dropped (each with
    ``replaced_by``), and one dict per folder (``path`` plus its ``run.json``). Unusable files
    are named, one line each, in ``problems`` (a list to append to) and skipped.
    """
    problems = [] if problems is None else problems
    study.load_builtin()
    folders = _folders(run_dirs)
    infos = {str(f.path): f.run_info(problems) for f in folders}
    found = find_rows([f.path for f in folders])
    study.load(found, problems)  # the modules of studies this process has not registered
    rows = [_renderable(study.complete_row(_checked_predictions(row, problems),
                                           infos[row["run_dir"]]))
            for row in found]
    problems += [str(row.get("error")) for row in rows if row.get("status") == "corrupt"]
    for folder in folders:
        info = infos[str(folder.path)]
        rows += [study.complete_row(schema.unfinished_row(
            case_id, folder.path, folder.started_info(case_id), info))
            for case_id in folder.unfinished()]
        rows += [study.complete_row(schema.not_run_row(case_id, folder.path, info))
                 for case_id in folder.not_run()]
    kept, superseded = _merge(rows)
    runs = [dict(path=str(f.path), **infos[str(f.path)]) for f in folders]
    return kept, superseded, runs


def build_report(run_dirs: Sequence[Path | str], out_dir: Path | str, *,
                 title: str | None = None, problems: list[str] | None = None) -> dict[str, Path]:
    """Write ``results.csv`` and ``report.html`` for the rows of ``run_dirs`` into ``out_dir``.

    Rows of several folders are merged: for the same case id and scale the latest
    ``finished_at`` wins, and the report's provenance names every folder and every dropped row.
    Cases that started but never finished appear with status ``"unfinished"``.
    Unusable files are named in ``problems`` (see :func:`collect_rows`).
    Returns ``{"csv": path, "html": path}`` (a :class:`ReportPaths`, with the analysis).
    """
    rows, superseded, runs = collect_rows(run_dirs, problems)
    out = RunFolder(out_dir)
    out.path.mkdir(parents=True, exist_ok=True)
    frame = table.case_frame(rows)
    # Both rendered before either is written: a failure leaves both old files, never a new CSV
    # beside a stale report.
    analysis = claims.analyse(rows, claims.delta_of(runs), design_of(runs))
    # The baseline's verdict over the rows the last session selected (all, when unrecorded):
    # the report and the terminal show this one.
    chosen = {c for f in map(RunFolder, run_dirs) for c in f.selected() or ()}
    guard = baseline_guard([r for r in rows if r.get("case_id") in chosen] or rows)
    page = html.render_report(frame, rows, runs=runs, analysis=analysis, guard=guard,
                              superseded=superseded, title=title)
    csv_path, html_path = out.csv_path, out.html_path
    atomic_write_files({csv_path: table.csv_bytes(frame), html_path: page.encode("utf-8")})
    claims.write_claims(rows, out.path, analysis)
    return ReportPaths({"csv": csv_path, "html": html_path}, analysis, guard)


def load_rows(paths: Sequence[Path | str], problems: list[str] | None = None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The finished rows of run folders and ``results.csv`` files alike (each CSV checked by
    ``table.read_results``), their studies loaded, and the folders' ``run.json`` records;
    ``table.ResultsError`` when they hold no measured row. Files skipped and studies that
    cannot be imported are named in ``problems``."""
    problems = [] if problems is None else problems
    study.load_builtin()
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for path in map(Path, paths):
        if path.is_dir():
            found, _, infos = collect_rows([path], problems)
            rows += [r for r in found if r.get("status") not in table.PENDING]
            runs += infos
        else:
            rows += [study.complete_row(r) for r in table.rows_from_table(
                table.read_results(path))]
    study.load(rows, problems)
    if not any(r.get("status") in table.USABLE and r.get("metrics") for r in rows):
        raise table.ResultsError(
            f"{', '.join(map(str, paths))} hold no measured row (no passed or failed case with "
            "its figures); pass the run folders or results.csv files of a run that finished "
            "cases")
    return rows, runs


def claims_report(paths: Sequence[Path | str], out_dir: Path | str,
                  delta: float | None = None, sequential: int | None = None,
                  problems: list[str] | None = None) -> dict[str, Path]:
    """``claims.csv``, ``comparisons.csv``, ``seeds.csv`` and ``claims.html`` in ``out_dir`` from
    the rows of ``paths``: run folders, ``results.csv`` files, or a baseline file. ``delta``:
    the equivalence margin (default: the runs' ``--equivalence-delta``, else 0.01). Files
    skipped and studies that cannot be imported are named in ``problems``."""
    rows, runs = load_rows(paths, problems)
    delta = claims.delta_of(runs) if delta is None else delta
    out = RunFolder(out_dir)
    out.path.mkdir(parents=True, exist_ok=True)
    design = Design(sequential) if sequential else design_of(runs)
    analysis = claims.analyse(rows, delta, design)
    written = claims.write_claims(rows, out.path, analysis)
    page = html.claims_page(rows, analysis, sources=[str(p) for p in paths])
    written["html"] = out.path / "claims.html"
    atomic_write_files({written["html"]: page.encode("utf-8")})
    return written
