"""DOCX of a report document (python-docx), same blocks as HTML and PDF."""

from __future__ import annotations

import io
from typing import Any

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor

from services.report.reports.render.assets import Picture
from services.report.reports.render.fonts import cjk_font
from services.report.reports.render.layout import Block, layout

__all__ = ["render_docx"]

FILL = {"green": "CFEED8", "yellow": "FBEEB8", "red": "F7C6C9", "grey": "E4E4E4"}


def _east_asian(style_or_run: Any, family: str) -> None:
    # Word picks the East Asian font from w:eastAsia; without it Chinese falls back to
    # whatever the viewer has, often rendering as boxes.
    rpr = style_or_run.element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.append(fonts)
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attr), family)


def _shade(cell: Any, colour: str) -> None:
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), FILL[colour])
    cell._tc.get_or_add_tcPr().append(shd)


def _table(document: Any, block: Block) -> None:
    table = document.add_table(rows=1, cols=len(block.headers))
    table.style = "Table Grid"
    for i, h in enumerate(block.headers):
        cell = table.rows[0].cells[i]
        cell.text = h
        _shade(cell, "grey")
        for run in cell.paragraphs[0].runs:
            run.bold = True
    for row in block.rows:
        cells = table.add_row().cells
        for i, c in enumerate(row):
            cells[i].text = c.text
            if c.colour in FILL:
                _shade(cells[i], c.colour)
    for row in table.rows:
        for cell in row.cells:
            for p in cell.paragraphs:
                for run in p.runs:
                    run.font.size = Pt(8)
    document.add_paragraph()


def render_docx(doc: dict[str, Any], pictures: dict[str, list[Picture]] | None = None) -> bytes:
    """A Word document of the report (East Asian font set on every style)."""
    family = cjk_font().family
    document = Document()
    section = document.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.left_margin = section.right_margin = Cm(2)
    for style_name in (
        "Normal",
        "Title",
        "Heading 1",
        "Heading 2",
        "Heading 3",
        "Caption",
        "List Number",
        "List Bullet",
    ):
        style = document.styles[style_name]
        style.font.name = family
        _east_asian(style, family)
    document.styles["Normal"].font.size = Pt(10.5)
    document.core_properties.title = doc["title"]
    document.core_properties.subject = f"{doc['kind']} {doc['region']['code']} {doc['period']}"
    document.core_properties.comments = doc["schema"]

    for block in layout(doc, pictures):
        if block.kind == "cover":
            for _ in range(6):
                document.add_paragraph()
            title = document.add_paragraph(style="Title")
            title.alignment = WD_ALIGN_PARAGRAPH.CENTER
            title.add_run(block.text)
            for line in block.lines:
                p = document.add_paragraph(line)
                p.alignment = WD_ALIGN_PARAGRAPH.CENTER
            document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        elif block.kind == "heading":
            document.add_heading(block.text, level=min(block.level, 3))
        elif block.kind == "paragraph":
            document.add_paragraph(block.text)
        elif block.kind == "note":
            run = document.add_paragraph().add_run(block.text)
            run.italic = True
            run.font.color.rgb = RGBColor(0x55, 0x55, 0x55)
        elif block.kind == "figures":
            p = document.add_paragraph()
            for label, value, _colour in block.figures:
                p.add_run(f"{label}：").bold = False
                p.add_run(f"{value}    ").bold = True
        elif block.kind == "table":
            _table(document, block)
        elif block.kind == "picture" and block.picture is not None:
            document.add_picture(io.BytesIO(block.picture.png), width=Cm(15))
            document.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
            cap = document.add_paragraph(block.text, style="Caption")
            cap.alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif block.kind == "bullets":
            style = "List Number" if block.numbered else "List Bullet"
            for line in block.lines:
                document.add_paragraph(line, style=style)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()
