"""The compact per-case table printed at the end of a pytest run."""

from __future__ import annotations

from .results import RunFolder

COLUMNS = (("accuracy", "acc"), ("balanced_accuracy", "bal_acc"), ("f1_macro", "f1_mac"),
           ("roc_auc_ovr_macro", "auc"))

SMOKE_NOTE = ("smoke scale: these figures check the pipeline end to end (1 epoch, a few hundred "
              "images); they carry no meaning as results")


def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def summary_lines(folder: RunFolder) -> list[str]:
    """One header line, one line per finished case (and one per warning it carries), one per
    case that never finished, and at smoke scale a line saying what smoke figures are.

    ``acc_tr`` is the accuracy before BatchNorm re-estimation; ``steady_s`` the training time
    without its first step and ``added_MB`` the memory the case added: unlike ``train_s`` and
    ``peak_MB`` they do not depend on the order cases ran in.
    """
    rows = folder.rows()
    width = max([len(r.get("case_id", "")) for r in rows] + [20])
    header = (f"{'case':<{width}} {'status':<8} " + " ".join(f"{short:>7}" for _, short in COLUMNS)
              + f" {'acc_tr':>7} {'train_s':>8} {'steady_s':>8} {'test_s':>7} {'peak_MB':>8}"
              f" {'added_MB':>8}")
    lines = [header]
    for row in rows:
        metrics = row.get("metrics") or {}
        trained = (row.get("metrics_as_trained") or {}).get("accuracy")
        lines.append(
            f"{row.get('case_id', '?'):<{width}} {row.get('status', '?'):<8} "
            + " ".join(f"{_fmt(metrics.get(key)):>7}" for key, _ in COLUMNS)
            + f" {_fmt(trained):>7}"
            + f" {_fmt(row.get('train_time_s'), '.1f'):>8}"
            f" {_fmt(row.get('steady_train_time_s'), '.1f'):>8}"
            f" {_fmt(row.get('test_time_s'), '.1f'):>7}"
            f" {_fmt(row.get('peak_rss_mb'), '.0f'):>8} {_fmt(row.get('rss_added_mb'), '.0f'):>8}")
        lines += [f"  warning: {text}" for text in row.get("warnings") or []]
    for case_id in folder.unfinished():
        lines.append(f"{case_id:<{width}} {'unfinished':<8}")
    lines.append(f"rows: {folder.cases_dir}")
    if any(row.get("scale") == "smoke" for row in rows):
        lines.append(SMOKE_NOTE)
    return lines
