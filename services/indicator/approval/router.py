"""HTTP endpoints of the indicator service's approval domain."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from services.indicator.approval import service
from services.indicator.approval.schemas import (
    EventOut,
    State,
    SubmissionOut,
    SubmissionPage,
    SubmissionSummary,
    TransitionIn,
)
from shared.db import DbSession
from shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/submissions", tags=["approval 审核"])

RegionPath = Annotated[str, Path(pattern=r"^\d{6}(\d{3}){0,2}$", description="区划代码")]
PeriodPath = Annotated[str, Path(max_length=10, description="期间，如 2025")]


def _out(view: service.SubmissionView) -> SubmissionOut:
    sub = view.submission
    return SubmissionOut(
        id=sub.id if sub else None,
        system_id=view.system_id,
        region_code=view.region_code,
        period=view.period,
        state=sub.state if sub else "draft",  # type: ignore[arg-type]
        locked=sub.locked if sub else False,
        reason=sub.reason if sub else None,
        updated_by=sub.updated_by if sub else None,
        updated_at=sub.updated_at if sub else None,
        values=view.values,
        flagged=view.flagged,
        events=[EventOut.model_validate(e) for e in view.events],
    )


@router.get("", response_model=SubmissionPage, summary="填报列表 (submissions in scope)")
def list_submissions(
    session: DbSession,
    identity: CurrentIdentity,
    system_id: int | None = None,
    period: Annotated[str | None, Query(max_length=10)] = None,
    state: State | None = None,
    region_code: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SubmissionPage:
    """Submissions in the caller's scope; state=submitted is a reviewer's queue."""
    rows, next_cursor = service.list_submissions(
        session,
        identity,
        system_id=system_id,
        period=period,
        state=state,
        region_code=region_code,
        cursor=cursor,
        limit=limit,
    )
    return SubmissionPage(
        items=[SubmissionSummary.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/{system_id}/{region_code}/{period}",
    response_model=SubmissionOut,
    summary="填报状态与审核记录 (state and events)",
)
def get_submission(
    system_id: int,
    region_code: RegionPath,
    period: PeriodPath,
    session: DbSession,
    identity: CurrentIdentity,
) -> SubmissionOut:
    """State of a region's data for a system and period, with every transition."""
    return _out(service.submission_view(session, identity, system_id, region_code, period))


@router.post(
    "/{system_id}/{region_code}/{period}/{action}",
    response_model=SubmissionOut,
    summary="提交、审核通过、退回或解锁 (submit / approve / reject / unlock)",
)
def transition(
    system_id: int,
    region_code: RegionPath,
    period: PeriodPath,
    action: Literal["submit", "approve", "reject", "unlock"],
    session: DbSession,
    identity: CurrentIdentity,
    body: TransitionIn | None = None,
) -> SubmissionOut:
    """submit (data_entry/admin), approve, reject with reason, unlock with reason (reviewer)."""
    view = service.transition(
        session, identity, system_id, region_code, period, action, body.reason if body else None
    )
    return _out(view)
