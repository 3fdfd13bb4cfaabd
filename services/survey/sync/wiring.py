"""Mounting federation into the survey service: applier, internal router, pusher."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI

from services.survey.sync.copies import ResultPayload, apply_results
from services.survey.sync.recording import RESULT_ENTITY
from services.survey.sync.tables import SYNC
from shared.settings import NodeSettings
from shared.sync import (
    Applier,
    SyncNode,
)
from shared.sync.lifespan import service_node, service_sync_router, upward_lifespan

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
    return service_sync_router(settings, SERVICE, SYNC, UP_APPLIERS)


def sync_lifespan(settings: NodeSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Bind the origin node to the sessions; with a parent, record publications and push."""
    return upward_lifespan(settings, SERVICE, SYNC)
