"""Wire shapes of the problem list (问题清单)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["DismissIn", "ProblemIn", "ProblemOut", "ProblemPage"]


class ProblemOut(BaseModel):
    id: int
    region_code: str
    period: str
    system_id: int | None
    dedupe_key: str
    category: str
    title: str
    description: str
    indicator_code: str | None
    object_type: str | None
    object_id: str | None
    severity: str
    rules: list[str]
    evidence: list[dict[str, Any]]
    status: str
    origin_node: str
    created_by: str
    created_at: datetime
    updated_at: datetime

    model_config = {"from_attributes": True}


class ProblemPage(BaseModel):
    items: list[ProblemOut]
    next_cursor: str | None = None


class ProblemIn(BaseModel):
    """A problem found outside the diagnosis rules (e.g. a hotline cluster or an inspection)."""

    region_code: str
    period: str = Field(pattern=r"^\d{4}(Q[1-4]|-\d{2})?$")
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=5000)
    severity: Literal["high", "medium", "low"]
    indicator_code: str | None = Field(default=None, max_length=40)
    object_type: str | None = Field(default=None, max_length=20)
    object_id: str | None = Field(default=None, max_length=60)
    evidence: list[dict[str, Any]] = Field(min_length=1, description="发现问题的依据")


class DismissIn(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)
