"""HTML and PDF of a report document (one Jinja2 template; WeasyPrint embeds the fonts)."""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from services.report.reports.render.assets import Picture
from services.report.reports.render.fonts import cjk_font
from services.report.reports.render.layout import layout

__all__ = ["render_html", "render_pdf"]

TEMPLATES = Path(__file__).parent / "templates"


def _css_string(value: Any) -> Markup:
    # Inside <style> HTML escaping does not apply; escape for a CSS string literal instead.
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("<", "\\3c ")
    return Markup(text)


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    env.filters["css"] = _css_string
    return env


def render_html(
    doc: dict[str, Any],
    pictures: dict[str, list[Picture]] | None = None,
    *,
    for_pdf: bool = False,
) -> str:
    """A self-contained HTML page (pictures inlined) of the document."""
    template = _env().get_template("report.html.j2")
    return template.render(
        doc=doc,
        blocks=layout(doc, pictures),
        font_family=cjk_font().family,
        for_pdf=for_pdf,
    )


def render_pdf(doc: dict[str, Any], pictures: dict[str, list[Picture]] | None = None) -> bytes:
    """A PDF of the document with the CJK font subset embedded."""
    from weasyprint import HTML

    html = render_html(doc, pictures, for_pdf=True)
    pdf: bytes = HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    return pdf
