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
        superseded/<time>/      # rows a resume set aside (made another way), with why.txt

Every file is written to a temporary name, flushed, fsynced and renamed, so a run that dies
(SIGKILL, out of memory, Ctrl-C) leaves either the whole row or none of it. Rows are separate files,
so xdist workers never write the same file and the controller merges them by reading the folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from resnet_harness.storage import identity, outcomes
from resnet_harness.storage.atomic import atomic_write_bytes, atomic_write_json
from resnet_harness.storage.housekeeping import Housekeeping
from resnet_harness.storage.schema import SCHEMA_VERSION, RowError, corrupt_row, validate_row


class RunFolder(Housekeeping):
    """One run's folder of result rows; safe to write from several processes at once.

    The only code that knows the folder's layout (see the module docstring) and reads or writes
    its files.
    """

    CSV, HTML, RUN_INFO, LOCK = "results.csv", "report.html", "run.json", ".lock"
    CLAIMS, COMPARISONS, SEEDS = "claims.csv", "comparisons.csv", "seeds.csv"
    SELECTED = "selected.json"  # the cases a session selected, to name those never started
    SUPERSEDED = "superseded"

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

    @property
    def claims_paths(self) -> dict[str, Path]:
        """``claims.csv``, ``comparisons.csv`` and ``seeds.csv``, by short name."""
        return {"claims": self.path / self.CLAIMS, "comparisons": self.path / self.COMPARISONS,
                "seeds": self.path / self.SEEDS}

    def row_path(self, case_id: str) -> Path:
        """The row file of ``case_id`` (whether or not it exists)."""
        return self.cases_dir / f"{case_id}.json"

    @classmethod
    def runs(cls, report_dir: Path | str) -> list["RunFolder"]:
        """The run folders under ``report_dir/runs``, oldest first (names start with the time)."""
        root = Path(report_dir) / "runs"
        return [cls(p) for p in sorted(root.iterdir()) if cls.is_run_folder(p)] \
            if root.is_dir() else []

    @classmethod
    def results_csv(cls, path: Path | str) -> Path:
        """The ``results.csv`` that ``path`` names: the file itself or a run folder's."""
        path = Path(path)
        return cls(path).csv_path if path.is_dir() else path

    def case_files(self, case_id: str) -> tuple[bytes | None, bytes | None]:
        """The bytes of a case's row and predictions files as stored (None where absent)."""
        def read(path: Path) -> bytes | None:
            try:
                return path.read_bytes()
            except OSError:
                return None
        return (read(self.cases_dir / f"{case_id}.json"),
                read(self.cases_dir / f"{case_id}.npz"))

    def store_case_files(self, case_id: str, row: bytes, predictions: bytes | None) -> None:
        """Store a case's files as another process wrote them (a remote xdist worker's), each
        only when it differs from what is here; the row is validated first and written last,
        as :meth:`write_row` orders them."""
        validate_row(json.loads(row), f"{case_id} from a worker")
        for path, data in ((self.cases_dir / f"{case_id}.npz", predictions),
                           (self.cases_dir / f"{case_id}.json", row)):
            if data is not None and self.case_files(case_id)[path.suffix == ".npz"] != data:
                atomic_write_bytes(path, data)

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
        # The digests are for readers (results.csv, tracking tags); every check recomputes them.
        row = dict(row, schema=SCHEMA_VERSION, identity=identity.part_keys(identity.parts(row)))
        npz = self.cases_dir / f"{case_id}.npz"
        if arrays:
            row["predictions_file"] = f"cases/{case_id}.npz"
            row["predictions_digest"] = predictions_digest(arrays)
            if "y_true" in arrays and "y_pred" in arrays:
                row["test_outcomes"] = outcomes.encode(arrays["y_true"], arrays["y_pred"])
                row["predicted_classes"] = outcomes.predicted_classes(
                    arrays["y_pred"], len(row.get("test_counts") or []) or 1 + int(
                        np.max(arrays["y_pred"], initial=0)))
        path = self.cases_dir / f"{case_id}.json"
        row = validate_row(row, str(path))  # before anything is written: no orphan file
        if arrays:
            import io

            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            atomic_write_bytes(npz, buffer.getvalue())
        try:
            atomic_write_json(path, row)
        except BaseException:
            # A disk that filled up between the two: predictions without their row are litter
            # that a later row would be checked against.
            if arrays:
                npz.unlink(missing_ok=True)
            raise
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

    def record_selected(self, case_ids: Iterable[str]) -> None:
        """Record which cases this session selected, so the report can name those never started
        (an interrupted run, ``-x``) as "not run"."""
        atomic_write_json(self.path / self.SELECTED, {"case_ids": sorted(set(case_ids))})

    def selected(self) -> list[str] | None:
        """The case ids the last session selected (:meth:`record_selected`); None when not
        recorded or unreadable."""
        try:
            found = json.loads((self.path / self.SELECTED).read_text())["case_ids"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return [str(c) for c in found] if isinstance(found, list) else None

    def not_run(self) -> list[str]:
        """Ids of selected cases that never started (see :meth:`record_selected`)."""
        selected = self.selected() or []
        done = {p.stem for p in self.cases_dir.glob("*.json")}
        done |= {p.stem for p in self._started_dir.glob("*.json")}
        return sorted(str(c) for c in selected if str(c) not in done)

    def unfinished(self) -> list[str]:
        """Ids of cases that started but left no row (the process died inside them)."""
        done = {p.stem for p in self.cases_dir.glob("*.json")}
        return sorted(p.stem for p in self._started_dir.glob("*.json") if p.stem not in done)

    def run_info(self, problems: list[str] | None = None) -> dict[str, Any]:
        """``run.json`` as a dict; ``{}`` when it is missing or unusable (then, when given,
        ``problems`` gets a line naming the file)."""
        path = self.path / self.RUN_INFO
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

def _read_row(path: Path) -> dict[str, Any]:
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RowError(f"cannot read {path}: {exc}") from None
    validate_row(row, str(path))
    if row["case_id"] != path.stem:
        raise RowError(f"{path} holds the row of {row['case_id']!r}, not of {path.stem!r}; "
                       "the file was copied or renamed: delete it or run the case again")
    return row


def predictions_problem(path: Path, row: dict[str, Any] | None = None) -> str | None:
    """Why the predictions file ``path`` cannot be used (one line), or None. With ``row`` (the
    row that names it) the arrays must also be that row's: one prediction per test image of its
    ``test_counts``, and the same labels."""
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
    counts = (row or {}).get("test_counts")
    if isinstance(counts, list) and counts:
        return _against_row(path, counts, (row or {}).get("predictions_digest"))
    return None


def _against_row(path: Path, counts: list[int], digest: str | None = None) -> str | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            y_true, proba, y_pred = (data[k] for k in PREDICTION_ARRAYS)
    except Exception as exc:  # noqa: BLE001 - a damaged member reads as corrupt
        return (f"predictions file {path} cannot be read ({type(exc).__name__}); run the case "
                "again to recreate it")
    n = sum(counts)
    if y_true.shape != (n,) or y_pred.shape != (n,) or proba.shape != (n, len(counts)):
        return (f"predictions file {path} holds {y_true.shape[0] if y_true.ndim else 0} "
                f"predictions, its row {n} test images of {len(counts)} classes; it belongs to "
                "another run: run the case again to recreate it")
    found = np.bincount(y_true.astype(np.int64).clip(0), minlength=len(counts))
    if y_true.min(initial=0) < 0 or found.tolist() != list(counts):
        return (f"predictions file {path} has other test labels than its row's test_counts; it "
                "belongs to another run: run the case again to recreate it")
    # Two seeds of one case share shape and class counts: only the digest tells their files
    # apart (a swapped or copied file).
    arrays = {"y_true": y_true, "proba": proba, "y_pred": y_pred}
    if isinstance(digest, str) and digest and predictions_digest(arrays) != digest:
        return (f"predictions file {path} is not the one its row was written with (its digest "
                "differs from the row's predictions_digest); it was swapped or copied from "
                "another run: run the case again to recreate it")
    return None


PREDICTION_ARRAYS = ("y_true", "proba", "y_pred")


def predictions_digest(arrays: dict[str, np.ndarray]) -> str:
    """A digest of a run's test labels and reported predictions (``PREDICTION_ARRAYS``), kept in
    its row so that two runs whose predictions are bit for bit the same are known to be, even
    where the predictions files are not kept: their scores are then one figure, not two
    samples of the test set (``analysis.comparisons``)."""
    import hashlib

    digest = hashlib.sha256()
    for name in PREDICTION_ARRAYS:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:32]


# Parts of a row that hold a mapping; anything else there (a string, a list) would break every
# reader, so such a file is shown as corrupt. Full validation belongs to the row schema.
_MAPPING_KEYS = ("metrics", "config", "paper", "provenance", "bounds", "baseline")


def find_rows(paths: Iterable[Path | str]) -> list[dict[str, Any]]:
    """Rows of several run folders, each tagged with the folder it came from."""
    rows = []
    for path in paths:
        folder = RunFolder(path)
        for row in folder.rows():
            rows.append(dict(row, run_dir=str(folder.path)))
    return rows
