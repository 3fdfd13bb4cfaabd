"""Indicator values by source, their change history, and import batches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.indicator.base import Base
from shared.dbtypes import JsonType, UtcDateTime, utcnow

SOURCES = ("self_checkup", "third_party", "survey", "department", "hotline")
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ImportBatch(Base):
    """One bulk import (or single entry): who, when, what, and the rows it rejected."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("indicator_systems.id"))
    period: Mapped[str] = mapped_column(String(10))
    format: Mapped[str] = mapped_column(String(10))  # csv/jsonl/xlsx/json/single
    mode: Mapped[str] = mapped_column(String(16))  # per_row / all_or_nothing
    status: Mapped[str] = mapped_column(String(12))  # applied/partial/rejected
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_applied: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rows_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Region of the identity that ran the batch (scope of GET /imports/{id}).
    actor_region: Mapped[str | None] = mapped_column(String(12))
    source: Mapped[str | None] = mapped_column(String(16))
    # Counts beyond the row totals: created/updated, errors_total, flags, derived values.
    summary: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class IndicatorValue(Base):
    """Current value of one indicator × region × period × source."""

    __tablename__ = "indicator_values"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("indicator_systems.id"))
    indicator_code: Mapped[str] = mapped_column(String(40))
    region_code: Mapped[str] = mapped_column(String(12))
    period: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    # Check results: {"outlier": {...}, "source_disagreement": {...}}; empty when clean.
    flags: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    on_behalf: Mapped[bool] = mapped_column(Boolean, default=False)  # 代填报 by an upper node
    # The import batch that last wrote the value: created in the same transaction by the
    # only code that sets it, and batches are never deleted. No foreign key: checking one
    # costs a quarter of a value's INSERT on PostgreSQL (migration 0010).
    batch_id: Mapped[int | None] = mapped_column(BigId)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("system_id", "indicator_code", "region_code", "period", "source"),
        # Region × period (dashboards, prefixes) continued to the key: a probe by key through
        # either index finds the one row, whichever the planner picks.
        Index(
            "ix_indicator_values_region_period_key",
            "region_code",
            "period",
            "indicator_code",
            "source",
        ),
        Index("ix_indicator_values_code_region", "indicator_code", "region_code"),
    )


class ValueHistory(Base):
    """Every change of a value: who, when, old → new (first entries have old = null)."""

    __tablename__ = "value_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    value_id: Mapped[int] = mapped_column(BigId, index=True)
    old_value: Mapped[float | None] = mapped_column(Float)
    new_value: Mapped[float | None] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(12))  # create/update/delete
    batch_id: Mapped[int | None] = mapped_column(BigId)
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)
    # The value's key is copied so that the history of a deleted value stays readable
    # (and scope-checkable) after its row is gone.
    system_id: Mapped[int | None] = mapped_column(Integer)
    indicator_code: Mapped[str | None] = mapped_column(String(40))
    region_code: Mapped[str | None] = mapped_column(String(12))
    period: Mapped[str | None] = mapped_column(String(10))
    source: Mapped[str | None] = mapped_column(String(16))
    old_note: Mapped[str | None] = mapped_column(Text)
    new_note: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int | None] = mapped_column(Integer)  # the value's revision after the change
    on_behalf: Mapped[bool | None] = mapped_column(Boolean)
