"""Mounting federation into the indicator service: appliers, internal router, loops."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query

from services.indicator.sync.backfill import backfill_upward
from services.indicator.sync.catalog import SystemReleasePayload, apply_system_releases
from services.indicator.sync.inspections import (
    INSPECTION_ENTITY,
    InspectionPayload,
    apply_inspection_changes,
)
from services.indicator.sync.outgoing import SYSTEM_ENTITY
from services.indicator.sync.submissions import (
    REVIEW_ENTITY,
    SUBMISSION_ENTITY,
    ReviewPayload,
    SubmissionPayload,
    apply_reviews,
    apply_submission_states,
    relay_review,
)
from services.indicator.sync.tables import SYNC
from services.indicator.sync.values import (
    VALUE_ENTITY,
    ValuePayload,
    apply_value_changes,
    values_checksum,
)
from shared.db import DbSession
from shared.identity import CurrentIdentity
from shared.settings import NodeSettings
from shared.sync import (
    BROADCAST,
    Applier,
    Change,
    SyncNode,
)
from shared.sync.lifespan import service_node, service_sync_router, upward_lifespan

__all__ = [
    "DOWN_APPLIERS",
    "UP_APPLIERS",
    "reconcile_router",
    "relay_down",
    "sync_lifespan",
    "sync_node",
    "sync_routes",
]

SERVICE = "indicator"

# Changes children push up.
UP_APPLIERS: dict[str, Applier] = {
    # A child's own (local characteristic) system version, before any value against it.
    SYSTEM_ENTITY: Applier(
        apply=apply_system_releases,
        region_of=lambda payload: str(payload["region_code"]),
        schema=SystemReleasePayload,
        ops=frozenset({"release"}),
    ),
    VALUE_ENTITY: Applier(
        apply=apply_value_changes,
        region_of=lambda payload: str(payload["region_code"]),
        schema=ValuePayload,
        ops=frozenset({"upsert", "delete"}),
    ),
    SUBMISSION_ENTITY: Applier(
        apply=apply_submission_states,
        region_of=lambda payload: str(payload["region_code"]),
        schema=SubmissionPayload,
        ops=frozenset({"upsert"}),
    ),
    INSPECTION_ENTITY: Applier(
        apply=apply_inspection_changes,
        region_of=lambda payload: str(payload["region_code"]),
        schema=InspectionPayload,
        ops=frozenset({"upsert"}),
    ),
}

# Messages the parent publishes down.
DOWN_APPLIERS: dict[str, Applier] = {
    SYSTEM_ENTITY: Applier(
        apply=apply_system_releases,
        region_of=lambda payload: None,  # a release concerns every region below its own
        schema=SystemReleasePayload,
        ops=frozenset({"release"}),
    ),
    REVIEW_ENTITY: Applier(
        apply=apply_reviews,
        region_of=lambda payload: str(payload["region_code"]),
        schema=ReviewPayload,
        ops=frozenset({"review"}),
    ),
}


def sync_node(settings: NodeSettings) -> SyncNode:
    """This node as the indicator service's origin stream."""
    return service_node(settings, SERVICE)


def relay_down(settings: NodeSettings) -> Callable[[Change], str | None]:
    """A city passes catalog releases on to its own children, reviews to their county."""

    def target(change: Change) -> str | None:
        if change.entity == SYSTEM_ENTITY:
            return BROADCAST
        if change.entity == REVIEW_ENTITY:
            return relay_review(settings.region_code, change)
        return None

    return target


def sync_routes(settings: NodeSettings) -> APIRouter:
    """The internal sync router (batches, pulls, status) behind the gateway."""
    return service_sync_router(settings, SERVICE, SYNC, UP_APPLIERS)


def sync_lifespan(settings: NodeSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Bind the origin node to the sessions; with a parent, run the pusher and the puller."""
    return upward_lifespan(
        settings,
        SERVICE,
        SYNC,
        down_appliers=DOWN_APPLIERS,
        relay_down=relay_down(settings),
        backfill=backfill_upward,
    )


reconcile_router = APIRouter(prefix="/api/v1/values", tags=["values 指标数据"])


@reconcile_router.get("/checksum", summary="数据核对摘要 (count and checksum for reconciliation)")
def checksum(
    session: DbSession,
    identity: CurrentIdentity,
    system: Annotated[str, Query(pattern=r"^.+@\d{4}@\d+$", description="code@year@version")],
    period: Annotated[str, Query(max_length=10)],
    region_code: Annotated[str, Query(min_length=2, max_length=12)],
) -> dict[str, Any]:
    """Count and SHA-256 of the values of one system version and period within a region."""
    identity.check_read(region_code)
    return values_checksum(session, system=system, period=period, region_code=region_code)
