"""Row-level error messages of value checks (Chinese, English in parentheses)."""

from __future__ import annotations

from typing import Any

from services.indicator.values.bulk import RowError
from services.indicator.values.models import SOURCES

__all__ = ["LINE_LABELS", "PARSE_MESSAGES", "error_message", "row_error_dicts"]

# How each format names the place of a data row in the file.
LINE_LABELS: dict[str, tuple[str, str]] = {
    "csv": ("文件第 {} 行", "file line {}"),
    "jsonl": ("文件第 {} 行", "file line {}"),
    "xlsx": ("工作表第 {} 行", "sheet row {}"),
}

PARSE_MESSAGES: dict[str, str] = {
    "columns": "列数与表头不一致 (number of fields differs from the header)",
    "json": "不是有效的 JSON (invalid JSON)",
    "not_object": "每行应为一个 JSON 对象 (each line must be a JSON object)",
    "field_type": (
        "字段类型错误：代码、单位、备注、来源应为文本 (codes, unit, note and source must be text)"
    ),
}


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    return str(int(x)) if float(x).is_integer() else repr(x)


def error_message(e: RowError, system_id: int, scope: str | None) -> str:
    """The reason of one row error, without the row prefix."""
    code = e.code
    if e.field == "row":
        return PARSE_MESSAGES.get(code, code)
    if code == "missing":
        name = {"indicator_code": "指标代码", "region_code": "区划代码"}[e.field]
        return f"缺少{name} (missing {e.field})"
    if code == "unknown_indicator":
        return (
            f"指标代码 {e.indicator_code} 不在指标体系 {system_id} 中 "
            f"(unknown indicator code in system {system_id})"
        )
    if code == "formula_indicator":
        return (
            f"指标 {e.indicator_code} 由公式计算，不接受填报 "
            "(derived by formula; it cannot be entered)"
        )
    if code == "unknown_region":
        return f"区划代码 {e.region_code} 不存在 (unknown region code)"
    if code == "out_of_scope":
        return (
            f"区划 {e.region_code} 不在当前身份的管辖范围 {scope} 内 "
            f"(region outside the caller's scope {scope})"
        )
    if code == "level":
        return (
            f"区划 {e.region_code} 的层级低于指标 {e.indicator_code} 的层级 "
            "(region is below the indicator's level)"
        )
    if code == "not_number":
        return f"数值 “{e.bad_value}” 不是有效数字 (value is not a number)"
    if code == "out_of_range":
        low = e.min_value if e.min_value is not None else (0 if e.value_type == "percent" else None)
        high = (
            e.max_value if e.max_value is not None else (100 if e.value_type == "percent" else None)
        )
        return (
            f"数值 {_num(e.value)} 超出合理范围 [{_num(low)}, {_num(high)}] "
            "(value outside the plausible range)"
        )
    if code == "not_integer":
        return f"指标 {e.indicator_code} 要求整数，收到 {_num(e.value)} (integer required)"
    if code == "unit":
        return (
            f"单位 “{e.unit}” 与指标单位 “{e.ind_unit}” 不一致 "
            f"(unit differs from the indicator's unit {e.ind_unit!r})"
        )
    if code == "source":
        return f"数据来源 “{e.source or ''}” 无效，应为 {'/'.join(SOURCES)} (unknown source)"
    if code == "note_too_long":
        return "备注过长 (note too long)"
    if code == "duplicate":
        return (
            f"同一指标、区划、来源在文件中重复出现（首次出现在第 {e.ref} 行数据），均不导入 "
            f"(duplicate key, first seen in data row {e.ref}; none of its rows applied)"
        )
    if code == "locked":
        return (
            f"区划 {e.region_code} 的数据所属填报（编号 {e.ref}）已提交或已审核，数据已锁定 "
            f"(locked by submission {e.ref})"
        )
    return code


def row_error_dicts(
    errors: list[RowError], fmt: str, system_id: int, scope: str | None
) -> list[dict[str, Any]]:
    """Wire form of row errors: row (data row from 1), line (in the file), field, message."""
    zh, en = LINE_LABELS.get(fmt, ("", ""))
    out: list[dict[str, Any]] = []
    if fmt == "single":  # one value: there is no row to point at, only fields
        return [
            {"field": e.field, "code": e.code, "message": error_message(e, system_id, scope)}
            for e in errors
        ]
    for e in errors:
        where = f"第 {e.rn} 行数据"
        where_en = f"data row {e.rn}"
        if zh:
            where += f"（{zh.format(e.line)}）"
            where_en += f", {en.format(e.line)}"
        out.append(
            {
                "row": e.rn,
                "line": e.line,
                "field": e.field,
                "code": e.code,
                "message": f"{where} ({where_en}): {error_message(e, system_id, scope)}",
            }
        )
    return out
