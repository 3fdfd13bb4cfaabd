"""Wire shapes of indicator values, their history and import batches."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

Source = Literal["self_checkup", "third_party", "survey", "department", "hotline"]
Mode = Literal["per_row", "all_or_nothing"]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class RowErrorOut(BaseModel):
    row: int | None = Field(None, description="数据行号，从 1 起 (data row number from 1)")
    line: int | None = Field(None, description="在文件中的行号 (line / sheet row in the file)")
    field: str
    code: str | None = None
    message: str


class ImportOut(BaseModel):
    """Result of a bulk import (also the body of GET /imports/{id})."""

    batch_id: int
    status: Literal["applied", "partial", "rejected"]
    rows_total: int
    rows_applied: int = Field(description="新建或修改的行 (created or changed)")
    rows_unchanged: int = Field(description="与已存值相同的行 (same as stored)")
    rows_rejected: int
    errors: list[RowErrorOut] = Field(description="前 1000 条错误 (first errors, capped)")
    errors_total: int = 0
    rows_created: int = 0
    rows_updated: int = 0
    rows_skipped: int = Field(0, description="模板中未填写的空行 (blank template rows)")
    flags: dict[str, int] = Field(default_factory=dict)
    derived: int = Field(0, description="重新计算的公式指标值 (formula values changed)")


class ValueIn(BaseModel):
    """One value to create or change."""

    system_id: int
    indicator_code: Annotated[str, Field(min_length=1, max_length=40)]
    region_code: Annotated[str, Field(pattern=r"^\d{6}(\d{3}){0,2}$")]
    period: Annotated[str, Field(max_length=10)]
    source: Source = "self_checkup"
    value: FiniteFloat | None
    unit: Annotated[str | None, Field(max_length=20)] = None
    note: str | None = Field(
        None, description="备注；省略则保留原备注 (omitted keeps the stored note)"
    )
    expected_revision: int | None = Field(
        None,
        description="乐观并发：当前修订号，新建时为 0 (optimistic concurrency; 0 = must not exist)",
    )
    reason: Annotated[str | None, Field(max_length=500)] = Field(
        None, description="修改原因，记入历史 (why, kept in the history)"
    )


class ValueOut(BaseModel):
    id: int
    system_id: int
    indicator_code: str
    region_code: str
    period: str
    source: str
    value: float | None
    note: str | None
    flags: dict[str, Any] | None
    on_behalf: bool
    batch_id: int | None
    revision: int
    updated_by: str
    updated_at: datetime

    model_config = {"from_attributes": True}


class ValueDetail(ValueOut):
    locked_by_submission: int | None = Field(
        None, description="冻结此值的填报编号（已提交或已审核）(submission that freezes it)"
    )


class ValuePage(BaseModel):
    items: list[ValueOut]
    next_cursor: str | None = None


class HistoryOut(BaseModel):
    id: int | None = Field(
        description="历史记录编号；未修改过的值的创建记录由值本身给出，无编号 "
        "(null for the creation entry of a value never changed since)"
    )
    value_id: int
    action: str
    old_value: float | None
    new_value: float | None
    old_note: str | None = None
    new_note: str | None = None
    revision: int | None = None
    batch_id: int | None
    changed_by: str
    changed_at: datetime
    reason: str | None
    on_behalf: bool | None = None
    system_id: int | None = None
    indicator_code: str | None = None
    region_code: str | None = None
    period: str | None = None
    source: str | None = None

    model_config = {"from_attributes": True}


class BatchOut(BaseModel):
    id: int
    system_id: int
    period: str
    format: str
    mode: str
    status: str
    source: str | None
    rows_total: int
    rows_applied: int
    rows_unchanged: int
    rows_rejected: int
    errors: list[dict[str, Any]]
    summary: dict[str, Any] | None
    created_by: str
    actor_region: str | None
    created_at: datetime

    model_config = {"from_attributes": True}


class BatchPage(BaseModel):
    items: list[BatchOut]
    next_cursor: str | None = None
