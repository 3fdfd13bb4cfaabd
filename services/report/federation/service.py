"""Problems, tasks, projects and final reports going up the tiers (outbox → parent inbox).

Each change carries its origin node and per-origin sequence; a receiver applies each
(origin, seq) once and in order, keeps the latest copy per object, and relays it upward with
its original origin (so a province dedupes whatever path a change took).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.report.audit import audit
from services.report.models import OutboxRecord, ReceiveCursor, ReceivedRecord
from shared.dbtypes import utcnow
from shared.errors import ValidationFailed
from shared.identity import Identity
from shared.regions import contains, is_valid_code

__all__ = ["ENTITIES", "apply_batch", "outbox_since"]

ENTITIES = ("problem", "task", "project", "report")


def outbox_since(session: Session, after: int, limit: int) -> list[OutboxRecord]:
    """Outbox records after an outbox id, oldest first (own changes and relayed ones)."""
    return list(
        session.scalars(
            select(OutboxRecord)
            .where(OutboxRecord.id > after)
            .order_by(OutboxRecord.id)
            .limit(limit)
        )
    )


def _validate(identity: Identity, origin: str, records: list[dict[str, Any]]) -> None:
    errors = []
    for i, r in enumerate(records, 1):
        payload = r.get("payload") or {}
        region = str(payload.get("region_code") or "")
        if r.get("entity") not in ENTITIES:
            errors.append(
                {"row": i, "field": "entity", "message": f"unknown entity {r.get('entity')}"}
            )
        elif not isinstance(r.get("seq"), int) or r["seq"] < 1:
            errors.append({"row": i, "field": "seq", "message": "positive integer required"})
        elif not r.get("entity_key"):
            errors.append({"row": i, "field": "entity_key", "message": "required"})
        elif not is_valid_code(region):
            errors.append(
                {"row": i, "field": "payload.region_code", "message": "missing or invalid"}
            )
        elif not contains(identity.region, region):
            errors.append(
                {
                    "row": i,
                    "field": "payload.region_code",
                    "message": f"{region} outside the sender's region {identity.region}",
                }
            )
    if errors:
        raise ValidationFailed(
            f"同步批次无效，整批未应用 (batch from {origin} rejected whole): "
            f"第 {errors[0]['row']} 条 {errors[0]['field']}",
            errors=errors,
        )


def apply_batch(
    session: Session, identity: Identity, node: str, origin: str, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """Apply a child's records in sequence order, once each; returns the acknowledged seq."""
    if not identity.has("node", "admin"):
        raise ValidationFailed(
            "只有下级节点可以推送 (only a child node may push)",
            errors=[{"field": "identity", "message": "node role required"}],
        )
    _validate(identity, origin, records)
    cursor = session.get(ReceiveCursor, origin)
    if cursor is None:
        cursor = ReceiveCursor(origin_node=origin, last_seq=0)
        session.add(cursor)
        session.flush()
    applied = skipped = 0
    for r in sorted(records, key=lambda r: r["seq"]):
        if r["seq"] <= cursor.last_seq:
            skipped += 1  # already applied: delivery is at-least-once
            continue
        if r["seq"] != cursor.last_seq + 1:
            break  # a gap: wait for the missing ones, acknowledge what is contiguous
        payload = r["payload"]
        row = session.scalars(
            select(ReceivedRecord).where(
                ReceivedRecord.origin_node == origin,
                ReceivedRecord.entity == r["entity"],
                ReceivedRecord.entity_key == r["entity_key"],
            )
        ).first()
        if row is None:
            session.add(
                ReceivedRecord(
                    origin_node=origin,
                    entity=r["entity"],
                    entity_key=r["entity_key"],
                    region_code=payload["region_code"],
                    seq=r["seq"],
                    payload=payload,
                )
            )
        else:
            row.seq, row.payload, row.received_at = r["seq"], payload, utcnow()
        # Relay upward with the original origin and sequence.
        session.add(
            OutboxRecord(
                origin_node=origin,
                seq=r["seq"],
                entity=r["entity"],
                entity_key=r["entity_key"],
                op="upsert",
                payload=payload,
            )
        )
        cursor.last_seq = r["seq"]
        applied += 1
    cursor.updated_at = utcnow()
    session.flush()
    if applied:
        audit(
            session,
            "federation",
            0,
            "receive",
            identity,
            node,
            {"origin": origin, "applied": applied, "acked": cursor.last_seq},
        )
    return {
        "origin_node": origin,
        "applied": applied,
        "skipped": skipped,
        "acked_seq": cursor.last_seq,
    }
