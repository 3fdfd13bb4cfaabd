"""Recommendations generated from the diagnosis: problems grouped by dimension and kind."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from services.report.diagnosis.rules import IndicatorMeta

__all__ = ["recommendations"]

MAX_NAMED = 3


def _names(problems: list[dict[str, Any]]) -> str:
    titles = [p["title"] for p in problems[:MAX_NAMED]]
    more = f"等 {len(problems)} 项" if len(problems) > MAX_NAMED else ""
    return "、".join(titles) + more


def recommendations(facts: dict[str, Any], meta: dict[str, IndicatorMeta]) -> list[dict[str, Any]]:
    """Ordered recommendations, each with the problems (ids) it rests on."""
    problems = [p for p in facts.get("problems") or [] if p.get("status") != "closed"]
    out: list[dict[str, Any]] = []
    by_dim: dict[str, list[dict[str, Any]]] = defaultdict(list)
    other: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in problems:
        code = p.get("indicator_code")
        if p["category"] in ("indicator", "cluster") and code:
            dim = meta[code].dimension if code in meta and meta[code].dimension else "其他"
            by_dim[dim].append(p)
        else:
            other[p["category"]].append(p)
    # Dimensions with the most severe problems first.
    for dim, items in sorted(
        by_dim.items(),
        key=lambda kv: (-sum(p["severity"] == "high" for p in kv[1]), -len(kv[1]), kv[0]),
    ):
        high = [p for p in items if p["severity"] == "high"]
        urgency = "优先" if high else "持续"
        out.append(
            {
                "title": f"{urgency}补齐{dim}短板",
                "text": (
                    f"{dim}方面诊断出 {len(items)} 项问题（其中严重 {len(high)} 项），"
                    f"主要是{_names(items)}。建议纳入年度城市更新项目清单，明确责任单位和完成时限，"
                    "按“体检发现问题、更新解决问题”的要求逐项整改。"
                ),
                "basis": [p["id"] for p in items],
            }
        )
    if other.get("satisfaction") or other.get("theme"):
        items = other.get("satisfaction", []) + other.get("theme", [])
        out.append(
            {
                "title": "回应居民关切",
                "text": (
                    f"满意度调查反映 {len(items)} 项突出问题，主要是{_names(items)}。"
                    "建议结合社区议事协调机制听取居民意见，把居民反映集中的事项列入近期整改。"
                ),
                "basis": [p["id"] for p in items],
            }
        )
    if other.get("disagreement"):
        items = other["disagreement"]
        out.append(
            {
                "title": "核实数据、多方比对",
                "text": (
                    f"{len(items)} 项指标的自体检、第三方体检与满意度调查结果不一致"
                    f"（{_names(items)}），"
                    "建议组织复核采集口径和原始记录，确保“一把尺子”量到底。"
                ),
                "basis": [p["id"] for p in items],
            }
        )
    rect = facts.get("rectification") or {}
    red = rect.get("red_tasks") or []
    if red:
        units = sorted({t["unit"] for t in red})
        out.append(
            {
                "title": "加快推进逾期和滞后整改",
                "text": (
                    f"有 {len(red)} 项整改任务为红色（逾期或严重滞后），"
                    f"涉及{('、'.join(units[:5]))}"
                    f"{'等' if len(units) > 5 else ''}单位。建议实行每月调度、每季度通报，"
                    "完成整改后及时复查销号。"
                ),
                "basis": [t["id"] for t in red],
            }
        )
    open_problems = [p for p in problems if p.get("status") == "open"]
    if open_problems:
        out.append(
            {
                "title": "问题全部转为整改任务",
                "text": (
                    f"尚有 {len(open_problems)} 项问题未明确责任单位和整改时限，"
                    "建议尽快形成整改任务清单。"
                ),
                "basis": [p["id"] for p in open_problems],
            }
        )
    return out
