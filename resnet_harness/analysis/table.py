"""Result rows as one flat table (``results.csv``) and the summary frames shaped like the paper's.

Everything here is pandas only: no plotting, no HTML, no TensorFlow.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from resnet_harness import study
from resnet_harness.analysis.comparisons import predicted_classes
from resnet_harness.training.data.sources import NUM_CLASSES
from resnet_harness.storage import schema
from resnet_harness.storage.identity import current_names
from resnet_harness.storage.schema import FIELDS, PAPER_KEYS, PAPER_METRIC

# Every row's identity columns; each registered study adds the keys that place its cases
# (``Study.identity_columns``) after ``dataset``: see :func:`id_columns`.
BASE_ID_COLUMNS = ("case_id", "study", "dataset", "split", "scale", "seed", "status", "error")
# Statuses of cases without a result: started and died, or never started.
PENDING = ("unfinished", "not_run")
SCALE_RANK = {"smoke": 0, "reduced": 1, "paper": 2}
# Paper keys where lower is better (the figure our field of that key says so).
RESOURCE_KEYS = tuple(key for key in PAPER_KEYS
                      if schema.FIELDS_BY_NAME[PAPER_METRIC[key]].better == "lower")

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
INTEGER_COLUMNS = ("seed", "epochs") + tuple(f.name for f in FIELDS if f.kind == "count")
_TEXT_COLUMNS = ("case_id", "study", "table", "dataset", "balance", "regularization", "scale", "status",
                 "error", "weights", "comparison", "recipe", "paper_source", "reduced_classes",
                 "bounds_violations", "baseline_regressions", "baseline_improvements",
                 "finished_at", "run_dir", "bn_recalibrated", "warnings", "model_reused",
                 "baseline_status", "identity", "data_source", "data_fingerprint", "git_commit",
                 "config", "versions", "environment", "predictions_digest", "test_set",
                 "test_outcomes")
# The settings a results.csv line holds outside its config column (all a CSV written before
# that column has): "recipe" is the old name of "comparison" (storage.identity.current_names).
PARTIAL_CONFIG = ("epochs", "weights", "comparison", "recipe")
# Objects stored as JSON text in one column each: with them a results.csv row has the whole
# identity of its result (storage/identity.py), so a baseline is matched like a stored row.
JSON_COLUMNS = ("config", "versions", "environment")


def id_columns() -> tuple[str, ...]:
    """The identity columns of ``results.csv``: the base ones with every registered study's own
    placed after ``dataset`` (registration order)."""
    extra = tuple(k for s in study.studies() for k in s.identity_columns
                  if k not in BASE_ID_COLUMNS)
    return BASE_ID_COLUMNS[:3] + tuple(dict.fromkeys(extra)) + BASE_ID_COLUMNS[3:]


def _order() -> dict[str, int]:
    # The studies' own case order (registration order, then each study's matrix order).
    cases = [c.id for s in study.studies() for c in s.cases]
    return {case_id: index for index, case_id in enumerate(cases)}


def finished_at(row: dict[str, Any]) -> datetime:
    """When a row's case finished (``provenance.finished_at``); the distant past when unknown."""
    stamp = (row.get("provenance") or {}).get("finished_at") or row.get("finished_at")
    return _parse_time(stamp)


