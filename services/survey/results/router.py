"""Results endpoints: compute weights and breakdowns, read them, publish, themes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel

from services.survey.campaigns.service import get_campaign
from services.survey.results import publish, service, themes
from shared.db import DbSession
from shared.identity import CurrentIdentity
from shared.peers import PeersDep

router = APIRouter(prefix="/api/v1/campaigns", tags=["results 调查结果"])

Breakdown = Literal[
    "overall", "region", "street", "age_band", "sex", "age_sex", "tenure", "residence"
]


class RunOut(BaseModel):
    id: int
    campaign_id: int
    region_code: str
    period: str
    weighting: dict[str, Any]
    computed_by: str
    computed_at: datetime
    seconds: float

    model_config = {"from_attributes": True}


class ResultsOut(BaseModel):
    run: RunOut
    items: list[dict[str, Any]]


class WeightOut(BaseModel):
    region_code: str
    age_band: str
    sex: str
    n: int
    population: float | None
    weight: float

    model_config = {"from_attributes": True}


class WeightsOut(BaseModel):
    run: RunOut
    cells: list[WeightOut]


class PublishIn(BaseModel):
    run_id: int | None = None
    system_id: int | None = None


class PublicationOut(BaseModel):
    id: int
    run_id: int
    system_id: int
    period: str
    status: str
    rows_sent: int
    batch: dict[str, Any]
    published_by: str
    published_at: datetime

    model_config = {"from_attributes": True}


class DisagreementOut(BaseModel):
    region_code: str
    target_code: str
    satisfaction_indicator: str
    rate: float
    rate_lo: float | None
    rate_hi: float | None
    n: int
    objective_indicator: str
    objective_source: str
    objective_value: float | None
    grade: str
    kind: str

    model_config = {"from_attributes": True}


class DisagreementsOut(BaseModel):
    publication: PublicationOut | None
    items: list[DisagreementOut]


@router.post(
    "/{campaign_id}/results", status_code=201, response_model=RunOut, summary="计算加权结果"
)
def compute_results(
    campaign_id: int, session: DbSession, identity: CurrentIdentity, rebuild: bool = False
) -> RunOut:
    """Rake weights to the population margins and compute every breakdown with 95% CIs."""
    c = get_campaign(session, campaign_id, identity)
    return RunOut.model_validate(service.compute_results(session, c, identity, rebuild=rebuild))


@router.get("/{campaign_id}/results", response_model=ResultsOut, summary="加权结果 (results)")
def read_results(
    campaign_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    run_id: int | None = None,
    breakdown: Breakdown | None = None,
    target: str | None = None,
    group: str | None = None,
) -> ResultsOut:
    """Weighted satisfaction rate and mean score with CIs and n, by breakdown and target."""
    c = get_campaign(session, campaign_id, identity)
    run = service.latest_run(session, c, run_id)
    items = service.read_results(session, run, breakdown=breakdown, target=target, group=group)
    return ResultsOut(run=RunOut.model_validate(run), items=items)


@router.get("/{campaign_id}/weights", response_model=WeightsOut, summary="权重报告 (weights)")
def read_weights(
    campaign_id: int, session: DbSession, identity: CurrentIdentity, run_id: int | None = None
) -> WeightsOut:
    """Cell weights of a run and its weighting report (design effect, effective n, trimming)."""
    c = get_campaign(session, campaign_id, identity)
    run = service.latest_run(session, c, run_id)
    return WeightsOut(
        run=RunOut.model_validate(run),
        cells=[WeightOut.model_validate(w) for w in service.read_weights(session, run)],
    )


@router.post(
    "/{campaign_id}/publish", response_model=PublicationOut, summary="发布为满意度指标 (publish)"
)
async def publish_results(
    campaign_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    peers: PeersDep,
    body: PublishIn = Body(default_factory=PublishIn),
) -> PublicationOut:
    """Write mapped satisfaction indicators to the indicator service (source "survey")."""
    c = get_campaign(session, campaign_id, identity)
    pub = await publish.publish_results(
        session, c, identity, peers, run_id=body.run_id, system_id=body.system_id
    )
    return PublicationOut.model_validate(pub)


@router.get(
    "/{campaign_id}/disagreements",
    response_model=DisagreementsOut,
    summary="主客观不一致 (disagreements)",
)
def disagreements(
    campaign_id: int, session: DbSession, identity: CurrentIdentity
) -> DisagreementsOut:
    """Places where satisfaction and the objective grade disagree (latest publication)."""
    c = get_campaign(session, campaign_id, identity)
    pub, items = publish.disagreements_of(session, c)
    return DisagreementsOut(
        publication=PublicationOut.model_validate(pub) if pub else None,
        items=[DisagreementOut.model_validate(d) for d in items],
    )


@router.get("/{campaign_id}/themes", summary="开放题主题 (open-text themes)")
def theme_counts(campaign_id: int, session: DbSession, identity: CurrentIdentity) -> dict[str, Any]:
    """Open-text answers per theme and region: candidate problems for the report service."""
    c = get_campaign(session, campaign_id, identity)
    return themes.theme_counts(session, c)
