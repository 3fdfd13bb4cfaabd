"""Wire shapes of submissions and their events."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

State = Literal["draft", "submitted", "approved", "rejected", "reviewed", "accepted"]


class TransitionIn(BaseModel):
    reason: str | None = Field(
        None, max_length=2000, description="原因；退回和解锁时必填 (required to reject or unlock)"
    )


class EventOut(BaseModel):
    id: int
    action: str
    from_state: str
    to_state: str
    reason: str | None
    actor: str
    actor_region: str
    at: datetime

    model_config = {"from_attributes": True}


class SubmissionOut(BaseModel):
    id: int | None = Field(description="未提交过的填报为 null (null while never submitted)")
    system_id: int
    region_code: str
    period: str
    state: State
    locked: bool = Field(description="数据是否冻结（已提交或已审核）(values frozen)")
    reason: str | None = None
    updated_by: str | None = None
    updated_at: datetime | None = None
    values: int = Field(0, description="覆盖的指标值数量 (values covered)")
    flagged: int = Field(0, description="其中有校验标记的 (of which flagged)")
    events: list[EventOut] = []


class SubmissionSummary(BaseModel):
    id: int
    system_id: int
    region_code: str
    period: str
    state: State
    locked: bool
    reason: str | None
    updated_by: str
    updated_at: datetime

    model_config = {"from_attributes": True}


class SubmissionPage(BaseModel):
    items: list[SubmissionSummary]
    next_cursor: str | None = None
