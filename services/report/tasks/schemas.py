"""Wire shapes of rectification tasks, responsible units, progress and re-inspections."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl

__all__ = [
    "Evidence",
    "Milestone",
    "ProgressIn",
    "ReassignIn",
    "ReinspectionIn",
    "ReinspectionOut",
    "ReopenIn",
    "TaskCreate",
    "TaskOut",
    "TaskPage",
    "TaskSummary",
    "UnitIn",
    "UnitOut",
]


class Evidence(BaseModel):
    """One piece of evidence: a photo, document, record or link, identified so it can be found."""

    kind: Literal["photo", "document", "record", "link", "data"] = "document"
    title: str = Field(min_length=1, max_length=200)
    url: HttpUrl | None = None
    file_name: str | None = Field(default=None, max_length=200)
    sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    note: str = Field(default="", max_length=1000)


class Milestone(BaseModel):
    due: date
    percent: float = Field(ge=0, le=100)
    title: str = Field(default="", max_length=200)


class Plan(BaseModel):
    measures: str = Field(default="", max_length=5000, description="整改措施")
    milestones: list[Milestone] = Field(default_factory=list)


class TaskCreate(BaseModel):
    problem_id: int
    unit_id: int = Field(description="责任单位")
    deadline: date = Field(description="完成时限")
    start_date: date | None = Field(default=None, description="开始日期，默认今天")
    title: str | None = Field(default=None, max_length=300)
    plan: Plan = Field(default_factory=lambda: Plan())


class ProgressIn(BaseModel):
    percent: int = Field(ge=0, le=100)
    note: str = Field(min_length=1, max_length=5000)
    evidence: list[Evidence] = Field(min_length=1, description="进展须附佐证材料")
    reported_on: date | None = None


class ReassignIn(BaseModel):
    unit_id: int
    reason: str = Field(min_length=1, max_length=1000)
    deadline: date | None = None


class ReinspectionIn(BaseModel):
    inspector: str = Field(min_length=1, max_length=100)
    inspected_on: date
    passed: bool
    findings: str = Field(default="", max_length=5000)
    evidence: list[Evidence] = Field(min_length=1)


class ReopenIn(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)
    deadline: date | None = None


class CloseIn(BaseModel):
    note: str = Field(default="", max_length=1000)


class UnitIn(BaseModel):
    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-.]+$")
    name: str = Field(min_length=1, max_length=200)
    region_code: str
    kind: Literal["department", "street", "community", "company", "other"] = "department"
    contact: str = Field(default="", max_length=200)


class UnitOut(BaseModel):
    id: int
    code: str
    name: str
    region_code: str
    kind: str
    contact: str
    active: bool

    model_config = {"from_attributes": True}


class ReinspectionOut(BaseModel):
    id: int
    inspector: str
    inspected_on: date
    passed: bool
    findings: str
    evidence: list[dict[str, Any]]
    task_revision: int
    recorded_by: str
    recorded_at: datetime

    model_config = {"from_attributes": True}


class TaskOut(BaseModel):
    id: int
    problem_id: int
    region_code: str
    period: str
    title: str
    unit: UnitOut
    start_date: date
    deadline: date
    plan: dict[str, Any]
    status: str
    progress: int
    last_progress_on: date | None
    colour: str
    colour_reason: str
    expected_progress: float
    days_left: int
    reopen_count: int
    revision: int
    closed_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    project_ids: list[int] = Field(default_factory=list)


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = None


class TaskEvent(BaseModel):
    action: str
    actor: str
    actor_region: str
    at: datetime
    detail: dict[str, Any]


class TaskDetail(TaskOut):
    events: list[TaskEvent]
    reinspections: list[ReinspectionOut]


class SummaryRow(BaseModel):
    key: str
    name: str
    total: int
    closed: int
    green: int
    yellow: int
    red: int
    closure_rate: float


class TaskSummary(BaseModel):
    region_code: str
    group_by: str
    as_of: date
    total: int
    closed: int
    by_colour: dict[str, int]
    rows: list[SummaryRow]
    rule: dict[str, Any]
    rule_text: str
