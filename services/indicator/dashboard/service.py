"""Read-only dashboard views over the precomputed grades and region scores."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.indicator.dashboard.schemas import (
    ChildrenOut,
    ChildScore,
    ColourCounts,
    DimensionScore,
    RedIndicator,
    SeriesOut,
    SeriesPoint,
    SourceGrade,
    SummaryOut,
)
from services.indicator.evaluation.method import IndexMethod
from services.indicator.evaluation.models import Evaluation, RegionScore
from services.indicator.evaluation.rules import rule_for
from services.indicator.evaluation.service import get_system, method_in_force
from services.indicator.regions.models import Region
from services.indicator.regions.service import get_region
from services.indicator.systems.models import Indicator, IndicatorSystem
from shared.dbtypes import utcnow
from shared.errors import NotFound

__all__ = ["children", "previous_period", "series", "summary"]

INDEX = "*"


def previous_period(period: str) -> str | None:
    """The same period one year earlier ("2025" → "2024", "2025-Q2" → "2024-Q2")."""
    if len(period) < 4 or not period[:4].isdigit():
        return None
    return f"{int(period[:4]) - 1:04d}{period[4:]}"


def _counts(row: RegionScore | None) -> ColourCounts:
    if row is None:
        return ColourCounts()
    return ColourCounts(green=row.green, yellow=row.yellow, red=row.red, grey=row.grey)


def _change(now: float | None, before: float | None) -> float | None:
    if now is None or before is None:
        return None
    return round(now - before, 2)


def _scores(session: Session, system_id: int, region_code: str, period: str) -> dict[str, Any]:
    rows = session.scalars(
        select(RegionScore).where(
            RegionScore.system_id == system_id,
            RegionScore.region_code == region_code,
            RegionScore.period == period,
        )
    )
    return {r.dimension: r for r in rows}


def _previous_scores(
    session: Session, system: IndicatorSystem, region_code: str, period: str
) -> tuple[int | None, dict[str, RegionScore]]:
    """Scores of the same region one year earlier, under the latest version of the same family."""
    rows = session.execute(
        select(RegionScore, IndicatorSystem.year, IndicatorSystem.version)
        .join(IndicatorSystem, IndicatorSystem.id == RegionScore.system_id)
        .where(
            IndicatorSystem.code == system.code,
            RegionScore.region_code == region_code,
            RegionScore.period == period,
        )
    ).all()
    if not rows:
        return None, {}
    best = max((year, version, row.system_id) for row, year, version in rows)[2]
    return best, {row.dimension: row for row, _y, _v in rows if row.system_id == best}


def _by_priority(rows: Iterable[Any], method: IndexMethod) -> list[Any]:
    """Rows in the order the scoring SQL prefers them: non-null first, then source priority."""
    return sorted(rows, key=lambda r: (r.value is None, method.source_rank(r.source), r.source))


def _choose(rows: Iterable[Any], method: IndexMethod) -> dict[str, Any]:
    """Per indicator the value that enters the index (same order as the scoring SQL)."""
    chosen: dict[str, Any] = {}
    for row in _by_priority(rows, method):
        chosen.setdefault(row.indicator_code, row)
    return chosen


def summary(
    session: Session, *, region_code: str, period: str, system_id: int, top: int = 10
) -> SummaryOut:
    """Colours, dimension scores, index, rank, change against last year and top red items."""
    region = get_region(session, region_code)
    system = get_system(session, system_id)
    scores = _scores(session, system.id, region_code, period)
    index_row = scores.get(INDEX)
    if index_row is None:
        raise NotFound(
            f"区划 {region.name}（{region_code}）在 {period} 期、"
            f"指标体系 {system.id} 下尚无评价结果，"
            "请先运行评价 POST /api/v1/evaluations/run "
            "(no evaluation for this region, period and system yet)",
            slug="not-evaluated",
        )
    indicators = list(session.scalars(select(Indicator).where(Indicator.system_id == system.id)))
    by_code = {i.code: i for i in indicators}
    method = method_in_force(session, system, region_code, period)

    prev = previous_period(period)
    prev_system_id, prev_scores = (
        _previous_scores(session, system, region_code, prev) if prev else (None, {})
    )
    prev_index = prev_scores[INDEX].score if INDEX in prev_scores else None

    dimensions = []
    for name in sorted({i.dimension for i in indicators} | (set(scores) - {INDEX})):
        row = scores.get(name)
        before = prev_scores[name].score if name in prev_scores else None
        score = row.score if row is not None else None
        dimensions.append(
            DimensionScore(
                dimension=name,
                score=score,
                weight=method.weight_of(name),
                n_graded=row.n_graded if row is not None else 0,
                counts=_counts(row),
                previous=before,
                change=_change(score, before),
            )
        )

    grades = session.scalars(
        select(Evaluation).where(
            Evaluation.system_id == system.id,
            Evaluation.region_code == region_code,
            Evaluation.period == period,
        )
    )
    red = [
        (e, by_code[code])
        for code, e in _choose(grades, method).items()
        if e.grade == "red" and code in by_code
    ]
    rules = {ind.code: rule_for(ind) for _e, ind in red}
    red.sort(
        key=lambda pair: (
            -pair[1].weight,
            -rules[pair[1].code].gap(pair[0].value),
            pair[1].sort_order,
            pair[1].code,
        )
    )
    top_red = [
        RedIndicator(
            indicator_code=ind.code,
            name=ind.name_zh,
            dimension=ind.dimension,
            unit=ind.unit,
            weight=ind.weight,
            source=e.source,
            value=e.value,
            standard=rules[ind.code].standard,
            rule=e.rule,
        )
        for e, ind in red[:top]
    ]
    return SummaryOut(
        region_code=region.code,
        region_name=region.name,
        region_level=region.level,
        system_id=system.id,
        system_code=system.code,
        system_name=system.name,
        period=period,
        index=index_row.score,
        rank=index_row.rank,
        rank_of=index_row.rank_of,
        n_graded=index_row.n_graded,
        counts=_counts(index_row),
        dimensions=dimensions,
        previous_period=prev if prev_system_id is not None else None,
        previous_system_id=prev_system_id,
        index_previous=prev_index,
        index_change=_change(index_row.score, prev_index),
        top_red=top_red,
        evaluated_at=index_row.computed_at,
        generated_at=utcnow(),
    )


def series(
    session: Session,
    *,
    region_code: str,
    indicator_code: str,
    system_code: str | None = None,
) -> SeriesOut:
    """One indicator of one region per period, across system versions that share its code."""
    region = get_region(session, region_code)
    stmt = (
        select(Evaluation, IndicatorSystem)
        .join(IndicatorSystem, IndicatorSystem.id == Evaluation.system_id)
        .where(Evaluation.region_code == region_code, Evaluation.indicator_code == indicator_code)
    )
    if system_code is not None:
        stmt = stmt.where(IndicatorSystem.code == system_code)
    by_period: dict[str, tuple[IndicatorSystem, list[Evaluation]]] = {}
    for evaluation, system in session.execute(stmt).all():
        current = by_period.get(evaluation.period)
        # Several versions graded the same period: the latest version speaks for it.
        if current is None or (system.year, system.version) > (
            current[0].year,
            current[0].version,
        ):
            by_period[evaluation.period] = (system, [evaluation])
        elif current[0].id == system.id:
            current[1].append(evaluation)

    points: list[SeriesPoint] = []
    latest: IndicatorSystem | None = None
    for period in sorted(by_period):
        system, rows = by_period[period]
        method = method_in_force(session, system, region_code, period)
        chosen = _choose(rows, method)[indicator_code]
        points.append(
            SeriesPoint(
                period=period,
                system_id=system.id,
                system_code=system.code,
                system_version=system.version,
                source=chosen.source,
                value=chosen.value,
                grade=chosen.grade,
                points=chosen.points,
                rule=chosen.rule,
                sources=[
                    SourceGrade(source=r.source, value=r.value, grade=r.grade)
                    for r in _by_priority(rows, method)
                ],
            )
        )
        latest = system
    indicator = (
        session.scalars(
            select(Indicator).where(
                Indicator.system_id == latest.id, Indicator.code == indicator_code
            )
        ).first()
        if latest is not None
        else None
    )
    return SeriesOut(
        region_code=region.code,
        region_name=region.name,
        indicator_code=indicator_code,
        indicator_name=indicator.name_zh if indicator else None,
        unit=indicator.unit if indicator else None,
        points=points,
        generated_at=utcnow(),
    )


def children(session: Session, *, region_code: str, period: str, system_id: int) -> ChildrenOut:
    """Every direct child of the region with its index, rank, colours and dimension scores."""
    region = get_region(session, region_code)
    system = get_system(session, system_id)
    kids = list(
        session.scalars(
            select(Region).where(Region.parent_code == region_code).order_by(Region.code)
        )
    )
    # By the children's codes, so that each lookup is a probe of the score key index.
    rows = session.scalars(
        select(RegionScore).where(
            RegionScore.system_id == system.id,
            RegionScore.region_code.in_([k.code for k in kids]),
            RegionScore.period == period,
        )
    )
    scores: dict[str, dict[str, RegionScore]] = {}
    for row in rows:
        scores.setdefault(row.region_code, {})[row.dimension] = row
    out = []
    for kid in kids:
        own = scores.get(kid.code, {})
        index_row = own.get(INDEX)
        out.append(
            ChildScore(
                region_code=kid.code,
                name=kid.name,
                level=kid.level,
                index=index_row.score if index_row else None,
                rank=index_row.rank if index_row else None,
                rank_of=index_row.rank_of if index_row else None,
                n_graded=index_row.n_graded if index_row else 0,
                counts=_counts(index_row),
                dimensions={d: r.score for d, r in sorted(own.items()) if d != INDEX},
                evaluated=index_row is not None,
            )
        )
    return ChildrenOut(
        region_code=region.code,
        region_name=region.name,
        system_id=system.id,
        period=period,
        evaluated_children=sum(1 for c in out if c.evaluated),
        children=out,
        generated_at=utcnow(),
    )
