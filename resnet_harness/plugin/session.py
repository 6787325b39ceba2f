"""What the controller (the main pytest process) and its workers (xdist, SSH, SLURM tasks)
share, and nothing else: the key that hands a worker the run folder, session-level input errors,
and the one reader of ``--baseline``. Neither role imports the other."""

from __future__ import annotations

import resnet_harness.plugin.options as options

RUN_DIR_KEY = "resnet_harness_run_dir"  # workerinput: the controller's run folder
COMMAND_LINE_KEY = "resnet_harness_command_line"  # workerinput: what the user typed


class SessionError(Exception):
    """Bad session-level input (baseline, resume folder); one line with the fix."""


def load_baseline(resolved: options.Resolved):
    """``(rows, path)`` of ``--baseline`` (``(None, None)`` without one); ``SessionError``."""
    from resnet_harness.analysis.baseline import BaselineError, load_baseline as load

    path = resolved.values["baseline"]
    if not path:
        return None, None
    try:
        return load(path), str(path)
    except BaselineError as exc:
        raise SessionError(f"{resolved.origins['baseline']}: {exc}") from None
