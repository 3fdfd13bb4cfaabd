"""The Excel form of a system: sheets 说明 (metadata), 指标 (indicators), 分项 (sub-items).

Writing then reading a workbook gives back exactly the same document: numbers keep every
digit (openpyxl's own "%.16g" would drop the 17th), strings that start with "=" stay text
(never formulas), enumerations are written as Chinese labels and read as labels or keys.
Reading reports every bad cell by sheet, row and column before anything is stored.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import Cell, MergedCell
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet
from pydantic import ValidationError

from services.indicator.systems.schemas import (
    CATEGORY_LABELS,
    COMPUTE_LABELS,
    DIRECTION_LABELS,
    LEVEL_LABELS,
    VALUE_TYPE_LABELS,
    SystemDocument,
)
from shared.errors import ValidationFailed

__all__ = [
    "INDICATOR_COLUMNS",
    "META_ROWS",
    "SHEET_INDICATORS",
    "SHEET_META",
    "SHEET_SUB_ITEMS",
    "SUB_ITEM_COLUMNS",
    "XLSX_MEDIA_TYPE",
    "WorkbookLayout",
    "read_workbook",
    "write_workbook",
]

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHEET_META, SHEET_INDICATORS, SHEET_SUB_ITEMS = "说明", "指标", "分项"
MAX_ROWS = 20000
MAX_ERRORS = 200
EMPTY_MARKERS = {"", "无标准", "无", "-", "—", "/"}


@dataclass(frozen=True)
class Column:
    field: str
    header: str
    kind: str  # text / number / integer / bool / enum
    labels: dict[str, str] | None = None
    width: int = 14


INDICATOR_COLUMNS: list[Column] = [
    Column("code", "指标编码", "text", width=10),
    Column("name_zh", "指标名称", "text", width=36),
    Column("name_en", "英文名称", "text", width=30),
    Column("level", "层级", "enum", LEVEL_LABELS, 8),
    Column("dimension", "维度", "text", width=10),
    Column("unit", "单位", "text", width=8),
    Column("direction", "评价方向", "enum", DIRECTION_LABELS, 10),
    Column("standard_value", "标准值", "number", width=9),
    Column("warning_value", "预警值", "number", width=9),
    Column("band_low", "达标区间下限", "number"),
    Column("band_high", "达标区间上限", "number"),
    Column("warning_low", "预警区间下限", "number"),
    Column("warning_high", "预警区间上限", "number"),
    Column("standard_source", "标准来源", "text", width=30),
    Column("min_value", "最小值", "number", width=9),
    Column("max_value", "最大值", "number", width=9),
    Column("value_type", "数值类型", "enum", VALUE_TYPE_LABELS, 10),
    Column("data_source", "数据来源", "text", width=24),
    Column("category", "指标类别", "enum", CATEGORY_LABELS, 14),
    Column("compute", "计算方式", "enum", COMPUTE_LABELS, 14),
    Column("formula", "计算公式", "text", width=24),
    Column("weight", "权重", "number", width=7),
    Column("sort_order", "排序", "integer", width=7),
    Column("inherited", "继承自上级体系", "bool", width=8),
    Column("description", "指标说明", "text", width=40),
]
SUB_ITEM_COLUMNS: list[Column] = [
    Column("indicator_code", "指标编码", "text", width=10),
    Column("code", "分项编码", "text", width=12),
    Column("name", "分项名称", "text", width=60),
    Column("sort_order", "排序", "integer", width=7),
]
# (field, label): the rows of sheet 说明; status rows are informational and not read back.
META_ROWS: list[tuple[str, str]] = [
    ("format", "文件格式"),
    ("format_version", "格式版本"),
    ("code", "体系编码"),
    ("name", "体系名称"),
    ("year", "年度"),
    ("version", "版本"),
    ("region_code", "发布区划代码"),
    ("description", "体系说明"),
    ("index_method", "健康指数方法（JSON）"),
]
STATUS_ROWS: list[tuple[str, str]] = [
    ("state", "状态"),
    ("checksum", "校验值（SHA-256）"),
    ("created_by", "创建人"),
    ("created_at", "创建时间"),
    ("released_by", "发布人"),
    ("released_at", "发布时间"),
]
_TRUE = {"是", "true", "TRUE", "True", "1", "y", "Y", "yes"}
_FALSE = {"否", "false", "FALSE", "False", "0", "n", "N", "no", ""}


# --- writing ------------------------------------------------------------------------------


def _put(cell: Cell | MergedCell, value: Any) -> None:
    if value is None or value == "":
        return
    if isinstance(value, bool):
        cell.value = "是" if value else "否"
    elif isinstance(value, float):
        if float(f"{value:.16g}") == value:
            cell.value = value
        else:  # keep the 17th digit: write the exact repr as a numeric cell
            cell.value = repr(value)
            cell.data_type = "n"
    else:
        cell.value = value
        if isinstance(value, str) and value.startswith("="):
            cell.data_type = "s"  # text, never an Excel formula


def _header(ws: Worksheet, columns: list[Column]) -> None:
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
    for j, col in enumerate(columns, start=1):
        cell = ws.cell(1, j, col.header)
        cell.font, cell.fill = bold, fill
        ws.column_dimensions[get_column_letter(j)].width = col.width
    ws.freeze_panes = "B2"


def _dropdowns(ws: Worksheet, columns: list[Column], last_row: int) -> None:
    for j, col in enumerate(columns, start=1):
        if col.kind not in ("enum", "bool"):
            continue
        options = list(col.labels.values()) if col.labels else ["是", "否"]
        dv = DataValidation(type="list", formula1='"' + ",".join(options) + '"', allow_blank=True)
        letter = get_column_letter(j)
        dv.add(f"{letter}2:{letter}{max(last_row, 2) + 200}")
        ws.add_data_validation(dv)


def write_workbook(doc: SystemDocument) -> bytes:
    """The workbook of a system document (sheets 说明, 指标, 分项)."""
    wb = Workbook()
    meta = wb.active
    assert meta is not None
    meta.title = SHEET_META
    meta.append(["项目", "内容", "字段 (field)"])
    for cell in meta[1]:
        cell.font = Font(bold=True)
    meta.column_dimensions["A"].width = 22
    meta.column_dimensions["B"].width = 60
    meta.column_dimensions["C"].width = 16
    data = doc.model_dump(mode="json")
    for r, (name, label) in enumerate(META_ROWS, start=2):
        meta.cell(r, 1, label)
        value = data[name]
        if name == "index_method":
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        _put(meta.cell(r, 2), value)
        meta.cell(r, 3, name)
    r = len(META_ROWS) + 3
    meta.cell(r, 1, "以下为导出时的状态，导入时忽略 (informational, ignored on import)")
    for name, label in STATUS_ROWS:
        r += 1
        meta.cell(r, 1, label)
        _put(meta.cell(r, 2), (doc.status or {}).get(name))
        meta.cell(r, 3, f"status.{name}")

    ws = wb.create_sheet(SHEET_INDICATORS)
    _header(ws, INDICATOR_COLUMNS)
    for i, ind in enumerate(doc.indicators, start=2):
        for j, col in enumerate(INDICATOR_COLUMNS, start=1):
            value = getattr(ind, col.field)
            if col.kind == "enum" and col.labels:
                value = col.labels[value]
            _put(ws.cell(i, j), value)
    _dropdowns(ws, INDICATOR_COLUMNS, len(doc.indicators) + 1)

    subs = wb.create_sheet(SHEET_SUB_ITEMS)
    _header(subs, SUB_ITEM_COLUMNS)
    r = 1
    for ind in doc.indicators:
        for s in ind.sub_items:
            r += 1
            for j, value in enumerate((ind.code, s.code, s.name, s.sort_order), start=1):
                _put(subs.cell(r, j), value)

    out = BytesIO()
    wb.save(out)
    return out.getvalue()


# --- reading ------------------------------------------------------------------------------


@dataclass
class WorkbookLayout:
    """Where each part of a document read from a workbook came from (sheet and row)."""

    indicator_rows: list[int] = field(default_factory=list)
    sub_item_rows: list[list[int]] = field(default_factory=list)
    meta_rows: dict[str, int] = field(default_factory=dict)

    def locate(self, index: int | None, attr: str, sub_index: int | None) -> dict[str, Any]:
        """Sheet, row and column of a document part named by indicator/sub-item position."""
        if index is None:
            key = attr.split(".", 1)[0]
            label = dict(META_ROWS).get(key, key)
            return {"sheet": SHEET_META, "row": self.meta_rows.get(key), "column": label}
        if sub_index is not None:
            header = {c.field: c.header for c in SUB_ITEM_COLUMNS}.get(attr, attr)
            row = self.sub_item_rows[index][sub_index]
            return {"sheet": SHEET_SUB_ITEMS, "row": row, "column": header}
        header = {c.field: c.header for c in INDICATOR_COLUMNS}.get(attr, attr)
        return {"sheet": SHEET_INDICATORS, "row": self.indicator_rows[index], "column": header}

    def field_of(self, problem: Any) -> dict[str, Any]:
        """Error entry for a service Problem, named by sheet/row/column."""
        out = self.locate(problem.index, problem.attr, problem.sub_index)
        out["field"] = problem.attr
        out["message"] = f"{out['sheet']}!{out['column']}{_row_text(out['row'])}: {problem.message}"
        if problem.position is not None:
            out["position"] = problem.position
        return out


def _row_text(row: int | None) -> str:
    return f" 第 {row} 行" if row else ""


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, sheet: str, row: int | None, column: str, message: str, fld: str = "") -> None:
        if len(self.items) < MAX_ERRORS:
            self.items.append(
                {
                    "sheet": sheet,
                    "row": row,
                    "column": column,
                    "field": fld or column,
                    "message": f"{sheet}!{column}{_row_text(row)}: {message}",
                }
            )

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            raise ValidationFailed(
                f"Excel 文件有 {len(self.items)} 处错误 (invalid workbook): {first['message']}",
                errors=self.items,
                slug="invalid-workbook",
            )


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() if not isinstance(value, str) else value


def _convert(col: Column, value: Any) -> tuple[bool, Any, str]:
    """(ok, converted value, error message) of one cell."""
    if col.kind == "text":
        return True, _text(value), ""
    if col.kind == "bool":
        text = _text(value).strip()
        if text in _TRUE:
            return True, True, ""
        if text in _FALSE:
            return True, False, ""
        return False, None, "应填“是”或“否” (expected 是/否)"
    if col.kind == "enum":
        assert col.labels is not None
        text = _text(value).strip()
        if text in col.labels:
            return True, text, ""
        by_label = {v: k for k, v in col.labels.items()}
        if text in by_label:
            return True, by_label[text], ""
        return False, None, f"可选值 (allowed): {'、'.join(col.labels.values())}"
    if isinstance(value, bool):
        return False, None, "应为数字 (expected a number)"
    if isinstance(value, int | float):
        number: float = value
    else:
        try:
            number = float(str(value).strip().replace(",", ""))
        except ValueError:
            return False, None, f"应为数字 (expected a number), 实际为 {str(value)[:40]!r}"
    if number != number or number in (float("inf"), float("-inf")):
        return False, None, "应为有限数字 (expected a finite number)"
    if col.kind == "integer":
        if not float(number).is_integer():
            return False, None, "应为整数 (expected an integer)"
        return True, int(number), ""
    return True, float(number), ""


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in EMPTY_MARKERS)


def _read_table(
    ws: Worksheet, sheet: str, columns: list[Column], required: set[str], errors: _Errors
) -> list[tuple[int, dict[str, Any]]]:
    """Rows of one sheet as (row number, {field: value}); empty cells are left out."""
    by_header: dict[str, Column] = {}
    for col in columns:
        by_header[col.header] = col
        by_header[col.field] = col
    rows = ws.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        errors.add(sheet, 1, "表头", "工作表为空，缺少表头 (empty sheet, no header row)")
        return []
    layout: list[Column | None] = []
    for j, name in enumerate(header, start=1):
        if name is None or str(name).strip() == "":
            layout.append(None)
            continue
        found = by_header.get(str(name).strip())
        if found is None:
            errors.add(
                sheet, 1, str(name), f"未知的列 (unknown column) 第 {get_column_letter(j)} 列"
            )
        layout.append(found)
    present = {c.field for c in layout if c is not None}
    for col in columns:
        if col.field in required and col.field not in present:
            errors.add(sheet, 1, col.header, "缺少必需的列 (required column missing)")
    out: list[tuple[int, dict[str, Any]]] = []
    for r, values in enumerate(rows, start=2):
        if r > MAX_ROWS + 1:
            errors.add(sheet, r, "", f"行数超过上限 {MAX_ROWS} (too many rows)")
            break
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        item: dict[str, Any] = {}
        for cell_col, value in zip(layout, values, strict=False):
            if cell_col is None:
                if value is not None and str(value).strip():
                    errors.add(sheet, r, "", "表头为空的列中有数据 (data under an empty header)")
                continue
            if cell_col.kind != "text" and _is_empty(value):
                continue
            if cell_col.kind == "text" and (value is None or value == ""):
                continue
            ok, converted, message = _convert(cell_col, value)
            if ok:
                item[cell_col.field] = converted
            else:
                errors.add(sheet, r, cell_col.header, message, cell_col.field)
        out.append((r, item))
    return out


def _read_meta(ws: Worksheet, errors: _Errors) -> tuple[dict[str, Any], dict[str, int]]:
    by_label = {label: name for name, label in META_ROWS}
    by_label.update({name: name for name, _ in META_ROWS})
    data: dict[str, Any] = {}
    rows: dict[str, int] = {}
    for r, values in enumerate(ws.iter_rows(values_only=True), start=1):
        if r == 1 or not values or values[0] is None:
            continue
        label = str(values[0]).strip()
        key = by_label.get(label)
        if key is None and len(values) > 2 and values[2] is not None:
            key = by_label.get(str(values[2]).strip())
        if key is None:
            continue  # status rows and notes are informational
        rows[key] = r
        value = values[1] if len(values) > 1 else None
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key == "index_method":
            try:
                data[key] = json.loads(str(value))
            except json.JSONDecodeError as exc:
                errors.add(SHEET_META, r, label, f"不是有效的 JSON (invalid JSON): {exc.msg}")
            continue
        if key in ("year", "version", "format_version"):
            ok, converted, message = _convert(Column(key, label, "integer"), value)
            if not ok:
                errors.add(SHEET_META, r, label, message, key)
                continue
            data[key] = converted
            continue
        data[key] = _text(value)
    return data, rows


def read_workbook(content: bytes) -> tuple[SystemDocument, WorkbookLayout]:
    """Parse a workbook into a system document; 422 naming sheet/row/column on bad cells."""
    try:
        wb = load_workbook(BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise ValidationFailed(
            "不是有效的 Excel (xlsx) 文件 (not a valid xlsx workbook)",
            errors=[{"field": "file", "message": f"{type(exc).__name__}: {exc}"[:300]}],
            slug="invalid-workbook",
        ) from exc
    errors = _Errors()
    try:
        for name in (SHEET_META, SHEET_INDICATORS):
            if name not in wb.sheetnames:
                errors.add(name, None, "", f"缺少工作表 (sheet missing): {name}")
        errors.raise_if_any()
        meta, meta_rows = _read_meta(wb[SHEET_META], errors)
        ind_rows = _read_table(
            wb[SHEET_INDICATORS],
            SHEET_INDICATORS,
            INDICATOR_COLUMNS,
            {"code", "name_zh", "level", "dimension", "direction"},
            errors,
        )
        sub_rows: list[tuple[int, dict[str, Any]]] = []
        if SHEET_SUB_ITEMS in wb.sheetnames:
            sub_rows = _read_table(
                wb[SHEET_SUB_ITEMS],
                SHEET_SUB_ITEMS,
                SUB_ITEM_COLUMNS,
                {"indicator_code", "code", "name"},
                errors,
            )
    finally:
        wb.close()

    position: dict[str, int] = {}
    for i, (_, item) in enumerate(ind_rows):
        code = item.get("code")
        if isinstance(code, str):
            position.setdefault(code, i)
        item["sub_items"] = []
    sub_item_rows: list[list[int]] = [[] for _ in ind_rows]
    for r, item in sub_rows:
        owner = item.pop("indicator_code", None)
        if owner is None:
            errors.add(SHEET_SUB_ITEMS, r, "指标编码", "缺少指标编码 (indicator code missing)")
            continue
        if owner not in position:
            errors.add(
                SHEET_SUB_ITEMS,
                r,
                "指标编码",
                f"指标表中没有此编码 (unknown indicator code) {owner}",
                "indicator_code",
            )
            continue
        i = position[owner]
        ind_rows[i][1]["sub_items"].append(item)
        sub_item_rows[i].append(r)
    errors.raise_if_any()

    layout = WorkbookLayout(
        indicator_rows=[r for r, _ in ind_rows], sub_item_rows=sub_item_rows, meta_rows=meta_rows
    )
    meta["indicators"] = [item for _, item in ind_rows]
    try:
        document = SystemDocument.model_validate(meta)
    except ValidationError as exc:
        for err in exc.errors()[:MAX_ERRORS]:
            where = _locate_loc(layout, err.get("loc", ()))
            errors.add(
                where["sheet"], where["row"], where["column"], err.get("msg", ""), where["field"]
            )
        errors.raise_if_any()
        raise  # pragma: no cover - raise_if_any always raises here
    return document, layout


def _locate_loc(parsed: WorkbookLayout, loc: tuple[Any, ...]) -> dict[str, Any]:
    if len(loc) >= 2 and loc[0] == "indicators" and isinstance(loc[1], int):
        index = loc[1]
        if len(loc) >= 4 and loc[2] == "sub_items" and isinstance(loc[3], int):
            attr = str(loc[4]) if len(loc) > 4 else "name"
            out = parsed.locate(index, attr, loc[3])
        else:
            attr = str(loc[2]) if len(loc) > 2 else "code"
            out = parsed.locate(index, attr, None)
        out["field"] = attr
        return out
    attr = ".".join(str(p) for p in loc) or "format"
    out = parsed.locate(None, attr, None)
    out["field"] = attr
    return out
