"""The problem list (问题清单)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.report.deps import NodeId
from services.report.problems import service
from services.report.problems.schemas import DismissIn, ProblemIn, ProblemOut, ProblemPage
from shared.db import DbSession
from shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/problems", tags=["problems 问题清单"])


@router.get("", response_model=ProblemPage, summary="问题清单 (list problems)")
def list_problems(
    session: DbSession,
    identity: CurrentIdentity,
    region_code: str | None = None,
    period: str | None = None,
    severity: Literal["high", "medium", "low"] | None = None,
    status: Literal["open", "assigned", "closed", "dismissed"] | None = None,
    category: str | None = None,
    indicator_code: str | None = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d+$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ProblemPage:
    """Problems in a region's subtree, filtered, cursor-paginated by id."""
    rows = service.list_problems(
        session,
        identity,
        region_code=region_code,
        period=period,
        severity=severity,
        status=status,
        category=category,
        indicator_code=indicator_code,
        cursor=int(cursor) if cursor else None,
        limit=limit,
    )
    return ProblemPage(
        items=[ProblemOut.model_validate(p) for p in rows],
        next_cursor=str(rows[-1].id) if len(rows) == limit else None,
    )


@router.post("", response_model=ProblemOut, status_code=201, summary="录入问题 (enter a problem)")
def create_problem(
    data: ProblemIn, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> ProblemOut:
    """Enter a problem found outside the diagnosis rules, with its evidence."""
    return ProblemOut.model_validate(service.create_problem(session, identity, node, data))


@router.get("/{problem_id}", response_model=ProblemOut, summary="问题详情 (one problem)")
def get_problem(problem_id: int, session: DbSession, identity: CurrentIdentity) -> ProblemOut:
    """One problem with its evidence."""
    return ProblemOut.model_validate(service.get_problem(session, identity, problem_id))


@router.post("/{problem_id}/dismiss", response_model=ProblemOut, summary="撤销问题 (dismiss)")
def dismiss(
    problem_id: int, data: DismissIn, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> ProblemOut:
    """Mark an open problem as not to be rectified, with the reason."""
    return ProblemOut.model_validate(
        service.dismiss_problem(session, identity, node, problem_id, data.reason)
    )
