"""One identity per result: everything a row's figures depend on, computed by one function.

A row's identity has six parts (:data:`PARTS`):

``case``
    study, case (its id without the ``-seedN`` suffix) and seed;
``settings``
    scale and the effective configuration (``CaseConfig.as_dict``: epochs, caps, every
    option that changes training or evaluation, the study's own);
``data``
    the kind of source (``synthetic``, ``image-folders``, ``idx``, ...; not its path, which may
    differ between machines) and the fingerprint of the data's content;
``code``
    the git commit (``-dirty`` for local changes) and the harness's version;
``libraries``
    Python, TensorFlow, Keras, NumPy, scikit-learn;
``environment``
    CPU model and the instruction sets oneDNN dispatches on, GPUs, oneDNN's settings.

Resume (is this row the one this session would write?), baseline matching (may these two rows be
compared, and how tightly?), report merging (which rows are the same result?) and tracking (the
run's tags) all call :func:`parts`, :func:`key` and :func:`differences`, on a stored row or on a
row rebuilt from ``results.csv`` (whose ``config``, ``versions`` and ``environment`` columns hold
the same objects). The image cache is keyed by the files' content, which is what the ``data``
part's fingerprint digests once decoded.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterable, Mapping

PARTS = ("case", "settings", "data", "code", "libraries", "environment")
# What a figure means: two rows that differ here are different results, never one another's
# stand-in. Code, libraries and environment change the figures like another seed does.
MEANING = ("case", "settings", "data")
VERSIONS = ("code", "libraries")
LIBRARIES = ("python", "tensorflow", "tensorflow-cpu", "keras", "numpy", "scikit-learn")
UNKNOWN = "unknown"

# Settings added after rows were first written; a stored config without them had these values.
_LATER_SETTINGS = {"xla": False, "mixed_precision": False, "deterministic": False,
                   "bn_recalibrate": False}
# Renamed since (old -> new): the paper's study/controlled arm was the core's "recipe"; it is
# the paper study's "comparison" now ("recipe" is the long-tail study's training recipe).
_RENAMED = {"recipe": "comparison"}
# Settings a config records only where its study has them; rows made when every study's
# config carried them hold these values, which say nothing.
_IMPLIED = {"comparison": "study", "imbalance": None}
_SEED_SUFFIX = re.compile(r"-seed(\d+)$")


def split_seed(case_id: str) -> tuple[str, int | None]:
    """``("table7-...-reg_none", 3)`` for ``"table7-...-reg_none-seed3"``; seed None without one."""
    match = _SEED_SUFFIX.search(case_id)
    if match is None:
        return case_id, None
    return case_id[:match.start()], int(match.group(1))


def comparable_config(config: Mapping[str, Any] | None) -> Any:
    """A stored or fresh ``CaseConfig.as_dict()`` in one comparable form (as JSON stores it:
    tuples become lists), older rows completed with the defaults they ran with.

    ``data_source`` has no default: a row that did not record it is never reused.
    """
    if isinstance(config, Mapping):
        config = {k: v for k, v in current_names({**_LATER_SETTINGS, **config}).items()
                  if not (k in _IMPLIED and v == _IMPLIED[k])}
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def current_names(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config with its renamed settings under their current names."""
    out = dict(config)
    for old, new in _RENAMED.items():
        if old in out:
            out.setdefault(new, out.pop(old))
    return out


def source_kind(data_source: Any) -> str | None:
    """``image-folders`` for ``image-folders:/data/cifar10``: where data came from, without the
    path (the same files may live elsewhere on another machine; the fingerprint tells)."""
    return None if data_source is None else str(data_source).split(":", 1)[0]


def _seed(row: Mapping[str, Any]) -> int | None:
    seed = row.get("seed")
    try:
        return int(seed) if seed is not None and seed == seed else split_seed(
            str(row.get("case_id")))[1]
    except (TypeError, ValueError):
        return None


