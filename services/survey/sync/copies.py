"""Applying a child's published results as read-only copies with their origin."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from services.survey.models import ReceivedResult
from shared.dbtypes import utcnow
from shared.sync import Change

__all__ = ["ResultPayload", "apply_results"]


class _Open(BaseModel):
    # A newer child may send more than this node knows: kept, not refused.
    model_config = ConfigDict(extra="allow")


class _CampaignRef(_Open):
    id: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=200)


class _PublicationRef(_Open):
    id: int = Field(ge=1)
    published_at: datetime
    published_by: str = Field(max_length=100)


class _Target(_Open):
    kind: Literal["overall", "dimension", "question"]
    code: str = Field(min_length=1, max_length=60)


class _Figure(_Open):
    breakdown: Literal["overall", "region"]
    region_code: str = Field(min_length=6, max_length=12)
    target: _Target
    n: int = Field(ge=0)
    suppressed: bool
    rate: float | None = None
    rate_ci: list[float | None] | None = Field(default=None, min_length=2, max_length=2)
    mean: float | None = None
    mean_ci: list[float | None] | None = Field(default=None, min_length=2, max_length=2)


class ResultPayload(_Open):
    """One published campaign result: where, when, and the figures."""

    region_code: str = Field(min_length=6, max_length=12)
    period: str = Field(min_length=1, max_length=10)
    campaign: _CampaignRef
    publication: _PublicationRef
    figures: list[_Figure] = Field(max_length=100_000)


def apply_results(session: Session, changes: list[Change]) -> None:
    """Upsert the latest copy per (origin, key): one delete and one multi-row insert."""
    latest: dict[tuple[str, str], Change] = {}
    for change in changes:  # seq order: a later change of the same key wins
        latest[(change.origin, change.key)] = change
    if not latest:
        return
    r = ReceivedResult
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for c in latest.values():
        p = ResultPayload.model_validate(c.payload)
        rows.append(
            {
                "origin_node": c.origin,
                "entity_key": c.key,
                "campaign_ref": p.campaign.id,
                "publication_ref": p.publication.id,
                "region_code": p.region_code,
                "period": p.period,
                "published_at": p.publication.published_at,
                "seq": c.seq,
                "payload": c.payload,
                "received_at": now,
            }
        )
    by_origin: dict[str, list[str]] = {}
    for origin, key in latest:
        by_origin.setdefault(origin, []).append(key)
    for origin, keys in by_origin.items():
        session.execute(
            delete(r)
            .where(r.origin_node == origin, r.entity_key.in_(keys))
            .execution_options(synchronize_session=False)
        )
    session.execute(insert(r), rows)
