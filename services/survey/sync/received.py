"""Reading the children's published results kept here, within the caller's region scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from services.survey.models import ReceivedResult
from shared.db import DbSession
from shared.identity import CurrentIdentity, Identity
from shared.regions import prefix_of

__all__ = ["ReceivedResultOut", "ReceivedResultPage", "list_received", "router"]

router = APIRouter(prefix="/api/v1/surveys", tags=["federation 下级调查结果"])


class ReceivedResultOut(BaseModel):
    """A child node's publication as received: origin, region, campaign and figures."""

    id: int
    origin_node: str
    key: str
    region_code: str
    period: str
    campaign_id: int
    campaign_name: str
    publication_id: int
    published_at: datetime
    published_by: str
    # False once a later publication of the same campaign has arrived from the origin.
    current: bool
    questionnaire: dict[str, Any]
    sample: dict[str, Any]
    weighting: dict[str, Any]
    overall: dict[str, Any] | None
    figures: list[dict[str, Any]]
    publication: dict[str, Any]
    received_at: datetime


class ReceivedResultPage(BaseModel):
    items: list[ReceivedResultOut]
    next_cursor: str | None = None


def list_received(
    session: Session,
    identity: Identity,
    *,
    region_code: str | None,
    period: str | None,
    origin_node: str | None,
    history: bool,
    cursor: int | None,
    limit: int,
) -> list[tuple[ReceivedResult, bool]]:
    """Copies inside the caller's scope by id, each with whether it is its campaign's latest."""
    scope = identity.read_scope(region_code)
    r = ReceivedResult
    newer = aliased(ReceivedResult)
    superseded = exists().where(
        newer.origin_node == r.origin_node,
        newer.campaign_ref == r.campaign_ref,
        newer.publication_ref > r.publication_ref,
    )
    stmt = (
        select(r, (~superseded).label("current"))
        .where(r.region_code.startswith(prefix_of(scope)))
        .order_by(r.id)
        .limit(limit)
    )
    if period:
        stmt = stmt.where(r.period == period)
    if origin_node:
        stmt = stmt.where(r.origin_node == origin_node)
    if not history:
        stmt = stmt.where(~superseded)
    if cursor:
        stmt = stmt.where(r.id > cursor)
    return [(row[0], bool(row[1])) for row in session.execute(stmt)]


def received_out(copy: ReceivedResult, current: bool) -> ReceivedResultOut:
    p = copy.payload
    pub = dict(p.get("publication") or {})
    return ReceivedResultOut(
        id=copy.id,
        origin_node=copy.origin_node,
        key=copy.entity_key,
        region_code=copy.region_code,
        period=copy.period,
        campaign_id=copy.campaign_ref,
        campaign_name=str((p.get("campaign") or {}).get("name", "")),
        publication_id=copy.publication_ref,
        published_at=copy.published_at,
        published_by=str(pub.get("published_by", "")),
        current=current,
        questionnaire=dict(p.get("questionnaire") or {}),
        sample=dict(p.get("sample") or {}),
        weighting=dict(p.get("weighting") or {}),
        overall=p.get("overall"),
        figures=list(p.get("figures") or []),
        publication=pub,
        received_at=copy.received_at,
    )


@router.get(
    "/received-results",
    response_model=ReceivedResultPage,
    summary="下级节点发布的满意度结果 (children's published results)",
)
def received_results(
    session: DbSession,
    identity: CurrentIdentity,
    region_code: str | None = None,
    period: str | None = None,
    origin_node: str | None = None,
    history: bool = False,
    cursor: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ReceivedResultPage:
    """Read-only copies of the results child nodes published, within the caller's scope.

    By default only the latest publication of each campaign; ``history=true`` also lists
    the superseded ones (``current`` false). Cursor-paginated by id.
    """
    rows = list_received(
        session,
        identity,
        region_code=region_code,
        period=period,
        origin_node=origin_node,
        history=history,
        cursor=cursor,
        limit=limit,
    )
    return ReceivedResultPage(
        items=[received_out(copy, current) for copy, current in rows],
        next_cursor=str(rows[-1][0].id) if len(rows) == limit else None,
    )
