"""Evaluation: grade every value, score dimensions, compute and rank the health index."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.indicator.evaluation import repository as repo
from services.indicator.evaluation.method import IndexMethod, parse_index_method
from services.indicator.evaluation.models import Evaluation, EvaluationRun
from services.indicator.evaluation.repository import Scope
from services.indicator.evaluation.rules import IndicatorRule, rule_for
from services.indicator.evaluation.sql import sql_for
from services.indicator.regions.service import get_region
from services.indicator.systems.models import Indicator, IndicatorSystem
from shared.dbtypes import utcnow
from shared.errors import NotFound, ValidationFailed
from shared.regions import contains

__all__ = [
    "EvaluationPage",
    "compute_region_scores",
    "get_system",
    "grade_values",
    "list_evaluations",
    "list_runs",
    "method_in_force",
    "method_of",
    "rules_of",
    "run_evaluation",
]

# Writes this large refresh the planner statistics (see EvaluationSql.refresh_statistics).
ANALYZE_AFTER_ROWS = 10_000


def get_system(session: Session, system_id: int) -> IndicatorSystem:
    """The system version, or 404."""
    system = session.get(IndicatorSystem, system_id)
    if system is None:
        raise NotFound(
            f"指标体系不存在: {system_id} (unknown indicator system)", slug="unknown-system"
        )
    return system


def _indicators(session: Session, system_id: int) -> list[Indicator]:
    return list(
        session.scalars(
            select(Indicator)
            .where(Indicator.system_id == system_id)
            .order_by(Indicator.sort_order, Indicator.code)
        )
    )


def rules_of(indicators: list[Indicator]) -> list[IndicatorRule]:
    """The grading rule of each indicator."""
    return [rule_for(i) for i in indicators]


def method_of(system: IndicatorSystem, indicators: list[Indicator]) -> IndexMethod:
    """The system's validated index method (422 naming the bad key)."""
    return parse_index_method(system.index_method, {i.dimension for i in indicators})


def method_in_force(
    session: Session, system: IndicatorSystem, region_code: str, period: str
) -> IndexMethod:
    """The method the region's stored scores were computed with (latest covering run)."""
    # A draft system's method may have changed since: readers must explain the stored
    # scores, not the next run's. Without a recorded run, the system's own method.
    runs = session.scalars(
        select(EvaluationRun)
        .where(EvaluationRun.system_id == system.id, EvaluationRun.period == period)
        .order_by(EvaluationRun.id.desc())
        .limit(100)
    )
    for run in runs:
        if contains(run.region_code, region_code):
            return parse_index_method(run.index_method)
    return method_of(system, _indicators(session, system.id))


def grade_values(
    session: Session,
    system: IndicatorSystem,
    period: str,
    region_code: str,
    *,
    method: IndexMethod | None = None,
    now: datetime | None = None,
    indicators: list[Indicator] | None = None,
) -> int:
    """Grade every value of the system and period in the region and below; returns the count."""
    indicators = _indicators(session, system.id) if indicators is None else indicators
    method = method or method_of(system, indicators)
    now = now or utcnow()
    scope = Scope(region_code)
    repo.sync_rules(session, system.id, rules_of(indicators), now)
    repo.delete_evaluations(session, system.id, period, scope)
    n = repo.insert_evaluations(session, system.id, period, scope, method, now)
    if n >= ANALYZE_AFTER_ROWS:
        sql_for(session).refresh_statistics(session, "evaluations")
    return n


def compute_region_scores(
    session: Session,
    system: IndicatorSystem,
    period: str,
    region_code: str,
    *,
    method: IndexMethod | None = None,
    now: datetime | None = None,
    indicators: list[Indicator] | None = None,
) -> int:
    """Dimension scores, health index and sibling rank of every graded region in scope."""
    indicators = _indicators(session, system.id) if indicators is None else indicators
    method = method or method_of(system, indicators)
    dimensions = sorted({i.dimension for i in indicators})
    scope = Scope(region_code)
    repo.delete_scores(session, system.id, period, scope)
    n = repo.insert_scores(session, system.id, period, scope, method, dimensions, now or utcnow())
    repo.update_ranks(session, system.id, period, scope)
    if n >= ANALYZE_AFTER_ROWS:
        sql_for(session).refresh_statistics(session, "region_scores")
    return repo.count_scored_regions(session, system.id, period, scope)


def run_evaluation(
    session: Session,
    *,
    system_id: int,
    period: str,
    region_code: str,
    actor: str,
    actor_region: str,
) -> EvaluationRun:
    """Grade, score and rank one scope, and record the run (who, when, what came out)."""
    get_region(session, region_code)
    system = get_system(session, system_id)
    indicators = _indicators(session, system.id)
    method = method_of(system, indicators)
    started_at = utcnow()
    t0 = time.perf_counter()
    n = grade_values(
        session, system, period, region_code, method=method, now=started_at, indicators=indicators
    )
    counts = repo.grade_counts(session, system.id, period, Scope(region_code))
    regions = compute_region_scores(
        session, system, period, region_code, method=method, now=started_at, indicators=indicators
    )
    run = EvaluationRun(
        system_id=system.id,
        period=period,
        region_code=region_code,
        actor=actor,
        actor_region=actor_region,
        started_at=started_at,
        duration_ms=round((time.perf_counter() - t0) * 1000),
        values_evaluated=n,
        regions_scored=regions,
        index_method=method.as_dict(),
        **counts,
    )
    session.add(run)
    session.flush()
    return run


def list_runs(
    session: Session, scope_region: str, system_id: int | None, period: str | None, limit: int
) -> list[EvaluationRun]:
    """The latest runs whose scope lies inside the caller's region."""
    scope = Scope(scope_region)
    stmt = select(EvaluationRun).where(
        EvaluationRun.region_code >= scope.low, EvaluationRun.region_code < scope.high
    )
    if system_id is not None:
        stmt = stmt.where(EvaluationRun.system_id == system_id)
    if period is not None:
        stmt = stmt.where(EvaluationRun.period == period)
    return list(session.scalars(stmt.order_by(EvaluationRun.id.desc()).limit(limit)))


@dataclass
class EvaluationPage:
    items: list[Evaluation]
    next_cursor: str | None


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise ValidationFailed(
            "分页游标无效，请使用上一页返回的 next_cursor (invalid cursor)",
            errors=[{"field": "cursor", "message": "use next_cursor of the previous page"}],
        )
    return int(cursor)


def list_evaluations(
    session: Session,
    *,
    within: str,
    system_id: int | None = None,
    period: str | None = None,
    region_code: str | None = None,
    indicator_code: str | None = None,
    source: str | None = None,
    grade: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> EvaluationPage:
    """Grades inside ``within`` (a region and everything below it), filtered, by cursor."""
    items = repo.page_evaluations(
        session,
        scope=Scope(within),
        system_id=system_id,
        period=period,
        region_code=region_code,
        indicator_code=indicator_code,
        source=source,
        grade=grade,
        after=_parse_cursor(cursor),
        limit=limit,
    )
    next_cursor = str(items[-1].value_id) if len(items) == limit else None
    return EvaluationPage(items=items, next_cursor=next_cursor)
