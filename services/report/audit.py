"""Audit trail and upward recording: every write records who/when/what and goes up the tiers."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.report.models import AuditEvent
from services.report.sync.recording import record_upward
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


def publish(session: Session, node: str, entity: str, key: str, payload: dict[str, Any]) -> int:
    """Queue the new state of an object for the parent node; returns its seq (0: no parent)."""
    return record_upward(session, entity, key, payload)
