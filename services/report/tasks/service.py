"""Rectification tasks: life cycle, three colours, reassignment, re-inspection and summaries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.report.audit import audit, publish
from services.report.configs import effective_config
from services.report.models import (
    AuditEvent,
    Problem,
    ProjectTask,
    Reinspection,
    ResponsibleUnit,
    Task,
)
from services.report.tasks.colour import ColourRule, TaskColour, colour_of, rule_text
from services.report.tasks.schemas import (
    ProgressIn,
    ReassignIn,
    ReinspectionIn,
    ReopenIn,
    TaskCreate,
    UnitIn,
)
from shared.dbtypes import utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.identity import Identity
from shared.regions import is_valid_code, level_of, prefix_of, related

__all__ = [
    "TaskView",
    "child_key",
    "close_task",
    "colour_rule",
    "create_task",
    "create_unit",
    "get_task",
    "list_tasks",
    "list_units",
    "reassign_task",
    "reinspect_task",
    "reopen_task",
    "report_progress",
    "summarise",
    "task_events",
    "task_view",
]

EDIT_ROLES = ("admin", "data_entry")
INSPECT_ROLES = ("admin", "reviewer")


class ReinspectionRequired(Conflict):
    slug = "reinspection-required"
    title = "未经复查验收不得销号 (re-inspection required before closing)"


def _today() -> date:
    return datetime.now(UTC).date()


def colour_rule(session: Session, region_code: str) -> ColourRule:
    """The three-colour rule in force for a region."""
    rule, _src = effective_config(session, "colour", region_code, ColourRule)
    return rule


# --- responsible units -------------------------------------------------------------------


def create_unit(session: Session, identity: Identity, node: str, data: UnitIn) -> ResponsibleUnit:
    """Register a responsible unit of a region (code unique on the node)."""
    if not is_valid_code(data.region_code):
        raise ValidationFailed(
            f"区划代码格式错误: {data.region_code}",
            errors=[{"field": "region_code", "message": "6, 9 or 12 digits"}],
        )
    identity.check_write(data.region_code, *EDIT_ROLES)
    if session.scalar(select(ResponsibleUnit.id).where(ResponsibleUnit.code == data.code)):
        raise Conflict(f"责任单位代码已存在: {data.code} (unit code exists)", slug="unit-exists")
    unit = ResponsibleUnit(**data.model_dump(), created_by=identity.subject)
    session.add(unit)
    session.flush()
    audit(session, "unit", unit.id, "create", identity, node, data.model_dump())
    return unit


def list_units(session: Session, identity: Identity, region_code: str) -> list[ResponsibleUnit]:
    """Units usable in a region: its own, its ancestors' and its descendants'."""
    identity.check_read(region_code)
    rows = session.scalars(select(ResponsibleUnit).order_by(ResponsibleUnit.code)).all()
    return [u for u in rows if related(u.region_code, region_code)]


def _unit_for(session: Session, unit_id: int, region_code: str, field: str) -> ResponsibleUnit:
    unit = session.get(ResponsibleUnit, unit_id)
    if unit is None or not unit.active:
        raise ValidationFailed(
            f"责任单位不存在或已停用: {unit_id} (unknown responsible unit)",
            errors=[{"field": field, "message": f"unknown unit {unit_id}"}],
            slug="unknown-unit",
        )
    if not related(unit.region_code, region_code):
        raise ValidationFailed(
            f"责任单位 {unit.name} 不属于区划 {region_code} (unit outside the task's region)",
            errors=[{"field": field, "message": "unit outside the task's region"}],
            slug="unknown-unit",
        )
    return unit


# --- views -------------------------------------------------------------------------------


class TaskView:
    """A task with its unit, colour and linked projects, as callers see it."""

    def __init__(
        self, task: Task, unit: ResponsibleUnit, colour: TaskColour, project_ids: list[int]
    ) -> None:
        self.task = task
        self.unit = unit
        self.colour = colour
        self.project_ids = project_ids

    def as_dict(self) -> dict[str, Any]:
        t = self.task
        return {
            "id": t.id,
            "problem_id": t.problem_id,
            "region_code": t.region_code,
            "period": t.period,
            "title": t.title,
            "unit": self.unit,
            "start_date": t.start_date,
            "deadline": t.deadline,
            "plan": t.plan,
            "status": t.status,
            "progress": t.progress,
            "last_progress_on": t.last_progress_on,
            "colour": self.colour.colour,
            "colour_reason": self.colour.reason,
            "expected_progress": round(self.colour.expected, 1),
            "days_left": self.colour.days_left,
            "reopen_count": t.reopen_count,
            "revision": t.revision,
            "closed_at": t.closed_at,
            "created_by": t.created_by,
            "created_at": t.created_at,
            "updated_at": t.updated_at,
            "project_ids": self.project_ids,
        }


def _colour(task: Task, rule: ColourRule, today: date) -> TaskColour:
    return colour_of(
        status=task.status,
        start=task.start_date,
        deadline=task.deadline,
        progress=task.progress,
        last_progress_on=task.last_progress_on,
        milestones=(task.plan or {}).get("milestones") or [],
        rule=rule,
        today=today,
    )


def _views(session: Session, tasks: Sequence[Task], today: date) -> list[TaskView]:
    if not tasks:
        return []
    ids = [t.id for t in tasks]
    units = {
        u.id: u
        for u in session.scalars(
            select(ResponsibleUnit).where(ResponsibleUnit.id.in_({t.unit_id for t in tasks}))
        )
    }
    links: dict[int, list[int]] = defaultdict(list)
    for link in session.scalars(select(ProjectTask).where(ProjectTask.task_id.in_(ids))):
        links[link.task_id].append(link.project_id)
    rules: dict[str, ColourRule] = {}
    out = []
    for t in tasks:
        if t.region_code not in rules:
            rules[t.region_code] = colour_rule(session, t.region_code)
        out.append(
            TaskView(t, units[t.unit_id], _colour(t, rules[t.region_code], today), links[t.id])
        )
    return out


def task_view(session: Session, task: Task, today: date | None = None) -> TaskView:
    """The view of one task on ``today``."""
    return _views(session, [task], today or _today())[0]


def _payload(view: TaskView) -> dict[str, Any]:
    d = view.as_dict()
    d["unit"] = {"code": view.unit.code, "name": view.unit.name}
    return {k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in d.items()}


def _changed(
    session: Session,
    task: Task,
    action: str,
    identity: Identity,
    node: str,
    detail: dict[str, Any],
    today: date,
) -> None:
    task.updated_at = utcnow()
    session.flush()
    audit(session, "task", task.id, action, identity, node, detail)
    publish(
        session, node, "task", f"{node}:task:{task.id}", _payload(task_view(session, task, today))
    )


# --- life cycle ----------------------------------------------------------------------------


def get_task(session: Session, identity: Identity, task_id: int) -> Task:
    """One task, if the caller may read its region."""
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"整改任务不存在: {task_id} (unknown task)", slug="unknown-task")
    identity.check_read(task.region_code)
    return task


def _check_deadline(deadline: date, today: date, field: str = "deadline") -> None:
    if deadline < today:
        raise ValidationFailed(
            f"完成时限 {deadline} 早于今天 {today}，不能设在过去 (deadline in the past)",
            errors=[{"field": field, "message": f"deadline {deadline} is before {today}"}],
            slug="deadline-in-past",
        )


def _check_plan(data: TaskCreate, start: date) -> None:
    errors = []
    last = -1.0
    for i, m in enumerate(sorted(data.plan.milestones, key=lambda m: m.due)):
        if not start <= m.due <= data.deadline:
            errors.append(
                {
                    "field": f"plan.milestones.{i}.due",
                    "message": f"节点日期 {m.due} 应在 {start} 至 {data.deadline} 之间",
                }
            )
        if m.percent < last:
            errors.append(
                {"field": f"plan.milestones.{i}.percent", "message": "节点进度应随日期递增"}
            )
        last = m.percent
    if data.deadline < start:
        errors.append({"field": "start_date", "message": "开始日期晚于完成时限"})
    if errors:
        raise ValidationFailed("整改方案有误 (invalid plan)", errors=errors)


def create_task(
    session: Session, identity: Identity, node: str, data: TaskCreate, today: date | None = None
) -> Task:
    """Turn a problem into a rectification task with a unit, deadline and plan."""
    today = today or _today()
    problem = session.get(Problem, data.problem_id)
    if problem is None:
        raise ValidationFailed(
            f"问题不存在: {data.problem_id} (unknown problem)",
            errors=[{"field": "problem_id", "message": "unknown problem"}],
        )
    identity.check_write(problem.region_code, *EDIT_ROLES)
    _check_deadline(data.deadline, today)
    start = data.start_date or today
    _check_plan(data, start)
    unit = _unit_for(session, data.unit_id, problem.region_code, "unit_id")
    open_task = session.scalar(
        select(Task.id).where(Task.problem_id == problem.id, Task.status != "closed")
    )
    if open_task:
        raise Conflict(
            f"该问题已有未销号的整改任务 #{open_task} (problem already has an open task)",
            slug="task-exists",
            task_id=open_task,
        )
    task = Task(
        problem_id=problem.id,
        region_code=problem.region_code,
        period=problem.period,
        title=data.title or problem.title,
        unit_id=unit.id,
        start_date=start,
        deadline=data.deadline,
        plan=data.plan.model_dump(mode="json"),
        status="in_progress",
        progress=0,
        revision=1,
        created_by=identity.subject,
    )
    session.add(task)
    problem.status = "assigned"
    problem.updated_at = utcnow()
    session.flush()
    audit(session, "problem", problem.id, "assign", identity, node, {"task_id": task.id})
    _changed(
        session,
        task,
        "create",
        identity,
        node,
        {"unit_id": unit.id, "unit": unit.name, "deadline": str(data.deadline)},
        today,
    )
    return task


def _open(task: Task) -> None:
    if task.status == "closed":
        raise Conflict(
            f"任务 #{task.id} 已销号，请先重新打开 (task is closed: reopen it first)",
            slug="task-closed",
        )


def report_progress(
    session: Session,
    identity: Identity,
    node: str,
    task_id: int,
    data: ProgressIn,
    today: date | None = None,
) -> Task:
    """Record a progress update with its evidence."""
    today = today or _today()
    task = get_task(session, identity, task_id)
    identity.check_write(task.region_code, *EDIT_ROLES)
    _open(task)
    on = data.reported_on or today
    if on > today:
        raise ValidationFailed(
            "进展日期不能晚于今天 (progress date in the future)",
            errors=[{"field": "reported_on", "message": f"{on} is after {today}"}],
        )
    before = task.progress
    task.progress = data.percent
    task.last_progress_on = on
    task.revision += 1
    _changed(
        session,
        task,
        "progress",
        identity,
        node,
        {
            "from": before,
            "to": data.percent,
            "note": data.note,
            "reported_on": str(on),
            "evidence": [e.model_dump(mode="json") for e in data.evidence],
        },
        today,
    )
    return task


def reassign_task(
    session: Session,
    identity: Identity,
    node: str,
    task_id: int,
    data: ReassignIn,
    today: date | None = None,
) -> Task:
    """Hand a task to another responsible unit (optionally with a new deadline)."""
    today = today or _today()
    task = get_task(session, identity, task_id)
    identity.check_write(task.region_code, *EDIT_ROLES)
    _open(task)
    unit = _unit_for(session, data.unit_id, task.region_code, "unit_id")
    old_unit = session.get(ResponsibleUnit, task.unit_id)
    detail: dict[str, Any] = {
        "from_unit": old_unit.name if old_unit else task.unit_id,
        "to_unit": unit.name,
        "reason": data.reason,
    }
    if data.deadline is not None:
        _check_deadline(data.deadline, today)
        detail["from_deadline"], detail["to_deadline"] = str(task.deadline), str(data.deadline)
        task.deadline = data.deadline
    task.unit_id = unit.id
    task.revision += 1
    _changed(session, task, "reassign", identity, node, detail, today)
    return task


def reinspect_task(
    session: Session,
    identity: Identity,
    node: str,
    task_id: int,
    data: ReinspectionIn,
    today: date | None = None,
) -> Reinspection:
    """Record a re-inspection (复查) of the task's current state."""
    today = today or _today()
    task = get_task(session, identity, task_id)
    identity.check_write(task.region_code, *INSPECT_ROLES)
    _open(task)
    if data.inspected_on > today:
        raise ValidationFailed(
            "复查日期不能晚于今天 (inspection date in the future)",
            errors=[{"field": "inspected_on", "message": f"{data.inspected_on} is after {today}"}],
        )
    record = Reinspection(
        task_id=task.id,
        task_revision=task.revision,
        inspector=data.inspector,
        inspected_on=data.inspected_on,
        passed=data.passed,
        findings=data.findings,
        evidence=[e.model_dump(mode="json") for e in data.evidence],
        recorded_by=identity.subject,
    )
    session.add(record)
    session.flush()
    _changed(
        session,
        task,
        "reinspect",
        identity,
        node,
        {"reinspection_id": record.id, "passed": data.passed, "findings": data.findings},
        today,
    )
    return record


