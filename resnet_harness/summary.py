"""The compact per-case table printed at the end of a pytest run."""

from __future__ import annotations

from .results import RunFolder
from .schema import SUMMARY_FIELDS, value


def summary_lines(folder: RunFolder) -> list[str]:
    """One header line, one line per finished case, one per case that never finished."""
    rows = folder.rows()
    width = max([len(r.get("case_id", "")) for r in rows] + [20])
    widths = [max(7, len(field.label)) for field in SUMMARY_FIELDS]
    header = (f"{'case':<{width}} {'status':<8} "
              + " ".join(f"{field.label:>{w}}" for field, w in zip(SUMMARY_FIELDS, widths)))
    lines = [header]
    for row in rows:
        lines.append(f"{row.get('case_id', '?'):<{width}} {row.get('status', '?'):<8} " + " ".join(
            f"{field.format(value(row, field.name)):>{w}}"
            for field, w in zip(SUMMARY_FIELDS, widths)))
    for case_id in folder.unfinished():
        lines.append(f"{case_id:<{width}} {'unfinished':<8}")
    lines.append(f"rows: {folder.cases_dir}")
    return lines
