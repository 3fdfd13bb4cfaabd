"""Indicator systems (指标体系), their versions, indicators and sub-item checklists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.indicator.base import Base
from shared.dbtypes import JsonType, UtcDateTime, utcnow


class IndicatorSystem(Base):
    """One version of an indicator system; released versions are locked."""

    __tablename__ = "indicator_systems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40))  # stable family code, e.g. "JX-CHECKUP"
    name: Mapped[str] = mapped_column(String(200))
    year: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(12), default="draft")  # draft/released/retired
    region_code: Mapped[str] = mapped_column(String(12))  # publisher
    parent_system_id: Mapped[int | None] = mapped_column(ForeignKey("indicator_systems.id"))
    description: Mapped[str] = mapped_column(Text, default="")
    # Health-index method: normalisation and weights per dimension (documented in docs/).
    index_method: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    checksum: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    released_by: Mapped[str | None] = mapped_column(String(100))
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    retired_by: Mapped[str | None] = mapped_column(String(100))
    # The version this draft was copied from ("changes make a new version"); no FK so that
    # lineage survives if the older version is ever purged.
    based_on_id: Mapped[int | None] = mapped_column(Integer)

    indicators: Mapped[list[Indicator]] = relationship(
        back_populates="system", cascade="all, delete-orphan", order_by="Indicator.sort_order"
    )

    __table_args__ = (UniqueConstraint("code", "year", "version"),)


class Indicator(Base):
    __tablename__ = "indicators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("indicator_systems.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(40))
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(300), default="")
    level: Mapped[str] = mapped_column(String(12))  # housing/compound/community/block/district/city
    dimension: Mapped[str] = mapped_column(String(60))
    unit: Mapped[str] = mapped_column(String(20), default="")
    direction: Mapped[str] = mapped_column(String(8))  # higher/lower/band
    # Grading: green within the standard, yellow within the warning bound, red beyond.
    standard_value: Mapped[float | None] = mapped_column(Float)
    warning_value: Mapped[float | None] = mapped_column(Float)
    band_low: Mapped[float | None] = mapped_column(Float)
    band_high: Mapped[float | None] = mapped_column(Float)
    warning_low: Mapped[float | None] = mapped_column(Float)
    warning_high: Mapped[float | None] = mapped_column(Float)
    standard_source: Mapped[str] = mapped_column(Text, default="")  # where the standard comes from
    # Plausible range for input checks.
    min_value: Mapped[float | None] = mapped_column(Float)
    max_value: Mapped[float | None] = mapped_column(Float)
    value_type: Mapped[str] = mapped_column(String(8), default="number")  # number/integer/percent
    data_source: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(
        String(12), default="national"
    )  # national/provincial/local
    compute: Mapped[str] = mapped_column(String(12), default="entered")  # entered/sub_items/formula
    formula: Mapped[str | None] = mapped_column(Text)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    inherited: Mapped[bool] = mapped_column(default=False)  # from the parent system (read-only)
    description: Mapped[str] = mapped_column(
        Text, default="", server_default=""
    )  # definition / 统计口径

    system: Mapped[IndicatorSystem] = relationship(back_populates="indicators")
    sub_items: Mapped[list[SubItem]] = relationship(
        back_populates="indicator", cascade="all, delete-orphan", order_by="SubItem.sort_order"
    )

    __table_args__ = (UniqueConstraint("system_id", "code"),)


class SubItem(Base):
    """One check of an indicator's checklist (a deficient object fails any of them)."""

    __tablename__ = "indicator_sub_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator_id: Mapped[int] = mapped_column(ForeignKey("indicators.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(Text)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    indicator: Mapped[Indicator] = relationship(back_populates="sub_items")

    __table_args__ = (UniqueConstraint("indicator_id", "code"),)


class SystemEvent(Base):
    """Audit trail of every write to a system: who, when, from which node, what."""

    __tablename__ = "indicator_system_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No FK: the trail outlives a deleted draft.
    system_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(100))
    node: Mapped[str] = mapped_column(String(60), default="", server_default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    __table_args__ = (Index("ix_indicator_system_events_system", "system_id", "id"),)
