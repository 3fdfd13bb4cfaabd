"""Evaluation results: grade per value, dimension scores and health index per region."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.indicator.base import Base
from services.indicator.values.models import BigId
from shared.dbtypes import JsonType, UtcDateTime, utcnow


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


class EvaluationRule(Base):
    """The grading rule of one indicator as the grading statement joins it (bounds + text).

    Derived from the indicator's direction, standard and warning columns and refreshed
    before each run; open bounds are stored as ±infinity.
    """

    __tablename__ = "evaluation_rules"

    system_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    graded: Mapped[bool] = mapped_column(Boolean)  # False: no standard, every value is grey
    green_low: Mapped[float] = mapped_column(Float)
    green_high: Mapped[float] = mapped_column(Float)
    yellow_low: Mapped[float] = mapped_column(Float)
    yellow_high: Mapped[float] = mapped_column(Float)
    rule_text: Mapped[str] = mapped_column(Text)
    standard: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class EvaluationRun(Base):
    """Audit of one evaluation run: who graded which scope, when, and what came out."""

    __tablename__ = "evaluation_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    system_id: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(10))
    region_code: Mapped[str] = mapped_column(String(12))  # the scope root
    actor: Mapped[str] = mapped_column(String(100))
    actor_region: Mapped[str] = mapped_column(String(12))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    values_evaluated: Mapped[int] = mapped_column(Integer, default=0)
    green: Mapped[int] = mapped_column(Integer, default=0)
    yellow: Mapped[int] = mapped_column(Integer, default=0)
    red: Mapped[int] = mapped_column(Integer, default=0)
    grey: Mapped[int] = mapped_column(Integer, default=0)
    regions_scored: Mapped[int] = mapped_column(Integer, default=0)
    # The index method in force for this run (the system's may change while it is a draft).
    index_method: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    __table_args__ = (
        Index("ix_evaluation_runs_system_period", "system_id", "period", "region_code"),
    )
