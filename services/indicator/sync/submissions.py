"""Submissions across tiers: the owner's states go up, upper reviews come down.

The owner node (where the region's data is entered) runs the state machine of
``services.indicator.approval``; its parents keep a mirror (``Submission.origin_node`` =
the owner's node id) updated only from the owner's stream. An upper-tier decision is
published down to the owner, applied there, and its outcome comes back up as the owner's
state — one source of truth, no last-writer-wins.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from services.indicator.sync.outgoing import bound_node, system_key
from services.indicator.sync.tables import SYNC
from shared.regions import tier_of
from shared.sync import Change, publish_down, record_change
from shared.sync.node import records_upward

__all__ = [
    "REVIEW_ENTITY",
    "SUBMISSION_ENTITY",
    "ReviewPayload",
    "SubmissionPayload",
    "apply_reviews",
    "apply_submission_states",
    "bound_node",
    "child_stream_towards",
    "publish_review",
    "record_submission",
    "relay_review",
    "submission_key",
]

SUBMISSION_ENTITY = "submission"
REVIEW_ENTITY = "review"
_RANK = {"province": 0, "city": 1, "county": 2}


class SubmissionPayload(BaseModel):
    """The owner's submission state after one transition."""

    system: str = Field(description="code@year@version")
    region_code: str
    period: str
    state: str
    action: str
    reason: str | None = None
    actor: str
    actor_region: str


class ReviewPayload(BaseModel):
    """An upper tier's decision about a lower node's submission."""

    system: str
    region_code: str
    period: str
    action: str  # approve | reject
    to_state: str
    reason: str | None = None
    actor: str
    actor_region: str
    level: str  # tier of the deciding node


def submission_key(system: str, region_code: str, period: str) -> str:
    """Stable key of a submission across nodes."""
    return f"{system}/{region_code}/{period}"


def region_tier(region_code: str) -> str:
    """The node tier that owns a region's data (a street's is its county's)."""
    return tier_of(region_code[:6])


def child_stream_towards(node_region: str, region_code: str) -> str:
    """The code of this node's direct child region on the way down to ``region_code``."""
    rank = _RANK[tier_of(node_region)] + 1
    county = region_code[:6]
    if rank == 1 and _RANK[tier_of(county)] >= 1:
        city = county[:4] + "00"
        return city if tier_of(city) == "city" else county
    return county


def record_submission(
    session: Session,
    *,
    code: str,
    year: int,
    version: int,
    region_code: str,
    period: str,
    state: str,
    action: str,
    reason: str | None,
    actor: str,
    actor_region: str,
) -> None:
    """Record the owner's new submission state for the parent (caller's transaction)."""
    if not records_upward(session):
        return
    skey = system_key(code, year, version)
    payload: dict[str, Any] = {
        "system": skey,
        "region_code": region_code,
        "period": period,
        "state": state,
        "action": action,
        "reason": reason,
        "actor": actor,
        "actor_region": actor_region,
    }
    record_change(
        session,
        SYNC,
        entity=SUBMISSION_ENTITY,
        key=submission_key(skey, region_code, period),
        op="upsert",
        payload=payload,
    )


def publish_review(
    session: Session,
    *,
    code: str,
    year: int,
    version: int,
    region_code: str,
    period: str,
    action: str,
    to_state: str,
    reason: str | None,
    actor: str,
    actor_region: str,
) -> None:
    """Queue an upper-tier decision for the child on the way to the owner."""
    node = bound_node(session)
    if node is None:
        raise RuntimeError("an upper-tier review needs the node bound to the session")
    skey = system_key(code, year, version)
    publish_down(
        session,
        SYNC,
        stream=child_stream_towards(node.region, region_code),
        entity=REVIEW_ENTITY,
        key=submission_key(skey, region_code, period),
        op="review",
        payload={
            "system": skey,
            "region_code": region_code,
            "period": period,
            "action": action,
            "to_state": to_state,
            "reason": reason,
            "actor": actor,
            "actor_region": actor_region,
            "level": tier_of(node.region),
        },
    )


def relay_review(node_region: str, change: Change) -> str | None:
    """A city passes a review about one of its counties on to that county's stream."""
    region = str(change.payload.get("region_code", ""))
    if region[:6] == node_region or tier_of(node_region) == "county":
        return None
    return child_stream_towards(node_region, region)


def apply_submission_states(session: Session, changes: list[Change]) -> None:
    """Parent: mirror each state the owner reached (with an event naming the owner)."""
    from services.indicator.approval.service import mirror_state
    from services.indicator.sync.values import system_ids

    ids = system_ids(session, {c.payload["system"] for c in changes})
    for change in changes:
        p = SubmissionPayload.model_validate(change.payload)
        mirror_state(
            session,
            system_id=ids[p.system],
            region_code=p.region_code,
            period=p.period,
            state=p.state,
            action=p.action,
            reason=p.reason,
            actor=f"{change.origin}:{p.actor}",
            actor_region=p.actor_region,
            origin_node=change.origin,
        )


def apply_reviews(session: Session, changes: list[Change]) -> None:
    """Owner: apply each upper-tier decision to its submission (others pass through)."""
    from services.indicator.approval.service import apply_review
    from services.indicator.sync.values import system_ids

    ids = system_ids(session, {c.payload["system"] for c in changes})
    for change in changes:
        p = ReviewPayload.model_validate(change.payload)
        apply_review(
            session,
            system_id=ids[p.system],
            region_code=p.region_code,
            period=p.period,
            action=p.action,
            to_state=p.to_state,
            reason=p.reason,
            actor=f"{change.origin}:{p.actor}",
            actor_region=p.actor_region,
        )
