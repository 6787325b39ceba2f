"""A case's metrics and confusion matrix as pytest-html 4 "extras" (used when pytest-html runs)."""

from __future__ import annotations

import html
from typing import Any

from resnet_harness.storage.schema import FIELDS, value
from resnet_harness.report.cells import CSS, confusion_html


def pytest_html_extras(row: dict[str, Any]) -> list[dict[str, Any]]:
    """An HTML table of the row's key figures and, when it has one, its confusion matrix."""
    from pytest_html import extras

    metrics = row.get("metrics") or {}
    cells = "".join(
        f"<tr><td>{html.escape(field.name)}</td>"
        f"<td>{html.escape(field.format(value(row, field.name)))}</td></tr>"
        for field in FIELDS if field.better)
    out = [extras.html(f"<table class='harness-metrics'>{cells}</table>")]
    if metrics.get("confusion_matrix"):
        out.append(extras.html(f"<style>{CSS}</style>" + confusion_html(
            metrics["confusion_matrix"], row.get("class_names") or [],
            title=f"{row.get('case_id', '')}: confusion matrix")))
    return out
