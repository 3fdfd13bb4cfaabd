"""From a report document to format-neutral blocks (headings, paragraphs, tables, pictures).

HTML, DOCX and PDF renderers only know these blocks, so every format shows the same content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.report.reports.render.assets import MAP_NOTE, Picture, pictures_for
from services.report.reports.render.charts import band_of

__all__ = ["Block", "Cell", "layout"]

GRADE_ZH = {"green": "达标", "yellow": "预警", "red": "不达标", "grey": "无标准"}
SEVERITY_ZH = {"high": "严重", "medium": "较重", "low": "一般"}
COLOUR_ZH = {"green": "绿（正常）", "yellow": "黄（滞后/临期）", "red": "红（逾期/严重滞后）"}
STATUS_ZH = {
    "open": "待整改",
    "assigned": "整改中",
    "closed": "已销号",
    "dismissed": "不予立项",
    "in_progress": "整改中",
}
CATEGORY_ZH = {
    "indicator": "指标不达标",
    "cluster": "问题集中",
    "disagreement": "数据不一致",
    "satisfaction": "满意度低",
    "theme": "居民反映",
}
LEVEL_ZH = {
    "housing": "住房",
    "compound": "小区",
    "community": "社区",
    "block": "街区",
    "district": "城区",
    "city": "城市",
}
SOURCE_ZH = {
    "self_checkup": "自体检",
    "third_party": "第三方",
    "survey": "满意度调查",
    "department": "部门数据",
    "hotline": "12345热线",
}


@dataclass(frozen=True)
class Cell:
    text: str
    colour: str | None = None  # green/yellow/red/grey


@dataclass
class Block:
    kind: str  # cover/heading/paragraph/figures/table/picture/bullets/note
    text: str = ""
    level: int = 1
    lines: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    figures: list[tuple[str, str, str | None]] = field(default_factory=list)
    picture: Picture | None = None
    numbered: bool = False


def num(value: Any, digits: int = 1) -> str:
    """A number for a table: fixed decimals for floats, '—' for missing."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e12:
            return str(int(value))
        return f"{value:.{digits}f}"
    return str(value)


def _paragraphs(text: str) -> list[Block]:
    return [Block("paragraph", text=p.strip()) for p in (text or "").split("\n\n") if p.strip()]


def _empty(doc: dict[str, Any], what: str) -> Block:
    return Block("note", text=f"本期暂无{what}数据（no {what} data for period {doc['period']}）。")


