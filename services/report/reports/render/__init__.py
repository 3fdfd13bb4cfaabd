"""Rendering: a report's JSON document → JSON, HTML, DOCX and PDF bytes (no data gathering)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from services.report.reports.render.assets import Picture, pictures_for

__all__ = ["FORMATS", "MEDIA_TYPES", "document_bytes", "render"]

FORMATS = ("json", "html", "docx", "pdf")
MEDIA_TYPES = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}


def document_bytes(doc: dict[str, Any]) -> bytes:
    """The canonical JSON bytes of a document (stable key order: checksums are reproducible)."""
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=2).encode("utf-8")


def render(
    doc: dict[str, Any],
    formats: Iterable[str] = FORMATS,
    on_format: Callable[[str], None] | None = None,
) -> dict[str, bytes]:
    """Every requested format of the document; the pictures are drawn once for all of them."""
    from services.report.reports.render.docx import render_docx
    from services.report.reports.render.html import render_html, render_pdf

    wanted = list(dict.fromkeys(formats))
    pictures: dict[str, list[Picture]] | None = None
    if any(f in ("html", "docx", "pdf") for f in wanted):
        pictures = pictures_for(doc)
    out: dict[str, bytes] = {}
    for fmt in wanted:
        if on_format is not None:
            on_format(fmt)
        if fmt == "json":
            out[fmt] = document_bytes(doc)
        elif fmt == "html":
            out[fmt] = render_html(doc, pictures).encode("utf-8")
        elif fmt == "docx":
            out[fmt] = render_docx(doc, pictures)
        elif fmt == "pdf":
            out[fmt] = render_pdf(doc, pictures)
        else:
            raise ValueError(f"unknown format {fmt}")
    return out
