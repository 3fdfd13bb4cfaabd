"""A complete example context of each report kind.

Used to dry-run outline templates (unknown names are caught with their line) and as the
documented example of the facts each kind carries. Values are illustrative, never shown as
a region's results.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sample_context"]

_COUNTS = {"green": 3, "yellow": 1, "red": 1, "grey": 1, "total": 6}
_RECT = {
    "as_of": "2025-12-31",
    "total": 2,
    "closed": 1,
    "by_colour": {"green": 0, "yellow": 0, "red": 1},
    "by_unit": [{"unit": "示例住建局", "total": 2, "closed": 1, "green": 0, "yellow": 0, "red": 1}],
    "by_region": [
        {
            "key": "360121001",
            "code": "360121001",
            "name": "示例街道",
            "rank": 1,
            "total": 2,
            "closed": 1,
            "green": 0,
            "yellow": 0,
            "red": 1,
            "closure_rate": 0.5,
        },
    ],
    "red_tasks": [
        {
            "id": 2,
            "title": "示例任务",
            "region_code": "360121001",
            "region_name": "示例街道",
            "unit": "示例住建局",
            "deadline": "2025-10-01",
            "progress": 40,
            "reason": "已逾期 91 天",
        },
    ],
    "rule": {},
    "rule_text": "三色管理规则（示例）",
}


def _facts() -> dict[str, Any]:
    return {
        "index": {"score": 72.5, "rank": 2, "rank_of": 9},
        "grade_counts": dict(_COUNTS),
        "indicators": [
            {
                "code": "H01",
                "name": "示例指标",
                "level": "housing",
                "dimension": "安全耐久",
                "unit": "栋",
                "standard": "≤ 0",
                "source": "self_checkup",
                "value": 12.0,
                "grade": "red",
                "points": 0.0,
                "rule": "示例",
            },
        ],
        "dimensions": [
            {"name": "安全耐久", "score": 60.0, "green": 1, "yellow": 0, "red": 1, "grey": 0},
            {"name": "功能完备", "score": 80.0, "green": 1, "yellow": 1, "red": 0, "grey": 0},
            {"name": "绿色智能", "score": 90.0, "green": 1, "yellow": 0, "red": 0, "grey": 1},
        ],
        "trend": [{"period": "2024", "score": 70.0}, {"period": "2025", "score": 72.5}],
        "siblings": [
            {
                "code": "360121",
                "name": "示例县",
                "score": 72.5,
                "band": "yellow",
                "rank": 2,
                "green": 3,
                "yellow": 1,
                "red": 1,
                "grey": 1,
            },
        ],
        "children": [
            {
                "code": "360121001",
                "name": "示例街道",
                "score": 75.0,
                "band": "yellow",
                "rank": 1,
                "green": 3,
                "yellow": 1,
                "red": 0,
                "grey": 0,
            },
        ],
        "satisfaction": {
            "available": True,
            "overall": 78.0,
            "threshold": 60.0,
            "items": [
                {
                    "code": "Q1",
                    "name": "示例调查项",
                    "kind": "question",
                    "region_code": "360121",
                    "score": 55.0,
                    "ci_low": 50.0,
                    "ci_high": 58.0,
                    "n": 400,
                    "indicator_codes": [],
                    "below_threshold": True,
                },
            ],
        },
        "problems": [
            {
                "id": 1,
                "region_code": "360121001",
                "region_name": "示例街道",
                "title": "示例问题",
                "description": "示例",
                "category": "indicator",
                "severity": "high",
                "status": "assigned",
                "indicator_code": "H01",
                "rules": ["indicator_grade"],
            },
        ],
        "rectification": dict(_RECT),
        "projects": [
            {
                "id": 1,
                "code": "A01",
                "name": "示例项目",
                "location": "示例位置",
                "content": "示例",
                "total_investment": 100.0,
                "fiscal_investment": 60.0,
                "social_investment": 40.0,
                "start_month": "2025-03",
                "end_month": "2025-12",
                "responsible_department": "示例局",
                "task_ids": [1],
            },
        ],
        "recommendations": [{"title": "示例建议", "text": "示例", "basis": [1]}],
        "cities": [
            {
                "code": "360100",
                "name": "示例市",
                "score": 72.5,
                "band": "yellow",
                "rank": 1,
                "green": 3,
                "yellow": 1,
                "red": 1,
                "grey": 1,
                "problems": 1,
                "tasks_total": 2,
                "tasks_closed": 1,
            },
        ],
        "counties": [
            {
                "code": "360121",
                "name": "示例县",
                "score": 72.5,
                "band": "yellow",
                "rank": 1,
                "city_code": "360100",
                "city_name": "示例市",
                "rank_in_city": 1,
            },
        ],
        "dimension_comparison": {
            "dimensions": ["安全耐久"],
            "rows": [{"code": "360100", "name": "示例市", "scores": [60.0]}],
        },
        "quarter": {
            "period": "2025Q4",
            "label": "2025年第四季度",
            "start": "2025-10-01",
            "end": "2025-12-31",
            "new": 1,
            "closed": 1,
            "reopened": 0,
        },
    }


def sample_context(kind: str) -> dict[str, Any]:
    """The names an outline's text blocks may use, with example values."""
    return {
        "kind": kind,
        "region": {"code": "360121", "name": "示例县", "level": "county", "parent_code": "360100"},
        "period": "2025Q4" if kind == "bulletin" else "2025",
        "system": {"id": 1, "name": "示例指标体系"},
        "facts": _facts(),
        "data_available": True,
        "notes": [],
    }
