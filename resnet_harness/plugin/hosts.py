"""Workers on several hosts (``-d --tx ssh=HOST//python=PY//chdir=FOLDER``): the code is installed
on each host and each worker starts in its copy of the project, so the command line means on every
host what it means on the controller's.

pytest-xdist 3 was built for another model, its deprecated rsync (removed in xdist 4): it copies
pytest's own package into each remote folder and rewrites every argument that names an existing
path relative to the copied roots, failing with "arg experiments not relative to an rsync root"
for ``experiments`` or ``--report-dir reports``. Unless the user asks for rsync (``--rsyncdir``
or the ``rsyncdirs`` ini value), :func:`setup_nodes` copies nothing and leaves the arguments as
written. Relative paths then resolve in each worker's ``chdir``; absolute ones on its own host.

Each host's workers also get their place among that host's workers (:func:`host_slots`), so
that every host spreads its workers over its own GPUs whatever their global ``gwN`` numbers.
"""

from __future__ import annotations

from typing import Any, Sequence

HOST_SLOT_KEY = "resnet_harness_host_slot"  # workerinput: [slot, workers on this host, host]


def host_key(spec: Any) -> str:
    """The host an execnet spec runs on, as the user named it: ``local`` for ``popen`` (whatever
    its ``chdir``), else the ``ssh=`` or ``socket=`` value (with the ``via`` gateway, if any)."""
    if getattr(spec, "popen", False) and not getattr(spec, "via", None):
        return "local"
    for kind in ("ssh", "socket"):
        value = getattr(spec, kind, None)
        if value:
            via = getattr(spec, "via", None)
            return f"{kind}={value}" + (f" via {via}" if via else "")
    return f"via={getattr(spec, 'via', None)}"


def host_slots(specs: Sequence[Any]) -> list[tuple[int, int, str]]:
    """``(slot, workers on the same host, host)`` per spec, in ``--tx`` order: a host's first
    worker has slot 0, its second slot 1, and so on, however the hosts' specs interleave."""
    keys = [host_key(spec) for spec in specs]
    seen: dict[str, int] = {}
    out = []
    for key in keys:
        out.append((seen.get(key, 0), keys.count(key), key))
        seen[key] = seen.get(key, 0) + 1
    return out


def user_wants_rsync(config) -> bool:
    """Whether the user asked for xdist's (deprecated) rsync of folders to the workers."""
    return bool(config.getoption("rsyncdir", None) or config.getini("rsyncdirs"))


def _args_as_written(roots, args):
    return list(args)


def setup_nodes(config) -> None:
    """Before xdist starts its workers: no rsync and arguments as written, unless the user
    asked for rsync."""
    import xdist.workermanage as workermanage

    manager = getattr(config.pluginmanager.getplugin("dsession"), "nodemanager", None)
    if manager is None or user_wants_rsync(config):
        return
    # xdist always adds pytest's own package to the rsync roots: copying it into each remote
    # folder would leave a second pytest there, first on that worker's sys.path.
    manager.roots = []
    original = getattr(workermanage, "make_reltoroot", None)
    if getattr(original, "__name__", "") == "make_reltoroot":
        # Called only for workers with chdir or on another host; with no roots it fails on any
        # existing path, so replacing it changes nothing else. xdist 4 drops it with rsync.
        workermanage.make_reltoroot = _args_as_written


def configure_node(node) -> None:
    """Tell a worker its place among the workers of its host."""
    manager = node.nodemanager
    specs = list(manager.specs)
    spec = node.gateway.spec
    slots = host_slots(specs)
    for candidate, slot in zip(specs, slots):
        if candidate is spec or candidate.id == spec.id:
            node.workerinput[HOST_SLOT_KEY] = list(slot)
            return
    # A worker xdist started to replace one that died: alone on its host as far as we know.
    node.workerinput[HOST_SLOT_KEY] = [0, 1, host_key(spec)]
