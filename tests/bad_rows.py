"""One table of damaged rows, fed to every entry point that reads rows (``tests/test_bad_rows.py``).

A sound run folder holds two passed rows with their predictions; each entry of :data:`BAD_ROWS`
damages one of them the way a broken disk, an editor or a script would, in the form a reader
meets it: the row's JSON file in ``cases/`` (``json``), its line in a ``results.csv``
(``csv``), or both. ``says`` are the words every reader's message must contain, whichever form
it read. An entry with ``json=None`` (or ``csv=None``) has no counterpart in that form.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from resnet_harness.storage import outcomes

VICTIM = "table7-cifar10-balanced-split_orig-reg_none"  # the damaged case
BYSTANDER = "table7-cifar10-imbalanced-split_orig-reg_none"  # a sound case beside it


@dataclass(frozen=True)
class BadRow:
    """One kind of damage, in the forms it takes (see the module docstring)."""

    name: str
    says: tuple[str, ...]
    # Edits the row dict (and may touch other files), or returns the bytes the row file gets.
    json: Callable[[dict, Path], bytes | None] | None = None
    # Returns the damaged table, or the text the whole file gets.
    csv: Callable[[pd.DataFrame], pd.DataFrame | str] | None = None


def _metric(name: str, value):
    """Set a score in the JSON row (under ``metrics``) and in the CSV (its own column)."""
    def on_json(row: dict, run: Path) -> None:
        row["metrics"][name] = value

    def on_csv(frame: pd.DataFrame) -> pd.DataFrame:
        frame[name] = frame[name].astype(object)
        frame.loc[frame["case_id"] == VICTIM, name] = value
        return frame
    return on_json, on_csv


def _top(name: str, value):
    """Set a top-level field of the row, which is also a CSV column of the same name."""
    def on_json(row: dict, run: Path) -> None:
        row[name] = value

    def on_csv(frame: pd.DataFrame) -> pd.DataFrame:
        frame[name] = frame[name].astype(object)
        frame.loc[frame["case_id"] == VICTIM, name] = value
        return frame
    return on_json, on_csv


def _other_outcomes() -> str:
    """Test outcomes of the victim's test set (same labels) with other predictions."""
    labels = np.repeat(np.arange(10), 16)
    return outcomes.encode(labels, (labels + 1) % 10)


def _swap_predictions(row: dict, run: Path) -> None:
    """The victim's predictions file replaced by the bystander's (same test labels)."""
    victim, other = run / "cases" / f"{VICTIM}.npz", run / "cases" / f"{BYSTANDER}.npz"
    victim.write_bytes(other.read_bytes())


def _foreign_npz(row: dict, run: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, weights=np.zeros(3))
    (run / "cases" / f"{VICTIM}.npz").write_bytes(buffer.getvalue())


def _duplicate(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame[frame["case_id"] == VICTIM]], ignore_index=True)


def _cut_file(row: dict, run: Path) -> bytes:
    """What a full disk or a killed copy leaves: the file stops half-way."""
    text = json.dumps(row).encode()
    return text[:len(text) // 2]


def _zeroed_file(row: dict, run: Path) -> bytes:
    """What a crash of some file systems leaves: the file's length, filled with NUL bytes."""
    return bytes(len(json.dumps(row)))


def _cut_csv(frame: pd.DataFrame) -> str:
    """The CSV stops in the middle of the victim's line (the victim is the last line)."""
    frame = pd.concat([frame[frame["case_id"] != VICTIM], frame[frame["case_id"] == VICTIM]])
    text = frame.to_csv(index=False)
    last = text.rstrip("\n").rfind("\n")
    return text[:last + 1 + len(VICTIM) + 12]


def _zeroed_csv(frame: pd.DataFrame) -> str:
    """A block of NUL bytes in the middle of the file."""
    text = frame.to_csv(index=False)
    middle = len(text) // 2
    return text[:middle] + "\0" * 512 + text[middle + 512:]


def _drop_column(column: str):
    def on_csv(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=[column])
    return on_csv


BAD_ROWS = [
    BadRow("score-above-one", ("accuracy is '2.0', not a share 0..1",), *_metric("accuracy", 2.0)),
    BadRow("score-negative", ("f1_macro is '-0.5', not a share 0..1",),
           *_metric("f1_macro", -0.5)),
    BadRow("score-text", ("accuracy is 'abc', not a share 0..1",), *_metric("accuracy", "abc")),
    BadRow("score-edited", ("accuracy is 0.9 but its test_outcomes give",),
           *_metric("accuracy", 0.9)),
    BadRow("time-negative", ("train_time_s is '-3.0', not a number >= 0",),
           *_top("train_time_s", -3.0)),
    BadRow("outcomes-undecodable", ("test_outcomes cannot be decoded",),
           *_top("test_outcomes", "z1:AAAA")),
    BadRow("outcomes-of-another-run", ("but its test_outcomes give",),
           *_top("test_outcomes", _other_outcomes())),
    BadRow("status-unknown", ("status 'won' is not one of passed",), *_top("status", "won")),
    BadRow("seed-text", ("seed is 'x', not a whole number",), *_top("seed", "x")),
    BadRow("predictions-swapped", ("differs from the row's predictions_digest",),
           json=_swap_predictions),
    BadRow("predictions-foreign", ("is not a harness predictions file",), json=_foreign_npz),
    BadRow("row-twice", ("twice", "lines 2 and 4"), csv=_duplicate),
    BadRow("file-cut", ("cannot read",), json=_cut_file),
    BadRow("file-zeroed", ("cannot read",), json=_zeroed_file),
    BadRow("csv-cut", ("line 3", VICTIM, "status '' is not one of"), csv=_cut_csv),
    BadRow("csv-zeroed", ("holds NUL bytes from byte",), csv=_zeroed_csv),
    BadRow("column-missing", ("lacks the columns case_id",), csv=_drop_column("case_id")),
]


def sound_run(path: Path) -> Path:
    """A run folder with two passed rows (the victim and a bystander) and their predictions."""
    from test_report import make_row, write_run

    write_run(path, [make_row(VICTIM), make_row(BYSTANDER, rng_seed=1)])
    return path


def damage_run(run: Path, bad: BadRow) -> None:
    """Apply ``bad`` to the victim's stored row (its JSON file and predictions)."""
    path = run / "cases" / f"{VICTIM}.json"
    row = json.loads(path.read_text())
    raw = bad.json(row, run)
    path.write_bytes(json.dumps(row).encode() if raw is None else raw)


def damage_csv(csv: Path, bad: BadRow) -> Path:
    """Rewrite the ``results.csv`` at ``csv`` with ``bad`` applied to the victim's line."""
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    damaged = bad.csv(frame)
    if isinstance(damaged, str):
        csv.write_text(damaged)
    else:
        damaged.to_csv(csv, index=False)
    return csv


JSON_ROWS = [bad for bad in BAD_ROWS if bad.json is not None]
CSV_ROWS = [bad for bad in BAD_ROWS if bad.csv is not None]