def _parse_time(stamp: Any) -> datetime:
    if not stamp:
        return _EPOCH
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return _EPOCH
    # Naive stamps are taken as UTC so that they can be compared with aware ones.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _list(value: Any, length: int = NUM_CLASSES) -> list[Any]:
    values = list(value) if isinstance(value, (list, tuple)) else []
    return (values + [None] * length)[:length]


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """One result row as a flat ``{column: scalar}`` dict (missing values as ``None``)."""
    metrics = row.get("metrics") or {}
    per_class = metrics.get("per_class") or {}
    config = row.get("config") or {}
    paper = row.get("paper") or {}
    recall = _list(per_class.get("recall"))
    train_counts, test_counts = _list(row.get("train_counts")), _list(row.get("test_counts"))
    reduced = [int(k) for k in row.get("reduced_classes") or []]

    flat: dict[str, Any] = {key: row.get(key) for key in id_columns()}
    flat.update({f.name: _number(schema.value(row, f.name)) for f in FIELDS})
    # Sample sizes from the counts (also for older rows that did not store them).
    flat["train_samples"] = _total(row.get("train_counts"))
    flat["test_samples"] = _total(row.get("test_counts"))
    flat.update({f"recall_class_{k}": _number(recall[k]) for k in reduced if k < NUM_CLASSES})
    flat.update({f"recall_c{k}": _number(recall[k]) for k in range(NUM_CLASSES)})
    flat["bn_recalibrated"] = row.get("bn_recalibrated")
    flat["model_reused"] = row.get("model_reused")
    flat["warnings"] = "; ".join(row.get("warnings") or [])
    flat.update({f"train_count_c{k}": train_counts[k] for k in range(NUM_CLASSES)})
    flat.update({f"test_count_c{k}": test_counts[k] for k in range(NUM_CLASSES)})
    flat["epochs"] = config.get("epochs")
    flat["epochs_run"] = len((row.get("history") or {}).get("epoch_seconds") or []) or None
    flat["best_epoch"] = row.get("best_epoch")
    flat["validation_samples"] = _total(row.get("validation_counts"))
    flat["weights"] = config.get("weights")
    flat["comparison"] = current_names(config).get("comparison")
    flat.update({f"paper_{key}": _number(paper.get(key)) for key in PAPER_KEYS})
    flat["paper_source"] = paper.get("source")
    flat["reduced_classes"] = " ".join(str(k) for k in reduced)
    flat["bounds_violations"] = "; ".join((row.get("bounds") or {}).get("violations") or [])
    base = row.get("baseline") or {}
    flat["baseline_regressions"] = "; ".join(base.get("regressions") or [])
    flat["baseline_improvements"] = "; ".join(base.get("improvements") or [])
    stamp = finished_at(row)
    flat["finished_at"] = stamp.isoformat() if stamp != _EPOCH else None
    flat["run_dir"] = row.get("run_dir")
    flat["baseline_status"] = baseline_status(row)
    provenance = row.get("provenance") if isinstance(row.get("provenance"), dict) else {}
    keys = row.get("identity") if isinstance(row.get("identity"), dict) else {}
    flat["identity"] = keys.get("identity")
    flat["data_source"] = row.get("data_source")
    flat["data_fingerprint"] = row.get("data_fingerprint")
    flat["predicted_classes"] = predicted_classes(row)  # older rows: from their matrix
    flat["predictions_digest"] = row.get("predictions_digest")
    flat["test_set"] = row.get("test_set")
    flat["test_outcomes"] = row.get("test_outcomes")
    flat["git_commit"] = provenance.get("git_commit")
    for column, value in (("config", config), ("versions", provenance.get("versions")),
                          ("environment", provenance.get("environment"))):
        flat[column] = json.dumps(value, sort_keys=True, default=str) if value else None
    return flat


def baseline_status(row: dict[str, Any]) -> str | None:
    """``compared``, ``compared across environments`` or ``not compared: <reason>`` for a row
    judged against a baseline; None without one."""
    base = row.get("baseline")
    if not isinstance(base, dict):
        return None
    if base.get("not_compared") or base.get("missing"):
        return f"not compared: {base.get('not_compared') or 'no baseline row for this case'}"
    return "compared across environments" if base.get("across_environments") else "compared"


