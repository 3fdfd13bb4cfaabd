"""Wire shapes of reports, versions, artifacts and generation jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["ArtifactOut", "BulletinIn", "JobIn", "JobOut", "ReportOut", "VersionOut"]

Format = Literal["json", "html", "docx", "pdf"]


def _all_formats() -> list[Format]:
    return ["json", "html", "docx", "pdf"]


class JobIn(BaseModel):
    kind: Literal["annual", "province", "bulletin"]
    region_code: str
    period: str = Field(description="YYYY（年度/省级）或 YYYYQn（季度通报）")
    system_id: int | None = Field(default=None, ge=1, description="指标体系（年度与省级报告必填）")
    formats: list[Format] = Field(default_factory=_all_formats)


class BulletinIn(BaseModel):
    region_code: str
    period: str = Field(pattern=r"^\d{4}Q[1-4]$", description="季度，如 2026Q3")
    formats: list[Format] = Field(default_factory=_all_formats)


class JobOut(BaseModel):
    id: int
    kind: str
    region_code: str
    period: str
    system_id: int
    formats: list[str]
    status: str
    progress: int
    step: str
    error: dict[str, Any] | None
    report_id: int | None
    version: int | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    model_config = {"from_attributes": True}


class ArtifactOut(BaseModel):
    format: str
    sha256: str
    size: int
    url: str


class VersionOut(BaseModel):
    version: int
    sha256: str
    template_ref: str
    job_id: int | None
    created_by: str
    created_at: datetime
    artifacts: list[ArtifactOut]


class ReportOut(BaseModel):
    id: int
    kind: str
    region_code: str
    period: str
    system_id: int
    title: str
    state: str
    latest_version: int
    final_version: int | None
    finalized_by: str | None
    finalized_at: datetime | None
    created_by: str
    created_at: datetime
    versions: list[VersionOut] = Field(default_factory=list)


class FinalizeIn(BaseModel):
    version: int | None = Field(default=None, ge=1, description="默认最新版本")


class TemplateOut(BaseModel):
    kind: str
    region_code: str | None
    version: int
    source: str
    sha256: str
    text: str
