"""Applying an indicator system released above: an immutable, checksum-verified copy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.indicator.sync.outgoing import system_key
from services.indicator.systems import service as systems
from services.indicator.systems.models import IndicatorSystem
from services.indicator.systems.schemas import SystemDocument
from shared.errors import Conflict
from shared.sync import Change, MalformedBatch

__all__ = ["SystemReleasePayload", "apply_system_releases"]


class SystemReleasePayload(BaseModel):
    """A released system as published down: its canonical document and SHA-256."""

    document: dict[str, Any]
    checksum: str = Field(pattern=r"^[0-9a-f]{64}$")
    region_code: str
    released_by: str
    released_at: str


def _document(change: Change) -> tuple[SystemReleasePayload, SystemDocument]:
    payload = SystemReleasePayload.model_validate(change.payload)
    try:
        doc = SystemDocument.model_validate(payload.document)
    except PydanticValidationError as exc:
        raise MalformedBatch(
            f"下发的指标体系 {change.key} 文档无效 (invalid system document): {exc.errors()[:3]}"
        ) from exc
    actual = systems.checksum_of(doc)
    if actual != payload.checksum:
        raise MalformedBatch(
            f"下发的指标体系 {change.key} 校验和不符 (checksum mismatch: {actual} ≠ "
            f"{payload.checksum})"
        )
    if system_key(doc.code, doc.year, doc.version) != change.key:
        raise MalformedBatch(
            f"指标体系键与文档不符 (key does not match the document): {change.key}"
        )
    return payload, doc


def _apply_one(session: Session, change: Change) -> None:
    payload, doc = _document(change)
    existing = session.scalars(
        select(IndicatorSystem).where(
            IndicatorSystem.code == doc.code,
            IndicatorSystem.year == doc.year,
            IndicatorSystem.version == doc.version,
        )
    ).first()
    if existing is not None:
        if existing.checksum == payload.checksum and existing.state != "draft":
            return  # already here (delivered again through another path)
        raise Conflict(
            f"本节点已有不同内容的指标体系 {change.key} (a different system with this code, "
            "year and version exists here)",
            slug="system-conflict",
        )
    # Created through the same validated path as an import, then released as received:
    # the copy keeps the upper region, so no one at this node may write it.
    system = systems._create_from_document(
        session,
        doc=doc,
        region_code=payload.region_code,
        version=doc.version,
        created_by=payload.released_by,
        node="",
        action="received",
        detail={"checksum": payload.checksum},
    )
    stored = systems.checksum_of(systems.document_of(system, with_status=False))
    if stored != payload.checksum:
        raise MalformedBatch(
            f"指标体系 {change.key} 写入后校验和不符 (stored copy differs: {stored})"
        )
    system.checksum = stored
    system.state = "released"
    system.released_by = payload.released_by
    system.released_at = datetime.fromisoformat(payload.released_at)
    session.flush()


def apply_system_releases(session: Session, changes: list[Change]) -> None:
    """Store each released system received from above as a released copy (idempotent)."""
    for change in changes:
        _apply_one(session, change)
