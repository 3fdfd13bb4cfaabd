"""Rendering a JSON document to HTML, DOCX and PDF; Chinese verified on rendered page images.

No database: rendering takes a document built from the JSON fixture with the default outline.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from docx.oxml.ns import qn
from PIL import Image, ImageChops

from services.report.diagnosis.rules import IndicatorMeta
from services.report.reports.document import SCHEMA_ID, build_document
from services.report.reports.outline import default_outline_text, parse_outline
from services.report.reports.recommend import recommendations
from services.report.reports.render import charts, render
from services.report.reports.render.fonts import cjk_font

FIXTURES = Path(__file__).parent / "fixtures"
needs_poppler = pytest.mark.skipif(
    not (shutil.which("pdftoppm") and shutil.which("pdffonts") and shutil.which("pdftotext")),
    reason="poppler-utils (pdftoppm, pdffonts, pdftotext) not installed",
)


def annual_document(**changes: Any) -> dict[str, Any]:
    """The fixture county's annual report document, built with the shipped outline."""
    data = json.loads((FIXTURES / "annual_360121.json").read_text(encoding="utf-8"))
    facts = data["facts"]
    meta = {
        i["code"]: IndicatorMeta(code=i["code"], name=i["name"], dimension=i["dimension"])
        for i in facts["indicators"]
    }
    facts["recommendations"] = recommendations(facts, meta)
    facts.update(changes.pop("facts", {}))
    kind = "annual"
    outline = parse_outline(default_outline_text(kind), kind=kind)
    return build_document(
        kind=kind,
        outline=outline,
        template_ref={"source": "default", "version": 0, "region_code": None},
        region=data["region"],
        period=data["period"],
        system=data["system"],
        facts=facts,
        data_available=changes.pop("data_available", True),
        notes=[],
        node="node-360121",
        generated_by="tester",
    )


@pytest.fixture(scope="module")
def annual_files() -> dict[str, bytes]:
    return render(annual_document())


def test_document_carries_sections_in_outline_order_with_rendered_text() -> None:
    doc = annual_document()
    assert doc["schema"] == SCHEMA_ID
    assert doc["title"] == "南昌县2025年度城市体检报告"
    assert [s["type"] for s in doc["sections"]] == [
        "cover",
        "summary",
        "indicator_tables",
        "map",
        "charts",
        "satisfaction",
        "problems",
        "rectification",
        "projects",
        "recommendations",
    ]
    summary = doc["sections"][1]["text"]
    assert "共评价指标 13 项" in summary and "不达标（红色）5 项" in summary
    assert "在同级 9 个区划中排名第" in summary
    recs = {r["title"]: r["basis"] for r in doc["facts"]["recommendations"]}
    assert recs == {
        "优先补齐功能完备短板": [2],
        "优先补齐安全耐久短板": [1],
        "优先补齐设施完善短板": [3],
        "回应居民关切": [4, 6],
        "核实数据、多方比对": [5],
        "加快推进逾期和滞后整改": [2],  # the red task
        "问题全部转为整改任务": [2, 4, 5, 6],
    }
    json.dumps(doc, ensure_ascii=False)  # plain JSON all the way down


def test_html_is_self_contained_and_coloured(annual_files: dict[str, bytes]) -> None:
    html = annual_files["html"].decode("utf-8")
    assert '<html lang="zh-CN">' in html and '<meta charset="utf-8">' in html
    assert "<h1>南昌县2025年度城市体检报告</h1>" in html
    assert '<td class="red">不达标</td>' in html
    assert "存在燃气安全隐患的住宅数量" in html
    # Map, radar, trend and rank pictures are inlined; the map says it is not a boundary map.
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 4
    assert "不代表实际地理边界" in html
    assert "莲塘镇澄湖小区电动自行车集中充电场所建设项目" in html


def test_docx_has_chinese_text_east_asian_font_and_shaded_grades(
    annual_files: dict[str, bytes],
) -> None:
    document = Document(io.BytesIO(annual_files["docx"]))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "南昌县2025年度城市体检报告" in text
    assert "一、总体情况" in text
    family = cjk_font().family
    fonts = document.styles["Normal"].element.rPr.find(qn("w:rFonts"))
    assert fonts.get(qn("w:eastAsia")) == family
    cells = [c for t in document.tables for row in t.rows for c in row.cells if c.text == "不达标"]
    assert cells, "graded cells are present"
    shading = cells[0]._tc.tcPr.find(qn("w:shd"))
    assert shading.get(qn("w:fill")) == "F7C6C9"
    assert len(document.inline_shapes) == 4


def _pdf_text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def _ink(png: Path, box: tuple[int, int, int, int] | None = None) -> float:
    image = Image.open(png).convert("L")
    if box:
        image = image.crop(box)
    return _share(image, 128)