def _cover(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    region = doc["region"]
    lines = [
        region.get("name") or region["code"],
        f"报告期：{doc['period']}",
        f"编制单位：{region.get('name') or region['code']}城市体检工作专班",
        f"生成时间：{doc['generated_at'][:10]}",
    ]
    if doc.get("system"):
        lines.insert(2, f"指标体系：{doc['system'].get('name') or doc['system'].get('id')}")
    return [Block("cover", text=s.get("title") or doc["title"], lines=[*lines])]


def _summary(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    f = doc["facts"]
    idx = f.get("index") or {}
    gc = f.get("grade_counts") or {}
    figures: list[tuple[str, str, str | None]] = [
        ("城市健康指数", num(idx.get("score")), band_of(idx.get("score"))),
    ]
    if idx.get("rank"):
        figures.append(("同级排名", f"{idx['rank']}/{idx.get('rank_of') or '—'}", None))
    figures += [
        ("达标指标", num(gc.get("green", 0)), "green"),
        ("预警指标", num(gc.get("yellow", 0)), "yellow"),
        ("不达标指标", num(gc.get("red", 0)), "red"),
        ("问题数", num(len(f.get("problems") or [])), None),
    ]
    blocks = [Block("figures", figures=figures)]
    if not doc.get("data_available"):
        blocks.append(_empty(doc, "指标评价"))
    return blocks


def _indicator_tables(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    rows = doc["facts"].get("indicators") or []
    if not rows:
        return [_empty(doc, "指标评价")]
    group_by = (s.get("options") or {}).get("group_by", "level")
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        key = r.get(group_by) or "其他"
        groups.setdefault(LEVEL_ZH.get(key, key) if group_by == "level" else key, []).append(r)
    blocks: list[Block] = []
    for name, items in groups.items():
        counts = {g: sum(1 for i in items if i.get("grade") == g) for g in GRADE_ZH}
        blocks.append(
            Block(
                "heading",
                text=f"{name}（红 {counts['red']}、黄 {counts['yellow']}、绿 {counts['green']}）",
                level=3,
            )
        )
        blocks.append(
            Block(
                "table",
                headers=[
                    "指标",
                    "维度" if group_by == "level" else "层级",
                    "数值",
                    "单位",
                    "标准",
                    "来源",
                    "评价",
                ],
                rows=[
                    [
                        Cell(f"{i.get('name') or i['code']}"),
                        Cell(
                            str(i.get("dimension") or "—")
                            if group_by == "level"
                            else LEVEL_ZH.get(i.get("level") or "", i.get("level") or "—")
                        ),
                        Cell(num(i.get("value"), 2)),
                        Cell(i.get("unit") or ""),
                        Cell(i.get("standard") or "无标准"),
                        Cell(SOURCE_ZH.get(i.get("source") or "", i.get("source") or "—")),
                        Cell(GRADE_ZH.get(i.get("grade") or "grey", "—"), i.get("grade") or "grey"),
                    ]
                    for i in items
                ],
            )
        )
    return blocks


def _dimension_table(doc: dict[str, Any]) -> Block | None:
    dims = doc["facts"].get("dimensions") or []
    if not dims:
        return None
    return Block(
        "table",
        headers=["维度", "得分", "绿", "黄", "红", "无标准"],
        rows=[
            [
                Cell(str(d["name"])),
                Cell(num(d.get("score")), band_of(d.get("score"))),
                Cell(num(d.get("green", 0))),
                Cell(num(d.get("yellow", 0))),
                Cell(num(d.get("red", 0))),
                Cell(num(d.get("grey", 0))),
            ]
            for d in dims
        ],
    )


def _pictures(
    doc: dict[str, Any], s: dict[str, Any], pictures: dict[str, list[Picture]], what: str
) -> list[Block]:
    pics = pictures.get(s["id"]) or []
    if not pics:
        return [_empty(doc, what)]
    return [Block("picture", picture=p, text=p.caption) for p in pics]


def _map(doc: dict[str, Any], s: dict[str, Any], pictures: dict[str, list[Picture]]) -> list[Block]:
    blocks = _pictures(doc, s, pictures, "下级区划评价")
    if pictures.get(s["id"]):
        blocks.append(Block("note", text=MAP_NOTE))
        blocks.append(
            Block(
                "table",
                headers=["区划", "代码", "健康指数", "红", "黄", "绿"],
                rows=[
                    [
                        Cell(str(c["name"])),
                        Cell(str(c["code"])),
                        Cell(num(c.get("score")), c.get("band") or band_of(c.get("score"))),
                        Cell(num(c.get("red"))),
                        Cell(num(c.get("yellow"))),
                        Cell(num(c.get("green"))),
                    ]
                    for c in sorted(doc["facts"].get("children") or [], key=lambda c: c["code"])
                ],
            )
        )
    return blocks


def _charts(
    doc: dict[str, Any], s: dict[str, Any], pictures: dict[str, list[Picture]]
) -> list[Block]:
    blocks = _pictures(doc, s, pictures, "图表")
    table = _dimension_table(doc)
    if table is not None:
        blocks.append(table)
    return blocks


def _satisfaction(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    sat = doc["facts"].get("satisfaction") or {}
    items = sat.get("items") or []
    if not sat.get("available") or not items:
        return [_empty(doc, "满意度调查")]
    blocks: list[Block] = []
    if sat.get("overall") is not None:
        blocks.append(
            Block("figures", figures=[("总体满意度", num(sat["overall"]), band_of(sat["overall"]))])
        )
    blocks.append(
        Block(
            "table",
            headers=["调查项", "满意度", "95%置信区间", "样本量", "判断"],
            rows=[
                [
                    Cell(str(i.get("name") or i.get("code"))),
                    Cell(num(i.get("score")), band_of(i.get("score"))),
                    Cell(f"{num(i.get('ci_low'))}–{num(i.get('ci_high'))}"),
                    Cell(num(i.get("n"))),
                    Cell(
                        "明显偏低" if i.get("below_threshold") else "—",
                        "red" if i.get("below_threshold") else None,
                    ),
                ]
                for i in items
            ],
        )
    )
    return blocks


def _problems(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    problems = doc["facts"].get("problems") or []
    if not problems:
        return [Block("note", text="本期诊断未发现需列入问题清单的问题，或尚未开展诊断。")]
    sev_colour = {"high": "red", "medium": "yellow", "low": "green"}
    return [
        Block(
            "table",
            headers=["序号", "区划", "问题", "类型", "严重程度", "状态"],
            rows=[
                [
                    Cell(str(n)),
                    Cell(str(p.get("region_name") or p["region_code"])),
                    Cell(str(p["title"])),
                    Cell(CATEGORY_ZH.get(p.get("category") or "", p.get("category") or "")),
                    Cell(
                        SEVERITY_ZH.get(p["severity"], p["severity"]), sev_colour.get(p["severity"])
                    ),
                    Cell(STATUS_ZH.get(p.get("status") or "", p.get("status") or "")),
                ]
                for n, p in enumerate(problems, 1)
            ],
        )
    ]


def _rectification(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    rect = doc["facts"].get("rectification") or {}
    if not rect.get("total"):
        return [Block("note", text="本期暂无整改任务（no rectification tasks）。")]
    colours = rect.get("by_colour") or {}
    blocks = [
        Block(
            "figures",
            figures=[
                ("整改任务", num(rect["total"]), None),
                ("已销号", num(rect.get("closed", 0)), None),
                ("绿色", num(colours.get("green", 0)), "green"),
                ("黄色", num(colours.get("yellow", 0)), "yellow"),
                ("红色", num(colours.get("red", 0)), "red"),
            ],
        ),
        Block("paragraph", text=rect.get("rule_text") or ""),
    ]
    by_unit = rect.get("by_unit") or []
    if by_unit:
        blocks.append(Block("heading", text="按责任单位", level=3))
        blocks.append(
            Block(
                "table",
                headers=["责任单位", "任务数", "已销号", "绿", "黄", "红"],
                rows=[
                    [
                        Cell(str(u["unit"])),
                        Cell(num(u["total"])),
                        Cell(num(u.get("closed", 0))),
                        Cell(num(u.get("green", 0)), "green" if u.get("green") else None),
                        Cell(num(u.get("yellow", 0)), "yellow" if u.get("yellow") else None),
                        Cell(num(u.get("red", 0)), "red" if u.get("red") else None),
                    ]
                    for u in by_unit
                ],
            )
        )
    red = rect.get("red_tasks") or []
    if red:
        blocks.append(Block("heading", text="红色（逾期或严重滞后）任务", level=3))
        blocks.append(
            Block(
                "table",
                headers=["任务", "区划", "责任单位", "完成时限", "进度", "原因"],
                rows=[
                    [
                        Cell(str(t["title"])),
                        Cell(str(t.get("region_name") or t["region_code"])),
                        Cell(str(t["unit"])),
                        Cell(str(t["deadline"])),
                        Cell(f"{t['progress']}%"),
                        Cell(str(t.get("reason") or ""), "red"),
                    ]
                    for t in red
                ],
            )
        )
    return blocks


def _region_tasks(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    rows = (doc["facts"].get("rectification") or {}).get("by_region") or []
    if not rows:
        return [Block("note", text="本期暂无下级区划整改数据。")]
    return [
        Block(
            "table",
            headers=["排名", "区划", "任务数", "已销号", "销号率", "绿", "黄", "红"],
            rows=[
                [
                    Cell(num(r.get("rank"))),
                    Cell(str(r["name"])),
                    Cell(num(r["total"])),
                    Cell(num(r.get("closed", 0))),
                    Cell(f"{100 * float(r.get('closure_rate') or 0):.0f}%"),
                    Cell(num(r.get("green", 0))),
                    Cell(num(r.get("yellow", 0)), "yellow" if r.get("yellow") else None),
                    Cell(num(r.get("red", 0)), "red" if r.get("red") else None),
                ]
                for r in rows
            ],
        )
    ]


def _projects(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    projects = doc["facts"].get("projects") or []
    if not projects:
        return [Block("note", text="暂无关联的城市更新项目（no renewal projects）。")]
    return [
        Block(
            "table",
            headers=[
                "序号",
                "项目名称",
                "项目位置",
                "建设内容",
                "总投资(万元)",
                "财政资金",
                "社会资金",
                "建设时序",
                "责任部门",
            ],
            rows=[
                [
                    Cell(str(n)),
                    Cell(str(p["name"])),
                    Cell(str(p.get("location") or "")),
                    Cell(str(p.get("content") or "")),
                    Cell(num(p.get("total_investment"), 2)),
                    Cell(num(p.get("fiscal_investment"), 2)),
                    Cell(num(p.get("social_investment"), 2)),
                    Cell(f"{p.get('start_month')}至{p.get('end_month')}"),
                    Cell(str(p.get("responsible_department") or "")),
                ]
                for n, p in enumerate(projects, 1)
            ],
        )
    ]


def _recommendations(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    recs = doc["facts"].get("recommendations") or []
    if not recs:
        return [Block("note", text="本期诊断未形成专项建议。")]
    return [Block("bullets", lines=[f"{r['title']}：{r['text']}" for r in recs], numbered=True)]


def _ranking(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    cities = doc["facts"].get("cities") or []
    if not cities:
        return [_empty(doc, "各市评价")]
    blocks = [
        Block(
            "table",
            headers=["排名", "城市", "健康指数", "红", "黄", "绿", "问题数", "整改任务", "已销号"],
            rows=[
                [
                    Cell(num(c.get("rank"))),
                    Cell(str(c["name"])),
                    Cell(num(c.get("score")), band_of(c.get("score"))),
                    Cell(num(c.get("red"))),
                    Cell(num(c.get("yellow"))),
                    Cell(num(c.get("green"))),
                    Cell(num(c.get("problems"))),
                    Cell(num(c.get("tasks_total"))),
                    Cell(num(c.get("tasks_closed"))),
                ]
                for c in cities
            ],
        )
    ]
    counties = doc["facts"].get("counties") or []
    if counties and (s.get("options") or {}).get("counties", True):
        blocks.append(Block("heading", text="各县（市、区）城市健康指数", level=3))
        blocks.append(
            Block(
                "table",
                headers=["所属城市", "县（市、区）", "健康指数", "市内排名"],
                rows=[
                    [
                        Cell(str(c.get("city_name") or c.get("city_code"))),
                        Cell(str(c["name"])),
                        Cell(num(c.get("score")), band_of(c.get("score"))),
                        Cell(num(c.get("rank_in_city"))),
                    ]
                    for c in counties
                ],
            )
        )
    return blocks


def _dimension_comparison(doc: dict[str, Any], s: dict[str, Any]) -> list[Block]:
    comp = doc["facts"].get("dimension_comparison") or {}
    dims = comp.get("dimensions") or []
    rows = comp.get("rows") or []
    if not dims or not rows:
        return [_empty(doc, "分维度比较")]
    return [
        Block(
            "table",
            headers=["城市", *dims],
            rows=[
                [Cell(str(r["name"]))] + [Cell(num(v), band_of(v)) for v in r.get("scores") or []]
                for r in rows
            ],
        )
    ]


SectionFn = Callable[[dict[str, Any], dict[str, Any]], list[Block]]
SIMPLE: dict[str, SectionFn] = {
    "summary": _summary,
    "indicator_tables": _indicator_tables,
    "satisfaction": _satisfaction,
    "problems": _problems,
    "rectification": _rectification,
    "region_tasks": _region_tasks,
    "projects": _projects,
    "recommendations": _recommendations,
    "ranking": _ranking,
    "dimension_comparison": _dimension_comparison,
    "text": lambda doc, s: [],
}
SECTION_TYPES = (*SIMPLE, "cover", "map", "charts")


def layout(doc: dict[str, Any], pictures: dict[str, list[Picture]] | None = None) -> list[Block]:
    """The blocks of a document, in section order (pictures drawn unless given)."""
    pics = pictures if pictures is not None else pictures_for(doc)
    blocks: list[Block] = []
    for s in doc["sections"]:
        if s["type"] == "cover":
            blocks.extend(_cover(doc, s))
            continue
        if s.get("title"):
            blocks.append(Block("heading", text=s["title"], level=2))
        blocks.extend(_paragraphs(s.get("text") or ""))
        if s["type"] == "map":
            blocks.extend(_map(doc, s, pics))
        elif s["type"] == "charts":
            blocks.extend(_charts(doc, s, pics))
        else:
            blocks.extend(SIMPLE[s["type"]](doc, s))
    if doc.get("notes"):
        blocks.append(Block("heading", text="数据说明", level=2))
        blocks.append(Block("bullets", lines=list(doc["notes"])))
    return blocks
