"""Evaluation results: grade per value, dimension scores and health index per region."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.indicator.base import Base
from services.indicator.values.models import BigId
from shared.dbtypes import UtcDateTime, utcnow


class Evaluation(Base):
    """The grade of one value against its indicator's standard, and the rule that decided it."""

    __tablename__ = "evaluations"

    value_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    system_id: Mapped[int] = mapped_column(Integer)
    indicator_code: Mapped[str] = mapped_column(String(40))
    region_code: Mapped[str] = mapped_column(String(12))
    period: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(6))  # green/yellow/red/grey
    points: Mapped[float | None] = mapped_column(Float)  # normalised 0..100, None when grey
    rule: Mapped[str] = mapped_column(Text)
    evaluated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (Index("ix_evaluations_region_period", "region_code", "period", "system_id"),)


class RegionScore(Base):
    """Per region × period × system: one row per dimension plus one for the index ('*')."""

    __tablename__ = "region_scores"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    system_id: Mapped[int] = mapped_column(Integer)
    region_code: Mapped[str] = mapped_column(String(12))
    period: Mapped[str] = mapped_column(String(10))
    dimension: Mapped[str] = mapped_column(String(60))  # "*" is the health index
    score: Mapped[float | None] = mapped_column(Float)
    n_graded: Mapped[int] = mapped_column(Integer, default=0)
    green: Mapped[int] = mapped_column(Integer, default=0)
    yellow: Mapped[int] = mapped_column(Integer, default=0)
    red: Mapped[int] = mapped_column(Integer, default=0)
    grey: Mapped[int] = mapped_column(Integer, default=0)
    rank: Mapped[int | None] = mapped_column(Integer)  # among siblings, for "*"
    rank_of: Mapped[int | None] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        Index(
            "ix_region_scores_key", "system_id", "region_code", "period", "dimension", unique=True
        ),
    )
