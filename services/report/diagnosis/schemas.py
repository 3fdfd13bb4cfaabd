"""Wire shapes of diagnosis runs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["DiagnosisRunIn", "DiagnosisRunOut"]


class DiagnosisRunIn(BaseModel):
    system_id: int = Field(ge=1)
    period: str = Field(pattern=r"^\d{4}$")
    region_code: str | None = None


class FindingOut(BaseModel):
    region_code: str
    dedupe_key: str
    category: str
    title: str
    severity: str
    rules: list[str]


class DiagnosisRunOut(BaseModel):
    region_code: str
    period: str
    system_id: int
    evaluations_read: int
    satisfaction_items_read: int
    open_answers_read: int
    created: int
    updated: int
    unchanged: int
    problem_ids: list[int]
    findings: list[FindingOut]
    config: dict[str, Any]
    notes: list[str]
