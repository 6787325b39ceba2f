"""Result rows on disk: one JSON file and one ``.npz`` of predictions per finished case.

A run folder looks like::

    reports/runs/<run-name>/
        run.json              # the run's provenance (command line, scale, versions, ...)
        cases/<case_id>.json  # one result row per finished case
        cases/<case_id>.npz   # y_true, proba (float64, rows sum to 1), y_pred
        started/<case_id>.json  # a case that started; removed from the report's "unfinished"
                                # list once its row exists

Every file is written to a temporary name, flushed, fsynced and renamed, so a run that dies
(SIGKILL, out of memory, Ctrl-C) leaves either the whole row or none of it. Rows are separate files,
so xdist workers never write the same file and the controller merges them by reading the folder.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

ROW_SCHEMA_VERSION = 1


_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes) -> str:
    """``data`` in a flushed, fsynced temporary file beside ``path``; returns its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600 files; results are meant to be read by others (CI artifacts, teams).
        os.fchmod(fd, 0o644 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_files(files: dict[Path, bytes]) -> None:
    """Write several files so that readers see all the old ones or all the new ones whole: every
    file is written to a temporary name first, and only then are they all renamed (a full disk
    fails before any rename, so a new CSV never lands beside a stale report)."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            temps.append((_write_temp(Path(path), data), Path(path)))
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise
    for parent in {Path(p).parent for p in files}:
        _fsync_dir(parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    atomic_write_files({Path(path): data})


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NumPy values converted, NaN as null)."""
    atomic_write_bytes(path, json.dumps(_jsonable(obj), indent=1, sort_keys=True).encode())


class RunFolder:
    """One run's folder of result rows; safe to write from several processes at once."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def cases_dir(self) -> Path:
        return self.path / "cases"

    def create(self, run_info: dict[str, Any] | None = None) -> "RunFolder":
        """Make the folder (and write ``run.json`` when given)."""
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        (self.path / "started").mkdir(exist_ok=True)
        if run_info is not None:
            atomic_write_json(self.path / "run.json", run_info)
        return self

    def mark_started(self, case_id: str, info: dict[str, Any]) -> None:
        """Record that a case began, so a run that dies can name the cases that never finished."""
        atomic_write_json(self.path / "started" / f"{case_id}.json", info)

    def write_row(self, row: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Path:
        """Persist one finished case: predictions first, then the row that points at them."""
        case_id = row["case_id"]
        row = dict(row, schema=ROW_SCHEMA_VERSION)
        if arrays:
            import io

            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            atomic_write_bytes(self.cases_dir / f"{case_id}.npz", buffer.getvalue())
            row["predictions_file"] = f"cases/{case_id}.npz"
        path = self.cases_dir / f"{case_id}.json"
        atomic_write_json(path, row)
        return path

    def rows(self) -> list[dict[str, Any]]:
        """Every finished row, sorted by case id; unreadable files are reported, not fatal."""
        rows = []
        for path in sorted(self.cases_dir.glob("*.json")):
            try:
                row = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                row = {"case_id": path.stem, "status": "corrupt",
                       "error": f"cannot read {path}: {exc}"}
            shape = _shape_problem(row)
            if shape:
                row = {"case_id": path.stem, "status": "corrupt",
                       "error": f"{path} is not a result row ({shape}); delete it or run the "
                                "case again"}
            rows.append(row)
        return rows

    def record_selected(self, case_ids: Iterable[str]) -> None:
        """Record which cases this session selected, so the report can name those never started
        (an interrupted run, ``-x``) as "not run"."""
        atomic_write_json(self.path / "selected.json", {"case_ids": sorted(set(case_ids))})

    def not_run(self) -> list[str]:
        """Ids of selected cases that never started (see :meth:`record_selected`)."""
        try:
            selected = json.loads((self.path / "selected.json").read_text())["case_ids"]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        done = {p.stem for p in self.cases_dir.glob("*.json")}
        done |= {p.stem for p in (self.path / "started").glob("*.json")}
        return sorted(str(c) for c in selected if str(c) not in done)

    def unfinished(self) -> list[str]:
        """Ids of cases that started but left no row (the process died inside them)."""
        done = {p.stem for p in self.cases_dir.glob("*.json")}
        return sorted(p.stem for p in (self.path / "started").glob("*.json") if p.stem not in done)

    def run_info(self, problems: list[str] | None = None) -> dict[str, Any]:
        """``run.json`` as a dict; ``{}`` when it is missing or unusable (then, when given,
        ``problems`` gets a line naming the file)."""
        path = self.path / "run.json"
        if not path.exists():
            return {}
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            info = f"cannot read it: {exc}"
        if isinstance(info, dict):
            return info
        if problems is not None:
            problems.append(f"{path} is unreadable or not a run description "
                            f"({info if isinstance(info, str) else type(info).__name__}); the "
                            "report is built without it")
        return {}

    def load_predictions(self, case_id: str) -> dict[str, np.ndarray]:
        """The saved ``y_true``/``proba``/``y_pred`` arrays of one case; ``ValueError`` naming the
        file when it is missing, corrupt or lacks an array."""
        path = self.cases_dir / f"{case_id}.npz"
        problem = predictions_problem(path)
        if problem:
            raise ValueError(problem)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}


def predictions_problem(path: Path) -> str | None:
    """Why the predictions file ``path`` cannot be used (one line), or None. Reads only the zip
    directory, not the arrays."""
    try:
        with open(path, "rb") as handle:  # np.load leaks its own handle when parsing fails
            if handle.read(4) != b"PK\x03\x04":
                return (f"predictions file {path} is not an .npz archive (no zip signature); "
                        "run the case again to recreate it")
            handle.seek(0)
            loaded = np.load(handle, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                return (f"predictions file {path} is a single array, not an .npz archive; run "
                        "the case again to recreate it")
            with loaded:
                names = set(loaded.files)
    except Exception as exc:  # noqa: BLE001 - zip, pickle and OS errors all mean "corrupt"
        text = str(exc).splitlines()[0] if str(exc) else ""
        return (f"predictions file {path} cannot be read ({type(exc).__name__}: {text}); run the "
                "case again to recreate it")
    missing = [k for k in PREDICTION_ARRAYS if k not in names]
    if missing:
        return (f"predictions file {path} is not a harness predictions file (no "
                f"{', '.join(missing)}); run the case again to recreate it")
    return None


PREDICTION_ARRAYS = ("y_true", "proba", "y_pred")
# Parts of a row that hold a mapping; anything else there (a string, a list) would break every
# reader, so such a file is shown as corrupt. Full validation belongs to the row schema.
_MAPPING_KEYS = ("metrics", "config", "paper", "provenance", "bounds", "baseline")


def _shape_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"JSON {type(row).__name__} instead of an object"
    if not isinstance(row.get("case_id"), str) or not row.get("case_id"):
        return "no case_id"
    wrong = [k for k in _MAPPING_KEYS if row.get(k) is not None and not isinstance(row[k], dict)]
    if wrong:
        return f"{', '.join(wrong)} not a mapping"
    return None


def find_rows(paths: Iterable[Path | str]) -> list[dict[str, Any]]:
    """Rows of several run folders, each tagged with the folder it came from."""
    rows = []
    for path in paths:
        folder = RunFolder(path)
        for row in folder.rows():
            rows.append(dict(row, run_dir=str(folder.path)))
    return rows
