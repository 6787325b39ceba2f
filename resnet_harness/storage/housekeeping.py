"""A run folder's housekeeping around its rows: the session's lock, the ``latest`` link, rows
set aside (``superseded/``), and the folder taken away again when a session wrote nothing.
:class:`~resnet_harness.storage.rundir.RunFolder` holds these with its paths and rows."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Iterable

from resnet_harness.storage.atomic import atomic_write_bytes


class Housekeeping:
    """The folder-level operations of :class:`~resnet_harness.storage.rundir.RunFolder` (which
    defines ``path``, ``cases_dir`` and the file names used here)."""

    def supersede(self, case_ids: Iterable[str] | None, reason: str) -> Path:
        """Move rows made another way out of the folder's results, never deleting them: the
        rows (and predictions) of ``case_ids``, or with None everything the run wrote (rows,
        started marks, ``run.json``, CSVs, report), into ``superseded/<time>/`` with ``why.txt``
        holding ``reason``. Returns that folder."""
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        dest = self.path / self.SUPERSEDED / stamp
        (dest / "cases").mkdir(parents=True, exist_ok=True)
        if case_ids is None:
            names = ["cases", "started", "progress", self.RUN_INFO, self.SELECTED, self.CSV,
                     self.HTML, self.CLAIMS, self.COMPARISONS, self.SEEDS]
            (dest / "cases").rmdir()
            moves = [(self.path / name, dest / name) for name in names]
        else:
            moves = [(self.cases_dir / f"{case_id}{suffix}", dest / "cases" / f"{case_id}{suffix}")
                     for case_id in case_ids for suffix in (".json", ".npz")]
        for source, target in moves:
            if source.exists():
                os.replace(source, target)
        atomic_write_bytes(dest / "why.txt", (reason.rstrip() + "\n").encode("utf-8"))
        return dest

    def lock(self):
        """A ``filelock.FileLock`` on this folder, held by the session that writes into it."""
        from filelock import FileLock

        self.path.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path / self.LOCK))

    def missing_parents(self) -> list[Path]:
        """The folder and those of its parents that do not exist yet, deepest first: what
        :meth:`lock` creates and :meth:`discard_if_empty` may take away again."""
        out, path = [], self.path.absolute()
        while not path.exists() and path != path.parent:
            out.append(path)
            path = path.parent
        return out

    def discard_if_empty(self, created: Iterable[Path] = ()) -> None:
        """Remove the folder when nothing but its lock was ever written (a session that locked
        it and ran no case), and then each of ``created`` (its parents that the session made)
        that is empty, so that a session stopped before any case leaves no folder behind."""
        try:
            if {p.name for p in self.path.iterdir()} <= {self.LOCK}:
                (self.path / self.LOCK).unlink(missing_ok=True)
                self.path.rmdir()
            for parent in created:
                if parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
        except OSError:
            pass  # another session's, or already gone: leave it

    def link_latest(self, reports_root: Path | str) -> Path:
        """Point ``reports_root/latest`` at this folder with a relative symlink.

        The link is swapped in atomically (a temporary link renamed over the old one), so readers
        never see it missing. Where symlinks cannot be made (Windows without the privilege, some
        network file systems) ``reports_root/latest.txt`` holding the folder's path is written
        instead. Returns the path written.
        """
        root = Path(reports_root)
        root.mkdir(parents=True, exist_ok=True)
        link, temporary = root / "latest", root / f".latest.{os.getpid()}.tmp"
        relative = os.path.relpath(self.path.resolve(), root.resolve())
        try:
            temporary.unlink(missing_ok=True)
            os.symlink(relative, temporary, target_is_directory=True)
            os.replace(temporary, link)
        except (OSError, NotImplementedError):
            temporary.unlink(missing_ok=True)
            text = root / "latest.txt"
            atomic_write_bytes(text, (str(self.path.resolve()) + "\n").encode("utf-8"))
            return text
        (root / "latest.txt").unlink(missing_ok=True)  # a stale fallback would contradict it
        return link
