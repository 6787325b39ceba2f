"""The compact per-case table printed at the end of a pytest run."""

from __future__ import annotations

from resnet_harness.analysis.claims import analyse, summary_lines as claim_lines
from resnet_harness.storage.rundir import RunFolder
from resnet_harness.storage.schema import SUMMARY_FIELDS, value

def smoke_note(rows) -> str:
    """What smoke figures are, with the epochs the rows actually ran (``--epochs`` can change
    the smoke scale's one)."""
    ran = sorted({len((row.get("history") or {}).get("loss") or []) or
                  (row.get("config") or {}).get("epochs") for row in rows
                  if row.get("scale") == "smoke"} - {None, 0})
    epochs = f"{ran[0]}-{ran[-1]}" if len(ran) > 1 else str(ran[0]) if ran else "1"
    plural = "epoch" if epochs == "1" else "epochs"
    return (f"smoke scale: these figures check the pipeline end to end ({epochs} {plural}, a "
            "few hundred images); they carry no meaning as results")


def summary_lines(folder: RunFolder, delta: float = 0.01, design=None,
                  width: int | None = None, analysis=None) -> list[str]:
    """One header line, one line per finished case (and one per warning it carries), one per
    case that never finished or never started, the paper's claims as far as the rows answer
    them (``delta``: the equivalence margin), and at smoke scale a line saying what smoke
    figures are.

    The columns are the schema's fields with a ``label``: ``acc_tr`` is the accuracy before
    BatchNorm re-estimation, ``steady_s`` the training time without its first step and
    ``added_MB`` the memory the case added: unlike ``train_s`` and ``peak_MB`` they do not depend
    on the order cases ran in.

    ``width`` (a terminal's columns): the table keeps the columns that fit, from the left, and
    says so; longer lines wrap. The full figures are in ``results.csv`` and the report.
    ``analysis``: the claims the report evaluated (:class:`~resnet_harness.analysis.claims.
    Analysis`); None evaluates them from the folder's rows (no report was built).
    """
    rows = folder.rows()
    id_width = max([len(r.get("case_id", "")) for r in rows] + [20])
    fields = list(SUMMARY_FIELDS)
    widths = [max(7, len(field.label)) for field in fields]
    cut = False
    if width:
        room = width - id_width - 10
        keep = next((k for k in range(len(fields), 0, -1)
                     if sum(w + 1 for w in widths[:k]) <= room), 1)
        cut = keep < len(fields)
        fields, widths = fields[:keep], widths[:keep]
    header = (f"{'case':<{id_width}} {'status':<8} "
              + " ".join(f"{field.label:>{w}}" for field, w in zip(fields, widths)))
    table = [header]
    notes: list[str] = []
    for row in rows:
        table.append(f"{row.get('case_id', '?'):<{id_width}} {row.get('status', '?'):<8} "
                     + " ".join(f"{field.format(value(row, field.name)):>{w}}"
                                for field, w in zip(fields, widths)))
        table += _wrap([f"  warning: {text}" for text in row.get("warnings") or []], width)
    for case_id in folder.unfinished():
        table.append(f"{case_id:<{id_width}} {'unfinished':<8}")
    for case_id in folder.not_run():
        table.append(f"{case_id:<{id_width}} {'not run':<8}")
    if cut:
        notes.append(f"(columns cut to fit {width}; every figure is in results.csv and the "
                     "report)")
    notes.append(f"rows: {folder.cases_dir}")
    notes += claim_lines(analysis if analysis is not None else analyse(rows, delta, design))
    if any(row.get("scale") == "smoke" for row in rows):
        notes.append(smoke_note(rows))
    return table + _wrap(notes, width)


def _wrap(lines: list[str], width: int | None) -> list[str]:
    """``lines`` wrapped at ``width``, continuation lines indented under their first word."""
    if not width:
        return lines
    import textwrap

    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        # A deep indent (the claim lines align under a long key) would leave no room.
        lead = min(len(line) - len(line.lstrip(" ")), 6)
        out += textwrap.wrap(" " * lead + line.lstrip(" "), width,
                             subsequent_indent=" " * (lead + 4), break_on_hyphens=False,
                             break_long_words=False) or [line]
    return out
