"""An xdist worker, or a SLURM array task (``--slurm``): it collects, runs the cases it is sent
(a task: its one case) into the run folder of the process the user started (named in its
``workerinput``, or a task's environment) and leaves the report to that process (pytest-xdist's
``WorkerInteractor`` is the model). A worker never exits the session on bad input: it fails the
cases concerned, so the controller does not read an exit as a crash."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

import resnet_harness.plugin.options as options
from resnet_harness.plugin.cases import (CaseRunner, activate_process, harness_cases,
                                         run_description)
from resnet_harness.plugin.session import COMMAND_LINE_KEY, RUN_DIR_KEY, load_baseline
from resnet_harness.plugin import slurm
from resnet_harness.plugin.hosts import HOST_SLOT_KEY
from resnet_harness.plugin.interrupts import install_sigterm_handler, restore_sigterm_handler
from resnet_harness.storage.rundir import RunFolder
from resnet_harness.training import provenance


class Worker:
    """An xdist worker's harness: runs cases, writes rows."""

    def __init__(self, config: pytest.Config, resolved: options.Resolved):
        from resnet_harness.analysis.baseline import expand_tolerances

        self.config, self.resolved = config, resolved
        self.run = options.run_config(resolved)
        workerinput = getattr(config, "workerinput", None)
        self.task_case = None if workerinput else slurm.task_case()
        # Rows record what the user typed: the controller's line (a worker's sys.argv is
        # xdist's "-c"), or a SLURM task's own pytest arguments (its sys.argv is submitit's).
        provenance.set_command_line(
            workerinput.get(COMMAND_LINE_KEY) or provenance.command_line() if workerinput
            else shlex.join(["pytest", *config.invocation_params.args]))
        self.folder = RunFolder(workerinput[RUN_DIR_KEY] if workerinput
                                else slurm.task_run_dir())
        baseline, baseline_path = load_baseline(resolved)
        self.runner = CaseRunner(self.run, self.folder, baseline=baseline,
                                 baseline_path=baseline_path,
                                 tolerances=expand_tolerances(resolved.values["tolerance"] or []),
                                 resume=resolved.values["resume"] is not None,
                                 mismatch=resolved.values["resume_mismatch"] or "refuse",
                                 run_info=self.run_info)
        self.active = False
        self._signals = None
        if resolved.given:
            self.activate()

    def activate(self) -> None:
        """TensorFlow settings and this worker's GPU, before TensorFlow loads; SIGTERM and
        SIGINT (the controller passes them on when it is stopped) interrupt the case running
        like Ctrl-C, so that it is listed as unfinished and the worker ends its session."""
        if not self.active:
            self.active = True
            # A SLURM task's GPUs are the ones SLURM gave it: never re-pinned.
            slot = getattr(self.config, "workerinput", {}).get(HOST_SLOT_KEY)
            activate_process(self.run, slot[0] if slot else None)
            self._signals = install_sigterm_handler(self.config)

    def run_info(self) -> dict[str, Any]:
        """``run.json`` when this worker writes the folder's first row."""
        return run_description(self.run, self.resolved)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items) -> None:
        """A SLURM task keeps its one case; the user's selection is otherwise as given."""
        if self.task_case is None:
            return
        keep = [item for item in items if getattr(item, "callspec", None) is not None
                and getattr(item.callspec.params.get("case"), "id", None) == self.task_case]
        if not keep:
            raise pytest.UsageError(
                f"SLURM task: case {self.task_case} is not among the cases this selection "
                "collects here; submit from the same project folder with the same code")
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        cases = harness_cases(session.items)
        self.runner.selection = [case.id for case in cases]
        if cases:
            self.activate()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        restore_sigterm_handler(self._signals)
