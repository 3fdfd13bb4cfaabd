"""What the indicator service records for its parent and publishes to its children."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.indicator.sync.tables import SYNC
from shared.sync import BROADCAST, SyncNode, publish_down
from shared.sync.node import NODE_INFO

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
    """Queue a released system for every child (broadcast stream) in the caller's transaction."""
    return publish_down(
        session,
        SYNC,
        stream=BROADCAST,
        entity=SYSTEM_ENTITY,
        key=system_key(document["code"], document["year"], document["version"]),
        op="release",
        payload={
            "document": document,
            "checksum": checksum,
            "region_code": region_code,
            "released_by": released_by,
            "released_at": released_at,
        },
    )


def bound_node(session: Session) -> SyncNode | None:
    """The node this session records for (None outside a running service: scripts, tests)."""
    node = session.info.get(NODE_INFO)
    return node if isinstance(node, SyncNode) else None
