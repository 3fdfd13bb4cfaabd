"""Rectification tasks (整改任务): units, life cycle, three colours, summaries."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query

from services.report.configs import effective_config, save_config
from services.report.deps import NodeId
from services.report.tasks import service
from services.report.tasks.colour import ColourRule, rule_text
from services.report.tasks.schemas import (
    CloseIn,
    ProgressIn,
    ReassignIn,
    ReinspectionIn,
    ReinspectionOut,
    ReopenIn,
    TaskCreate,
    TaskDetail,
    TaskOut,
    TaskPage,
    TaskSummary,
    UnitIn,
    UnitOut,
)
from shared.db import DbSession
from shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks 整改任务"])


def _out(session: DbSession, task: Any, today: date | None = None) -> TaskOut:
    return TaskOut.model_validate(service.task_view(session, task, today).as_dict())


@router.get("/responsible-units", response_model=list[UnitOut], summary="责任单位列表 (units)")
def list_units(
    session: DbSession, identity: CurrentIdentity, region_code: str | None = None
) -> list[UnitOut]:
    """Responsible units usable in a region."""
    units = service.list_units(session, identity, region_code or identity.region)
    return [UnitOut.model_validate(u) for u in units]


@router.post("/responsible-units", response_model=UnitOut, status_code=201, summary="登记责任单位")
def create_unit(
    data: UnitIn, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> UnitOut:
    """Register a responsible unit (department, street, company) of a region."""
    return UnitOut.model_validate(service.create_unit(session, identity, node, data))


@router.get("/colour-rule", summary="三色管理规则 (three-colour rule in force)")
def get_colour_rule(
    session: DbSession, identity: CurrentIdentity, region_code: str | None = None
) -> dict[str, Any]:
    """The three-colour rule in force for a region and where it was set."""
    region = region_code or identity.region
    identity.check_read(region)
    rule, source = effective_config(session, "colour", region, ColourRule)
    return {"rule": rule.model_dump(), "source": source, "text": rule_text(rule)}


@router.put("/colour-rule", summary="设置三色管理规则 (set the three-colour rule)")
def put_colour_rule(
    body: Annotated[dict[str, Any], Body()],
    session: DbSession,
    identity: CurrentIdentity,
    node: NodeId,
    region_code: str | None = None,
) -> dict[str, Any]:
    """Store a new version of the region's three-colour rule."""
    region = region_code or identity.region
    identity.check_write(region, "admin")
    rule, version = save_config(session, "colour", region, body, ColourRule, identity, node)
    return {"rule": rule.model_dump(), "version": version, "text": rule_text(rule)}


@router.get("/summary", response_model=TaskSummary, summary="整改汇总 (summary by region/unit)")
def summary(
    session: DbSession,
    identity: CurrentIdentity,
    region_code: str | None = None,
    group_by: Literal["region", "unit"] = "region",
    period: str | None = None,
    as_of: date | None = None,
) -> TaskSummary:
    """Tasks by colour and closure, per child region or per responsible unit."""
    return TaskSummary.model_validate(
        service.summarise(
            session, identity, region_code or identity.region, group_by, period, as_of
        )
    )


@router.post("", response_model=TaskOut, status_code=201, summary="问题转整改任务 (create task)")
def create_task(
    data: TaskCreate, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> TaskOut:
    """Turn a problem into a rectification task with a responsible unit, deadline and plan."""
    return _out(session, service.create_task(session, identity, node, data))


@router.get("", response_model=TaskPage, summary="整改任务列表 (list tasks)")
def list_tasks(
    session: DbSession,
    identity: CurrentIdentity,
    region_code: str | None = None,
    status: Literal["in_progress", "closed"] | None = None,
    colour: Literal["green", "yellow", "red"] | None = None,
    unit_id: int | None = None,
    problem_id: int | None = None,
    period: str | None = None,
    as_of: date | None = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d+$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TaskPage:
    """Tasks in a region's subtree; ``colour`` filters on the colour as of ``as_of``."""
    views, nxt = service.list_tasks(
        session,
        identity,
        region_code=region_code,
        status=status,
        colour=colour,
        unit_id=unit_id,
        problem_id=problem_id,
        period=period,
        cursor=int(cursor) if cursor else None,
        limit=limit,
        today=as_of,
    )
    return TaskPage(
        items=[TaskOut.model_validate(v.as_dict()) for v in views],
        next_cursor=str(nxt) if nxt else None,
    )


@router.get("/{task_id}", response_model=TaskDetail, summary="整改任务详情 (one task)")
def get_task(task_id: int, session: DbSession, identity: CurrentIdentity) -> TaskDetail:
    """One task with its audit trail and re-inspections."""
    task = service.get_task(session, identity, task_id)
    data = service.task_view(session, task).as_dict()
    data["events"] = [
        {
            "action": e.action,
            "actor": e.actor,
            "actor_region": e.actor_region,
            "at": e.at,
            "detail": e.detail,
        }
        for e in service.task_events(session, task.id)
    ]
    data["reinspections"] = [
        ReinspectionOut.model_validate(r) for r in service.task_reinspections(session, task.id)
    ]
    return TaskDetail.model_validate(data)


@router.post("/{task_id}/progress", response_model=TaskOut, summary="报送进展 (report progress)")
def report_progress(
    task_id: int, data: ProgressIn, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> TaskOut:
    """Record progress (percent, note and evidence)."""
    return _out(session, service.report_progress(session, identity, node, task_id, data))


@router.post("/{task_id}/reassign", response_model=TaskOut, summary="调整责任单位 (reassign)")
def reassign(
    task_id: int, data: ReassignIn, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> TaskOut:
    """Hand the task to another responsible unit, optionally with a new deadline."""
    return _out(session, service.reassign_task(session, identity, node, task_id, data))


@router.post(
    "/{task_id}/reinspections",
    response_model=ReinspectionOut,
    status_code=201,
    summary="复查验收记录 (record a re-inspection)",
)
def reinspect(
    task_id: int,
    data: ReinspectionIn,
    session: DbSession,
    identity: CurrentIdentity,
    node: NodeId,
) -> ReinspectionOut:
    """Record a re-inspection of the task's current state (passed or not)."""
    record = service.reinspect_task(session, identity, node, task_id, data)
    return ReinspectionOut.model_validate(record)


@router.post("/{task_id}/close", response_model=TaskOut, summary="销号 (close after re-inspection)")
def close(
    task_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    node: NodeId,
    data: CloseIn | None = None,
) -> TaskOut:
    """Close the task; refused (409) without a passed re-inspection of its current state."""
    note = data.note if data else ""
    return _out(session, service.close_task(session, identity, node, task_id, note))


@router.post("/{task_id}/reopen", response_model=TaskOut, summary="重新打开 (reopen)")
def reopen(
    task_id: int, data: ReopenIn, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> TaskOut:
    """Reopen a closed task; it must be re-inspected again before it can close."""
    return _out(session, service.reopen_task(session, identity, node, task_id, data))
