"""Parsers of bulk bodies (CSV, JSON lines, the platform's xlsx template) into staging rows.

Parsers stream: they yield one staging row per data row and never build the file's
rows in memory twice. A row that cannot be read on its own (wrong number of fields,
a line that is not a JSON object) becomes a row-level rejection; a body that cannot be
read at all (bad encoding, broken CSV quoting, not an xlsx, someone else's workbook)
raises a 422 naming the line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from collections.abc import Iterator
from typing import Any

from services.indicator.values.bulk import StageRow
from services.indicator.values.exceptions import UnsupportedMediaType
from shared.errors import ValidationFailed

__all__ = [
    "FORMATS",
    "HEADER_ALIASES",
    "META_SHEET",
    "TEMPLATE_FORMAT",
    "TEMPLATE_SHEET",
    "XLSX_TYPE",
    "BodyParser",
    "format_of",
    "parser_for",
]

FORMATS = ("csv", "jsonl", "xlsx")
TEMPLATE_SHEET = "填报"
META_SHEET = "_meta"
TEMPLATE_FORMAT = "checkup-values-template/1"

# Accepted column names (English field names and the template's Chinese headers).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "indicator_code": ("indicator_code", "指标代码", "指标编码"),
    "region_code": ("region_code", "区划代码"),
    "value": ("value", "数值"),
    "unit": ("unit", "单位"),
    "note": ("note", "备注"),
    "source": ("source", "来源", "数据来源"),
}
_ALIAS = {alias.lower(): name for name, aliases in HEADER_ALIASES.items() for alias in aliases}
REQUIRED = ("indicator_code", "region_code", "value")


def _malformed(detail: str, line: int | None = None, field: str = "body") -> ValidationFailed:
    err: dict[str, Any] = {"field": field, "message": detail}
    if line is not None:
        err["line"] = line
    return ValidationFailed(detail, errors=[err], slug="malformed-body")


def _number(raw: Any) -> tuple[float | None, str]:
    """(value, ''), (None, '') for empty, or (None, raw text) when not a finite number."""
    if raw is None:
        return None, ""
    if isinstance(raw, bool):
        return None, str(raw).lower()
    if isinstance(raw, int | float):
        x = float(raw)
        return (x, "") if math.isfinite(x) else (None, str(raw))
    if not isinstance(raw, str):
        return None, str(raw)[:100]
    text = raw.strip()
    if not text:
        return None, ""
    try:
        x = float(text)
    except ValueError:
        return None, text[:100]
    return (x, "") if math.isfinite(x) else (None, text[:100])


def _text(raw: Any) -> str:
    """Stripped text; '' when absent."""
    if raw is None:
        return ""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # a code typed into a numeric cell
    return str(raw).strip()


def _failed(rn: int, line: int, code: str) -> StageRow:
    return (rn, line, "", "", "", None, "", "", "", code)


class BodyParser:
    """One body's rows; ``skipped`` counts blank template rows left out."""

    fmt = ""
    line_label = ""

    def __init__(self, body: bytes, default_source: str) -> None:
        self.body = body
        self.default_source = default_source
        self.skipped = 0

    def rows(self) -> Iterator[StageRow]:
        raise NotImplementedError

    def columns(self, header: list[Any], line: int) -> dict[str, int]:
        """Map the header to field positions; unknown columns are ignored."""
        index: dict[str, int] = {}
        for i, name in enumerate(header):
            key = _ALIAS.get(str(name or "").strip().lower())
            if key and key not in index:
                index[key] = i
        missing = [f for f in REQUIRED if f not in index]
        if missing:
            raise _malformed(
                f"表头缺少必需的列: {', '.join(missing)}（第 {line} 行）"
                f" (header lacks required columns: {', '.join(missing)})",
                line,
                field="header",
            )
        return index


