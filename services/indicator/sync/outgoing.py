"""What the indicator service records for its parent and publishes to its children."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.indicator.sync.tables import SYNC
from services.indicator.systems.models import IndicatorSystem
from shared.sync import BROADCAST, SyncNode, publish_down, record_change
from shared.sync.node import NODE_INFO, records_upward

__all__ = [
    "SYSTEM_ENTITY",
    "bound_node",
    "publish_system_release",
    "record_system_up",
    "release_payload",
    "system_key",
]

SYSTEM_ENTITY = "indicator_system"


def system_key(code: str, year: int, version: int) -> str:
    """The stable key of a system version across nodes (local ids differ per node)."""
    return f"{code}@{year}@{version}"


def release_payload(system: IndicatorSystem) -> tuple[str, dict[str, Any]]:
    """A released system's stable key and what travels: its canonical document and SHA-256."""
    from services.indicator.systems.service import document_of

    doc = document_of(system, with_status=False)
    assert system.checksum is not None and system.released_at is not None
    return system_key(system.code, system.year, system.version), {
        "document": doc.model_dump(mode="json", exclude={"status"}),
        "checksum": system.checksum,
        "region_code": system.region_code,
        "released_by": system.released_by or "",
        "released_at": system.released_at.isoformat(),
    }


def record_system_up(
    session: Session, system: IndicatorSystem, release: tuple[str, dict[str, Any]] | None = None
) -> None:
    """Queue a system released here for the parent (caller's transaction): a local
    characteristic version, which the values entered against it need above. ``release``:
    its ``release_payload`` when the caller has it already."""
    key, payload = release or release_payload(system)
    record_change(session, SYNC, entity=SYSTEM_ENTITY, key=key, op="release", payload=payload)


def publish_system_release(session: Session, system: IndicatorSystem) -> int:
    """Queue a system released here for every child (broadcast stream) and, on a node with a
    parent, for the parent too, in the caller's transaction."""
    key, payload = release_payload(system)
    if records_upward(session):
        record_system_up(session, system, (key, payload))
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
