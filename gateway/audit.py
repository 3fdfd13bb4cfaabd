"""The audit log: one row per write through the gateway, queried by admins."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from gateway.models import AuditEntry
from shared.db import Database
from shared.errors import ValidationFailed
from shared.identity import Identity, Role
from shared.regions import contains, is_valid_code, prefix_of

__all__ = ["AuditRecord", "find_region", "query_audit", "record_audit", "write_audit"]


@dataclass
class AuditRecord:
    """What one write did: who, when, what, region, result."""

    at: datetime
    actor: str
    actor_kind: str
    method: str
    path: str
    query: str
    region_code: str | None
    node_id: str
    status: int
    request_id: str
    client_addr: str
    duration_ms: float
    detail: dict[str, Any] | None = field(default=None)

    def row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor[:100],
            "actor_kind": self.actor_kind[:16],
            "method": self.method[:10],
            "path": self.path[:500],
            "query": self.query[:1000],
            "region_code": self.region_code,
            "node_id": self.node_id[:64],
            "status": self.status,
            "request_id": self.request_id[:64],
            "client_addr": self.client_addr[:64],
            "duration_ms": round(self.duration_ms, 3),
            "detail": self.detail,
        }


def record_audit(session: Session, record: AuditRecord) -> None:
    """Add an audit row in the caller's transaction (command-line account changes)."""
    session.execute(insert(AuditEntry), [record.row()])


def write_audit(db: Database, record: AuditRecord) -> None:
    """Write and commit one audit row now (the gateway does this before it answers)."""
    with db.session() as session:
        record_audit(session, record)


def find_region(path: str, query: bytes, body: bytes | None, content_type: bytes) -> str | None:
    """Best effort: the region a request is about (query, path segment, then JSON body)."""
    if b"region_code" in query:
        values = parse_qs(query.decode("latin-1")).get("region_code")
        if values and is_valid_code(values[0]):
            return values[0]
    for segment in path.split("/"):
        # Path ids here are short integers; a 6/9/12-digit segment is a division code.
        if len(segment) in (6, 9, 12) and is_valid_code(segment):
            return segment
    if body and content_type.startswith(b"application/json"):
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        if isinstance(doc, dict):
            value = doc.get("region_code")
            if isinstance(value, str) and is_valid_code(value):
                return value
    return None


def query_audit(
    session: Session,
    by: Identity,
    *,
    node_region: str,
    actor: str | None = None,
    region_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    path: str | None = None,
    method: str | None = None,
    status: int | None = None,
    cursor: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit rows newest first; an admin whose scope is narrower than the node sees its region."""
    by.check_write(by.region, Role.admin)
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc())
    if not contains(by.region, node_region):
        stmt = stmt.where(AuditEntry.region_code.like(prefix_of(by.region) + "%"))
    if region_code:
        if not is_valid_code(region_code):
            raise ValidationFailed(
                f"区划代码无效 (invalid division code): {region_code}",
                errors=[{"field": "region_code", "message": "6/9/12 位区划代码 (digits)"}],
            )
        by.check_read(region_code)
        stmt = stmt.where(AuditEntry.region_code.like(prefix_of(region_code) + "%"))
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if since:
        stmt = stmt.where(AuditEntry.at >= since)
    if until:
        stmt = stmt.where(AuditEntry.at < until)
    if path:
        stmt = stmt.where(AuditEntry.path.startswith(path, autoescape=True))
    if method:
        stmt = stmt.where(AuditEntry.method == method.upper())
    if status is not None:
        stmt = stmt.where(AuditEntry.status == status)
    if cursor is not None:
        stmt = stmt.where(AuditEntry.id < cursor)
    return list(session.scalars(stmt.limit(limit)))
