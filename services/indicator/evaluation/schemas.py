"""Wire shapes of the evaluation domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "PERIOD_PATTERN",
    "EvaluationOut",
    "EvaluationPageOut",
    "GradeCounts",
    "Period",
    "RunIn",
    "RunOut",
]

# A year ("2025") or an ISO-style period within a year ("2025-Q2", "2025-H1", "2025-06").
PERIOD_PATTERN = r"^\d{4}(-(Q[1-4]|H[12]|(0[1-9]|1[0-2])))?$"
Period = Annotated[str, Field(pattern=PERIOD_PATTERN, examples=["2025"])]
Grade = Literal["green", "yellow", "red", "grey"]


class RunIn(BaseModel):
    """What to evaluate: one system version and period, in a region and everything below."""

    system_id: int = Field(gt=0)
    period: Period
    region_code: str | None = Field(
        default=None,
        pattern=r"^\d{6}(\d{3}){0,2}$",
        description="评价范围（默认当前身份的区划） (scope root; default the caller's region)",
    )


class GradeCounts(BaseModel):
    green: int
    yellow: int
    red: int
    grey: int


class RunOut(BaseModel):
    """The outcome of an evaluation run (also kept as an audit record)."""

    run_id: int
    system_id: int
    period: str
    region_code: str
    values_evaluated: int
    grades: GradeCounts
    regions_scored: int
    duration_ms: int
    evaluated_at: datetime
    evaluated_by: str
    index_method: dict[str, Any]


class EvaluationOut(BaseModel):
    """The grade of one value and the rule that decided it."""

    value_id: int
    system_id: int
    indicator_code: str
    region_code: str
    period: str
    source: str
    value: float | None
    grade: Grade
    points: float | None
    rule: str

    model_config = {"from_attributes": True}


class EvaluationPageOut(BaseModel):
    items: list[EvaluationOut]
    next_cursor: str | None = None
