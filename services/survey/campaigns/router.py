"""Campaign endpoints: link and dates, population margins, sampling plan, live progress."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.survey.campaigns import service
from services.survey.campaigns.schemas import (
    CampaignIn,
    CampaignOut,
    CampaignPage,
    CampaignPatch,
    PlanIn,
    PopulationOut,
    Progress,
    QuotaOut,
)
from services.survey.common import limited_body
from services.survey.questionnaires.schemas import EventOut
from shared.db import DbSession
from shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns 调查活动"])

MAX_POPULATION_BYTES = 10 * 1024 * 1024


@router.post("", status_code=201, response_model=CampaignOut, summary="新建调查活动 (create)")
def create_campaign(body: CampaignIn, session: DbSession, identity: CurrentIdentity) -> CampaignOut:
    """Create a draft campaign on a released questionnaire; its link token is issued now."""
    return service.campaign_out(service.create_campaign(session, body, identity))


@router.get("", response_model=CampaignPage, summary="调查活动列表 (list)")
def list_campaigns(
    session: DbSession,
    identity: CurrentIdentity,
    period: str | None = None,
    cursor: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CampaignPage:
    """Campaigns in the caller's scope, cursor-paginated by id."""
    rows = service.list_campaigns(session, identity, period=period, cursor=cursor, limit=limit)
    return CampaignPage(
        items=[service.campaign_out(c) for c in rows],
        next_cursor=str(rows[-1].id) if len(rows) == limit else None,
    )


@router.get("/{campaign_id}", response_model=CampaignOut, summary="调查活动详情 (one)")
def get_campaign(campaign_id: int, session: DbSession, identity: CurrentIdentity) -> CampaignOut:
    """One campaign, with whether its link accepts submissions now."""
    return service.campaign_out(service.get_campaign(session, campaign_id, identity))


@router.patch("/{campaign_id}", response_model=CampaignOut, summary="修改调查活动 (update)")
def patch_campaign(
    campaign_id: int, body: CampaignPatch, session: DbSession, identity: CurrentIdentity
) -> CampaignOut:
    """Change name, dates, indicator system or settings (merged and validated)."""
    return service.campaign_out(service.patch_campaign(session, campaign_id, body, identity))


@router.post("/{campaign_id}/open", response_model=CampaignOut, summary="开放链接 (open)")
def open_campaign(campaign_id: int, session: DbSession, identity: CurrentIdentity) -> CampaignOut:
    """Open the public link (submissions count between opens_at and closes_at)."""
    return service.campaign_out(service.open_or_close(session, campaign_id, "open", identity))


@router.post("/{campaign_id}/close", response_model=CampaignOut, summary="关闭链接 (close)")
def close_campaign(campaign_id: int, session: DbSession, identity: CurrentIdentity) -> CampaignOut:
    """Close the public link; every response received is kept."""
    return service.campaign_out(service.open_or_close(session, campaign_id, "close", identity))


@router.put(
    "/{campaign_id}/population",
    response_model=PopulationOut,
    summary="上传人口边际 (population margins, JSON or CSV)",
)
def set_population(
    campaign_id: int,
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    body: Annotated[bytes, Depends(limited_body(MAX_POPULATION_BYTES))],
) -> PopulationOut:
    """Replace the population margins (region × age band × sex); a bad row rejects all."""
    ctype = request.headers.get("content-type", "application/json")
    return PopulationOut.model_validate(
        service.set_population(session, campaign_id, body, ctype, identity)
    )


@router.get("/{campaign_id}/population", response_model=PopulationOut, summary="人口边际")
def get_population(
    campaign_id: int, session: DbSession, identity: CurrentIdentity
) -> PopulationOut:
    """Totals of the stored population margins."""
    c = service.get_campaign(session, campaign_id, identity)
    return PopulationOut.model_validate(service.population_summary(session, c))


@router.put("/{campaign_id}/plan", response_model=list[QuotaOut], summary="抽样方案 (quotas)")
def set_plan(
    campaign_id: int, body: PlanIn, session: DbSession, identity: CurrentIdentity
) -> list[QuotaOut]:
    """Set quotas: proportional to population with a floor per region, or explicit targets."""
    return [
        QuotaOut.model_validate(t) for t in service.set_plan(session, campaign_id, body, identity)
    ]


@router.get("/{campaign_id}/plan", response_model=list[QuotaOut], summary="抽样方案")
def get_plan(campaign_id: int, session: DbSession, identity: CurrentIdentity) -> list[QuotaOut]:
    """The campaign's quota targets."""
    c = service.get_campaign(session, campaign_id, identity)
    return [QuotaOut.model_validate(t) for t in service.quota_targets(session, c)]


@router.get("/{campaign_id}/progress", response_model=Progress, summary="进度与缺口 (progress)")
def get_progress(campaign_id: int, session: DbSession, identity: CurrentIdentity) -> Progress:
    """Live counts against quotas by region and by age × sex, with shortfalls."""
    c = service.get_campaign(session, campaign_id, identity)
    return service.progress(session, c)


@router.get("/{campaign_id}/events", response_model=list[EventOut], summary="操作记录")
def campaign_events(
    campaign_id: int, session: DbSession, identity: CurrentIdentity
) -> list[EventOut]:
    """The audit trail of a campaign (settings, reviews, results, publications)."""
    c = service.get_campaign(session, campaign_id, identity)
    return [EventOut.model_validate(e) for e in service.campaign_events(session, c)]
