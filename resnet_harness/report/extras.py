"""A case's metrics and confusion matrix as pytest-html 4 "extras" (used when pytest-html runs)."""

from __future__ import annotations

import html
from typing import Any

from ..metrics import SCALAR_METRICS
from .cells import CSS, confusion_html


def pytest_html_extras(row: dict[str, Any]) -> list[dict[str, Any]]:
    """An HTML table of the row's key figures and, when it has one, its confusion matrix."""
    from pytest_html import extras

    metrics = row.get("metrics") or {}
    figures = [(name, metrics.get(name)) for name in SCALAR_METRICS] + [
        (name, row.get(name)) for name in ("train_time_s", "test_time_s", "peak_rss_mb")]
    cells = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{'-' if value is None else f'{value:.4f}'}</td></tr>"
        for name, value in figures)
    out = [extras.html(f"<table class='harness-metrics'>{cells}</table>")]
    if metrics.get("confusion_matrix"):
        out.append(extras.html(f"<style>{CSS}</style>" + confusion_html(
            metrics["confusion_matrix"], row.get("class_names") or [],
            title=f"{row.get('case_id', '')}: confusion matrix")))
    return out
