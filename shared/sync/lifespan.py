"""A service's federation at start-up: bind its origin node; with a parent, push (and pull)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db import Database
from shared.identity import require_roles
from shared.settings import NodeSettings
from shared.sync.http import INTERNAL_BASE, from_gateway_identity, sync_router
from shared.sync.links import Backoff
from shared.sync.node import SyncNode, bind_node, mark_upward, wake_on_commit
from shared.sync.outbox import UP
from shared.sync.pusher import SyncPuller, SyncPusher
from shared.sync.receiver import Appliers, RelayDown
from shared.sync.tables import SyncTables

__all__ = ["credential_reader", "service_node", "service_sync_router", "upward_lifespan"]

log = logging.getLogger("checkup.sync")


def service_node(settings: NodeSettings, service: str) -> SyncNode:
    """This node as one service's origin stream."""
    return SyncNode(settings.node_id, settings.region_code, service)


def service_sync_router(
    settings: NodeSettings, service: str, tables: SyncTables, appliers: Appliers
) -> APIRouter:
    """A service's internal sync router behind the gateway: batches from children (relayed
    up unless this is the top tier), pulls, status and retry for the node's admins."""
    return sync_router(
        node=service_node(settings, service),
        tables=tables,
        appliers=appliers,
        authenticate=from_gateway_identity,
        relay=settings.tier != "province",
        base_path=INTERNAL_BASE,
        status_dependencies=[require_roles("admin", "node")],
    )


def credential_reader(settings: NodeSettings) -> Callable[[], str]:
    """The node credential, read on every pass: a credential picked up or rotated later
    takes effect at once."""

    def secret() -> str:
        value = settings.credential_secret()
        if not value:
            raise RuntimeError(
                "本节点没有上级签发的凭据 (no node credential: run `checkup nodes join`)"
            )
        return value

    return secret


def upward_lifespan(
    settings: NodeSettings,
    service: str,
    tables: SyncTables,
    *,
    down_appliers: Appliers | None = None,
    relay_down: RelayDown | None = None,
    backfill: Callable[[Session], int] | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Bind the origin node to the service's sessions; with a parent, record own changes and
    run the pusher (and, given ``down_appliers``, the puller of downward messages).

    ``backfill(session)`` records what the node already holds; it runs once, at the first
    start with a parent before anything was recorded (a node that joined after its data).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db: Database = app.state.db
        node = service_node(settings, service)
        bind_node(db.sessionmaker, node)
        if not settings.parent_url:
            yield
            return
        mark_upward(db.sessionmaker)
        if backfill is not None:
            await asyncio.to_thread(_backfill_once, db, tables, node, backfill)
        link: dict[str, Any] = {
            "parent_url": settings.parent_url,
            "credential": credential_reader(settings),
            "batch_size": settings.sync_batch_size,
            "backoff": Backoff(0.5, settings.sync_backoff_cap_s),
            "dead_letter_after": settings.sync_dead_letter_after,
        }
        pusher = SyncPusher(
            db,
            tables,
            node,
            poll_interval_s=settings.sync_poll_interval_s,
            window=settings.sync_push_window,
            **link,
        )
        app.state.sync_pusher = pusher
        remove_hook = wake_on_commit(db.sessionmaker, pusher.wake)
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(pusher.running())
                if down_appliers is not None:
                    puller = SyncPuller(
                        db, tables, node, appliers=down_appliers, relay_down=relay_down, **link
                    )
                    app.state.sync_puller = puller
                    await stack.enter_async_context(puller.running())
                yield
        finally:
            remove_hook()

    return lifespan


def _backfill_once(
    db: Database, tables: SyncTables, node: SyncNode, backfill: Callable[[Session], int]
) -> None:
    s = tables.streams.c
    with db.session(write=True) as session:
        head = session.execute(
            select(s.last_seq).where((s.direction == UP) & (s.stream == node.node_id))
        ).first()
        if head is not None:
            return
        recorded = backfill(session)
    if recorded:
        log.info("%s: %d existing records queued for the parent", node.service, recorded)
