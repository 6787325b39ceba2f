"""Result rows on disk: one JSON file and one ``.npz`` of predictions per finished case.

A run folder looks like::

    reports/latest -> runs/<run-name>   # the newest run (or latest.txt holding its path)
    reports/runs/<run-name>/
        .lock                 # held by the session writing into the folder
        results.csv, report.html
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

import datetime as _dt
import json
import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .schema import SCHEMA_VERSION, RowError, corrupt_row, validate_row


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600 files; results are meant to be read by others (CI artifacts, teams).
        os.fchmod(fd, 0o644 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


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
    """One run's folder of result rows; safe to write from several processes at once.

    The only code that knows the folder's layout (see the module docstring) and reads or writes
    its files.
    """

    CSV, HTML, RUN_INFO, LOCK = "results.csv", "report.html", "run.json", ".lock"

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @classmethod
    def new(cls, report_dir: Path | str, scale: str) -> "RunFolder":
        """A fresh, not yet created folder ``<report_dir>/runs/<date>-<time>-<scale>-<id>``."""
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return cls(Path(report_dir) / "runs" / f"{stamp}-{scale}-{uuid.uuid4().hex[:6]}")

    @staticmethod
    def is_run_folder(path: Path | str) -> bool:
        """Whether ``path`` looks like a run folder (it has ``cases/`` or ``run.json``)."""
        path = Path(path)
        return (path / "cases").is_dir() or (path / RunFolder.RUN_INFO).is_file()

    @property
    def cases_dir(self) -> Path:
        return self.path / "cases"

    @property
    def _started_dir(self) -> Path:
        return self.path / "started"

    @property
    def csv_path(self) -> Path:
        return self.path / self.CSV

    @property
    def html_path(self) -> Path:
        return self.path / self.HTML

    def has_started(self) -> bool:
        """Whether any case of this run has started (so there is something to report)."""
        return self._started_dir.is_dir()

    def create(self, run_info: dict[str, Any] | None = None) -> "RunFolder":
        """Make the folder (and write ``run.json`` when given)."""
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        self._started_dir.mkdir(exist_ok=True)
        if run_info is not None:
            atomic_write_json(self.path / self.RUN_INFO, run_info)
        return self

    def lock(self):
        """A ``filelock.FileLock`` on this folder, held by the session that writes into it."""
        from filelock import FileLock

        self.path.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path / self.LOCK))

    def mark_started(self, case_id: str, info: dict[str, Any]) -> None:
        """Record that a case began, so a run that dies can name the cases that never finished."""
        atomic_write_json(self._started_dir / f"{case_id}.json", info)

    def started_info(self, case_id: str) -> dict[str, Any]:
        """What :meth:`mark_started` recorded for ``case_id`` (empty when unreadable)."""
        try:
            info = json.loads((self._started_dir / f"{case_id}.json").read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def write_row(self, row: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Path:
        """Persist one finished case: predictions first, then the row that points at them."""
        case_id = row["case_id"]
        row = dict(row, schema=SCHEMA_VERSION)
        if arrays:
            import io

            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            atomic_write_bytes(self.cases_dir / f"{case_id}.npz", buffer.getvalue())
            row["predictions_file"] = f"cases/{case_id}.npz"
        path = self.cases_dir / f"{case_id}.json"
        atomic_write_json(path, validate_row(row, str(path)))
        return path

    def row(self, case_id: str) -> dict[str, Any] | None:
        """The validated row of ``case_id``; None when there is none. :class:`RowError` when
        its file is not a readable row."""
        path = self.cases_dir / f"{case_id}.json"
        if not path.is_file():
            return None
        return _read_row(path)

    def rows(self) -> list[dict[str, Any]]:
        """Every finished row, sorted by case id. A file that is not a readable row becomes a
        row of status "corrupt" naming the file and the problem (never an exception)."""
        rows = []
        for path in sorted(self.cases_dir.glob("*.json")):
            try:
                rows.append(_read_row(path))
            except RowError as exc:
                rows.append(corrupt_row(path.stem, str(exc)))
        return rows

    def unfinished(self) -> list[str]:
        """Ids of cases that started but left no row (the process died inside them)."""
        done = {p.stem for p in self.cases_dir.glob("*.json")}
        return sorted(p.stem for p in self._started_dir.glob("*.json") if p.stem not in done)

    def run_info(self) -> dict[str, Any]:
        """The run's ``run.json`` (empty when missing or unreadable)."""
        try:
            info = json.loads((self.path / self.RUN_INFO).read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def load_predictions(self, case_id: str) -> dict[str, np.ndarray]:
        """The saved ``y_true``/``proba``/``y_pred`` arrays of one case."""
        with np.load(self.cases_dir / f"{case_id}.npz") as data:
            return {k: data[k] for k in data.files}

    def link_latest(self, reports_root: Path | str) -> Path:
        """Point ``reports_root/latest`` at this folder with a relative symlink.

        The link is swapped in atomically (a temporary link renamed over the old one), so readers
        never see it missing. Where symlinks cannot be made (Windows without the privilege, some
        network file systems) ``reports_root/latest.txt`` holding the folder's path is written
        instead. Returns the path written.
        """
        root = Path(reports_root)
        root.mkdir(parents=True, exist_ok=True)
        link, temporary = root / "latest", root / f".latest.{os.getpid()}.tmp"
        relative = os.path.relpath(self.path.resolve(), root.resolve())
        try:
            temporary.unlink(missing_ok=True)
            os.symlink(relative, temporary, target_is_directory=True)
            os.replace(temporary, link)
        except (OSError, NotImplementedError):
            temporary.unlink(missing_ok=True)
            text = root / "latest.txt"
            atomic_write_bytes(text, (str(self.path.resolve()) + "\n").encode("utf-8"))
            return text
        (root / "latest.txt").unlink(missing_ok=True)  # a stale fallback would contradict it
        return link


def _read_row(path: Path) -> dict[str, Any]:
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RowError(f"cannot read {path}: {exc}") from None
    return validate_row(row, str(path))


def find_rows(paths: Iterable[Path | str]) -> list[dict[str, Any]]:
    """Rows of several run folders, each tagged with the folder it came from."""
    rows = []
    for path in paths:
        folder = RunFolder(path)
        for row in folder.rows():
            rows.append(dict(row, run_dir=str(folder.path)))
    return rows
