"""Command line: ``python -m resnet_harness report|claims|save-baseline|attach ...``.

``report`` rebuilds ``results.csv`` and ``report.html`` from saved result rows; ``claims``
evaluates the studies' comparisons and claims from run folders or results CSVs. Neither trains
nor imports TensorFlow. Other subcommands can be added to :func:`_parser`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence


class UsageError(Exception):
    """Bad input; the message is one line: ``<what is wrong>; <how to fix it>``."""


def _check_run_dir(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"run folder {path} does not exist; pass the path of a run folder, "
                         "e.g. reports/runs/<run-name>")
    if not path.is_dir():
        raise UsageError(f"{path} is not a folder; pass a run folder, e.g. reports/runs/<run-name>")
    from resnet_harness.storage.rundir import RunFolder

    if not RunFolder.is_run_folder(path):
        raise UsageError(f"{path} is not a run folder (it has no cases/ and no run.json); pass a "
                         "folder written by a harness run, e.g. reports/runs/<run-name>")


def _default_out(run_dirs: Sequence[Path]) -> Path:
    if len(run_dirs) == 1:
        return run_dirs[0]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return run_dirs[0].resolve().parent / f"merged-{stamp}"


def _report(args: argparse.Namespace) -> int:
    from resnet_harness.report import build_report  # pandas/matplotlib only when asked for

    run_dirs = [Path(p) for p in args.run_dirs]
    for path in run_dirs:
        _check_run_dir(path)
    out = Path(args.out) if args.out else _default_out(run_dirs)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; pass a folder path")
    problems: list[str] = []
    try:
        paths = build_report(run_dirs, out, title=args.title, problems=problems)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out} ({exc.strerror or exc}); "
                         "pass a writable folder with --out") from exc
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"csv:  {paths['csv']}")
    print(f"html: {paths['html']}")
    return 0


def _claims(args: argparse.Namespace) -> int:
    """Claims, comparisons and seeds from saved rows: run folders and results CSVs alike."""
    from resnet_harness.report import claims_report

    paths = [Path(p) for p in args.paths]
    for path in paths:
        if path.is_dir():
            _check_run_dir(path)
        elif not path.is_file():
            raise UsageError(f"{path} does not exist; pass run folders or results.csv files "
                             "(e.g. baselines/reduced.csv)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; pass a folder path")
    from resnet_harness.analysis.table import ResultsError

    problems: list[str] = []
    try:
        written = claims_report(paths, Path(args.out), delta=args.delta,
                                sequential=args.sequential, problems=problems)
    except ResultsError as exc:
        raise UsageError(str(exc)) from exc
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot make claims from {', '.join(map(str, paths))}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; pass "
                         "run folders or results.csv files written by resnet-harness") from exc
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    for name, path in written.items():
        print(f"{name + ':':<12} {path}")
    return 0


def _max_seeds(value: str) -> int:
    from resnet_harness.training.values import parse_seeds

    found = parse_seeds(f"auto:{value}")
    return found.max_seeds


def _delta(value: str) -> float:
    from resnet_harness.training.values import parse_delta

    return parse_delta(value)


def _save_baseline(args: argparse.Namespace) -> int:
    from resnet_harness.analysis.baseline import BaselineError, save_baseline

    try:
        dest = save_baseline(Path(args.run_dir), Path(args.dest))
    except BaselineError as exc:
        raise UsageError(str(exc)) from exc
    print(f"baseline: {dest}")
    return 0


def _attach(args: argparse.Namespace) -> int:
    """Wait for a run folder's SLURM array (``--slurm-wait off``), then build its report."""
    from resnet_harness.plugin import slurm

    run_dir = Path(args.run_dir)
    _check_run_dir(run_dir)
    try:
        submission = slurm.Submission.load(run_dir)
    except slurm.TaskError as exc:
        raise UsageError(str(exc)) from exc
    try:
        tally = slurm.wait(submission, run_dir, print)
    except slurm.ClusterError as exc:
        raise UsageError(str(exc)) from exc
    code = _report(argparse.Namespace(run_dirs=[str(run_dir)], out=None, title=None))
    # The report checks every row against its predictions: a case the tally counted as passed
    # may be corrupt there, and the exit status must say so.
    import pandas as pd

    statuses = pd.read_csv(run_dir / "results.csv", usecols=["case_id", "status"])
    unusable = statuses[statuses["case_id"].isin(submission.cases)
                        & (statuses["status"] != "passed")]
    return code or (1 if tally.failed or tally.lost or len(unusable) else 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnet-harness", description="Tools of the ResNet50 study harness.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    report = commands.add_parser(
        "report", help="rebuild results.csv and report.html from saved rows (no training)",
        description="Rebuild results.csv and report.html from the rows of one or more run "
                    "folders. Rows of several folders are merged; for a case run more than once "
                    "(same scale) the latest finished row wins.")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run folder(s), e.g. reports/runs/<run-name>")
    report.add_argument("--out", metavar="DIR",
                        help="where to write (default: the run folder when one is given, else "
                             "merged-<UTC time> beside the first run folder)")
    report.add_argument("--title", help="title of the HTML report")
    report.set_defaults(handler=_report)
    claims = commands.add_parser(
        "claims", help="claims, comparisons and seeds from saved rows (run folders or CSVs)",
        description="Evaluate every study's comparisons and claims from the rows of run "
                    "folders and/or results.csv files (a committed baseline file included) and "
                    "write claims.csv, comparisons.csv, seeds.csv and claims.html into --out.")
    claims.add_argument("paths", nargs="+", metavar="PATH",
                        help="run folders or results.csv files, e.g. baselines/reduced.csv")
    claims.add_argument("--out", required=True, metavar="DIR", help="where to write")
    claims.add_argument("--delta", type=_delta, default=None, metavar="D",
                        help="equivalence margin (default: the runs' --equivalence-delta, else "
                             "0.01)")
    claims.add_argument("--sequential", type=_max_seeds, default=None, metavar="MAX",
                        help="analyse as the sequential design of --seeds auto:MAX (default: "
                             "the runs' own --seeds; needed for a results CSV of such a run)")
    claims.set_defaults(handler=_claims)
    save = commands.add_parser(
        "save-baseline", help="save a run's passed rows as the baseline for --baseline",
        description="Copy the passed rows of RUN_DIR's results.csv to DEST, the file that later "
                    "runs compare against with --baseline DEST.")
    save.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, e.g. reports/latest")
    save.add_argument("dest", metavar="DEST", help="e.g. baselines/reduced.csv")
    save.set_defaults(handler=_save_baseline)
    attach = commands.add_parser(
        "attach", help="wait for a --slurm run's job array, then build its report",
        description="Show a --slurm run's progress (cases done, failed, running, queued) until "
                    "its job array ends, then write results.csv, the claims and the report.")
    attach.add_argument("run_dir", metavar="RUN_DIR", help="the run folder --slurm printed")
    attach.set_defaults(handler=_attach)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
