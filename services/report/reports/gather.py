"""Gathering a report's facts: sibling services over HTTP plus this service's own tables.

This is the only step that reads data; rendering takes the resulting JSON document.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.report.configs import effective_config
from services.report.diagnosis.rules import SEVERITY_RANK, DiagnosisConfig, DiagnosisInput
from services.report.models import AuditEvent, Problem, ReceivedRecord, Task
from services.report.projects import service as projects
from services.report.reports import normalise as n
from services.report.reports.recommend import recommendations
from services.report.sources import SiblingData
from services.report.tasks import service as tasks
from shared.identity import Identity
from shared.regions import prefix_of

__all__ = [
    "annual_facts",
    "bulletin_facts",
    "diagnosis_input",
    "header",
    "parse_quarter",
    "province_facts",
]


async def header(src: SiblingData, region_code: str, system_id: int) -> dict[str, Any]:
    """Region (with parent) and system names for the document header."""
    region = await src.region(region_code)
    if region is None:
        region = {"code": region_code, "name": region_code, "level": "", "parent_code": None}
    system = None
    if system_id:
        raw = await src.system(system_id)
        system = {"id": system_id, "name": (raw or {}).get("name") or f"指标体系 {system_id}"}
    return {
        "region": {
            "code": region["code"],
            "name": region.get("name") or region_code,
            "level": region.get("level") or "",
            "parent_code": region.get("parent_code"),
        },
        "system": system,
    }


async def _names(src: SiblingData, region_code: str) -> dict[str, str]:
    """Names of the region and its children (and grandchildren) for labels."""
    tree = await src._get(
        "indicator", f"/api/v1/regions/{region_code}/tree", {"depth": 2}, what="区划树"
    )
    names: dict[str, str] = {}

    def walk(node: dict[str, Any]) -> None:
        names[node["code"]] = node["name"]
        for c in node.get("children") or []:
            walk(c)

    if tree:
        walk(tree)
    return names


async def diagnosis_input(
    src: SiblingData, session: Session, region_code: str, period: str, system_id: int
) -> DiagnosisInput:
    """Every piece of evidence the diagnosis rules read, for one region and period."""
    cfg, _ = effective_config(session, "diagnosis", region_code, DiagnosisConfig)
    evaluations, indicators, sat, themes, names = await asyncio.gather(
        src.evaluations(system_id, period, within=region_code),
        src.indicators(system_id),
        src.satisfaction(region_code, period),
        src.themes(region_code, period),
        _names(src, region_code),
    )
    return DiagnosisInput(
        region_code=region_code,
        period=period,
        system_id=system_id,
        evaluations=[
            e for e in evaluations if e.get("region_code", "").startswith(prefix_of(region_code))
        ],
        indicators=n.indicator_meta(indicators),
        satisfaction=n.satisfaction_rows(sat, cfg.low_satisfaction.threshold, region_code),
        theme_counts=list(themes or []),
        region_names=names,
    )


def _problem_rows(
    session: Session, region_code: str, period: str, names: dict[str, str]
) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Problem).where(
            Problem.region_code.startswith(prefix_of(region_code)),
            Problem.period == period,
            Problem.status != "dismissed",
        )
    ).all()
    out: list[dict[str, Any]] = [
        {
            "id": p.id,
            "region_code": p.region_code,
            "region_name": names.get(p.region_code)
            or names.get(p.region_code[:6])
            or p.region_code,
            "title": p.title,
            "description": p.description,
            "category": p.category,
            "severity": p.severity,
            "status": p.status,
            "indicator_code": p.indicator_code,
            "rules": p.rules,
        }
        for p in rows
    ]
    out.sort(key=lambda p: (-SEVERITY_RANK.get(p["severity"], 0), p["region_code"], p["id"]))
    return out


def _rectification(
    session: Session,
    identity: Identity,
    region_code: str,
    period: str | None,
    today: date,
    names: dict[str, str],
) -> dict[str, Any]:
    by_unit = tasks.summarise(session, identity, region_code, "unit", period, today)
    by_region = tasks.summarise(session, identity, region_code, "region", period, today)
    red: list[dict[str, Any]] = []
    cursor: int | None = None
    while True:
        views, cursor = tasks.list_tasks(
            session,
            identity,
            region_code=region_code,
            period=period,
            colour="red",
            cursor=cursor,
            limit=500,
            today=today,
        )
        for v in views:
            red.append(
                {
                    "id": v.task.id,
                    "title": v.task.title,
                    "region_code": v.task.region_code,
                    "region_name": names.get(v.task.region_code, v.task.region_code),
                    "unit": v.unit.name,
                    "deadline": v.task.deadline.isoformat(),
                    "progress": v.task.progress,
                    "reason": v.colour.reason,
                }
            )
        if cursor is None:
            break
    region_rows = [
        {**r, "code": r["key"], "name": names.get(r["key"], r["key"])} for r in by_region["rows"]
    ]
    for i, r in enumerate(region_rows, 1):
        r["rank"] = i
    return {
        "as_of": today.isoformat(),
        "total": by_unit["total"],
        "closed": by_unit["closed"],
        "by_colour": by_unit["by_colour"],
        "by_unit": [
            {"unit": r["name"], **{k: r[k] for k in ("total", "closed", "green", "yellow", "red")}}
            for r in by_unit["rows"]
        ],
        "by_region": region_rows,
        "red_tasks": red,
        "rule": by_unit["rule"],
        "rule_text": by_unit["rule_text"],
    }


def _projects(
    session: Session, identity: Identity, region_code: str, year: int | None
) -> list[dict[str, Any]]:
    rows = projects.list_projects(session, identity, region_code, year, limit=1000)
    links = projects.task_ids_of(session, [p.id for p in rows])
    out = []
    for p in rows:
        d = projects.project_dict(p, links[p.id])
        for k in ("created_at", "updated_at"):
            d[k] = d[k].isoformat() if d[k] else None
        out.append(d)
    return out


def _year(period: str) -> int | None:
    return int(period[:4]) if period[:4].isdigit() else None


async def annual_facts(
    src: SiblingData,
    session: Session,
    identity: Identity,
    region_code: str,
    period: str,
    system_id: int,
    today: date,
) -> tuple[dict[str, Any], bool]:
    """Facts of a region's annual report and whether evaluation data exist for the period."""
    cfg, _ = effective_config(session, "diagnosis", region_code, DiagnosisConfig)
    region = await src.region(region_code)
    parent = (region or {}).get("parent_code")
    year = _year(period)
    past = [str(year - k) for k in range(4, 0, -1)] if year else []
    (evaluations, indicators, summary, kids, siblings, sat, names, *history) = await asyncio.gather(
        src.evaluations(system_id, period, region_code=region_code),
        src.indicators(system_id),
        src.summary(region_code, period, system_id),
        src.children_summary(region_code, period, system_id),
        src.children_summary(parent, period, system_id, optional=True) if parent else _none(),
        src.satisfaction(region_code, period),
        _names(src, region_code),
        *[src.summary(region_code, p, system_id, quiet=True) for p in past],
    )
    meta = n.indicator_meta(indicators)
    rows = n.indicator_rows(evaluations, region_code, meta)
    scores = n.summary_scores(summary)
    counts = scores.get("grade_counts") or n.grade_counts(rows)
    counts["total"] = sum(counts[k] for k in ("green", "yellow", "red", "grey"))
    if scores["score"] is None and rows:
        score, dims = n.compute_scores(rows)
        scores["score"], scores["dimensions"] = score, dims
        src.notes.append(
            "城市健康指数与维度得分由报告服务按各指标评价得分的均值计算（指标服务未提供概况）。"
        )
    elif not scores["dimensions"] and rows:
        scores["dimensions"] = n.compute_scores(rows)[1]
    sibling_rows = n.children_rows(siblings, {}) if parent else []
    own = next((r for r in sibling_rows if r["code"] == region_code), None)
    if own and not scores["rank"]:
        scores["rank"] = own["rank"]
        scores["rank_of"] = sum(1 for r in sibling_rows if r["score"] is not None)
    trend = [
        {"period": p, "score": n.summary_scores(h)["score"]}
        for p, h in zip(past, history, strict=True)
    ]
    # The summary knows the previous period's index even across system versions.
    previous = (summary or {}).get("index_previous")
    if previous is not None and trend and trend[-1]["score"] is None:
        trend[-1]["score"] = previous
    trend.append({"period": period, "score": scores["score"]})
    sat_rows = n.satisfaction_rows(sat, cfg.low_satisfaction.threshold, region_code)
    overall = next((r["score"] for r in sat_rows if r["kind"] == "overall"), None)
    problems = _problem_rows(session, region_code, period, names)
    rect = _rectification(session, identity, region_code, period, today, names)
    facts = {
        "index": {
            "score": scores["score"],
            "rank": scores["rank"],
            "rank_of": scores["rank_of"],
        },
        "grade_counts": counts,
        "indicators": rows,
        "dimensions": scores["dimensions"],
        "trend": [t for t in trend if t["score"] is not None],
        "siblings": sibling_rows,
        "children": n.children_rows(kids, names),
        "satisfaction": {
            "available": bool(sat_rows),
            "overall": overall,
            "threshold": cfg.low_satisfaction.threshold,
            "items": [r for r in sat_rows if r["kind"] != "overall"],
        },
        "problems": problems,
        "rectification": rect,
        "projects": _projects(session, identity, region_code, year),
    }
    facts["recommendations"] = recommendations(facts, meta)
    return facts, bool(rows) or scores["score"] is not None


