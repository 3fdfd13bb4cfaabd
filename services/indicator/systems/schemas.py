"""Wire shapes of indicator systems: the document (JSON import/export) and API bodies."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CATEGORY_LABELS",
    "CODE_PATTERN",
    "COMPUTE_LABELS",
    "DIRECTION_LABELS",
    "DOCUMENT_FORMAT",
    "LEVEL_LABELS",
    "VALUE_TYPE_LABELS",
    "Category",
    "Compute",
    "Direction",
    "EventOut",
    "ExtendIn",
    "ImportResult",
    "IndicatorDoc",
    "IndicatorPatch",
    "Level",
    "NewVersionIn",
    "SubItemDoc",
    "SubItemPatch",
    "SystemCreate",
    "SystemDocument",
    "SystemOut",
    "SystemPage",
    "SystemPatch",
    "SystemSummary",
    "ValueType",
    "default_index_method",
]

DOCUMENT_FORMAT = "checkup.indicator-system"
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control(value: str) -> str:
    # Control characters cannot be stored in an xlsx cell; refuse them up front so the
    # JSON → system → Excel round trip never loses or breaks on them.
    m = _CONTROL.search(value)
    if m:
        raise ValueError(f"含有不可见的控制字符 (control character U+{ord(m.group()):04X})")
    return value


Text = Annotated[str, AfterValidator(_no_control)]

Level = Literal["housing", "compound", "community", "block", "district", "city"]
Direction = Literal["higher", "lower", "band"]
ValueType = Literal["number", "integer", "percent"]
Category = Literal["national", "provincial", "local"]
Compute = Literal["entered", "sub_items", "formula"]
State = Literal["draft", "released", "retired"]

# Chinese labels used in the Excel workbook and in messages.
LEVEL_LABELS: dict[str, str] = {
    "housing": "住房",
    "compound": "小区",
    "community": "社区",
    "block": "街区",
    "district": "城区",
    "city": "城市",
}
DIRECTION_LABELS: dict[str, str] = {"higher": "越高越好", "lower": "越低越好", "band": "区间达标"}
VALUE_TYPE_LABELS: dict[str, str] = {"number": "数值", "integer": "整数", "percent": "百分比"}
CATEGORY_LABELS: dict[str, str] = {
    "national": "国家基础指标",
    "provincial": "省级特色指标",
    "local": "地方特色指标",
}
COMPUTE_LABELS: dict[str, str] = {
    "entered": "直接填报",
    "sub_items": "分项检查汇总",
    "formula": "公式计算",
}


def default_index_method() -> dict[str, Any]:
    """Equal dimension weights, grade points 100/60/0 (see docs/health-index.md)."""
    return {"normalisation": "grade_points", "grade_points": {"green": 100, "yellow": 60, "red": 0}}


class SubItemDoc(BaseModel):
    """One check of an indicator's checklist."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    code: str = Field(pattern=CODE_PATTERN)
    name: Text = Field(min_length=1, max_length=2000)
    sort_order: int = 0


class IndicatorDoc(BaseModel):
    """One indicator as it appears in the JSON document and the API."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    code: str = Field(pattern=CODE_PATTERN)
    name_zh: Text = Field(min_length=1, max_length=200)
    name_en: Text = Field(default="", max_length=300)
    level: Level
    dimension: Text = Field(min_length=1, max_length=60)
    unit: Text = Field(default="", max_length=20)
    direction: Direction
    standard_value: float | None = None
    warning_value: float | None = None
    band_low: float | None = None
    band_high: float | None = None
    warning_low: float | None = None
    warning_high: float | None = None
    standard_source: Text = ""
    min_value: float | None = None
    max_value: float | None = None
    value_type: ValueType = "number"
    data_source: Text = ""
    category: Category = "national"
    compute: Compute = "entered"
    formula: Text | None = Field(default=None, max_length=1000)
    weight: float = Field(default=1.0, ge=0, le=1000)
    sort_order: int = 0
    inherited: bool = False
    description: Text = ""
    sub_items: list[SubItemDoc] = Field(default_factory=list, max_length=500)

    @field_validator("formula")
    @classmethod
    def _blank_formula_is_none(cls, v: str | None) -> str | None:
        return v if v and v.strip() else None

    @field_validator(
        "standard_value",
        "warning_value",
        "band_low",
        "band_high",
        "warning_low",
        "warning_high",
        "min_value",
        "max_value",
    )
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and (v != v or v in (float("inf"), float("-inf"))):
            raise ValueError("必须是有限数值 (must be a finite number)")
        return v


class SystemDocument(BaseModel):
    """A whole system as exported and imported (JSON; the Excel workbook maps onto it)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["checkup.indicator-system"] = "checkup.indicator-system"
    format_version: Literal[1] = 1
    code: str = Field(pattern=CODE_PATTERN)
    name: Text = Field(min_length=1, max_length=200)
    year: int = Field(ge=2000, le=2100)
    version: int = Field(default=1, ge=1, le=10000)
    region_code: str | None = Field(default=None, pattern=r"^\d{6}$")
    description: Text = ""
    index_method: dict[str, Any] = Field(default_factory=default_index_method)
    indicators: list[IndicatorDoc] = Field(default_factory=list, max_length=5000)
    # Present in exports of stored systems; informational, ignored on import.
    status: dict[str, Any] | None = None


