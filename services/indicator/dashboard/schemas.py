"""Wire shapes of the dashboard JSON (stable: fields are only ever added, never renamed)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = [
    "ChildScore",
    "ChildrenOut",
    "ColourCounts",
    "DimensionScore",
    "RedIndicator",
    "SeriesOut",
    "SeriesPoint",
    "SourceGrade",
    "SummaryOut",
]


class ColourCounts(BaseModel):
    """Indicators by colour (one value per indicator, chosen by source priority)."""

    green: int = 0
    yellow: int = 0
    red: int = 0
    grey: int = 0


class DimensionScore(BaseModel):
    dimension: str
    score: float | None = Field(description="维度得分 0–100，无可评价指标时为空")
    weight: float = Field(description="该维度在健康指数中的权重")
    n_graded: int
    counts: ColourCounts
    previous: float | None = Field(description="上一期（上年同期）得分")
    change: float | None = Field(description="较上一期的变化（得分差）")


class RedIndicator(BaseModel):
    """An indicator graded 不达标 (red) for the region, with what decided it."""

    indicator_code: str
    name: str
    dimension: str
    unit: str
    weight: float
    source: str
    value: float | None
    standard: str = Field(description="标准，如 “≥ 90”")
    rule: str


class SummaryOut(BaseModel):
    """Region-period summary: colours, dimension scores, health index, rank, change, red items."""

    region_code: str
    region_name: str
    region_level: str
    system_id: int
    system_code: str
    system_name: str
    period: str
    index: float | None = Field(description="城市健康指数 0–100")
    rank: int | None = Field(description="在同级兄弟区划中的名次（并列同名次）")
    rank_of: int | None = Field(description="参与排名的兄弟区划数")
    n_graded: int
    counts: ColourCounts
    dimensions: list[DimensionScore]
    previous_period: str | None
    previous_system_id: int | None
    index_previous: float | None
    index_change: float | None
    top_red: list[RedIndicator]
    evaluated_at: datetime
    generated_at: datetime


class SourceGrade(BaseModel):
    source: str
    value: float | None
    grade: str


class SeriesPoint(BaseModel):
    period: str
    system_id: int
    system_code: str
    system_version: int
    source: str = Field(description="进入指数的数据来源（按来源优先级选出）")
    value: float | None
    grade: str
    points: float | None
    rule: str
    sources: list[SourceGrade] = Field(description="同一期所有来源的值与评级")


class SeriesOut(BaseModel):
    """One indicator of one region over periods, across system versions (by indicator code)."""

    region_code: str
    region_name: str
    indicator_code: str
    indicator_name: str | None
    unit: str | None
    points: list[SeriesPoint]
    generated_at: datetime


class ChildScore(BaseModel):
    region_code: str
    name: str
    level: str
    index: float | None
    rank: int | None
    rank_of: int | None
    n_graded: int
    counts: ColourCounts
    dimensions: dict[str, float | None]
    evaluated: bool = Field(description="是否已有评价结果")


class ChildrenOut(BaseModel):
    """The direct children of a region with their index, rank and colours (map / table)."""

    region_code: str
    region_name: str
    system_id: int
    period: str
    evaluated_children: int
    children: list[ChildScore]
    generated_at: datetime