def _share(image: Image.Image, below: int) -> float:
    """Share of pixels darker than ``below`` (greyscale)."""
    return sum(image.histogram()[:below]) / (image.width * image.height)


@needs_poppler
def test_pdf_embeds_cjk_fonts_and_renders_glyphs_not_boxes(
    annual_files: dict[str, bytes], tmp_path: Path
) -> None:
    pdf = tmp_path / "annual.pdf"
    pdf.write_bytes(annual_files["pdf"])
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True)
    rows = [line.split() for line in fonts.stdout.splitlines()[2:] if line.strip()]
    assert rows, "the PDF uses fonts"
    # Columns: name type... emb sub uni: every font is embedded (subset).
    assert all(r[-5] == "yes" for r in rows), fonts.stdout
    assert any(re.search(r"WenQuanYi|Noto|CJK|Hei", r[0]) for r in rows), fonts.stdout
    # Text extracts back as the Chinese it was written as (real glyphs, mapped to Unicode).
    text = _pdf_text(pdf)
    for phrase in (
        "南昌县2025年度城市体检报告",
        "存在燃气安全隐患的住宅数量",
        "对策建议",
        "三色管理规则",
    ):
        assert phrase in text.replace("\n", "").replace(" ", "")
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 5
    assert all(_ink(p) > 0.003 for p in pages), "no blank page"


@needs_poppler
def test_different_chinese_titles_draw_different_glyphs(tmp_path: Path) -> None:
    """Two titles differing only in Chinese characters draw visibly different ink.

    Together with the embedded CJK font and the extracted text above, this shows the glyphs
    come from a font that has them (a fallback box would carry no Unicode text).
    """
    crops = []
    for i, name in enumerate(("南昌县", "进贤县")):
        doc = annual_document()
        doc["sections"] = doc["sections"][:1]
        doc["region"]["name"] = name
        doc["sections"][0]["title"] = f"{name}城市体检"
        pdf = tmp_path / f"t{i}.pdf"
        pdf.write_bytes(render(doc, ["pdf"])["pdf"])
        subprocess.run(
            [
                "pdftoppm",
                "-r",
                "80",
                "-png",
                "-f",
                "1",
                "-l",
                "1",
                str(pdf),
                str(tmp_path / f"t{i}"),
            ],
            check=True,
        )
        crops.append(Image.open(next(tmp_path.glob(f"t{i}-*.png"))).convert("L"))
    # The title line: different characters → clearly different pixels; same width of ink.
    box = (0, 0, crops[0].width, crops[0].height // 3)
    a, b = crops[0].crop(box), crops[1].crop(box)
    diff = ImageChops.invert(ImageChops.difference(a, b))
    assert _share(diff, 192) > 0.001  # pixels that differ by more than 64 levels
    for img in (a, b):
        assert _share(img, 128) > 0.002


def test_charts_draw_every_chinese_label_with_the_cjk_font() -> None:
    doc = annual_document()
    with warnings.catch_warnings():
        # matplotlib warns "Glyph … missing from font(s)" where it would draw a box.
        warnings.simplefilter("error")
        pngs = [
            charts.radar(doc["facts"]["dimensions"]),
            charts.trend(doc["facts"]["trend"]),
            charts.bar_rank(doc["facts"]["siblings"], "360121"),
            charts.tile_map(doc["facts"]["children"]),
        ]
    assert all(p and p.startswith(b"\x89PNG") for p in pngs)
    assert charts.radar([]) is None and charts.trend([]) is None


def test_period_without_data_says_so_in_every_format() -> None:
    empty = {
        "index": {"score": None, "rank": None, "rank_of": None},
        "grade_counts": {"green": 0, "yellow": 0, "red": 0, "grey": 0, "total": 0},
        "indicators": [],
        "dimensions": [],
        "trend": [],
        "siblings": [],
        "children": [],
        "satisfaction": {"available": False, "overall": None, "items": []},
        "problems": [],
        "recommendations": [],
        "rectification": {
            "total": 0,
            "closed": 0,
            "by_colour": {},
            "by_unit": [],
            "by_region": [],
            "red_tasks": [],
            "rule_text": "",
        },
        "projects": [],
    }
    doc = annual_document(facts=empty, data_available=False)
    assert "尚无指标评价数据" in doc["sections"][1]["text"]
    assert "暂无评价数据" in doc["notes"][0]
    files = render(doc, ["html", "docx"])
    html = files["html"].decode()
    assert "本期暂无指标评价数据" in html and "本期暂无满意度调查数据" in html
    text = "\n".join(p.text for p in Document(io.BytesIO(files["docx"])).paragraphs)
    assert "本期暂无指标评价数据" in text
