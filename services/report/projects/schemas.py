"""Wire shapes of renewal projects (项目清单, columns of seed 002's project list)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, model_validator

__all__ = ["ProjectIn", "ProjectOut", "ProjectPage", "ProjectPatch"]

MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


class ProjectFields(BaseModel):
    code: str = Field(default="", max_length=40, description="项目编号")
    category: str = Field(default="", max_length=100, description="所属工程")
    sector: str = Field(default="", max_length=100, description="对应板块")
    need_description: str = Field(default="", max_length=2000, description="需求描述")
    need_level: Literal["紧迫", "一般"] = Field(default="一般", description="需求程度")
    location: str = Field(default="", max_length=300, description="项目位置")
    content: str = Field(default="", max_length=5000, description="建设内容")
    total_investment: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    fiscal_investment: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    social_investment: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    year_ratio: float | None = Field(default=None, ge=0, le=100, description="年度预计投资比例(%)")
    status: Literal["planned", "in_progress", "completed", "cancelled"] = "planned"


class ProjectIn(ProjectFields):
    region_code: str
    name: str = Field(min_length=1, max_length=300, description="项目名称")
    start_month: str = Field(pattern=MONTH, description="建设时序起 YYYY-MM")
    end_month: str = Field(pattern=MONTH, description="建设时序止 YYYY-MM")
    responsible_department: str = Field(min_length=1, max_length=200, description="责任部门")

    @model_validator(mode="after")
    def _consistent(self) -> ProjectIn:
        check_money(self.total_investment, self.fiscal_investment, self.social_investment)
        if self.end_month < self.start_month:
            raise ValueError("end_month 早于 start_month (schedule ends before it starts)")
        return self


def check_money(total: Decimal | None, fiscal: Decimal | None, social: Decimal | None) -> None:
    """Fiscal + social funds must add up to the total investment (填表说明 3)."""
    if total is None and (fiscal is not None or social is not None):
        raise ValueError("有资金构成时须填写项目总投资 (total_investment required)")
    complete = total is not None and fiscal is not None and social is not None
    if complete and abs((fiscal + social) - total) > Decimal("0.01"):  # type: ignore[operator]
        raise ValueError(
            f"财政资金 {fiscal} + 社会资金 {social} ≠ 项目总投资 {total} 万元 "
            "(fiscal + social must equal the total)"
        )


class ProjectPatch(BaseModel):
    """Fields to change; unspecified fields keep their values."""

    name: str | None = Field(default=None, min_length=1, max_length=300)
    code: str | None = Field(default=None, max_length=40)
    category: str | None = None
    sector: str | None = None
    need_description: str | None = None
    need_level: Literal["紧迫", "一般"] | None = None
    location: str | None = None
    content: str | None = None
    total_investment: Decimal | None = Field(default=None, ge=0)
    fiscal_investment: Decimal | None = Field(default=None, ge=0)
    social_investment: Decimal | None = Field(default=None, ge=0)
    start_month: str | None = Field(default=None, pattern=MONTH)
    end_month: str | None = Field(default=None, pattern=MONTH)
    year_ratio: float | None = Field(default=None, ge=0, le=100)
    responsible_department: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["planned", "in_progress", "completed", "cancelled"] | None = None
    reason: str = Field(min_length=1, max_length=1000, description="变更原因")


class ProjectOut(ProjectFields):
    # Amounts in 万元 as JSON numbers (the inputs are checked as decimals).
    total_investment: float | None = None  # type: ignore[assignment]
    fiscal_investment: float | None = None  # type: ignore[assignment]
    social_investment: float | None = None  # type: ignore[assignment]
    id: int
    region_code: str
    name: str
    start_month: str
    end_month: str
    responsible_department: str
    task_ids: list[int] = Field(default_factory=list)
    created_by: str
    created_at: datetime
    updated_at: datetime


class ProjectPage(BaseModel):
    items: list[ProjectOut]
    next_cursor: str | None = None