class CsvParser(BodyParser):
    """CSV with a header row; UTF-8 (with or without BOM) or GB18030 as Excel saves it."""

    fmt = "csv"

    def _decode(self) -> str:
        try:
            return self.body.decode("utf-8-sig")
        except UnicodeDecodeError as utf8_error:
            try:
                return self.body.decode("gb18030")
            except UnicodeDecodeError:
                line = self.body[: utf8_error.start].count(b"\n") + 1
                raise _malformed(
                    f"文件编码无法识别，请保存为 UTF-8（第 {line} 行）"
                    f" (not UTF-8 or GB18030 text, file line {line})",
                    line,
                ) from None

    def rows(self) -> Iterator[StageRow]:
        reader = csv.reader(io.StringIO(self._decode(), newline=""), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise _malformed("文件为空 (empty body)", 1)
            idx = self.columns(header, reader.line_num)
            ncols = len(header)
            ic, rc, vc = idx["indicator_code"], idx["region_code"], idx["value"]
            uc, nc, sc = idx.get("unit"), idx.get("note"), idx.get("source")
            default_source = self.default_source
            rn = 0
            end = reader.line_num
            for rec in reader:
                line, end = end + 1, reader.line_num
                if not rec or (len(rec) == 1 and not rec[0].strip()):
                    continue  # blank line
                rn += 1
                if len(rec) != ncols:
                    yield _failed(rn, line, "columns")
                    continue
                raw = rec[vc]
                value: float | None
                try:
                    value, bad = float(raw), ""
                    if value - value != 0:  # inf or nan
                        value, bad = None, raw.strip()[:100]
                except ValueError:
                    value, bad = None, raw.strip()[:100]
                yield (
                    rn,
                    line,
                    rec[ic].strip(),
                    rec[rc].strip(),
                    (rec[sc].strip() or default_source) if sc is not None else default_source,
                    value,
                    bad,
                    rec[uc].strip() if uc is not None else "",
                    rec[nc].strip() if nc is not None else "",
                    "",
                )
        except csv.Error as exc:
            line = reader.line_num
            raise _malformed(
                f"CSV 格式错误（文件第 {line} 行）: {exc} (malformed CSV at file line {line})",
                line,
            ) from None


class JsonLinesParser(BodyParser):
    """One JSON object per line; blank lines are ignored."""

    fmt = "jsonl"

    def rows(self) -> Iterator[StageRow]:
        rn = 0
        for line, raw in enumerate(self.body.split(b"\n"), 1):
            if not raw.strip():
                continue
            rn += 1
            try:
                obj = json.loads(raw)
            except ValueError:
                yield _failed(rn, line, "json")
                continue
            if not isinstance(obj, dict):
                yield _failed(rn, line, "not_object")
                continue
            fields = {_ALIAS.get(str(k).lower(), k): v for k, v in obj.items()}
            texts = [fields.get(k) for k in ("indicator_code", "region_code", "source", "unit")]
            note = fields.get("note")
            if any(isinstance(t, dict | list | bool) for t in (*texts, note)):
                yield _failed(rn, line, "field_type")
                continue
            value, bad = _number(fields.get("value"))
            yield (
                rn,
                line,
                _text(texts[0]),
                _text(texts[1]),
                _text(texts[2]) or self.default_source,
                value,
                bad,
                _text(texts[3]),
                _text(note),
                "",
            )


class XlsxParser(BodyParser):
    """The platform's own 填报模板: refused when its hidden sheet names another system/period."""

    fmt = "xlsx"

    def __init__(self, body: bytes, default_source: str, *, system_id: int, period: str) -> None:
        super().__init__(body, default_source)
        self.system_id = system_id
        self.period = period

    def rows(self) -> Iterator[StageRow]:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            wb = openpyxl.load_workbook(io.BytesIO(self.body), read_only=True, data_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
            raise _malformed(
                f"不是有效的 xlsx 文件 (not a readable xlsx workbook): {exc}"
            ) from None
        try:
            yield from self._rows(wb)
        finally:
            wb.close()

    def _rows(self, wb: Any) -> Iterator[StageRow]:
        if META_SHEET not in wb.sheetnames or TEMPLATE_SHEET not in wb.sheetnames:
            raise _malformed(
                "不是平台生成的填报模板，请先下载模板 (not a template generated by the platform: "
                "download it from GET /api/v1/values/template)",
                field="body",
            )
        meta = {
            str(r[0]): r[1]
            for r in wb[META_SHEET].iter_rows(min_row=1, max_col=2, values_only=True)
            if r and r[0] is not None
        }
        if meta.get("format") != TEMPLATE_FORMAT:
            raise _malformed("模板版本无法识别 (unknown template format)", field="body")
        if str(meta.get("system_id")) != str(self.system_id):
            raise _malformed(
                f"模板属于指标体系 {meta.get('system_id')}，与本次导入的 {self.system_id} 不符 "
                f"(template belongs to system {meta.get('system_id')})",
                field="system_id",
            )
        if str(meta.get("period")) != self.period:
            raise _malformed(
                f"模板属于期间 {meta.get('period')}，与本次导入的 {self.period} 不符 "
                f"(template belongs to period {meta.get('period')})",
                field="period",
            )
        ws = wb[TEMPLATE_SHEET]
        it = ws.iter_rows(values_only=True)
        header = next(it, None)
        if header is None:
            raise _malformed("模板没有表头 (template has no header row)", 1, field="header")
        idx = self.columns(list(header), 1)
        ic, rc, vc = idx["indicator_code"], idx["region_code"], idx["value"]
        nc, sc = idx.get("note"), idx.get("source")
        for sheet_row, rec in enumerate(it, 2):
            cells = list(rec) + [None] * (len(header) - len(rec))
            value_cell = cells[vc]
            note = _text(cells[nc]) if nc is not None else ""
            if (value_cell is None or value_cell == "") and not note:
                self.skipped += 1  # a template row nobody filled in
                continue
            value, bad = _number(value_cell)
            yield (
                sheet_row - 1,
                sheet_row,
                _text(cells[ic]),
                _text(cells[rc]),
                (_text(cells[sc]) if sc is not None else "") or self.default_source,
                value,
                bad,
                "",  # the unit column is informational in the template
                note,
                "",
            )


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_CONTENT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/plain": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/jsonlines": "jsonl",
    "application/json-lines": "jsonl",
    XLSX_TYPE: "xlsx",
}


def format_of(content_type: str | None, filename: str | None = None) -> str:
    """The body format named by a content type (or, for uploads, the file name)."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in _CONTENT_TYPES:
        return _CONTENT_TYPES[ct]
    name = (filename or "").lower()
    for ext, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".xlsx", "xlsx")):
        if name.endswith(ext):
            return fmt
    raise UnsupportedMediaType(
        f"不支持的内容类型 {ct or '(none)'}，应为 text/csv、application/x-ndjson 或 xlsx "
        "(unsupported content type)",
        errors=[{"field": "content-type", "message": "text/csv, application/x-ndjson or xlsx"}],
    )


def parser_for(
    fmt: str, body: bytes, *, default_source: str, system_id: int, period: str
) -> BodyParser:
    """The parser of one body format."""
    if fmt == "csv":
        return CsvParser(body, default_source)
    if fmt == "jsonl":
        return JsonLinesParser(body, default_source)
    return XlsxParser(body, default_source, system_id=system_id, period=period)
