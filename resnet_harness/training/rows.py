"""The builders of a case's result row: its identity (known before it runs), the row of a
measured case, and the row of a case that raised. The keys are the schema's
(``resnet_harness.storage.schema``) plus those the case's study registered."""

from __future__ import annotations

from typing import Any

from resnet_harness.storage import identity as identities
from resnet_harness.storage.schema import KNOWN_KEYS, RowError
from resnet_harness.training import provenance
from resnet_harness.training.data.sources import CLASS_NAMES


def identity(cfg) -> dict[str, Any]:
    """The identifying part of a row (``cfg``: a ``CaseConfig``): study, case, the keys that
    place the case in its study, scale, seed, configuration and published figures."""
    case = cfg.case
    return {
        **case.identity(), "case_id": case.id, "study": case.study,
        "study_module": type(case).__module__,
        "scale": cfg.scale, "seed": cfg.seed, "config": cfg.as_dict(),
        **published(case),
        "class_names": list(CLASS_NAMES[case.dataset]), "note": case.note,
    }


def published(case) -> dict[str, Any]:
    """``{"paper": figures}`` for a case whose study publishes figures for it; ``{}`` for one
    that does not (a row carries only what its study declares)."""
    figures = case.paper.as_dict()
    return {"paper": dict(figures, source=case.paper.source)} \
        if figures or case.paper.source else {}


def measured_row(cfg, **measured: Any) -> dict[str, Any]:
    """A finished case's row before its verdict: identity plus what the run measured.

    ``measured`` keys must be known row keys: a typo fails here, not silently in the report.
    """
    unknown = sorted(set(measured) - KNOWN_KEYS)
    if unknown:
        raise RowError(f"runner: unknown row keys {', '.join(unknown)}; declare them in the "
                       "study (Study.fields / Study.row_keys) or in resnet_harness/storage/schema.py")
    return dict(identity(cfg), **measured)


def error_row(cfg, message: str, trace: str | None = None,
              provenance_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The row of a case that raised: identity, the one-line error and the traceback."""
    return dict(identity(cfg), status="error", error=message, traceback=trace,
                provenance=provenance_info or {})


def provenance_record(started: str) -> dict[str, Any]:
    """Where and with what a case ran: host, versions, device, commit, start and end."""
    return dict(provenance.host(), versions=provenance.versions(), device=provenance.device(),
                git_commit=provenance.git_commit(), environment=provenance.environment(),
                started_at=started, finished_at=provenance.now())


def expected_identity(cfg, raw) -> dict[str, dict[str, Any]]:
    """The identity (``storage.identity.parts``) of the row that running ``cfg`` on ``raw``
    (a ``RawData``) in this process would write: what ``--resume`` compares a stored row with."""
    return identities.parts(dict(
        identity(cfg), data_source=raw.source, data_fingerprint=raw.fingerprint,
        provenance={"versions": provenance.versions(), "git_commit": provenance.git_commit(),
                    "environment": provenance.environment()}))
