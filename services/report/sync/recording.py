"""Recording this node's own changes for its parent, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.report.sync.tables import SYNC
from shared.sync import record_change
from shared.sync.node import records_upward

__all__ = ["ENTITIES", "record_upward"]

# What goes up: keys are "<origin node>:<entity>:<stable id>", the same at every tier.
ENTITIES = ("problem", "task", "project", "report")


def record_upward(session: Session, entity: str, key: str, payload: dict[str, Any]) -> int:
    """Queue the new state of an object for the parent (only on a node that has one)."""
    # Without a parent nobody drains the outbox (it is only pruned after an ack).
    if not records_upward(session):
        return 0
    return record_change(session, SYNC, entity=entity, key=key, op="upsert", payload=payload)
