"""Tables of the survey service: questionnaires, campaigns, responses, weights and results."""

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
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION
from shared.dbtypes import JsonType, UtcDateTime, utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Questionnaire(Base):
    """A versioned questionnaire; released versions are locked."""

    __tablename__ = "questionnaires"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer, default=1)
    title: Mapped[str] = mapped_column(String(200))
    year: Mapped[int] = mapped_column(Integer)
    region_code: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(12), default="draft")  # draft/released/retired
    definition: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    checksum: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    released_by: Mapped[str | None] = mapped_column(String(100))
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("code", "version"),)


class ScoreTarget(Base):
    """What results are reported on: one question, one dimension, or '*' (all items)."""

    __tablename__ = "score_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    questionnaire_id: Mapped[int] = mapped_column(
        ForeignKey("questionnaires.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(10))  # question/dimension/overall
    code: Mapped[str] = mapped_column(String(60))
    label: Mapped[str] = mapped_column(String(300), default="")
    dimension: Mapped[str] = mapped_column(String(60), default="")
    level: Mapped[str] = mapped_column(String(12), default="")
    indicator_code: Mapped[str | None] = mapped_column(String(40))
    indicator_measure: Mapped[str] = mapped_column(String(8), default="rate")  # rate/mean
    objective_indicators: Mapped[list[str]] = mapped_column(JsonType, default=list)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("questionnaire_id", "kind", "code"),)


class Campaign(Base):
    """One survey round of a region: questionnaire, dates, link token, limits, weighting."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    questionnaire_id: Mapped[int] = mapped_column(ForeignKey("questionnaires.id"))
    region_code: Mapped[str] = mapped_column(String(12))
    period: Mapped[str] = mapped_column(String(10))
    system_id: Mapped[int | None] = mapped_column(Integer)  # indicator system results feed
    state: Mapped[str] = mapped_column(String(10), default="draft")  # draft/open/closed
    opens_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closes_at: Mapped[datetime] = mapped_column(UtcDateTime)
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    # Length of the region codes population margins are given at (6 county, 9 street).
    margin_level: Mapped[int | None] = mapped_column(SmallInteger)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PopulationCell(Base):
    """Population of one region × age band × sex: the margins weights are raked to."""

    __tablename__ = "population_cells"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    region_code: Mapped[str] = mapped_column(String(12))
    age_band: Mapped[str] = mapped_column(String(8))
    sex: Mapped[str] = mapped_column(String(2))
    population: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("campaign_id", "region_code", "age_band", "sex"),)


class QuotaTarget(Base):
    """Sampling plan: a target count per region, per age × sex cell ('' = any)."""

    __tablename__ = "quota_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12))  # region / age_sex
    region_code: Mapped[str] = mapped_column(String(12), default="")
    age_band: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(2), default="")
    target: Mapped[int] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("campaign_id", "kind", "region_code", "age_band", "sex"),)


class Profile(Base):
    """A distinct combination of the attributes results are weighted and broken down by."""

    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    region_code: Mapped[str] = mapped_column(String(12))
    age_band: Mapped[str] = mapped_column(String(8))
    sex: Mapped[str] = mapped_column(String(2))
    tenure: Mapped[str] = mapped_column(String(8), default="")
    residence: Mapped[str] = mapped_column(String(8), default="")

    __table_args__ = (
        UniqueConstraint("campaign_id", "region_code", "age_band", "sex", "tenure", "residence"),
    )


class Response(Base):
    """One resident's submission, kept whole; screening flags exclude it from results."""

    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    duration_s: Mapped[float | None] = mapped_column(Float)
    timing: Mapped[str] = mapped_column(String(8), default="none")  # server/client/none
    region_code: Mapped[str] = mapped_column(String(12))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id"))
    # Keyed hashes, not raw addresses: equality is all screening needs.
    addr_hash: Mapped[str] = mapped_column(String(32))
    device_hash: Mapped[str | None] = mapped_column(String(32))
    answers_hash: Mapped[str] = mapped_column(String(32))
    located_region: Mapped[str | None] = mapped_column(String(12))
    answers: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(10), default="included")  # included/excluded
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    reviewed_by: Mapped[str | None] = mapped_column(String(100))
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    review_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("campaign_id", "client_id"),
        Index("ix_responses_campaign_status", "campaign_id", "status"),
        Index("ix_responses_campaign_addr", "campaign_id", "addr_hash", "received_at"),
        Index("ix_responses_campaign_device", "campaign_id", "device_hash"),
        Index("ix_responses_campaign_answers", "campaign_id", "answers_hash"),
    )