def parts(row: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The identity of ``row`` (a stored row, or one rebuilt from ``results.csv``), part by
    part. A part holds only what the row records (older rows and baselines lack some values;
    :func:`differences` says so, or compares what both sides have)."""
    provenance = row.get("provenance") if isinstance(row.get("provenance"), Mapping) else {}
    versions = row.get("versions") or provenance.get("versions") or {}
    environment = row.get("environment") or provenance.get("environment") or {}
    commit = row.get("git_commit") or provenance.get("git_commit")
    settings: dict[str, Any] = {"scale": row.get("scale")}
    config = row.get("config")
    if isinstance(config, Mapping):
        # A baseline written before the config column kept a few settings only (its
        # epochs, weights, comparison): those are compared, and nothing is assumed of the rest.
        settings["config"] = (comparable_config(config) if not row.get("config_partial")
                              else json.loads(json.dumps(current_names(config), default=str)))
    return {
        "case": {"study": row.get("study"), "case": split_seed(str(row.get("case_id")))[0],
                 "seed": _seed(row)},
        "settings": settings,
        "data": {k: v for k, v in (("source", source_kind(row.get("data_source"))),
                                   ("fingerprint", row.get("data_fingerprint")))
                 if v is not None},
        "code": {k: v for k, v in (("commit", commit),
                                   ("harness", versions.get("resnet-harness"))) if v},
        "libraries": {k: versions[k] for k in LIBRARIES if versions.get(k)},
        "environment": dict(environment) if isinstance(environment, Mapping) else {},
    }


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def key(identity: Mapping[str, Any], names: Iterable[str] = PARTS) -> str:
    """A short digest of the ``names`` parts of ``identity`` (the output of :func:`parts`):
    equal digests, equal identities."""
    return _digest({name: identity.get(name) for name in names})


def part_keys(identity: Mapping[str, Any]) -> dict[str, str]:
    """``{"identity": key of all parts, "identity_<part>": key of that part}``, the columns
    ``results.csv`` and the tracking tags carry."""
    out = {"identity": key(identity)}
    out.update({f"identity_{name}": key(identity, (name,)) for name in PARTS})
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for name, item in value.items():
            out.update(_flatten(item, f"{prefix}.{name}" if prefix else str(name)))
        return out
    return {prefix: value}


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def differences(mine: Mapping[str, Any], theirs: Mapping[str, Any],
                names: Iterable[str] = PARTS, *, strict: bool = True) -> list[str]:
    """How ``theirs`` (a stored or baseline identity) differs from ``mine`` (this session's),
    one short phrase per differing value, e.g. ``settings.config.epochs: 3 here, 2 there``.

    A value only one side records is a difference when ``strict`` (a row that cannot show it was
    made the same way is not reused); otherwise it is skipped (a baseline written before that
    part was recorded is compared on what it has).
    """
    out = []
    for name in names:
        a, b = _flatten(mine.get(name) or {}, name), _flatten(theirs.get(name) or {}, name)
        for path in sorted(set(a) | set(b)):
            if path in a and path in b:
                if a[path] != b[path]:
                    out.append(f"{path}: {_show(a[path])} here, {_show(b[path])} there")
            elif strict:
                out.append(f"{path}: {_show(a[path]) if path in a else UNKNOWN} here, "
                           f"{_show(b[path]) if path in b else UNKNOWN} there")
    return out


def describe_environment(environment: Mapping[str, Any] | None) -> str:
    """One line: ``AMD EPYC (avx2); oneDNN on; no GPU``; "unknown" when not recorded."""
    if not environment:
        return UNKNOWN
    isa = environment.get("isa") or []
    gpus = environment.get("gpus") or []
    onednn = environment.get("onednn")
    pinned = environment.get("onednn_max_isa")
    return "; ".join([
        f"{environment.get('cpu') or 'CPU'} ({' '.join(isa) or 'no AVX'}"
        + (f"; {environment['cpus']} CPUs)" if environment.get("cpus") else ")"),
        f"oneDNN {'off' if onednn in ('0', 'false') else 'on'}"
        + (f" (ISA capped at {pinned})" if pinned else ""),
        ", ".join(gpus) if gpus else "no GPU"])
