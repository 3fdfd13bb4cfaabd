"""Pictures of a report document (charts and the tile map), drawn once for every format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.report.reports.render import charts

__all__ = ["MAP_NOTE", "Picture", "pictures_for"]

MAP_NOTE = (
    "说明：本图为方格示意图，每个方格代表一个下级区划，按区划代码顺序排列，"
    "颜色表示城市健康指数分档；方格位置与大小不代表实际地理边界"
    "（tile grid, not region boundaries）。"
)


@dataclass(frozen=True)
class Picture:
    caption: str
    png: bytes


def _map(doc: dict[str, Any], section: dict[str, Any]) -> list[Picture]:
    tiles = doc["facts"].get("children") or []
    png = charts.tile_map(tiles)
    return [Picture("下级区划城市健康指数分布（方格示意图）", png)] if png else []


def _charts(doc: dict[str, Any], section: dict[str, Any]) -> list[Picture]:
    facts = doc["facts"]
    wanted = (section.get("options") or {}).get("charts") or ["radar", "trend", "rank"]
    out: list[Picture] = []
    for name in wanted:
        png: bytes | None = None
        caption = ""
        if name == "radar":
            png = charts.radar(facts.get("dimensions") or [])
            caption = "分维度得分雷达图"
        elif name == "trend":
            png = charts.trend(facts.get("trend") or [])
            caption = "城市健康指数历年趋势"
        elif name == "rank":
            rows = facts.get("siblings") or []
            png = charts.bar_rank(rows, doc["region"]["code"], "同级区划城市健康指数排名")
            caption = "在同级区划中的排名"
        elif name == "children_rank":
            png = charts.bar_rank(facts.get("children") or [], None, "下级区划城市健康指数排名")
            caption = "下级区划排名"
        if png:
            out.append(Picture(caption, png))
    return out


def pictures_for(doc: dict[str, Any]) -> dict[str, list[Picture]]:
    """Section id → the pictures that section shows."""
    pictures: dict[str, list[Picture]] = {}
    for section in doc["sections"]:
        if section["type"] == "map":
            pictures[section["id"]] = _map(doc, section)
        elif section["type"] == "charts":
            pictures[section["id"]] = _charts(doc, section)
    return pictures
