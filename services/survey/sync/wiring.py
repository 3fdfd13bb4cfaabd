"""Mounting federation into the survey service: applier, internal router, pusher."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI

from services.survey.sync.copies import ResultPayload, apply_results
from services.survey.sync.recording import RESULT_ENTITY
from services.survey.sync.tables import SYNC
from shared.identity import require_roles
from shared.settings import NodeSettings
from shared.sync import (
    INTERNAL_BASE,
    Applier,
    SyncNode,
    from_gateway_identity,
    sync_router,
)
from shared.sync.lifespan import service_node, upward_lifespan

__all__ = ["SERVICE", "UP_APPLIERS", "sync_lifespan", "sync_node", "sync_routes"]

SERVICE = "survey"

# Children's published results land as read-only copies with their origin.
UP_APPLIERS: dict[str, Applier] = {
    RESULT_ENTITY: Applier(
        apply=apply_results,
        region_of=lambda payload: str(payload["region_code"]),
        schema=ResultPayload,
        ops=frozenset({"upsert"}),
    )
}


def sync_node(settings: NodeSettings) -> SyncNode:
    """This node as the survey service's origin stream."""
    return service_node(settings, SERVICE)


def sync_routes(settings: NodeSettings) -> APIRouter:
    """The internal sync router (batches, status) behind the gateway."""
    return sync_router(
        node=sync_node(settings),
        tables=SYNC,
        appliers=UP_APPLIERS,
        authenticate=from_gateway_identity,
        relay=settings.tier != "province",
        base_path=INTERNAL_BASE,
        status_dependencies=[require_roles("admin", "node")],
    )


def sync_lifespan(settings: NodeSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Bind the origin node to the sessions; with a parent, record publications and push."""
    return upward_lifespan(settings, SERVICE, SYNC)
