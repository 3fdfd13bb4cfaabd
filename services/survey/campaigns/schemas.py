"""Wire shapes of campaigns, their settings, population margins, sampling plans and progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

MarginVar = Literal["region", "age_band", "sex"]


def _default_margins() -> list[list[MarginVar]]:
    # Raking on region and on age × sex: robust where the full cross has empty cells.
    return [["region"], ["age_band", "sex"]]


class Limits(BaseModel):
    """Flood control of the public link."""

    per_address_per_hour: int = Field(default=30, ge=1, le=100_000)
    per_device: int = Field(default=3, ge=1, le=100_000)
    attempts_per_minute: int = Field(default=60, ge=1, le=100_000)
    max_body_bytes: int = Field(default=32 * 1024, ge=1024, le=256 * 1024)


class Screening(BaseModel):
    """Thresholds of the quality screens (see docs/survey.md)."""

    # Reading faster than this many characters per second is not reading.
    chars_per_second: float = Field(default=20.0, gt=0)
    seconds_per_answer: float = Field(default=1.0, ge=0)
    straightline_min_items: int = Field(default=8, ge=3)
    duplicates: bool = True


class Weighting(BaseModel):
    """Raking margins, trimming bounds and the publication rule of a campaign."""

    margins: list[list[MarginVar]] = Field(default_factory=lambda: _default_margins(), min_length=1)
    trim_low: float = Field(default=0.3, gt=0, le=1)
    trim_high: float = Field(default=5.0, ge=1)
    max_iterations: int = Field(default=200, ge=1, le=10_000)
    tolerance: float = Field(default=1e-6, gt=0)
    min_n: int = Field(default=30, ge=1)

    @field_validator("margins")
    @classmethod
    def _distinct(cls, v: list[list[str]]) -> list[list[str]]:
        for m in v:
            if not m or len(set(m)) != len(m):
                raise ValueError("每个边际须为不重复的变量组合 (distinct variables)")
        return v


class Disagreement(BaseModel):
    """When satisfaction and the objective grade are said to disagree."""

    high_rate: float = Field(default=80.0, ge=0, le=100)
    low_rate: float = Field(default=60.0, ge=0, le=100)


class Theme(BaseModel):
    label: str = Field(min_length=1, max_length=60)
    keywords: list[str] = Field(min_length=1)


class CampaignSettings(BaseModel):
    limits: Limits = Field(default_factory=Limits)
    screening: Screening = Field(default_factory=Screening)
    weighting: Weighting = Field(default_factory=Weighting)
    disagreement: Disagreement = Field(default_factory=Disagreement)
    # Open-text themes; None uses the shipped dictionary.
    themes: dict[str, Theme] | None = None


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    questionnaire_id: int
    region_code: str
    period: str = Field(pattern=r"^\d{4}$")
    opens_at: datetime
    closes_at: datetime
    system_id: int | None = None
    settings: CampaignSettings = Field(default_factory=CampaignSettings)

    @model_validator(mode="after")
    def _dates(self) -> CampaignIn:
        if self.closes_at <= self.opens_at:
            raise ValueError("截止时间须晚于开始时间 (closes_at must be after opens_at)")
        return self


class CampaignPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    system_id: int | None = None
    settings: dict[str, Any] | None = None


class CampaignOut(BaseModel):
    id: int
    token: str
    link: str
    name: str
    questionnaire_id: int
    region_code: str
    period: str
    system_id: int | None
    state: str
    accepting: bool
    opens_at: datetime
    closes_at: datetime
    settings: dict[str, Any]
    margin_level: int | None
    created_by: str
    created_at: datetime


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    next_cursor: str | None = None


class PopulationRow(BaseModel):
    region_code: str
    age_band: str
    sex: str
    population: float


class PopulationIn(BaseModel):
    rows: list[dict[str, Any]] = Field(min_length=1)


class PopulationOut(BaseModel):
    campaign_id: int
    margin_level: int | None
    cells: int
    total: float
    regions: dict[str, float]
    age_sex: dict[str, float]


class PlanIn(BaseModel):
    """Either an allocation rule (total, floor) or explicit targets."""

    total: int | None = Field(default=None, ge=1)
    floor: int = Field(default=0, ge=0)
    targets: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> PlanIn:
        if (self.total is None) == (self.targets is None):
            raise ValueError("须给出 total（按人口分配）或 targets（逐项目标）之一")
        return self


class QuotaOut(BaseModel):
    kind: str
    region_code: str
    age_band: str
    sex: str
    target: int

    model_config = {"from_attributes": True}


class ProgressCell(BaseModel):
    key: str
    target: int | None
    collected: int
    excluded: int
    shortfall: int | None
    done: float | None


class Progress(BaseModel):
    campaign_id: int
    state: str
    accepting: bool
    received: int
    collected: int
    excluded: int
    target: int | None
    shortfall: int | None
    regions: list[ProgressCell]
    age_sex: list[ProgressCell]
    as_of: datetime
