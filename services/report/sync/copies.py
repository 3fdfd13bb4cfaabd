"""Applying a child's problems, tasks, projects and final reports as read-only copies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from services.report.models import ReceivedRecord
from shared.dbtypes import utcnow
from shared.sync import Change

__all__ = ["CopyPayload", "apply_copies"]


class CopyPayload(BaseModel):
    """A received object: any fields, but always the region (and period) it describes."""

    model_config = ConfigDict(extra="allow")

    region_code: str = Field(min_length=2, max_length=12)


def apply_copies(session: Session, changes: list[Change]) -> None:
    """Upsert the latest copy per (origin, entity, key): one delete and one multi-row insert."""
    latest: dict[tuple[str, str, str], Change] = {}
    for change in changes:  # seq order: a later change of the same key wins
        latest[(change.origin, change.entity, change.key)] = change
    if not latest:
        return
    r = ReceivedRecord
    now = utcnow()
    by_group: dict[tuple[str, str], list[str]] = {}
    for origin, entity, key in latest:
        by_group.setdefault((origin, entity), []).append(key)
    for (origin, entity), keys in by_group.items():
        session.execute(
            delete(r)
            .where(r.origin_node == origin, r.entity == entity, r.entity_key.in_(keys))
            .execution_options(synchronize_session=False)
        )
    session.execute(
        insert(r),
        [
            {
                "origin_node": c.origin,
                "entity": c.entity,
                "entity_key": c.key,
                "region_code": str(c.payload["region_code"]),
                "seq": c.seq,
                "payload": c.payload,
                "received_at": now,
            }
            for c in latest.values()
        ],
    )
