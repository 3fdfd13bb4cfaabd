"""Renewal projects (项目清单) and their links to rectification tasks."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.report.audit import audit, publish
from services.report.models import Project, ProjectTask, Task
from services.report.projects.schemas import ProjectIn, ProjectPatch, check_money
from shared.dbtypes import utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.identity import Identity
from shared.regions import is_valid_code, prefix_of, related

__all__ = [
    "create_project",
    "get_project",
    "link_task",
    "list_projects",
    "project_dict",
    "unlink_task",
    "update_project",
]

EDIT_ROLES = ("admin", "data_entry")
FIELDS = (
    "code",
    "category",
    "sector",
    "need_description",
    "need_level",
    "name",
    "location",
    "content",
    "total_investment",
    "fiscal_investment",
    "social_investment",
    "start_month",
    "end_month",
    "year_ratio",
    "responsible_department",
    "status",
)


def _plain(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


def project_dict(p: Project, task_ids: list[int]) -> dict[str, Any]:
    """A project as the API and reports show it."""
    d = {f: _plain(getattr(p, f)) for f in FIELDS}
    d.update(
        id=p.id,
        region_code=p.region_code,
        task_ids=task_ids,
        created_by=p.created_by,
        created_at=p.created_at,
        updated_at=p.updated_at,
    )
    return d


def task_ids_of(session: Session, project_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    if project_ids:
        for link in session.scalars(
            select(ProjectTask).where(ProjectTask.project_id.in_(project_ids))
        ):
            out[link.project_id].append(link.task_id)
    return out


def _publish(session: Session, node: str, p: Project) -> None:
    d = project_dict(p, task_ids_of(session, [p.id])[p.id])
    d = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()}
    publish(session, node, "project", f"{node}:project:{p.id}", d)


def create_project(session: Session, identity: Identity, node: str, data: ProjectIn) -> Project:
    """Add a project to the region's project list."""
    if not is_valid_code(data.region_code):
        raise ValidationFailed(
            f"区划代码格式错误: {data.region_code}",
            errors=[{"field": "region_code", "message": "6, 9 or 12 digits"}],
        )
    identity.check_write(data.region_code, *EDIT_ROLES)
    project = Project(**data.model_dump(), created_by=identity.subject)
    session.add(project)
    session.flush()
    audit(session, "project", project.id, "create", identity, node, {"name": data.name})
    _publish(session, node, project)
    return project


def get_project(session: Session, identity: Identity, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"项目不存在: {project_id} (unknown project)", slug="unknown-project")
    identity.check_read(project.region_code)
    return project


def update_project(
    session: Session, identity: Identity, node: str, project_id: int, patch: ProjectPatch
) -> Project:
    """Change fields of a project; the change and its reason are audited."""
    project = get_project(session, identity, project_id)
    identity.check_write(project.region_code, *EDIT_ROLES)
    changes = patch.model_dump(exclude_unset=True, exclude={"reason"})
    merged = {f: changes.get(f, getattr(project, f)) for f in FIELDS}
    try:
        check_money(
            None
            if merged["total_investment"] is None
            else Decimal(str(merged["total_investment"])),
            None
            if merged["fiscal_investment"] is None
            else Decimal(str(merged["fiscal_investment"])),
            None
            if merged["social_investment"] is None
            else Decimal(str(merged["social_investment"])),
        )
    except ValueError as exc:
        raise ValidationFailed(
            str(exc), errors=[{"field": "total_investment", "message": str(exc)}]
        ) from exc
    if merged["end_month"] < merged["start_month"]:
        raise ValidationFailed(
            "建设时序止早于起 (schedule ends before it starts)",
            errors=[{"field": "end_month", "message": "before start_month"}],
        )
    diff = {
        f: {"from": _plain(getattr(project, f)), "to": _plain(v)}
        for f, v in changes.items()
        if _plain(getattr(project, f)) != _plain(v)
    }
    for f, v in changes.items():
        setattr(project, f, v)
    project.updated_at = utcnow()
    session.flush()
    audit(
        session,
        "project",
        project.id,
        "update",
        identity,
        node,
        {
            "changes": {k: {kk: str(vv) for kk, vv in v.items()} for k, v in diff.items()},
            "reason": patch.reason,
        },
    )
    _publish(session, node, project)
    return project


def list_projects(
    session: Session,
    identity: Identity,
    region_code: str | None = None,
    year: int | None = None,
    task_id: int | None = None,
    cursor: int | None = None,
    limit: int = 100,
) -> list[Project]:
    """Projects in a region's subtree, optionally those scheduled in a year or serving a task."""
    region = region_code or identity.region
    identity.check_read(region)
    stmt = select(Project).where(Project.region_code.startswith(prefix_of(region)))
    if year is not None:
        stmt = stmt.where(Project.start_month <= f"{year}-12", Project.end_month >= f"{year}-01")
    if task_id is not None:
        stmt = stmt.where(
            Project.id.in_(select(ProjectTask.project_id).where(ProjectTask.task_id == task_id))
        )
    if cursor is not None:
        stmt = stmt.where(Project.id > cursor)
    return list(session.scalars(stmt.order_by(Project.id).limit(limit)))


def link_task(
    session: Session, identity: Identity, node: str, project_id: int, task_id: int
) -> Project:
    """Link a project to a rectification task it helps to solve."""
    project = get_project(session, identity, project_id)
    identity.check_write(project.region_code, *EDIT_ROLES)
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"整改任务不存在: {task_id} (unknown task)", slug="unknown-task")
    identity.check_read(task.region_code)
    if not related(project.region_code, task.region_code):
        raise ValidationFailed(
            "项目与任务不属于同一区划 (project and task are in unrelated regions)",
            errors=[{"field": "task_id", "message": "unrelated region"}],
        )
    if session.get(ProjectTask, (project.id, task.id)):
        raise Conflict("项目已关联该任务 (already linked)", slug="already-linked")
    session.add(ProjectTask(project_id=project.id, task_id=task.id, linked_by=identity.subject))
    session.flush()
    audit(session, "project", project.id, "link_task", identity, node, {"task_id": task.id})
    _publish(session, node, project)
    return project


def unlink_task(
    session: Session, identity: Identity, node: str, project_id: int, task_id: int
) -> Project:
    """Remove a project–task link."""
    project = get_project(session, identity, project_id)
    identity.check_write(project.region_code, *EDIT_ROLES)
    gone = session.execute(
        delete(ProjectTask).where(
            ProjectTask.project_id == project.id, ProjectTask.task_id == task_id
        )
    ).rowcount  # type: ignore[attr-defined]
    if not gone:
        raise NotFound("项目未关联该任务 (no such link)", slug="no-link")
    audit(session, "project", project.id, "unlink_task", identity, node, {"task_id": task_id})
    _publish(session, node, project)
    return project
