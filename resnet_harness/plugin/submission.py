"""``--slurm`` in the controller: the selected cases submitted as one job array (submitit),
waited for unless ``--slurm-wait off``, a stopped wait saying how to pick the array up later."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet_harness.plugin import slurm
from resnet_harness.plugin.cases import harness_cases


class SlurmRun:
    """The controller's run loop under ``--slurm``: ``submission`` (the array in flight) and
    ``tally`` (its cases' outcomes once waited for; None while not waited for)."""

    def __init__(self, controller):
        self.controller = controller
        self.submission: slurm.Submission | None = None
        self.tally: slurm.Tally | None = None

    def run(self, session: pytest.Session) -> bool:
        """Submit (and wait); True: the run loop is done."""
        ctl = self.controller
        cases = ctl.runner.to_submit(harness_cases(session.items))
        write = ctl.config.pluginmanager.getplugin("terminalreporter").write_line
        if not cases:
            write("slurm: nothing to submit: every selected case has a valid row")
            return True
        fresh = not ctl.folder.has_started()
        try:
            settings = slurm.Settings.for_cluster(ctl.resolved.values, slurm.read_partitions())
            warning = slurm.time_limit_warning(settings.time_min, ctl.run.scale, settings.gpus)
            if warning:
                write(warning)
            if fresh:
                ctl.folder.create(ctl.run_info())
            ctl.folder.record_selected(ctl.selected)
            self.submission = slurm.submit(cases, list(ctl.config.invocation_params.args),
                                           Path(ctl.config.invocation_params.dir),
                                           ctl.folder.path, settings)
        except slurm.ClusterError as exc:
            if fresh:  # nothing ran: leave no run folder to mistake for one
                import shutil

                shutil.rmtree(ctl.folder.path, ignore_errors=True)
            pytest.exit(f"resnet-harness: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        write(f"slurm: submitted {len(cases)} cases as job array {self.submission.job_id}; "
              f"logs in {self.submission.folder}")
        if not settings.wait:
            write(f"slurm: not waiting (--slurm-wait off); later: python -m resnet_harness "
                  f"attach {ctl.folder.path}")
            return True
        try:
            self.tally = slurm.wait(self.submission, ctl.folder.path, write)
        except slurm.ClusterError as exc:  # a job that can never start: cancelled, said once
            pytest.exit(f"resnet-harness: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM stops the waiting, not the array: say how to pick it up.
            job = self.submission.job_id
            write(f"slurm: stopped waiting; job array {job} goes on in SLURM (scancel {job} to "
                  f"stop it). Later: python -m resnet_harness attach {ctl.folder.path}")
            raise
        session.testsfailed = len(self.tally.failed) + len(self.tally.lost)
        return True