def close_task(
    session: Session,
    identity: Identity,
    node: str,
    task_id: int,
    note: str = "",
    today: date | None = None,
) -> Task:
    """Close (销号) a task: only after a passed re-inspection of its current state."""
    today = today or _today()
    task = get_task(session, identity, task_id)
    identity.check_write(task.region_code, *INSPECT_ROLES)
    _open(task)
    latest = session.scalars(
        select(Reinspection)
        .where(Reinspection.task_id == task.id)
        .order_by(Reinspection.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.task_revision != task.revision:
        raise ReinspectionRequired(
            f"任务 #{task.id} 没有针对当前整改结果的复查记录，不能销号 "
            "(no re-inspection of the task's current state)"
        )
    if not latest.passed:
        raise ReinspectionRequired(
            f"任务 #{task.id} 最近一次复查未通过（{latest.findings or '无说明'}），不能销号 "
            "(the latest re-inspection failed)"
        )
    task.status = "closed"
    task.progress = 100
    task.closed_at = utcnow()
    task.revision += 1
    problem = session.get(Problem, task.problem_id)
    if problem is not None:
        problem.status = "closed"
        problem.updated_at = utcnow()
        audit(session, "problem", problem.id, "close", identity, node, {"task_id": task.id})
    _changed(
        session, task, "close", identity, node, {"reinspection_id": latest.id, "note": note}, today
    )
    return task


def reopen_task(
    session: Session,
    identity: Identity,
    node: str,
    task_id: int,
    data: ReopenIn,
    today: date | None = None,
) -> Task:
    """Reopen a closed task (the problem came back); it needs a new re-inspection to close."""
    today = today or _today()
    task = get_task(session, identity, task_id)
    identity.check_write(task.region_code, *INSPECT_ROLES)
    if task.status != "closed":
        raise Conflict(f"任务 #{task.id} 未销号，无需重新打开 (task is not closed)")
    detail: dict[str, Any] = {"reason": data.reason}
    if data.deadline is not None:
        _check_deadline(data.deadline, today)
        detail["from_deadline"], detail["to_deadline"] = str(task.deadline), str(data.deadline)
        task.deadline = data.deadline
    task.status = "in_progress"
    task.closed_at = None
    task.reopen_count += 1
    task.revision += 1
    problem = session.get(Problem, task.problem_id)
    if problem is not None:
        problem.status = "assigned"
        audit(session, "problem", problem.id, "reopen", identity, node, {"task_id": task.id})
    _changed(session, task, "reopen", identity, node, detail, today)
    return task


# --- queries -----------------------------------------------------------------------------


def list_tasks(
    session: Session,
    identity: Identity,
    *,
    region_code: str | None = None,
    status: str | None = None,
    colour: str | None = None,
    unit_id: int | None = None,
    problem_id: int | None = None,
    period: str | None = None,
    cursor: int | None = None,
    limit: int = 100,
    today: date | None = None,
) -> tuple[list[TaskView], int | None]:
    """Tasks in a region's subtree, filtered; colour is computed for ``today``."""
    today = today or _today()
    region = region_code or identity.region
    identity.check_read(region)
    stmt = select(Task).where(Task.region_code.startswith(prefix_of(region)))
    if status:
        stmt = stmt.where(Task.status == status)
    if unit_id is not None:
        stmt = stmt.where(Task.unit_id == unit_id)
    if problem_id is not None:
        stmt = stmt.where(Task.problem_id == problem_id)
    if period:
        stmt = stmt.where(Task.period == period)
    if cursor is not None:
        stmt = stmt.where(Task.id > cursor)
    stmt = stmt.order_by(Task.id)
    if colour is None:
        rows = session.scalars(stmt.limit(limit)).all()
        views = _views(session, rows, today)
        return views, (rows[-1].id if len(rows) == limit else None)
    # Colour depends on the date: filter after computing it, page by page.
    out: list[TaskView] = []
    last_id = cursor
    while len(out) < limit:
        page_stmt = stmt if last_id is None else stmt.where(Task.id > last_id)
        rows = session.scalars(page_stmt.limit(500)).all()
        if not rows:
            return out, None
        for v in _views(session, rows, today):
            last_id = v.task.id
            if v.colour.colour == colour:
                out.append(v)
                if len(out) == limit:
                    return out, last_id
    return out, None


def task_events(session: Session, task_id: int) -> list[AuditEvent]:
    """The audit trail of one task, oldest first."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity == "task", AuditEvent.entity_id == task_id)
            .order_by(AuditEvent.id)
        )
    )


def task_reinspections(session: Session, task_id: int) -> list[Reinspection]:
    return list(
        session.scalars(
            select(Reinspection).where(Reinspection.task_id == task_id).order_by(Reinspection.id)
        )
    )


def child_key(region_code: str, code: str) -> str:
    """The child of ``region_code`` that contains ``code`` (or the region itself)."""
    level = level_of(region_code).value
    if code == region_code:
        return code
    if level == "province":
        return code[:4] + "00"
    if level == "city":
        return code[:6]
    if level == "county":
        return code[:9] if len(code) >= 9 else code
    return code[:12]


def summarise(
    session: Session,
    identity: Identity,
    region_code: str,
    group_by: str = "region",
    period: str | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """Counts by colour and closure per child region or per responsible unit."""
    today = today or _today()
    identity.check_read(region_code)
    stmt = select(Task).where(Task.region_code.startswith(prefix_of(region_code)))
    if period:
        stmt = stmt.where(Task.period == period)
    views = _views(session, session.scalars(stmt.order_by(Task.id)).all(), today)
    rows: dict[str, dict[str, Any]] = {}
    by_colour = {"green": 0, "yellow": 0, "red": 0}
    closed = 0
    for v in views:
        if group_by == "unit":
            key, name = v.unit.code, v.unit.name
        else:
            key = child_key(region_code, v.task.region_code)
            name = key
        row = rows.setdefault(
            key,
            {"key": key, "name": name, "total": 0, "closed": 0, "green": 0, "yellow": 0, "red": 0},
        )
        row["total"] += 1
        if v.task.status == "closed":
            row["closed"] += 1
            closed += 1
        else:
            # Closed tasks are reported as closed, colours count the open ones.
            row[v.colour.colour] += 1
            by_colour[v.colour.colour] += 1
    for row in rows.values():
        row["closure_rate"] = round(row["closed"] / row["total"], 4) if row["total"] else 0.0
    rule = colour_rule(session, region_code)
    return {
        "region_code": region_code,
        "group_by": group_by,
        "as_of": today,
        "total": len(views),
        "closed": closed,
        "by_colour": by_colour,
        "rows": sorted(rows.values(), key=lambda r: (-r["closure_rate"], r["key"])),
        "rule": rule.model_dump(),
        "rule_text": rule_text(rule),
    }
