"""What the indicator service records for its parent and publishes to its children."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.indicator.sync.tables import SYNC
from shared.sync import BROADCAST, SyncNode, publish_down, record_change
from shared.sync.node import NODE_INFO, records_upward

__all__ = [
    "SYSTEM_ENTITY",
    "bound_node",
    "publish_system_release",
    "system_key",
]

SYSTEM_ENTITY = "indicator_system"


def system_key(code: str, year: int, version: int) -> str:
    """The stable key of a system version across nodes (local ids differ per node)."""
    return f"{code}@{year}@{version}"


def publish_system_release(
    session: Session,
    *,
    document: dict[str, Any],
    checksum: str,
    region_code: str,
    released_by: str,
    released_at: str,
) -> int:
    """Queue a system released here for every child (broadcast stream) and, on a node with a
    parent, for the parent too (a local characteristic version: the values entered against it
    go up and need it there), in the caller's transaction."""
    key = system_key(document["code"], document["year"], document["version"])
    payload = {
        "document": document,
        "checksum": checksum,
        "region_code": region_code,
        "released_by": released_by,
        "released_at": released_at,
    }
    if records_upward(session):
        record_change(session, SYNC, entity=SYSTEM_ENTITY, key=key, op="release", payload=payload)
    return publish_down(
        session,
        SYNC,
        stream=BROADCAST,
        entity=SYSTEM_ENTITY,
        key=key,
        op="release",
        payload=payload,
    )


def bound_node(session: Session) -> SyncNode | None:
    """The node this session records for (None outside a running service: scripts, tests)."""
    node = session.info.get(NODE_INFO)
    return node if isinstance(node, SyncNode) else None
