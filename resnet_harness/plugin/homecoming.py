"""Rows come home: a worker's finished row travels to the xdist controller on the test's report.

An xdist worker, local or on another machine (``--tx ssh=...``), writes each row into its own run
folder as before (so nothing is lost if the link drops) and also attaches the row's JSON and the
predictions' bytes to the test's call report. xdist serializes a report's attributes to the
controller, which writes the files into its run folder unless the same bytes are already there
(local workers share the controller's folder). The controller then holds one complete run folder
whatever mix of workers ran the cases.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from resnet_harness.storage.rundir import RunFolder

ATTRIBUTE = "resnet_harness_row"
CASE_KEY = pytest.StashKey[str]()  # the case a test ran, for the report that carries its row
ROW_KEY = pytest.StashKey[dict]()  # the row itself (pytest-html extras)


def attach(report, folder: RunFolder, case_id: str, *, with_files: bool) -> None:
    """Put ``case_id``'s row (and, for a worker, its files' bytes) on ``report``."""
    row, npz = folder.case_files(case_id)
    if row is None:
        return  # the process died inside the case, or failed before it wrote anything
    payload: dict[str, Any] = {"case_id": case_id}
    if with_files:
        payload["row"] = row.decode()
        # base64 text: plain strings survive every serializer between worker and controller.
        payload["npz"] = base64.b64encode(npz).decode() if npz is not None else None
    setattr(report, ATTRIBUTE, payload)


def receive(report, folder: RunFolder, run_info=None) -> str | None:
    """Take the row off ``report`` (so it is not kept in memory with the report) and make sure
    ``folder`` holds it; returns the case id, or None when the report carries no row."""
    payload = report.__dict__.pop(ATTRIBUTE, None)
    if not isinstance(payload, dict) or not payload.get("case_id"):
        return None
    case_id = str(payload["case_id"])
    if "row" in payload:
        if not folder.has_started():
            folder.create(run_info() if callable(run_info) else run_info)
        npz = base64.b64decode(payload["npz"]) if payload.get("npz") else None
        folder.store_case_files(case_id, payload["row"].encode(), npz)
    return case_id
