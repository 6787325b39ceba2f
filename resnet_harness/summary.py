"""The compact per-case table printed at the end of a pytest run."""

from __future__ import annotations

from .results import RunFolder

COLUMNS = (("accuracy", "acc"), ("balanced_accuracy", "bal_acc"), ("f1_macro", "f1_mac"),
           ("roc_auc_ovr_macro", "auc"))


def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def summary_lines(folder: RunFolder) -> list[str]:
    """One header line, one line per finished case, one per case that never finished."""
    rows = folder.rows()
    width = max([len(r.get("case_id", "")) for r in rows] + [20])
    header = (f"{'case':<{width}} {'status':<8} " + " ".join(f"{short:>7}" for _, short in COLUMNS)
              + f" {'train_s':>8} {'test_s':>7} {'peak_MB':>8}")
    lines = [header]
    for row in rows:
        metrics = row.get("metrics") or {}
        lines.append(
            f"{row.get('case_id', '?'):<{width}} {row.get('status', '?'):<8} "
            + " ".join(f"{_fmt(metrics.get(key)):>7}" for key, _ in COLUMNS)
            + f" {_fmt(row.get('train_time_s'), '.1f'):>8} {_fmt(row.get('test_time_s'), '.1f'):>7}"
            f" {_fmt(row.get('peak_rss_mb'), '.0f'):>8}")
    for case_id in folder.unfinished():
        lines.append(f"{case_id:<{width}} {'unfinished':<8}")
    for case_id in folder.not_run():
        lines.append(f"{case_id:<{width}} {'not run':<8}")
    lines.append(f"rows: {folder.cases_dir}")
    return lines
