"""The xlsx entry template (填报模板) of a region for one released system and period."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill, Protection
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.indicator.regions.models import Region
from services.indicator.regions.service import get_region
from services.indicator.systems.models import Indicator
from services.indicator.values.bulk import max_rank_of
from services.indicator.values.models import IndicatorValue
from services.indicator.values.parsers import META_SHEET, TEMPLATE_FORMAT, TEMPLATE_SHEET
from services.indicator.values.service import check_period, check_source, released_system
from shared.dbtypes import utcnow
from shared.errors import ValidationFailed
from shared.identity import Identity
from shared.regions import LEVEL_RANK, RegionLevel, prefix_of

__all__ = ["HEADERS", "MAX_TEMPLATE_ROWS", "build_template"]

HEADERS = ("指标代码", "指标名称", "层级", "维度", "单位", "区划代码", "区划名称", "数值", "备注")
WIDTHS = (12, 40, 10, 14, 10, 16, 24, 14, 30)
EDITABLE = {"数值", "备注"}
# One sheet holds at most 1,048,576 rows in Excel.
MAX_TEMPLATE_ROWS = 1_000_000

LEVEL_NAMES = {
    "housing": "住房",
    "compound": "小区",
    "community": "社区",
    "block": "街区",
    "district": "城区",
    "city": "城市",
}


def _regions_at(session: Session, root: Region, rank: int) -> list[tuple[str, str]]:
    if rank == root.level_rank:
        return [(root.code, root.name)]
    rows = session.execute(
        select(Region.code, Region.name)
        .where(Region.code.startswith(prefix_of(root.code)), Region.level_rank == rank)
        .order_by(Region.code)
    )
    return [(c, n) for c, n in rows]


def build_template(
    session: Session,
    identity: Identity,
    *,
    system_id: int,
    period: str,
    region_code: str,
    level: RegionLevel | None = None,
    source: str = "self_checkup",
) -> tuple[bytes, str]:
    """The template workbook and its file name.

    One row per entered (non-formula) indicator × region: the region itself, or with
    ``level`` its descendants at that level, never deeper than the indicator's own
    level allows. Values already stored for ``source`` are pre-filled. Code columns are
    locked by sheet protection; the value and note cells are not. A hidden sheet names
    the system and period so that an upload against another one is refused.
    """
    system = released_system(session, system_id)
    check_period(period)
    check_source(source)
    root = get_region(session, region_code)
    identity.check_read(region_code)
    wanted = LEVEL_RANK[level] if level else root.level_rank
    if wanted < root.level_rank:
        raise ValidationFailed(
            f"层级 {level} 高于区划 {region_code} 本身的层级 (level is above the region)",
            errors=[{"field": "level", "message": "must be the region's level or below"}],
        )
    indicators = list(
        session.scalars(
            select(Indicator)
            .where(Indicator.system_id == system_id, Indicator.compute != "formula")
            .order_by(Indicator.sort_order, Indicator.code)
        )
    )
    by_rank: dict[int, list[tuple[str, str]]] = {}
    plan: list[tuple[Indicator, list[tuple[str, str]]]] = []
    total = 0
    for ind in indicators:
        rank = min(wanted, max_rank_of(ind.level))
        if rank < root.level_rank:
            continue  # the indicator is not measured at or below this region
        if rank not in by_rank:
            by_rank[rank] = _regions_at(session, root, rank)
        plan.append((ind, by_rank[rank]))
        total += len(by_rank[rank])
    if total > MAX_TEMPLATE_ROWS:
        raise ValidationFailed(
            f"模板将有 {total} 行，超过上限 {MAX_TEMPLATE_ROWS}，请选择更小的区划或层级 "
            f"(template would have {total} rows; choose a smaller region or level)",
            errors=[{"field": "region_code", "message": f"{total} rows > {MAX_TEMPLATE_ROWS}"}],
        )
    stored = {
        (c, r): (v, n)
        for c, r, v, n in session.execute(
            select(
                IndicatorValue.indicator_code,
                IndicatorValue.region_code,
                IndicatorValue.value,
                IndicatorValue.note,
            ).where(
                IndicatorValue.system_id == system_id,
                IndicatorValue.period == period,
                IndicatorValue.source == source,
                IndicatorValue.region_code.startswith(prefix_of(region_code)),
            )
        )
    }

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(TEMPLATE_SHEET)
    for i, width in enumerate(WIDTHS):
        ws.column_dimensions[chr(ord("A") + i)].width = width
    # Protection stops accidental edits of codes; the server still checks every row.
    ws.protection.sheet = True
    ws.protection.formatColumns = False
    ws.protection.autoFilter = False
    ws.protection.sort = False
    ws.freeze_panes = "A2"
    check = DataValidation(
        type="decimal",
        operator="between",
        formula1="-1E+15",
        formula2="1E+15",
        allow_blank=True,
        showErrorMessage=True,
        errorTitle="数值无效",
        error="请输入数字 (enter a number)",
    )
    ws.data_validations.append(check)
    if total:
        check.add(f"H2:H{total + 1}")
    header_font = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    editable_fill = PatternFill("solid", fgColor="FFF2CC")
    unlocked = Protection(locked=False)

    def header() -> list[Any]:
        cells = []
        for name in HEADERS:
            cell = WriteOnlyCell(ws, value=name)
            cell.font = header_font
            cell.fill = editable_fill if name in EDITABLE else header_fill
            cell.alignment = Alignment(horizontal="center")
            cells.append(cell)
        return cells

    def editable(value: Any) -> Any:
        cell = WriteOnlyCell(ws, value=value)
        cell.protection = unlocked
        return cell

    def rows() -> Iterator[list[Any]]:
        for ind, regions in plan:
            level_name = LEVEL_NAMES.get(ind.level, ind.level)
            for code, name in regions:
                value, note = stored.get((ind.code, code), (None, None))
                yield [
                    ind.code,
                    ind.name_zh,
                    level_name,
                    ind.dimension,
                    ind.unit,
                    code,
                    name,
                    editable(value),
                    editable(note),
                ]

    ws.append(header())
    for row in rows():
        ws.append(row)

    meta = wb.create_sheet(META_SHEET)
    meta.sheet_state = "hidden"
    meta.protection.sheet = True
    for key, val in (
        ("format", TEMPLATE_FORMAT),
        ("system_id", system.id),
        ("system_code", system.code),
        ("system_version", system.version),
        ("period", period),
        ("region_code", region_code),
        ("source", source),
        ("generated_by", identity.subject),
        ("generated_at", utcnow().isoformat()),
    ):
        meta.append([key, val])
    buf = io.BytesIO()
    wb.save(buf)
    filename = f"values-template-{system.code}-v{system.version}-{period}-{region_code}.xlsx"
    return buf.getvalue(), filename
