"""Wire shapes of questionnaires."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class QuestionnaireOut(BaseModel):
    id: int
    code: str
    version: int
    title: str
    year: int
    region_code: str
    state: str
    checksum: str | None
    created_by: str
    created_at: datetime
    released_by: str | None
    released_at: datetime | None
    definition: dict[str, Any]

    model_config = {"from_attributes": True}


class QuestionnaireSummary(BaseModel):
    id: int
    code: str
    version: int
    title: str
    year: int
    region_code: str
    state: str
    created_at: datetime

    model_config = {"from_attributes": True}


class QuestionnairePage(BaseModel):
    items: list[QuestionnaireSummary]
    next_cursor: str | None = None


class TargetOut(BaseModel):
    id: int
    kind: str
    code: str
    label: str
    dimension: str
    level: str
    indicator_code: str | None
    indicator_measure: str
    objective_indicators: list[str]

    model_config = {"from_attributes": True}


class EventOut(BaseModel):
    action: str
    actor: str
    at: datetime
    detail: dict[str, Any]

    model_config = {"from_attributes": True}
