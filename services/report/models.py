"""Tables of the report service: problems, rectification tasks, projects, reports, jobs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION
from shared.dbtypes import JsonType, UtcDateTime, utcnow

__all__ = [
    "AuditEvent",
    "Base",
    "Problem",
    "Project",
    "ProjectTask",
    "ReceivedRecord",
    "Reinspection",
    "Report",
    "ReportArtifact",
    "ReportJob",
    "ReportTemplate",
    "ReportVersion",
    "ResponsibleUnit",
    "RuleConfig",
    "Task",
]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Problem(Base):
    """One entry of a region's problem list (问题清单), raised by diagnosis rules."""

    __tablename__ = "problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), index=True)
    period: Mapped[str] = mapped_column(String(10))
    system_id: Mapped[int | None] = mapped_column(Integer)
    # Identity of the finding for merging: "indicator:<code>", "satisfaction:<item>", ...
    dedupe_key: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    indicator_code: Mapped[str | None] = mapped_column(String(40))
    object_type: Mapped[str | None] = mapped_column(String(20))
    object_id: Mapped[str | None] = mapped_column(String(60))
    severity: Mapped[str] = mapped_column(String(8), default="medium")  # high/medium/low
    rules: Mapped[list[str]] = mapped_column(JsonType, default=list)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    status: Mapped[str] = mapped_column(String(12), default="open")  # open/assigned/closed/...
    origin_node: Mapped[str] = mapped_column(String(60), default="")
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("region_code", "period", "dedupe_key"),
        Index("ix_problems_period_region", "period", "region_code"),
    )


class ResponsibleUnit(Base):
    """A unit that can be made responsible for rectification (department, street, company)."""

    __tablename__ = "responsible_units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(12), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="department")
    contact: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Task(Base):
    """A rectification task (整改任务) for one problem."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), index=True)
    region_code: Mapped[str] = mapped_column(String(12), index=True)
    period: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(300))
    unit_id: Mapped[int] = mapped_column(ForeignKey("responsible_units.id"), index=True)
    start_date: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date] = mapped_column(Date)
    # {"measures": "...", "milestones": [{"due": "YYYY-MM-DD", "percent": 50, "title": ...}]}
    plan: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(12), default="in_progress")  # in_progress/closed
    progress: Mapped[int] = mapped_column(Integer, default=0)
    last_progress_on: Mapped[date | None] = mapped_column(Date)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by every change; re-inspections count only if newer than the last change.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Reinspection(Base):
    """A re-inspection (复查验收) of a task; a passed one is needed to close it."""

    __tablename__ = "task_reinspections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    task_revision: Mapped[int] = mapped_column(Integer)
    inspector: Mapped[str] = mapped_column(String(100))
    inspected_on: Mapped[date] = mapped_column(Date)
    passed: Mapped[bool] = mapped_column(Boolean)
    findings: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    recorded_by: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Project(Base):
    """A renewal project of the project list (项目清单), columns as in seed 002."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), index=True)
    code: Mapped[str] = mapped_column(String(40), default="")  # 项目编号, e.g. A01
    category: Mapped[str] = mapped_column(String(100), default="")  # 所属工程
    sector: Mapped[str] = mapped_column(String(100), default="")  # 对应板块
    need_description: Mapped[str] = mapped_column(Text, default="")  # 需求描述
    need_level: Mapped[str] = mapped_column(String(10), default="一般")  # 紧迫/一般
    name: Mapped[str] = mapped_column(String(300))
    location: Mapped[str] = mapped_column(String(300), default="")
    content: Mapped[str] = mapped_column(Text, default="")
    total_investment: Mapped[float | None] = mapped_column(Numeric(14, 2))  # 万元
    fiscal_investment: Mapped[float | None] = mapped_column(Numeric(14, 2))
    social_investment: Mapped[float | None] = mapped_column(Numeric(14, 2))
    start_month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    end_month: Mapped[str] = mapped_column(String(7))
    year_ratio: Mapped[float | None] = mapped_column(Float)  # XX年预计投资比例 (%)
    responsible_department: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default="planned")
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ProjectTask(Base):
    """Link of a renewal project to a rectification task it serves."""

    __tablename__ = "project_tasks"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    linked_by: Mapped[str] = mapped_column(String(100), default="")
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AuditEvent(Base):
    """Every change of a problem, task, project, report, template or rule: who, when, what."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(100))
    actor_region: Mapped[str] = mapped_column(String(12), default="")
    node: Mapped[str] = mapped_column(String(60), default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    __table_args__ = (Index("ix_audit_events_entity", "entity", "entity_id"),)


class RuleConfig(Base):
    """A versioned configuration (diagnosis rules, three-colour rule) set by a region."""

    __tablename__ = "rule_configs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # diagnosis / colour
    region_code: Mapped[str] = mapped_column(String(12))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("kind", "region_code", "version"),)


class ReportTemplate(Base):
    """A report outline (YAML with Jinja2 text blocks) a province or city set for its area."""

    __tablename__ = "report_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # annual / province / bulletin
    region_code: Mapped[str] = mapped_column(String(12))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("kind", "region_code", "version"),)


class Report(Base):
    """One report (annual, provincial comparison, bulletin) of a region and period."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    region_code: Mapped[str] = mapped_column(String(12), index=True)
    period: Mapped[str] = mapped_column(String(10))
    system_id: Mapped[int] = mapped_column(Integer, default=0)  # 0: not tied to a system
    title: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(10), default="draft")  # draft / final
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    final_version: Mapped[int | None] = mapped_column(Integer)
    finalized_by: Mapped[str | None] = mapped_column(String(100))
    finalized_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    origin_node: Mapped[str] = mapped_column(String(60), default="")
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("kind", "region_code", "period", "system_id"),)


class ReportVersion(Base):
    """One generated version of a report: its JSON document and checksum."""

    __tablename__ = "report_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JsonType)
    sha256: Mapped[str] = mapped_column(String(64))
    template_ref: Mapped[str] = mapped_column(String(100), default="")
    job_id: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("report_id", "version"),)


class ReportArtifact(Base):
    """A rendered file of a report version (html/docx/pdf/json) stored under the data dir."""

    __tablename__ = "report_artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("report_versions.id"), index=True)
    format: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("version_id", "format"),)


class ReportJob(Base):
    """A report generation job: queued → running → succeeded / failed, with progress."""

    __tablename__ = "report_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    region_code: Mapped[str] = mapped_column(String(12))
    period: Mapped[str] = mapped_column(String(10))
    system_id: Mapped[int] = mapped_column(Integer, default=0)
    formats: Mapped[list[str]] = mapped_column(JsonType, default=list)
    status: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    report_id: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int | None] = mapped_column(Integer)
    # The requester's claims: the worker reads sibling services acting as them.
    requester: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ReceivedRecord(Base):
    """The read-only latest copy of a child's problem, task, project or final report."""

    __tablename__ = "report_received"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin_node: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(20))
    entity_key: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(12), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("origin_node", "entity", "entity_key"),)