class SystemCreate(BaseModel):
    """A new draft: metadata and, optionally, its indicators."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE_PATTERN)
    name: Text = Field(min_length=1, max_length=200)
    year: int = Field(ge=2000, le=2100)
    version: int | None = Field(default=None, ge=1, le=10000, description="缺省为下一个版本号")
    region_code: str | None = Field(
        default=None, pattern=r"^\d{6}$", description="缺省为本节点区划"
    )
    description: Text = ""
    index_method: dict[str, Any] = Field(default_factory=default_index_method)
    indicators: list[IndicatorDoc] = Field(default_factory=list, max_length=5000)


class SystemPatch(BaseModel):
    """Metadata changes of a draft (only the fields given change)."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: Text | None = None
    index_method: dict[str, Any] | None = None


class IndicatorPatch(BaseModel):
    """Changes of one draft indicator (only the fields given change; null clears a value)."""

    model_config = ConfigDict(extra="forbid")

    code: str | None = Field(default=None, pattern=CODE_PATTERN)
    name_zh: str | None = Field(default=None, min_length=1, max_length=200)
    name_en: str | None = Field(default=None, max_length=300)
    level: Level | None = None
    dimension: str | None = Field(default=None, min_length=1, max_length=60)
    unit: str | None = Field(default=None, max_length=20)
    direction: Direction | None = None
    standard_value: float | None = None
    warning_value: float | None = None
    band_low: float | None = None
    band_high: float | None = None
    warning_low: float | None = None
    warning_high: float | None = None
    standard_source: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    value_type: ValueType | None = None
    data_source: str | None = None
    category: Category | None = None
    compute: Compute | None = None
    formula: Text | None = Field(default=None, max_length=1000)
    weight: float | None = Field(default=None, ge=0, le=1000)
    sort_order: int | None = None
    description: str | None = None
    sub_items: list[SubItemDoc] | None = Field(default=None, max_length=500)


class SubItemPatch(BaseModel):
    """Changes of one sub-item."""

    model_config = ConfigDict(extra="forbid")

    code: str | None = Field(default=None, pattern=CODE_PATTERN)
    name: Text | None = Field(default=None, min_length=1, max_length=2000)
    sort_order: int | None = None


class NewVersionIn(BaseModel):
    """Options of a new draft version copied from a released one."""

    model_config = ConfigDict(extra="forbid")

    year: int | None = Field(default=None, ge=2000, le=2100, description="缺省沿用原年度")
    name: str | None = Field(default=None, min_length=1, max_length=200)


class ExtendIn(BaseModel):
    """A lower region's system built on a released upper-level one."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE_PATTERN)
    name: Text = Field(min_length=1, max_length=200)
    year: int | None = Field(default=None, ge=2000, le=2100, description="缺省沿用上级体系年度")
    region_code: str | None = Field(
        default=None, pattern=r"^\d{6}$", description="缺省为本节点区划"
    )
    description: Text = ""


class SystemSummary(BaseModel):
    """A system without its indicators (lists)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    year: int
    version: int
    state: State
    region_code: str
    parent_system_id: int | None = None
    based_on_id: int | None = None
    description: str
    checksum: str | None
    created_by: str
    created_at: datetime
    released_by: str | None
    released_at: datetime | None
    retired_by: str | None
    retired_at: datetime | None
    indicator_count: int = 0


class SystemOut(SystemSummary):
    """A system with its indicators and their sub-items."""

    index_method: dict[str, Any]
    indicators: list[IndicatorDoc]


class SystemPage(BaseModel):
    items: list[SystemSummary]
    next_cursor: str | None = None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    system_id: int
    action: str
    actor: str
    node: str
    at: datetime
    detail: dict[str, Any]


class ImportResult(SystemOut):
    """The draft an import created."""