def rows_from_table(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Result rows rebuilt from a ``results.csv`` frame (the inverse of :func:`flatten_row` for
    what comparisons and claims read: identity, scores and their intervals, per-class recall,
    counts, time, memory, model reuse and the paper's comparison). A CSV written before it kept
    the configuration has its epochs, weights and comparison (``recipe`` in older files) only:
    confounds are found among those."""
    rows = []
    for line in frame.to_dict("records"):
        get = {k: (None if isinstance(v, float) and math.isnan(v) else v)
               for k, v in line.items()}.get
        row: dict[str, Any] = {k: get(k) for k in id_columns() if get(k) is not None}
        row["seed"] = int(get("seed")) if get("seed") is not None else None
        for field in FIELDS:
            number = get(field.name)
            if number is None or field.source == "metrics_as_trained":
                continue
            if field.source == "row":
                row[field.name] = number
            elif field.source == "intervals":
                pair = row.setdefault("intervals", {}).setdefault(field.key, [None, None])
                pair[field.index] = number
            else:
                row.setdefault(field.source, {})[field.key or field.name] = number
        recall = [get(f"recall_c{k}") for k in range(NUM_CLASSES)]
        if any(v is not None for v in recall):
            row.setdefault("metrics", {})["per_class"] = {"recall": recall}
        for key in ("train", "test"):
            counts = [get(f"{key}_count_c{k}") for k in range(NUM_CLASSES)]
            if all(c is not None for c in counts):
                row[f"{key}_counts"] = [int(c) for c in counts]
        reduced = get("reduced_classes")
        row["reduced_classes"] = ([int(k) for k in str(reduced).split()]
                                  if reduced is not None else [])
        reused = get("model_reused")
        row["model_reused"] = (None if reused is None else
                               str(reused).strip().lower() in ("true", "1", "1.0"))
        row["config"] = current_names({k: get(k) for k in PARTIAL_CONFIG if get(k) is not None})
        row.update(json_cells(line))
        row.update({k: get(k) for k in ("data_source", "data_fingerprint", "git_commit",
                                        "predictions_digest", "test_set", "test_outcomes")
                    if get(k) is not None})
        rows.append(row)
    return rows


class ResultsError(ValueError):
    """A ``results.csv`` that cannot be read as one; the message names the file, the line and
    how to fix it."""


REQUIRED_COLUMNS = ("case_id", "scale", "status")
# Scores every finished case measures (ROC AUC is undefined with fewer than two classes in the
# test set): an empty cell of one is damage, and would switch its comparison or guard off.
ALWAYS_MEASURED = ("accuracy", "balanced_accuracy", "f1_macro")
USABLE = ("passed", "failed")  # rows whose figures were measured
REBUILD = "fix the file or rebuild it with: python -m resnet_harness report RUN_DIR"


def read_results(csv: Path | str, usable: tuple[str, ...] = USABLE,
                 fix: str = REBUILD) -> pd.DataFrame:
    """``results.csv`` as a frame, checked before any figure of it is used: readable, the
    harness's columns, at least one row, and in every row of a ``usable`` status a whole-number
    seed, figures that are finite numbers in their range (a score 0..1, a time or count >= 0;
    an empty cell is a figure not recorded) and no case measured twice at one scale and seed.
    :class:`ResultsError` otherwise, naming the first bad line; ``fix`` is the advice it ends
    with."""
    csv = Path(csv)
    try:
        at = csv.read_bytes().find(b"\0")
    except OSError:
        at = -1  # pandas names what cannot be read, below
    if at >= 0:
        # What a crash of some file systems leaves: a block of zeros; pandas reads through it
        # and drops or merges lines without a word.
        raise ResultsError(f"{csv} holds NUL bytes from byte {at} on (a damaged disk or an "
                           f"interrupted copy); {fix}")
    try:
        frame = pd.read_csv(csv)
        text = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{csv} is empty; pass a results.csv written by resnet-harness "
                           f"({fix})") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a results.csv"
        raise ResultsError(f"{csv} is not a readable CSV ({type(exc).__name__}); pass a "
                           "results.csv written by resnet-harness") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(f"{csv} lacks the columns {', '.join(missing)}; pass a "
                           "results.csv written by resnet-harness")
    if frame.empty:
        raise ResultsError(f"{csv} has a header but no rows; {fix}")
    for index, status in text["status"].items():
        if status not in schema.STATUSES:
            raise ResultsError(f"{csv} line {index + 2} ({text.at[index, 'case_id']}): status "
                               f"{status!r} is not one of {', '.join(schema.STATUSES)}; {fix}")
    rows = text[text["status"].isin(usable)]
    for index, raw in (rows["seed"].items() if "seed" in rows else ()):
        if raw.strip() and (schema.as_number(raw) is None or float(raw) != int(float(raw))):
            raise ResultsError(f"{csv} line {index + 2} ({rows.at[index, 'case_id']}): seed is "
                               f"{raw!r}, not a whole number; {fix}")
    for field in [f for f in FIELDS if f.name in rows.columns]:
        for index, raw in rows[field.name].items():
            if raw.strip() == "" and field.name in ALWAYS_MEASURED:
                raise ResultsError(
                    f"{csv} line {index + 2} ({rows.at[index, 'case_id']}): {field.name} is "
                    f"empty in a {rows.at[index, 'status']} row, which always measures it; {fix}")
            problem = schema.figure_problem(field, raw)
            if problem:
                raise ResultsError(f"{csv} line {index + 2} ({rows.at[index, 'case_id']}): "
                                   f"{field.name} {problem}; {fix}")
    for column in [c for c in JSON_COLUMNS if c in rows.columns]:
        for index, raw in rows[column].items():
            if raw.strip() and not isinstance(_json_object(raw), dict):
                raise ResultsError(f"{csv} line {index + 2} ({rows.at[index, 'case_id']}): "
                                   f"{column} is not a JSON object; {fix}")
    if "test_outcomes" in rows.columns:
        for index, line in rows[rows["test_outcomes"].str.strip() != ""].iterrows():
            try:
                schema.check_outcomes(_outcome_row(line), f"{csv} line {index + 2} "
                                                          f"({line['case_id']})")
            except schema.RowError as exc:
                raise ResultsError(f"{str(exc).split('; the file')[0]}; {fix}") from None
    seen: dict[tuple[str, str, str], int] = {}
    for index, line in rows.iterrows():
        base = study.split_seed(line["case_id"])[0]
        seed = line.get("seed") or str(study.split_seed(line["case_id"])[1] or 0)
        key = (base, line["scale"], str(int(float(seed))) if seed.strip() else "0")
        if key in seen:
            raise ResultsError(f"{csv} holds {key[0]} seed {key[2]} at scale {key[1]} twice "
                               f"(lines {seen[key] + 2} and {index + 2}); keep one of them")
        seen[key] = index
    return frame


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _outcome_row(line: pd.Series) -> dict[str, Any]:
    """What ``schema.check_outcomes`` reads, from one line of text cells."""
    counts = [line.get(f"test_count_c{k}", "") for k in range(NUM_CLASSES)]
    row: dict[str, Any] = {"test_outcomes": line["test_outcomes"], "metrics": {
        name: line.get(name, "") or None for name in schema.RECOMPUTED}}
    if all(str(c).strip() for c in counts):
        row["test_counts"] = [int(float(c)) for c in counts]
    return row


def json_cells(line: dict[str, Any]) -> dict[str, Any]:
    """The :data:`JSON_COLUMNS` of a ``results.csv`` line, parsed; a damaged or empty cell is
    left out (that part of the row's identity is then unknown)."""
    out = {}
    for column in JSON_COLUMNS:
        text = line.get(column)
        if isinstance(text, str) and text.startswith("{"):
            try:
                out[column] = json.loads(text)
            except ValueError:
                pass
    return out


def _total(counts: Any) -> int | None:
    if not isinstance(counts, (list, tuple)) or not counts:
        return None
    return int(sum(int(c) for c in counts))


def case_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One line per case, columns in a fixed order (the ``recall_class_<k>`` ones follow the
    scalar metrics and exist for every class that any row reduced)."""
    records = [flatten_row(row) for row in rows]
    reduced = sorted({int(c[len("recall_class_"):]) for r in records for c in r
                      if c.startswith("recall_class_")})
    template = flatten_row({})
    head = list(id_columns()) + list(schema.SCORES) + ["auc_classes"]
    columns = head + [f"recall_class_{k}" for k in reduced] + \
        [c for c in template if c not in head]
    raw = pd.DataFrame.from_records(records, columns=columns)
    # Fixed dtypes, so that a column that is empty in every row still reads back as what it is
    # and counts are written as "32", not "32.0". Built in one go: replacing columns one by one
    # leaves a fragmented frame, and every later assign() on it warns (an error under pytest's
    # filterwarnings = error, which cost a run its report).
    typed = {}
    for column in columns:
        if column in INTEGER_COLUMNS or column.startswith(("train_count_", "test_count_")):
            typed[column] = pd.array(raw[column], dtype="Int64")
        elif column in _TEXT_COLUMNS:
            typed[column] = raw[column].map(_text).astype(object)
        else:
            typed[column] = pd.to_numeric(raw[column], errors="coerce").astype("float64")
    frame = pd.DataFrame(typed, columns=columns)
    keys = [case_order(c, s) for c, s in zip(frame["case_id"], frame["scale"])]
    return frame.iloc[sorted(range(len(frame)), key=keys.__getitem__)].reset_index(drop=True)


def case_order(case_id: Any, scale: Any = None) -> tuple[int, str, int]:
    """Sort key: the studies' own case order, unknown ids last, then by scale."""
    order = _order()
    position = order.get(study.split_seed(str(case_id))[0], len(order))
    return position, str(case_id), SCALE_RANK.get(scale, -1) if isinstance(scale, str) else -1


def _text(value: Any) -> Any:
    # An empty string would come back from read_csv as NaN: store it as missing from the start.
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return math.nan
    return str(value)


def write_csv(frame: pd.DataFrame, path: Path | str) -> Path:
    """Write the case frame as ``results.csv`` (readable back with a plain ``pandas.read_csv``)."""
    from resnet_harness.storage.atomic import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, csv_bytes(frame))
    return path


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The bytes of ``results.csv`` for the case frame."""
    return frame.to_csv(index=False).encode("utf-8")


def pick_per_case(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per case id for the summaries: a finished row over an unfinished one, then the
    largest scale, then the latest finish. Indexed by case id."""
    if frame.empty:
        return frame.set_index("case_id")
    ranked = frame.assign(
        _done=(~frame["status"].isin(PENDING)).astype(int),
        _scale=frame["scale"].map(SCALE_RANK).fillna(-1),
        _when=frame["finished_at"].map(lambda v: v if isinstance(v, str) else ""))
    ranked = ranked.sort_values(["_done", "_scale", "_when"], kind="stable")
    ranked = ranked.drop_duplicates("case_id", keep="last")
    return ranked.drop(columns=["_done", "_scale", "_when"]).set_index("case_id")


def _number(value: Any) -> float | None:
    return schema.as_number(value)


def as_float(value: Any) -> float:
    """A stored value as a float; NaN when missing or not a number."""
    number = _number(value)
    return math.nan if number is None else number