async def _none() -> None:
    return None


def _received_counts(session: Session, region_code: str, period: str) -> dict[str, dict[str, int]]:
    """Problem and task counts per city from this node's own tables and child nodes' pushes."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    city = lambda code: code[:4] + "00"  # noqa: E731
    for p in session.scalars(
        select(Problem).where(
            Problem.region_code.startswith(prefix_of(region_code)), Problem.period == period
        )
    ):
        counts[city(p.region_code)]["problems"] += 1
    for t in session.scalars(
        select(Task).where(
            Task.region_code.startswith(prefix_of(region_code)), Task.period == period
        )
    ):
        counts[city(t.region_code)]["tasks_total"] += 1
        counts[city(t.region_code)]["tasks_closed"] += t.status == "closed"
    for r in session.scalars(
        select(ReceivedRecord).where(ReceivedRecord.region_code.startswith(prefix_of(region_code)))
    ):
        if r.payload.get("period") != period:
            continue
        if r.entity == "problem":
            counts[city(r.region_code)]["problems"] += 1
        elif r.entity == "task":
            counts[city(r.region_code)]["tasks_total"] += 1
            counts[city(r.region_code)]["tasks_closed"] += r.payload.get("status") == "closed"
    return counts


async def province_facts(
    src: SiblingData,
    session: Session,
    identity: Identity,
    region_code: str,
    period: str,
    system_id: int,
    today: date,
) -> tuple[dict[str, Any], bool]:
    """Facts of the provincial report comparing every city (and county)."""
    year = _year(period)
    past = [str(year - k) for k in range(4, 0, -1)] if year else []
    names = await _names(src, region_code)
    city_codes = [c for c in names if len(c) == 6 and c != region_code and c.endswith("00")]
    results = await asyncio.gather(
        src.summary(region_code, period, system_id),
        src.children_summary(region_code, period, system_id),
        *[src.children_summary(c, period, system_id) for c in city_codes],
        *[src.summary(c, period, system_id) for c in city_codes],
        *[src.summary(region_code, p, system_id, quiet=True) for p in past],
    )
    own_summary, cities_raw = results[0], results[1]
    county_raw = results[2 : 2 + len(city_codes)]
    city_summaries = results[2 + len(city_codes) : 2 + 2 * len(city_codes)]
    history = results[2 + 2 * len(city_codes) :]
    cities = n.children_rows(cities_raw, names)
    by_code = {c["code"]: c for c in cities}
    for code in city_codes:
        by_code.setdefault(
            code,
            {
                "code": code,
                "name": names[code],
                "score": None,
                "band": "grey",
                "rank": None,
                "green": 0,
                "yellow": 0,
                "red": 0,
                "grey": 0,
            },
        )
    cities = sorted(
        by_code.values(), key=lambda c: (c["score"] is None, -(c["score"] or 0), c["code"])
    )
    counts = _received_counts(session, region_code, period)
    for c in cities:
        c.update(
            {k: counts[c["code"]].get(k, 0) for k in ("problems", "tasks_total", "tasks_closed")}
        )
    counties = []
    for code, raw in zip(city_codes, county_raw, strict=True):
        rows = n.children_rows(raw, names)
        for r in sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0))):
            counties.append(
                {
                    **r,
                    "city_code": code,
                    "city_name": names.get(code, code),
                    "rank_in_city": r["rank"],
                }
            )
    dims: list[str] = []
    comp_rows = []
    for code, s in zip(city_codes, city_summaries, strict=True):
        sc = n.summary_scores(s)
        for d in sc["dimensions"]:
            if d["name"] not in dims:
                dims.append(d["name"])
        comp_rows.append((code, {d["name"]: d["score"] for d in sc["dimensions"]}))
    scores = n.summary_scores(own_summary)
    if scores["score"] is None:
        scored = [c["score"] for c in cities if c["score"] is not None]
        if scored:
            scores["score"] = round(sum(scored) / len(scored), 1)
            src.notes.append("全省城市健康指数为各设区市指数的算术平均（指标服务未提供全省概况）。")
    if not scores["dimensions"] and dims:
        scores["dimensions"] = [
            {"name": d, "score": _mean([r.get(d) for _c, r in comp_rows])} for d in dims
        ]
    trend = [
        {"period": p, "score": n.summary_scores(h)["score"]}
        for p, h in zip(past, history, strict=True)
    ]
    # The summary knows the previous period's index even across system versions.
    previous = (own_summary or {}).get("index_previous")
    if previous is not None and trend and trend[-1]["score"] is None:
        trend[-1]["score"] = previous
    trend.append({"period": period, "score": scores["score"]})
    rect = _rectification(session, identity, region_code, period, today, names)
    facts = {
        "index": {"score": scores["score"], "rank": None, "rank_of": None},
        "grade_counts": n.grade_counts([])
        | {k: sum(c.get(k, 0) for c in cities) for k in ("green", "yellow", "red", "grey")},
        "cities": cities,
        "counties": counties,
        "children": cities,
        "dimensions": scores["dimensions"],
        "dimension_comparison": {
            "dimensions": dims,
            "rows": [
                {"code": c, "name": names.get(c, c), "scores": [r.get(d) for d in dims]}
                for c, r in comp_rows
            ],
        },
        "trend": [t for t in trend if t["score"] is not None],
        "siblings": [],
        "indicators": [],
        "satisfaction": {"available": False, "overall": None, "items": []},
        "problems": _problem_rows(session, region_code, period, names),
        "rectification": rect,
        "projects": [],
    }
    facts["grade_counts"]["total"] = sum(
        facts["grade_counts"][k] for k in ("green", "yellow", "red", "grey")
    )
    facts["recommendations"] = recommendations(facts, {})
    return facts, any(c["score"] is not None for c in cities)


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 1) if vals else None


def parse_quarter(period: str) -> tuple[date, date, str]:
    """'2026Q3' → (2026-07-01, 2026-09-30, '2026年第三季度')."""
    year, q = int(period[:4]), int(period[5])
    start = date(year, 3 * q - 2, 1)
    end = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)
    end = date.fromordinal(end.toordinal() - 1)
    return start, end, f"{year}年第{'一二三四'[q - 1]}季度"


def _in(dt: datetime | None, start: date, end: date) -> bool:
    return dt is not None and start <= dt.astimezone(UTC).date() <= end


async def bulletin_facts(
    src: SiblingData,
    session: Session,
    identity: Identity,
    region_code: str,
    period: str,
    today: date,
) -> tuple[dict[str, Any], bool]:
    """Facts of the quarterly rectification bulletin (as of the quarter's end or today)."""
    start, end, label = parse_quarter(period)
    as_of = min(end, today)
    names = await _names(src, region_code)
    rect = _rectification(session, identity, region_code, None, as_of, names)
    scope = select(Task).where(Task.region_code.startswith(prefix_of(region_code)))
    all_tasks = session.scalars(scope).all()
    ids = [t.id for t in all_tasks]
    reopened = 0
    if ids:
        reopened = sum(
            1
            for e in session.scalars(
                select(AuditEvent).where(
                    AuditEvent.entity == "task",
                    AuditEvent.action == "reopen",
                    AuditEvent.entity_id.in_(ids),
                )
            )
            if _in(e.at, start, end)
        )
    facts = {
        "quarter": {
            "period": period,
            "label": label,
            "start": start.isoformat(),
            "end": as_of.isoformat(),
            "new": sum(1 for t in all_tasks if _in(t.created_at, start, end)),
            "closed": sum(1 for t in all_tasks if _in(t.closed_at, start, end)),
            "reopened": reopened,
        },
        "rectification": rect,
        "children": [],
        "problems": [],
        "indicators": [],
        "recommendations": [],
        "index": {"score": None, "rank": None, "rank_of": None},
        "grade_counts": n.grade_counts([]),
    }
    return facts, rect["total"] > 0
