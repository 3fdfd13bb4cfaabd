"""HTTP endpoints of the indicator service's dashboard domain (read-only, scope-checked)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.indicator.dashboard import service
from services.indicator.dashboard.schemas import ChildrenOut, SeriesOut, SummaryOut
from services.indicator.evaluation.schemas import PERIOD_PATTERN
from shared.db import DbSession
from shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard 驾驶舱"])

RegionCode = Annotated[
    str | None,
    Query(pattern=r"^\d{6}(\d{3}){0,2}$", description="区划代码，默认当前身份的区划"),
]
Period = Annotated[str, Query(pattern=PERIOD_PATTERN, description="评价期，如 2025")]
SystemId = Annotated[int, Query(gt=0, description="指标体系版本 id")]


@router.get("/summary", response_model=SummaryOut, summary="区划体检概览 (region summary)")
def get_summary(
    session: DbSession,
    identity: CurrentIdentity,
    period: Period,
    system_id: SystemId,
    region_code: RegionCode = None,
    top: Annotated[int, Query(ge=0, le=100, description="不达标指标条数")] = 10,
) -> SummaryOut:
    """Colour counts, dimension scores, health index, rank, change and top red indicators."""
    region = region_code or identity.region
    identity.check_read(region)
    return service.summary(session, region_code=region, period=period, system_id=system_id, top=top)


@router.get("/series", response_model=SeriesOut, summary="指标时间序列 (indicator over time)")
def get_series(
    session: DbSession,
    identity: CurrentIdentity,
    indicator_code: Annotated[str, Query(min_length=1, max_length=40)],
    region_code: RegionCode = None,
    system_code: Annotated[
        str | None, Query(max_length=40, description="只看此体系族 (one system family)")
    ] = None,
) -> SeriesOut:
    """Value and grade of one indicator of a region per period, across system versions."""
    region = region_code or identity.region
    identity.check_read(region)
    return service.series(
        session, region_code=region, indicator_code=indicator_code, system_code=system_code
    )


@router.get("/children", response_model=ChildrenOut, summary="下级区划对比 (children compared)")
def get_children(
    session: DbSession,
    identity: CurrentIdentity,
    period: Period,
    system_id: SystemId,
    region_code: RegionCode = None,
) -> ChildrenOut:
    """Each direct child region's index, rank and colour counts, for a map or a table."""
    region = region_code or identity.region
    identity.check_read(region)
    return service.children(session, region_code=region, period=period, system_id=system_id)
