"""Mounting federation into the report service: appliers, internal router, pusher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI

from services.report.sync.copies import CopyPayload, apply_copies
from services.report.sync.recording import ENTITIES
from services.report.sync.tables import SYNC
from shared.db import Database
from shared.identity import require_roles
from shared.settings import NodeSettings
from shared.sync import (
    INTERNAL_BASE,
    Applier,
    Backoff,
    SyncNode,
    SyncPusher,
    bind_node,
    from_gateway_identity,
    sync_router,
    wake_on_commit,
)
from shared.sync.node import mark_upward

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
    return SyncNode(settings.node_id, settings.region_code, SERVICE)


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


def _credential(settings: NodeSettings) -> Callable[[], str]:
    def secret() -> str:
        # Read on every pass: a credential picked up or rotated later takes effect at once.
        value = settings.credential_secret()
        if not value:
            raise RuntimeError(
                "本节点没有上级签发的凭据 (no node credential: run `checkup nodes join`)"
            )
        return value

    return secret


def sync_lifespan(settings: NodeSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Bind the origin node to the sessions; with a parent, record changes and run the pusher."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db: Database = app.state.db
        node = sync_node(settings)
        bind_node(db.sessionmaker, node)
        if not settings.parent_url:
            yield
            return
        mark_upward(db.sessionmaker)
        pusher = SyncPusher(
            db,
            SYNC,
            node,
            parent_url=settings.parent_url,
            credential=_credential(settings),
            batch_size=settings.sync_batch_size,
            backoff=Backoff(0.5, settings.sync_backoff_cap_s),
            dead_letter_after=settings.sync_dead_letter_after,
            poll_interval_s=settings.sync_poll_interval_s,
        )
        app.state.sync_pusher = pusher
        remove_hook = wake_on_commit(db.sessionmaker, pusher.wake)
        try:
            async with pusher.running():
                yield
        finally:
            remove_hook()

    return lifespan
