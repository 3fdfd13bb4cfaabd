"""Audit trail and outbox: every write records who/when/what and queues the change upward."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.report.models import AuditEvent, OutboxRecord
from shared.identity import Identity

__all__ = ["audit", "publish"]


def audit(
    session: Session,
    entity: str,
    entity_id: int,
    action: str,
    identity: Identity,
    node: str,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event for a change of ``entity`` #``entity_id``."""
    event = AuditEvent(
        entity=entity,
        entity_id=entity_id,
        action=action,
        actor=identity.subject,
        actor_region=identity.region,
        node=node,
        detail=detail or {},
    )
    session.add(event)
    return event


def publish(
    session: Session, node: str, entity: str, key: str, payload: dict[str, Any]
) -> OutboxRecord:
    """Queue the new state of an object for the parent node (next per-origin sequence)."""
    last = session.scalar(
        select(func.max(OutboxRecord.seq)).where(OutboxRecord.origin_node == node)
    )
    record = OutboxRecord(
        origin_node=node,
        seq=(last or 0) + 1,
        entity=entity,
        entity_key=key,
        op="upsert",
        payload=payload,
    )
    session.add(record)
    session.flush()
    return record
