"""Responses: the anonymous submission link, and the reviewers' view of screened responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.survey.campaigns.service import get_campaign
from services.survey.common import limited_body
from services.survey.responses import review
from services.survey.responses.intake import (
    HARD_BODY_LIMIT,
    AttemptLimiter,
    FormCache,
    Receipt,
    client_address,
    public_form,
    submit_response,
)
from shared.db import DbSession
from shared.identity import CurrentIdentity

public_router = APIRouter(prefix="/api/v1/public/campaigns", tags=["public 公开填报"])
router = APIRouter(prefix="/api/v1/campaigns", tags=["responses 答卷审核"])


def _secret(request: Request) -> str:
    return str(request.app.state.settings.internal_secret.get_secret_value())


def _forms(request: Request) -> FormCache:
    cache: FormCache = request.app.state.survey_forms
    return cache


def _limiter(request: Request) -> AttemptLimiter:
    limiter: AttemptLimiter = request.app.state.survey_limiter
    return limiter


@public_router.get("/{token}", summary="获取问卷 (form for the public link)")
def get_form(token: str, request: Request, session: DbSession) -> dict[str, Any]:
    """The questionnaire behind a campaign link, with a signed start time for timing."""
    return public_form(session, token, _secret(request), _forms(request))


@public_router.post(
    "/{token}/responses",
    status_code=201,
    response_model=Receipt,
    summary="提交答卷 (submit a response)",
    responses={
        200: {"description": "重复提交，返回原结果 (replay of an earlier submission)"},
        413: {"description": "答卷过大 (too large)"},
        429: {"description": "提交过于频繁 (rate limited)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["client_id", "answers"],
                        "properties": {
                            "client_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
                            "answers": {"type": "object"},
                            "meta": {
                                "type": "object",
                                "properties": {
                                    "form_session": {"type": "string"},
                                    "duration_s": {"type": "number"},
                                    "device": {"type": "string"},
                                    "located_region": {"type": "string"},
                                },
                            },
                        },
                    }
                }
            },
        }
    },
)
def submit(
    token: str,
    request: Request,
    session: DbSession,
    body: Annotated[bytes, Depends(limited_body(HARD_BODY_LIMIT))],
) -> JSONResponse:
    """Submit one response; the same client_id with the same content returns the first receipt."""
    receipt, created = submit_response(
        session,
        token=token,
        body=body,
        addr=client_address(request),
        secret=_secret(request),
        forms=_forms(request),
        limiter=_limiter(request),
    )
    return JSONResponse(
        receipt.model_dump(mode="json"),
        status_code=201 if created else 200,
        headers={} if created else {"idempotent-replayed": "true"},
    )


class ResponseOut(BaseModel):
    id: int
    client_id: str
    received_at: datetime
    duration_s: float | None
    timing: str
    region_code: str
    located_region: str | None
    status: str
    flags: list[dict[str, Any]]
    answers: dict[str, Any]
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None

    model_config = {"from_attributes": True}


class ResponsePage(BaseModel):
    items: list[ResponseOut]
    next_cursor: str | None = None


class ReviewIn(BaseModel):
    note: str = Field(min_length=1, max_length=1000, description="审核理由 (reason)")


@router.get("/{campaign_id}/responses", response_model=ResponsePage, summary="答卷列表 (review)")
def list_responses(
    campaign_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    status: Literal["included", "excluded"] | None = None,
    flag: str | None = None,
    cursor: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ResponsePage:
    """Responses of a campaign, filtered by status or screening flag, kept whole."""
    c = get_campaign(session, campaign_id, identity)
    rows = review.list_responses(session, c, status=status, flag=flag, cursor=cursor, limit=limit)
    return ResponsePage(
        items=[ResponseOut.model_validate(r) for r in rows],
        next_cursor=str(rows[-1].id) if len(rows) == limit else None,
    )


@router.get("/{campaign_id}/screening", summary="筛查汇总 (screening summary)")
def screening_summary(
    campaign_id: int, session: DbSession, identity: CurrentIdentity
) -> dict[str, Any]:
    """Counts of responses per screening flag, included and excluded."""
    c = get_campaign(session, campaign_id, identity)
    return review.screening_summary(session, c)


@router.get(
    "/{campaign_id}/responses/{response_id}", response_model=ResponseOut, summary="答卷详情"
)
def get_response(
    campaign_id: int, response_id: int, session: DbSession, identity: CurrentIdentity
) -> ResponseOut:
    """One response with its answers, flags and review."""
    c = get_campaign(session, campaign_id, identity)
    return ResponseOut.model_validate(review.get_response(session, c, response_id))


@router.post(
    "/{campaign_id}/responses/{response_id}/reinstate",
    response_model=ResponseOut,
    summary="恢复答卷 (reinstate)",
)
def reinstate(
    campaign_id: int,
    response_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    body: Annotated[ReviewIn, Body()],
) -> ResponseOut:
    """Count a flagged response again (the flags stay on record)."""
    c = get_campaign(session, campaign_id, identity)
    r = review.set_status(session, c, response_id, "reinstate", body.note, identity)
    return ResponseOut.model_validate(r)


@router.post(
    "/{campaign_id}/responses/{response_id}/exclude",
    response_model=ResponseOut,
    summary="剔除答卷 (exclude)",
)
def exclude(
    campaign_id: int,
    response_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    body: Annotated[ReviewIn, Body()],
) -> ResponseOut:
    """Exclude a response by hand; it is kept and can be reinstated."""
    c = get_campaign(session, campaign_id, identity)
    r = review.set_status(session, c, response_id, "exclude", body.note, identity)
    return ResponseOut.model_validate(r)
