"""Wire shapes of the spatial domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ImportReportOut(BaseModel):
    """Outcome of an import of objects or inspections (row numbers as the user sees them)."""

    batch_id: int
    status: Literal["applied", "partial", "rejected"]
    rows_total: int
    rows_applied: int
    rows_rejected: int
    created: int = 0
    updated: int = 0
    errors: list[dict[str, Any]] = []


class UnitOut(BaseModel):
    id: int
    kind: str
    code: str
    name: str
    region_code: str
    compound_id: int | None
    residents: int | None
    dwellings: int | None
    floors: int | None
    built_year: int | None
    attrs: dict[str, Any] = {}
    lon: float
    lat: float
    geometry: dict[str, Any] | None = None
    updated_by: str
    updated_at: datetime


class FacilityOut(BaseModel):
    id: int
    code: str
    name: str
    facility_type: str
    region_code: str
    capacity: float | None
    area_m2: float | None
    attrs: dict[str, Any] = {}
    lon: float
    lat: float
    geometry: dict[str, Any] | None = None
    updated_by: str
    updated_at: datetime


class ExtentIn(BaseModel):
    bbox: tuple[float, float, float, float] = Field(
        description="minLon, minLat, maxLon, maxLat (CGCS2000)"
    )
    source: str = Field("", max_length=500, description="出处 (where the extent comes from)")


class ExtentOut(BaseModel):
    region_code: str
    bbox: tuple[float, float, float, float]
    source: str
    updated_by: str
    updated_at: datetime


class ResultIn(BaseModel):
    sub_item_code: str = Field(max_length=40)
    indicator_code: str | None = Field(None, max_length=40)
    outcome: str = Field(description="pass / fail / na（合格 / 不合格 / 不适用）")
    note: str | None = Field(None, max_length=2000)


class EvidenceIn(BaseModel):
    file_ref: str = Field(max_length=1000, description="照片文件引用 (file reference)")
    sha256: str = Field(description="SHA-256 校验值 (hex)")
    sub_item_code: str | None = None


class InspectionIn(BaseModel):
    """One inspection of one object: outcomes per sub-item, evidence, place and time."""

    system_id: int
    period: str
    unit_code: str
    inspector: str = Field(max_length=100)
    inspected_at: datetime
    lon: float | None = None
    lat: float | None = None
    note: str | None = Field(None, max_length=2000)
    results: list[ResultIn] = Field(min_length=1)
    evidence: list[EvidenceIn] = []


class RollupIn(BaseModel):
    system_id: int
    period: str
    full: bool = Field(False, description="全部重算 (recompute every community in scope)")


class RollupOut(BaseModel):
    run_id: int
    system_id: int
    period: str
    scope: str
    full: bool
    communities: int
    regions: int
    values_written: int
    values_created: int
    values_updated: int
    values_unchanged: int
    indicators: list[str]


class CoverageRuleIn(BaseModel):
    facility_type: str
    radius_m: float | None = Field(
        None, description="服务半径（米）；不填时用 GB 50180-2018 的值 (default from the standard)"
    )
    basis: Literal["compounds", "residents"] = "compounds"


class CoverageRuleOut(BaseModel):
    id: int
    system_id: int
    indicator_code: str
    facility_type: str
    radius_m: float
    basis: str
    radius_source: str
    updated_by: str
    updated_at: datetime

    model_config = {"from_attributes": True}


class CoverageRunIn(BaseModel):
    system_id: int
    period: str
    indicator_code: str | None = None


class CoveragePlanOut(BaseModel):
    backend: str
    uses_spatial_index: bool
    plan: str


class InspectionOut(BaseModel):
    id: int
    unit_id: int
    unit_code: str
    system_id: int
    period: str
    inspector: str
    inspected_at: datetime
    lon: float | None
    lat: float | None
    note: str | None
    batch_id: int | None
    created_by: str
    created_at: datetime
    results: list[dict[str, Any]]
    evidence: list[dict[str, Any]]


class ReceivedResultOut(BaseModel):
    indicator_code: str
    sub_item_code: str
    outcome: str
    note: str | None = None


class ReceivedInspectionOut(BaseModel):
    """A read-only copy of an inspection recorded at a node below (its origin)."""

    id: int
    origin_node: str
    key: str
    region_code: str
    unit_code: str
    unit_kind: str
    unit_name: str
    lon: float | None
    lat: float | None
    system: str = Field(description="code@year@version")
    period: str
    inspector: str
    inspected_at: datetime
    note: str | None
    results: list[ReceivedResultOut]
    items: int
    failed: int
    evidence_count: int
    evidence: list[str]
    latest: bool = Field(
        description="该对象在此体系与期别下最近的一次检查 (latest visit of the unit)"
    )
    received_at: datetime


class ReceivedInspectionPage(BaseModel):
    items: list[ReceivedInspectionOut]
    next_cursor: int | None = None


class ReceivedSummaryOut(BaseModel):
    """Copies per region: inspections, sub-items checked and failed among them."""

    region_code: str
    inspections: int
    items: int
    failed: int
    units: int
    last_inspected_at: datetime | None
