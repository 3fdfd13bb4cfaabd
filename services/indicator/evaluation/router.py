"""HTTP endpoints of the indicator service's evaluation domain."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.indicator.evaluation import service
from services.indicator.evaluation.models import EvaluationRun
from services.indicator.evaluation.schemas import (
    PERIOD_PATTERN,
    EvaluationOut,
    EvaluationPageOut,
    GradeCounts,
    RunIn,
    RunOut,
)
from shared.db import DbSession
from shared.identity import CurrentIdentity, Role

router = APIRouter(prefix="/api/v1/evaluations", tags=["evaluation 评价"])

RUN_ROLES = (Role.admin, Role.reviewer, Role.data_entry)
Source = Literal["self_checkup", "third_party", "survey", "department", "hotline"]
Grade = Literal["green", "yellow", "red", "grey"]
RegionCode = Annotated[str | None, Query(pattern=r"^\d{6}(\d{3}){0,2}$")]


def _run_out(run: EvaluationRun) -> RunOut:
    return RunOut(
        run_id=run.id,
        system_id=run.system_id,
        period=run.period,
        region_code=run.region_code,
        values_evaluated=run.values_evaluated,
        grades=GradeCounts(green=run.green, yellow=run.yellow, red=run.red, grey=run.grey),
        regions_scored=run.regions_scored,
        duration_ms=run.duration_ms,
        evaluated_at=run.started_at,
        evaluated_by=run.actor,
        index_method=run.index_method,
    )


@router.post("/run", response_model=RunOut, summary="运行评价 (grade, score and rank a scope)")
def run_evaluation(body: RunIn, session: DbSession, identity: CurrentIdentity) -> RunOut:
    """Grade every value of the system and period in the region and below, then score and rank."""
    region = body.region_code or identity.region
    identity.check_write(region, *RUN_ROLES)
    run = service.run_evaluation(
        session,
        system_id=body.system_id,
        period=body.period,
        region_code=region,
        actor=identity.subject,
        actor_region=identity.region,
    )
    return _run_out(run)


@router.get("/runs", response_model=list[RunOut], summary="评价运行记录 (evaluation runs)")
def list_runs(
    session: DbSession,
    identity: CurrentIdentity,
    system_id: int | None = None,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[RunOut]:
    """The latest evaluation runs inside the caller's region, newest first."""
    runs = service.list_runs(session, identity.region, system_id, period, limit)
    return [_run_out(r) for r in runs]


@router.get("", response_model=EvaluationPageOut, summary="评价结果 (grades with their rules)")
def list_evaluations(
    session: DbSession,
    identity: CurrentIdentity,
    system_id: int | None = None,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
    region_code: Annotated[
        RegionCode, Query(description="只看此区划 (exactly this region)")
    ] = None,
    within: Annotated[
        RegionCode, Query(description="此区划及其下级，默认当前身份的区划 (region and below)")
    ] = None,
    indicator_code: Annotated[str | None, Query(max_length=40)] = None,
    source: Source | None = None,
    grade: Grade | None = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EvaluationPageOut:
    """Grades of values (all sources) inside the caller's scope, ordered by value id."""
    scope = within or identity.region
    identity.check_read(scope)
    if region_code is not None:
        identity.check_read(region_code)
    page = service.list_evaluations(
        session,
        within=scope,
        system_id=system_id,
        period=period,
        region_code=region_code,
        indicator_code=indicator_code,
        source=source,
        grade=grade,
        cursor=cursor,
        limit=limit,
    )
    return EvaluationPageOut(
        items=[EvaluationOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor
    )
