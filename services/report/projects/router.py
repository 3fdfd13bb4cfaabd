"""Renewal projects (项目清单) linked to rectification tasks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.report.deps import NodeId
from services.report.projects import service
from services.report.projects.schemas import ProjectIn, ProjectOut, ProjectPage, ProjectPatch
from shared.db import DbSession
from shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/projects", tags=["projects 项目清单"])


def _out(session: DbSession, project: object) -> ProjectOut:
    ids = service.task_ids_of(session, [project.id])[project.id]  # type: ignore[attr-defined]
    return ProjectOut.model_validate(service.project_dict(project, ids))  # type: ignore[arg-type]


@router.post("", response_model=ProjectOut, status_code=201, summary="新增更新项目 (add project)")
def create_project(
    data: ProjectIn, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> ProjectOut:
    """Add a renewal project (fiscal + social funds must equal the total, in 万元)."""
    return _out(session, service.create_project(session, identity, node, data))


@router.get("", response_model=ProjectPage, summary="项目清单 (list projects)")
def list_projects(
    session: DbSession,
    identity: CurrentIdentity,
    region_code: str | None = None,
    year: int | None = None,
    task_id: int | None = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d+$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ProjectPage:
    """Projects in a region's subtree (scheduled in ``year`` / serving ``task_id``)."""
    rows = service.list_projects(
        session, identity, region_code, year, task_id, int(cursor) if cursor else None, limit
    )
    links = service.task_ids_of(session, [p.id for p in rows])
    return ProjectPage(
        items=[ProjectOut.model_validate(service.project_dict(p, links[p.id])) for p in rows],
        next_cursor=str(rows[-1].id) if len(rows) == limit else None,
    )


@router.get("/{project_id}", response_model=ProjectOut, summary="项目详情 (one project)")
def get_project(project_id: int, session: DbSession, identity: CurrentIdentity) -> ProjectOut:
    """One project with the tasks it serves."""
    return _out(session, service.get_project(session, identity, project_id))


@router.patch("/{project_id}", response_model=ProjectOut, summary="修改项目 (update project)")
def update_project(
    project_id: int,
    patch: ProjectPatch,
    session: DbSession,
    identity: CurrentIdentity,
    node: NodeId,
) -> ProjectOut:
    """Change fields of a project, with the reason (audited)."""
    return _out(session, service.update_project(session, identity, node, project_id, patch))


@router.put("/{project_id}/tasks/{task_id}", response_model=ProjectOut, summary="关联整改任务")
def link_task(
    project_id: int, task_id: int, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> ProjectOut:
    """Link the project to a rectification task it helps to solve."""
    return _out(session, service.link_task(session, identity, node, project_id, task_id))


@router.delete("/{project_id}/tasks/{task_id}", response_model=ProjectOut, summary="取消关联")
def unlink_task(
    project_id: int, task_id: int, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> ProjectOut:
    """Remove the link between the project and a task."""
    return _out(session, service.unlink_task(session, identity, node, project_id, task_id))