class Score(Base):
    """Scored items of one response for one target: k items, sum of 0–100 scores, top-two count.

    Narrow and denormalised (profile, included) so that results are one scan of this table.
    """

    __tablename__ = "scores"

    response_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True
    )
    target_id: Mapped[int] = mapped_column(ForeignKey("score_targets.id"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    profile_id: Mapped[int] = mapped_column(Integer)
    included: Mapped[bool] = mapped_column(Boolean, default=True)
    k: Mapped[int] = mapped_column(SmallInteger)
    s: Mapped[float] = mapped_column(Float)
    t: Mapped[int] = mapped_column(SmallInteger)

    __table_args__ = (Index("ix_scores_campaign", "campaign_id", "included"),)


class ScoreSum(Base):
    """Running sums of the included score rows per (profile, target), kept with every write.

    Results read these few hundred thousand rows instead of scanning every score row;
    ``rebuild_sums`` recomputes them from ``scores`` set-based (and tests hold the two equal).
    """

    __tablename__ = "score_sums"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    profile_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    k1: Mapped[int] = mapped_column(Integer, default=0)
    s1: Mapped[float] = mapped_column(Float, default=0.0)
    t1: Mapped[int] = mapped_column(Integer, default=0)
    kk: Mapped[int] = mapped_column(Integer, default=0)
    sk: Mapped[float] = mapped_column(Float, default=0.0)
    ss: Mapped[float] = mapped_column(Float, default=0.0)
    tk: Mapped[int] = mapped_column(Integer, default=0)
    tt: Mapped[int] = mapped_column(Integer, default=0)


class TextAnswer(Base):
    """An open-text answer, kept apart for theme classification."""

    __tablename__ = "text_answers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    response_id: Mapped[int] = mapped_column(BigId, ForeignKey("responses.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(Integer)
    question_code: Mapped[str] = mapped_column(String(40))
    region_code: Mapped[str] = mapped_column(String(12))
    included: Mapped[bool] = mapped_column(Boolean, default=True)
    text: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_text_answers_campaign", "campaign_id", "included"),)


class ResultRun(Base):
    """One computation of weights and results, with its weighting report."""

    __tablename__ = "result_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    region_code: Mapped[str] = mapped_column(String(12))
    period: Mapped[str] = mapped_column(String(10))
    weighting: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    computed_by: Mapped[str] = mapped_column(String(100))
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class WeightCell(Base):
    """The weight of every respondent of one region × age band × sex cell in a run."""

    __tablename__ = "weight_cells"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("result_runs.id", ondelete="CASCADE"))
    region_code: Mapped[str] = mapped_column(String(12))
    age_band: Mapped[str] = mapped_column(String(8))
    sex: Mapped[str] = mapped_column(String(2))
    n: Mapped[int] = mapped_column(Integer)
    population: Mapped[float | None] = mapped_column(Float)
    weight: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_weight_cells_run", "run_id", "region_code", "age_band", "sex"),)


class ResultCell(Base):
    """One weighted figure: a target in one breakdown group, with its CI and sample."""

    __tablename__ = "result_cells"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("result_runs.id", ondelete="CASCADE"))
    breakdown: Mapped[str] = mapped_column(String(12))  # overall/region/street/age_band/...
    group_key: Mapped[str] = mapped_column(String(24))
    target_id: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    items: Mapped[int] = mapped_column(Integer)
    sum_w: Mapped[float] = mapped_column(Float)
    n_eff: Mapped[float | None] = mapped_column(Float)
    deff: Mapped[float | None] = mapped_column(Float)
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)
    rate: Mapped[float | None] = mapped_column(Float)
    rate_lo: Mapped[float | None] = mapped_column(Float)
    rate_hi: Mapped[float | None] = mapped_column(Float)
    mean: Mapped[float | None] = mapped_column(Float)
    mean_lo: Mapped[float | None] = mapped_column(Float)
    mean_hi: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_result_cells_run", "run_id", "breakdown", "target_id"),)


class Publication(Base):
    """One push of a run's satisfaction indicators into the indicator service."""

    __tablename__ = "publications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("result_runs.id"))
    system_id: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12))  # applied/partial/rejected/failed
    rows_sent: Mapped[int] = mapped_column(Integer, default=0)
    batch: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    published_by: Mapped[str] = mapped_column(String(100))
    published_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Disagreement(Base):
    """A place where residents' satisfaction and the objective grade tell different stories."""

    __tablename__ = "disagreements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(Integer)
    region_code: Mapped[str] = mapped_column(String(12))
    target_code: Mapped[str] = mapped_column(String(60))
    satisfaction_indicator: Mapped[str] = mapped_column(String(40))
    rate: Mapped[float] = mapped_column(Float)
    rate_lo: Mapped[float | None] = mapped_column(Float)
    rate_hi: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    objective_indicator: Mapped[str] = mapped_column(String(40))
    objective_source: Mapped[str] = mapped_column(String(16))
    objective_value: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(6))
    kind: Mapped[str] = mapped_column(String(24))  # satisfied_but_red / dissatisfied_but_green


class AuditEvent(Base):
    """Every write of the survey service: who, when, what, on which object."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(20))  # questionnaire/campaign/response
    object_id: Mapped[int] = mapped_column(BigId)
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id"),)


class ReceivedResult(Base):
    """The read-only copy of a child node's published satisfaction results (one publication).

    Filled only by the sync applier; the latest publication per (origin, campaign) is the
    current one, the earlier ones are kept as superseded.
    """

    __tablename__ = "survey_received_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin_node: Mapped[str] = mapped_column(String(64))
    entity_key: Mapped[str] = mapped_column(String(200))
    # The campaign and publication ids at the origin node.
    campaign_ref: Mapped[int] = mapped_column(Integer)
    publication_ref: Mapped[int] = mapped_column(Integer)
    region_code: Mapped[str] = mapped_column(String(12))
    period: Mapped[str] = mapped_column(String(10))
    published_at: Mapped[datetime] = mapped_column(UtcDateTime)
    seq: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("origin_node", "entity_key"),
        Index("ix_survey_received_results_region", "region_code", "period"),
        Index(
            "ix_survey_received_results_campaign", "origin_node", "campaign_ref", "publication_ref"
        ),
    )
