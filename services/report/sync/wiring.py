"""Mounting federation into the report service: appliers, internal router, pusher."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI

from services.report.sync.copies import CopyPayload, apply_copies
from services.report.sync.recording import ENTITIES
from services.report.sync.tables import SYNC
from shared.settings import NodeSettings
from shared.sync import (
    Applier,
    SyncNode,
)
from shared.sync.lifespan import service_node, service_sync_router, upward_lifespan

__all__ = ["UP_APPLIERS", "sync_lifespan", "sync_node", "sync_routes"]

SERVICE = "report"

# Changes children push up: every entity lands as a read-only copy with its origin.
UP_APPLIERS: dict[str, Applier] = {
    entity: Applier(
        apply=apply_copies,
        region_of=lambda payload: str(payload["region_code"]),
        schema=CopyPayload,
        ops=frozenset({"upsert"}),
    )
    for entity in ENTITIES
}


def sync_node(settings: NodeSettings) -> SyncNode:
    """This node as the report service's origin stream."""
    return service_node(settings, SERVICE)


def sync_routes(settings: NodeSettings) -> APIRouter:
    """The internal sync router (batches, status) behind the gateway."""
    return service_sync_router(settings, SERVICE, SYNC, UP_APPLIERS)


def sync_lifespan(settings: NodeSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Bind the origin node to the sessions; with a parent, record changes and run the pusher."""
    return upward_lifespan(settings, SERVICE, SYNC)
