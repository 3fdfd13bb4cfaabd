"""The report document: one JSON object per report, rendered by every format.

Schema (``checkup-report-document/1``) is documented in docs/report.md and served as JSON
Schema at ``GET /api/v1/reports/schema``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.report.reports.outline import Outline, render_outline

__all__ = ["SCHEMA_ID", "build_document", "document_json_schema"]

SCHEMA_ID = "checkup-report-document/1"


def build_document(
    *,
    kind: str,
    outline: Outline,
    template_ref: dict[str, Any],
    region: dict[str, Any],
    period: str,
    system: dict[str, Any] | None,
    facts: dict[str, Any],
    data_available: bool,
    notes: list[str],
    node: str,
    generated_by: str,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """Assemble the document: header, facts, and the outline's sections with text rendered."""
    notes = list(dict.fromkeys(notes))
    if not data_available:
        notes.insert(
            0,
            f"{region.get('name') or region['code']}{period}暂无评价数据，"
            "相关章节已注明（no evaluation data for this period）。",
        )
    context = {
        "kind": kind,
        "region": region,
        "period": period,
        "system": system,
        "facts": facts,
        "data_available": data_available,
        "notes": notes,
    }
    rendered = render_outline(outline, context)
    return {
        "schema": SCHEMA_ID,
        "kind": kind,
        "title": rendered["title"],
        "subtitle": rendered["subtitle"],
        "region": region,
        "period": period,
        "system": system,
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(),
        "generated_by": generated_by,
        "node": node,
        "template": template_ref,
        "data_available": data_available,
        "notes": notes,
        "facts": facts,
        "sections": rendered["sections"],
    }


def document_json_schema() -> dict[str, Any]:
    """JSON Schema of the report document (the stable top level and the sections)."""
    section = {
        "type": "object",
        "required": ["id", "type", "title", "text", "options"],
        "properties": {
            "id": {"type": "string"},
            "type": {
                "type": "string",
                "enum": [
                    "cover",
                    "text",
                    "summary",
                    "indicator_tables",
                    "map",
                    "charts",
                    "satisfaction",
                    "problems",
                    "rectification",
                    "region_tasks",
                    "projects",
                    "recommendations",
                    "ranking",
                    "dimension_comparison",
                ],
            },
            "title": {"type": "string"},
            "text": {"type": "string", "description": "rendered Jinja2 text block"},
            "options": {"type": "object"},
        },
    }
    nullable_number = {"type": ["number", "null"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "城市体检报告文档 (checkup report document)",
        "type": "object",
        "required": [
            "schema",
            "kind",
            "title",
            "region",
            "period",
            "generated_at",
            "template",
            "data_available",
            "notes",
            "facts",
            "sections",
        ],
        "properties": {
            "schema": {"const": SCHEMA_ID},
            "kind": {"enum": ["annual", "province", "bulletin"]},
            "title": {"type": "string"},
            "subtitle": {"type": "string"},
            "region": {
                "type": "object",
                "required": ["code", "name"],
                "properties": {
                    "code": {"type": "string"},
                    "name": {"type": "string"},
                    "level": {"type": "string"},
                    "parent_code": {"type": ["string", "null"]},
                },
            },
            "period": {"type": "string", "description": "YYYY, or YYYYQn for bulletins"},
            "system": {"type": ["object", "null"]},
            "generated_at": {"type": "string", "format": "date-time"},
            "generated_by": {"type": "string"},
            "node": {"type": "string"},
            "template": {"type": "object"},
            "data_available": {"type": "boolean"},
            "notes": {"type": "array", "items": {"type": "string"}},
            "facts": {
                "type": "object",
                "properties": {
                    "index": {
                        "type": "object",
                        "properties": {
                            "score": nullable_number,
                            "rank": {"type": ["integer", "null"]},
                            "rank_of": {"type": ["integer", "null"]},
                        },
                    },
                    "grade_counts": {"type": "object"},
                    "indicators": {"type": "array", "items": {"type": "object"}},
                    "dimensions": {"type": "array", "items": {"type": "object"}},
                    "trend": {"type": "array", "items": {"type": "object"}},
                    "siblings": {"type": "array", "items": {"type": "object"}},
                    "children": {"type": "array", "items": {"type": "object"}},
                    "satisfaction": {"type": "object"},
                    "problems": {"type": "array", "items": {"type": "object"}},
                    "rectification": {"type": "object"},
                    "projects": {"type": "array", "items": {"type": "object"}},
                    "recommendations": {"type": "array", "items": {"type": "object"}},
                    "cities": {"type": "array", "items": {"type": "object"}},
                    "counties": {"type": "array", "items": {"type": "object"}},
                    "dimension_comparison": {"type": "object"},
                    "quarter": {"type": "object"},
                },
            },
            "sections": {"type": "array", "items": section},
        },
    }
