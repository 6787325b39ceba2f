"""The compact per-case table printed at the end of a pytest run."""

from __future__ import annotations

from resnet_harness.analysis.claims import summary_lines as claim_lines
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


def summary_lines(folder: RunFolder, delta: float = 0.01, design=None) -> list[str]:
    """One header line, one line per finished case (and one per warning it carries), one per
    case that never finished or never started, the paper's claims as far as the rows answer
    them (``delta``: the equivalence margin), and at smoke scale a line saying what smoke
    figures are.

    The columns are the schema's fields with a ``label``: ``acc_tr`` is the accuracy before
    BatchNorm re-estimation, ``steady_s`` the training time without its first step and
    ``added_MB`` the memory the case added: unlike ``train_s`` and ``peak_MB`` they do not depend
    on the order cases ran in.
    """
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
        lines += [f"  warning: {text}" for text in row.get("warnings") or []]
    for case_id in folder.unfinished():
        lines.append(f"{case_id:<{width}} {'unfinished':<8}")
    for case_id in folder.not_run():
        lines.append(f"{case_id:<{width}} {'not run':<8}")
    lines.append(f"rows: {folder.cases_dir}")
    lines += claim_lines(rows, delta, design)
    if any(row.get("scale") == "smoke" for row in rows):
        lines.append(smoke_note(rows))
    return lines
