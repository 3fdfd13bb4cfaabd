"""Field inspections: per object × sub-item outcomes with evidence, history kept.

Each row of a field sheet is one object × sub-item outcome. Rows with the same object,
inspector and time form one inspection (one visit). Nothing is overwritten: a re-inspection
adds rows, and ``inspection_results.current`` marks, per object × sub-item, the outcome of
the latest inspection (by inspection time, then by record order). The roll-up reads only
current outcomes.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from openpyxl import Workbook, load_workbook
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from services.indicator.spatial.dialect import spatial_sql
from services.indicator.spatial.models import (
    Inspection,
    InspectionEvidence,
    InspectionResult,
    RegionExtent,
    SpatialBatch,
    SpatialUnit,
)
from services.indicator.spatial.service import CHINA_BOX, ImportReport
from services.indicator.sync.inspections import record_inspection_writes
from services.indicator.systems.models import Indicator, IndicatorSystem, SubItem
from shared.errors import NotFound, ValidationFailed
from shared.identity import Identity
from shared.regions import contains

__all__ = [
    "FIELD_SHEET_COLUMNS",
    "FieldRow",
    "field_sheet_template",
    "import_field_sheet",
    "record_inspections",
    "unit_history",
]

OUTCOME_ALIASES = {
    "pass": "pass",
    "合格": "pass",
    "通过": "pass",
    "正常": "pass",
    "fail": "fail",
    "不合格": "fail",
    "不通过": "fail",
    "存在问题": "fail",
    "有隐患": "fail",
    "na": "na",
    "n/a": "na",
    "不适用": "na",
    "无": "na",
}
# Field-sheet columns: key, Chinese header (as written in the template), required.
FIELD_SHEET_COLUMNS = (
    ("unit_code", "对象编码", True),
    ("indicator_code", "指标编码", False),
    ("sub_item_code", "子项编码", True),
    ("outcome", "检查结果", True),
    ("note", "备注", False),
    ("inspector", "检查人", True),
    ("inspected_at", "检查时间", True),
    ("lon", "经度", False),
    ("lat", "纬度", False),
    ("photo_refs", "照片", False),
    ("photo_sha256", "照片校验值", False),
)
_HEADER_ALIASES = {zh: key for key, zh, _ in FIELD_SHEET_COLUMNS}
_PERIOD = re.compile(r"^\d{4}(-(Q[1-4]|H[12]|0[1-9]|1[0-2]))?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Large loads change the planner's picture; small ones are left to autovacuum.
BULK_ANALYZE_ROWS = 10_000


@dataclass
class FieldRow:
    """One object × sub-item outcome as read from a sheet or a JSON request."""

    row: int
    where: str
    values: dict[str, Any]
    # (file reference, SHA-256, sub-item code or None for the whole inspection)
    evidence: list[tuple[str, str, str | None]] = field(default_factory=list)


@dataclass
class _Clean:
    row: int
    unit_id: int
    region_code: str
    indicator_code: str
    sub_item_code: str
    outcome: str
    note: str | None
    inspector: str
    inspected_at: datetime
    lon: float | None
    lat: float | None
    evidence: list[tuple[str, str, str | None]]
    inspection_note: str | None = None


def released_system(session: Session, system_id: int) -> IndicatorSystem:
    """A released indicator system (checklists of drafts can still change)."""
    system = session.get(IndicatorSystem, system_id)
    if system is None:
        raise NotFound(f"指标体系不存在: {system_id} (unknown system)", slug="unknown-system")
    if system.state != "released":
        raise ValidationFailed(
            f"指标体系 {system_id} 尚未发布，不能据其检查 (system is not released)",
            errors=[{"field": "system_id", "message": f"state is {system.state}"}],
        )
    return system


def check_period(period: str) -> str:
    if not _PERIOD.match(period or ""):
        raise ValidationFailed(
            f"期别格式错误: {period} (period must be a year like 2025 or an ISO period)",
            errors=[{"field": "period", "message": "YYYY, YYYY-Qn, YYYY-Hn or YYYY-MM"}],
        )
    return period


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        s = str(value).strip().replace("/", "-")
        if not s:
            raise ValueError("empty")
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    # Field sheets carry Beijing time when no offset is given.
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC) - timedelta(hours=8)
    return dt.astimezone(UTC)


def _float(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return float(value)


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    return [p.strip() for p in re.split(r"[;；\n]", str(value)) if p.strip()]


def read_field_sheet(body: bytes, content_type: str | None) -> tuple[str, list[FieldRow]]:
    """Rows of a CSV or xlsx field sheet (headers in English keys or the template's Chinese)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if not body:
        raise ValidationFailed(
            "请求体为空 (empty body)", errors=[{"field": "file", "message": "empty"}]
        )
    if ctype == "text/csv":
        fmt = "csv"
        try:
            content = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            content = body.decode("gb18030", errors="strict")
        records: list[list[Any]] = list(csv.reader(io.StringIO(content, newline="")))
        offset = "文件"
    elif ctype in (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/octet-stream",
    ):
        fmt = "xlsx"
        try:
            wb = load_workbook(io.BytesIO(body), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises zip, XML and key errors for broken files
            raise ValidationFailed(
                f"无法读取 Excel 文件 (cannot read the xlsx file): {exc}",
                errors=[{"field": "file", "message": str(exc)}],
                slug="broken-file",
            ) from exc
        ws = wb.worksheets[0]
        records = [["" if v is None else v for v in r] for r in ws.iter_rows(values_only=True)]
        wb.close()
        offset = "工作表"
    else:
        raise ValidationFailed(
            f"不支持的内容类型 {ctype or '(无)'}，请上传 CSV 或 xlsx 检查表 (unsupported)",
            errors=[{"field": "content-type", "message": "text/csv or xlsx"}],
        )
    if not records:
        raise ValidationFailed(
            "缺少表头行 (missing header row)", errors=[{"field": "header", "message": "empty"}]
        )
    header = [_HEADER_ALIASES.get(str(h).strip(), str(h).strip().lower()) for h in records[0]]
    missing = [key for key, zh, req in FIELD_SHEET_COLUMNS if req and key not in header]
    if missing:
        raise ValidationFailed(
            f"检查表缺少列: {', '.join(missing)} (missing columns)",
            errors=[{"field": m, "message": "missing column"} for m in missing],
        )
    rows: list[FieldRow] = []
    keys = [key for key, _, _ in FIELD_SHEET_COLUMNS]
    n = 0
    for line, rec in enumerate(records[1:], start=2):
        cells = [str(v).strip() for v in rec]
        if not any(cells) or cells[: len(keys)] == keys:
            continue  # blank lines and the template's English header line
        n += 1
        values = {header[i]: rec[i] for i in range(min(len(header), len(rec)))}
        where = f"第 {n} 行数据（{offset}第 {line} 行） (data row {n}, line {line})"
        rows.append(FieldRow(n, where, values))
    return fmt, rows


class _Checker:
    def __init__(self, session: Session, identity: Identity, system_id: int):
        self.session = session
        self.identity = identity
        self.errors: list[dict[str, Any]] = []
        pairs = session.execute(
            select(Indicator.code, SubItem.code)
            .join(SubItem, SubItem.indicator_id == Indicator.id)
            .where(Indicator.system_id == system_id)
        ).all()
        self.by_sub: dict[str, list[str]] = defaultdict(list)
        self.pairs = set()
        for ind, sub in pairs:
            self.by_sub[sub].append(ind)
            self.pairs.add((ind, sub))
        self.extents = list(session.scalars(select(RegionExtent)))
        self.now = datetime.now(UTC)

    def error(self, row: FieldRow, fld: str, message: str) -> None:
        self.errors.append({"row": row.row, "field": fld, "message": f"{row.where}: {message}"})

    def check(self, rows: list[FieldRow]) -> list[_Clean]:
        codes = sorted({str(r.values.get("unit_code") or "").strip() for r in rows} - {""})
        units: dict[str, tuple[int, str]] = {}
        for i in range(0, len(codes), 5000):
            for code, uid, region in self.session.execute(
                select(SpatialUnit.code, SpatialUnit.id, SpatialUnit.region_code).where(
                    SpatialUnit.code.in_(codes[i : i + 5000])
                )
            ):
                units[code] = (uid, region)
        out: list[_Clean] = []
        seen: set[tuple[Any, ...]] = set()
        for r in rows:
            c = self._row(r, units)
            if c is None:
                continue
            key = (c.unit_id, c.indicator_code, c.sub_item_code, c.inspected_at, c.inspector)
            if key in seen:
                self.error(r, "sub_item_code", "同一次检查中子项重复 (sub-item repeated)")
                continue
            seen.add(key)
            out.append(c)
        return out

    def _row(self, r: FieldRow, units: dict[str, tuple[int, str]]) -> _Clean | None:
        v = r.values
        ok = True
        code = str(v.get("unit_code") or "").strip()
        unit = units.get(code)
        if not code:
            self.error(r, "unit_code", "缺少对象编码 (missing unit code)")
            ok = False
        elif unit is None:
            self.error(r, "unit_code", f"对象不存在: {code} (unknown building or compound)")
            ok = False
        elif not self.identity.can_read(unit[1]):
            self.error(
                r,
                "unit_code",
                f"对象 {code} 所在社区 {unit[1]} 不在管辖范围 {self.identity.region} 内 "
                "(object outside the caller's region)",
            )
            ok = False
        sub = str(v.get("sub_item_code") or "").strip()
        ind = str(v.get("indicator_code") or "").strip()
        if not sub:
            self.error(r, "sub_item_code", "缺少子项编码 (missing sub-item code)")
            ok = False
        elif ind and (ind, sub) not in self.pairs:
            self.error(
                r, "sub_item_code", f"指标 {ind} 没有子项 {sub} (unknown sub-item of indicator)"
            )
            ok = False
        elif not ind:
            owners = self.by_sub.get(sub, [])
            if not owners:
                self.error(r, "sub_item_code", f"未知子项: {sub} (unknown sub-item)")
                ok = False
            elif len(owners) > 1:
                self.error(
                    r,
                    "indicator_code",
                    f"子项 {sub} 属于多个指标 {', '.join(owners)}，请填写指标编码 "
                    "(ambiguous sub-item: give indicator_code)",
                )
                ok = False
            else:
                ind = owners[0]
        outcome = OUTCOME_ALIASES.get(str(v.get("outcome") or "").strip().lower())
        if outcome is None:
            self.error(
                r,
                "outcome",
                f"检查结果应为 pass/fail/na（合格/不合格/不适用），实为 {v.get('outcome')!r}",
            )
            ok = False
        inspector = str(v.get("inspector") or "").strip()
        if not inspector:
            self.error(r, "inspector", "缺少检查人 (missing inspector)")
            ok = False
        when: datetime | None = None
        try:
            when = _parse_time(v.get("inspected_at"))
            if when > self.now + timedelta(days=1):
                self.error(r, "inspected_at", f"检查时间在未来: {when.isoformat()} (in the future)")
                ok = False
        except (TypeError, ValueError):
            self.error(r, "inspected_at", f"检查时间无法识别: {v.get('inspected_at')!r} (bad time)")
            ok = False
        lon = lat = None
        try:
            lon, lat = _float(v.get("lon")), _float(v.get("lat"))
        except (TypeError, ValueError):
            self.error(r, "lon", "经纬度不是数字 (lon/lat not numbers)")
            ok = False
        if (lon is None) != (lat is None):
            self.error(r, "lon", "经度和纬度须同时填写 (give both lon and lat)")
            ok = False
        elif lon is not None and lat is not None:
            if not (CHINA_BOX[0] <= lon <= CHINA_BOX[2] and CHINA_BOX[1] <= lat <= CHINA_BOX[3]):
                self.error(r, "lon", f"坐标 ({lon}, {lat}) 不是中国范围内的经纬度")
                ok = False
            elif unit is not None:
                for e in self.extents:
                    if contains(e.region_code, unit[1]) and not (
                        e.min_lon <= lon <= e.max_lon and e.min_lat <= lat <= e.max_lat
                    ):
                        self.error(r, "lon", f"坐标 ({lon}, {lat}) 超出区划 {e.region_code} 的范围")
                        ok = False
                        break
        evidence = list(r.evidence)
        refs, sums = _split(v.get("photo_refs")), _split(v.get("photo_sha256"))
        if refs or sums:
            if len(refs) != len(sums):
                self.error(
                    r,
                    "photo_sha256",
                    f"照片 {len(refs)} 张但校验值 {len(sums)} 个 (one SHA-256 per photo)",
                )
                ok = False
            else:
                evidence.extend((ref, d, sub or None) for ref, d in zip(refs, sums, strict=True))
        for ref, digest, _sub in evidence:
            if not _SHA256.match(digest.lower()):
                self.error(r, "photo_sha256", f"照片 {ref} 的 SHA-256 校验值格式错误: {digest}")
                ok = False
            if len(ref) > 1000:
                self.error(r, "photo_refs", "照片引用过长 (file reference too long)")
                ok = False
        if not ok or unit is None or outcome is None or when is None:
            return None
        note = str(v.get("note") or "").strip() or None
        return _Clean(
            row=r.row,
            unit_id=unit[0],
            region_code=unit[1],
            indicator_code=ind,
            sub_item_code=sub,
            outcome=outcome,
            note=note,
            inspector=inspector,
            inspected_at=when,
            lon=lon,
            lat=lat,
            evidence=[(ref, d.lower(), es) for ref, d, es in evidence],
            inspection_note=str(v.get("inspection_note") or "").strip() or None,
        )


def import_field_sheet(
    session: Session,
    identity: Identity,
    *,
    system_id: int,
    period: str,
    body: bytes,
    content_type: str | None,
    mode: str = "per_row",
    rollup: bool = True,
) -> ImportReport:
    """Import a CSV/xlsx field sheet; row errors are reported, valid rows stored."""
    identity.check_write(identity.region)
    released_system(session, system_id)
    check_period(period)
    fmt, rows = read_field_sheet(body, content_type)
    return record_inspections(
        session,
        identity,
        system_id=system_id,
        period=period,
        rows=rows,
        fmt=fmt,
        mode=mode,
        rollup=rollup,
    )


def record_inspections(
    session: Session,
    identity: Identity,
    *,
    system_id: int,
    period: str,
    rows: list[FieldRow],
    fmt: str = "json",
    mode: str = "per_row",
    rollup: bool = True,
) -> ImportReport:
    """Validate and store inspection rows set-based; then roll up the changed communities."""
    identity.check_write(identity.region)
    released_system(session, system_id)
    check_period(period)
    if mode not in ("per_row", "all_or_nothing"):
        raise ValidationFailed(
            f"未知导入模式 {mode}", errors=[{"field": "mode", "message": "per_row|all_or_nothing"}]
        )
    checker = _Checker(session, identity, system_id)
    clean = checker.check(rows)
    errors = sorted(checker.errors, key=lambda e: e["row"])
    apply = clean if (mode == "per_row" or not errors) else []
    status = ("partial" if errors else "applied") if apply else "rejected"
    if not rows:
        status = "applied"
    batch = SpatialBatch(
        target="inspection",
        format=fmt,
        mode=mode,
        status=status,
        rows_total=len(rows),
        rows_applied=len(apply),
        rows_rejected=len(rows) - len(apply),
        errors=errors[:1000],
        created_by=identity.subject,
    )
    session.add(batch)
    session.flush()
    report = ImportReport(
        batch_id=batch.id,
        status=status,
        rows_total=len(rows),
        rows_applied=len(apply),
        rows_rejected=len(rows) - len(apply),
        errors=errors,
    )
    if apply:
        report.created = _write(session, identity, system_id, period, apply, batch.id)
        # For the parent, in this transaction: one change per visit the write touched.
        record_inspection_writes(session, batch_id=batch.id)
        if rollup:
            from services.indicator.spatial.rollup import rollup_counts

            rollup_counts(session, identity, system_id=system_id, period=period)
    return report


_STAGE = (
    ("row_no", "int"),
    ("inspection_id", "int"),
    ("unit_id", "int"),
    ("region_code", "text"),
    ("indicator_code", "text"),
    ("sub_item_code", "text"),
    ("outcome", "text"),
    ("note", "text"),
    ("inspected_at", "ts"),
    ("is_winner", "bool"),
)
_VISIT_STAGE = (
    ("inspection_id", "int"),
    ("unit_id", "int"),
    ("inspector", "text"),
    ("inspected_at", "ts"),
    ("lon", "float"),
    ("lat", "float"),
    ("note", "text"),
)
_EVIDENCE_STAGE = (
    ("inspection_id", "int"),
    ("sub_item_code", "text"),
    ("file_ref", "text"),
    ("sha256", "text"),
)


def _write(
    session: Session,
    identity: Identity,
    system_id: int,
    period: str,
    rows: list[_Clean],
    batch_id: int,
) -> int:
    """Set-based write of inspections, results (with ``current``), evidence and dirty marks."""
    sql = spatial_sql(session)
    visits: dict[tuple[int, datetime, str], list[_Clean]] = defaultdict(list)
    for c in rows:
        visits[(c.unit_id, c.inspected_at, c.inspector)].append(c)
    ids = sql.reserve_ids(session, "inspections", len(visits))
    visit_id = dict(zip(visits, ids, strict=True))
    # The latest new outcome per object × sub-item within this batch (time, then record id).
    winner: dict[tuple[int, str, str], tuple[datetime, int, int]] = {}
    for key, members in visits.items():
        iid = visit_id[key]
        for c in members:
            k = (c.unit_id, c.indicator_code, c.sub_item_code)
            cand = (c.inspected_at, iid, c.row)
            if k not in winner or cand[:2] > winner[k][:2]:
                winner[k] = cand
    winners = {(k, v[2]) for k, v in winner.items()}

    def visit_rows() -> Iterable[tuple[Any, ...]]:
        for key, members in visits.items():
            first = members[0]
            notes = [m.inspection_note for m in members if m.inspection_note]
            yield (
                visit_id[key],
                first.unit_id,
                first.inspector,
                sql.ts_value(first.inspected_at),
                next((m.lon for m in members if m.lon is not None), None),
                next((m.lat for m in members if m.lat is not None), None),
                notes[0] if notes else None,
            )

    def result_rows() -> Iterable[tuple[Any, ...]]:
        for key, members in visits.items():
            for c in members:
                yield (
                    c.row,
                    visit_id[key],
                    c.unit_id,
                    c.region_code,
                    c.indicator_code,
                    c.sub_item_code,
                    c.outcome,
                    c.note,
                    sql.ts_value(c.inspected_at),
                    ((c.unit_id, c.indicator_code, c.sub_item_code), c.row) in winners,
                )

    def evidence_rows() -> Iterable[tuple[Any, ...]]:
        for key, members in visits.items():
            for c in members:
                for ref, digest, sub in c.evidence:
                    yield (visit_id[key], sub, ref, digest)

    sql.create_staging(session, "tmp_sp_visits", _VISIT_STAGE)
    sql.load_staging(session, "tmp_sp_visits", [c for c, _ in _VISIT_STAGE], visit_rows())
    sql.create_staging(session, "tmp_sp_results", _STAGE)
    sql.load_staging(session, "tmp_sp_results", [c for c, _ in _STAGE], result_rows())
    sql.index_staging(session, "tmp_sp_results", "unit_id", "indicator_code", "sub_item_code")
    sql.create_staging(session, "tmp_sp_evidence", _EVIDENCE_STAGE)
    sql.load_staging(session, "tmp_sp_evidence", [c for c, _ in _EVIDENCE_STAGE], evidence_rows())
    # PostgreSQL types each bind once: a value used in two roles gets two names.
    params = {
        "s": system_id,
        "p": period,
        "s2": system_id,
        "p2": period,
        "batch": batch_id,
        "actor": identity.subject,
    }
    session.execute(
        text(
            "INSERT INTO inspections (id, unit_id, system_id, period, inspector, inspected_at, "
            "lon, lat, note, batch_id, created_by, created_at) "
            "SELECT v.inspection_id, v.unit_id, :s, :p, v.inspector, v.inspected_at, v.lon, "
            "v.lat, v.note, :batch, :actor, :now FROM tmp_sp_visits v"
        ).bindparams(bindparam("now", datetime.now(UTC), type_=Inspection.created_at.type)),
        params,
    )
    # An older current outcome loses its mark when this batch brings a later one.
    session.execute(
        text(
            "UPDATE inspection_results SET current = false FROM tmp_sp_results w "
            "WHERE inspection_results.system_id = :s AND inspection_results.period = :p "
            "AND inspection_results.unit_id = w.unit_id "
            "AND inspection_results.indicator_code = w.indicator_code "
            "AND inspection_results.sub_item_code = w.sub_item_code "
            "AND inspection_results.current AND w.is_winner "
            "AND (inspection_results.inspected_at < w.inspected_at "
            "OR (inspection_results.inspected_at = w.inspected_at "
            "AND inspection_results.inspection_id < w.inspection_id))"
        ),
        params,
    )
    session.execute(
        text(
            "INSERT INTO inspection_results (inspection_id, unit_id, system_id, period, "
            "region_code, inspected_at, indicator_code, sub_item_code, outcome, note, current) "
            "SELECT w.inspection_id, w.unit_id, :s, :p, w.region_code, w.inspected_at, "
            "w.indicator_code, w.sub_item_code, w.outcome, w.note, "
            "(w.is_winner AND NOT EXISTS (SELECT 1 FROM inspection_results r "
            "WHERE r.system_id = :s2 AND r.period = :p2 AND r.unit_id = w.unit_id "
            "AND r.indicator_code = w.indicator_code AND r.sub_item_code = w.sub_item_code "
            "AND r.current)) FROM tmp_sp_results w"
        ),
        params,
    )
    session.execute(
        text(
            "INSERT INTO inspection_evidence (inspection_id, sub_item_code, file_ref, sha256) "
            "SELECT e.inspection_id, e.sub_item_code, e.file_ref, e.sha256 FROM tmp_sp_evidence e"
        )
    )
    session.execute(
        text(
            "INSERT INTO spatial_rollup_dirty (system_id, period, region_code) "
            "SELECT DISTINCT :s, :p, w.region_code FROM tmp_sp_results w WHERE true "
            "ON CONFLICT DO NOTHING"
        ),
        params,
    )
    for name in ("tmp_sp_visits", "tmp_sp_results", "tmp_sp_evidence"):
        sql.drop_staging(session, name)
    if len(rows) >= BULK_ANALYZE_ROWS:
        sql.analyze(session, "inspection_results")
    return len(visits)


def unit_history(
    session: Session, identity: Identity, unit_id: int, system_id: int | None = None
) -> list[dict[str, Any]]:
    """Every inspection of one object, newest first, with outcomes and evidence."""
    unit = session.get(SpatialUnit, unit_id)
    if unit is None:
        raise NotFound(f"对象不存在: {unit_id} (unknown unit)", slug="unknown-unit")
    identity.check_read(unit.region_code)
    stmt = select(Inspection).where(Inspection.unit_id == unit_id)
    if system_id is not None:
        stmt = stmt.where(Inspection.system_id == system_id)
    visits = list(
        session.scalars(stmt.order_by(Inspection.inspected_at.desc(), Inspection.id.desc()))
    )
    ids = [v.id for v in visits]
    results: dict[int, list[InspectionResult]] = defaultdict(list)
    evidence: dict[int, list[InspectionEvidence]] = defaultdict(list)
    if ids:
        for r in session.scalars(
            select(InspectionResult)
            .where(InspectionResult.inspection_id.in_(ids))
            .order_by(InspectionResult.id)
        ):
            results[r.inspection_id].append(r)
        for e in session.scalars(
            select(InspectionEvidence)
            .where(InspectionEvidence.inspection_id.in_(ids))
            .order_by(InspectionEvidence.id)
        ):
            evidence[e.inspection_id].append(e)
    return [
        {
            "id": v.id,
            "unit_id": v.unit_id,
            "unit_code": unit.code,
            "system_id": v.system_id,
            "period": v.period,
            "inspector": v.inspector,
            "inspected_at": v.inspected_at,
            "lon": v.lon,
            "lat": v.lat,
            "note": v.note,
            "batch_id": v.batch_id,
            "created_by": v.created_by,
            "created_at": v.created_at,
            "results": [
                {
                    "indicator_code": r.indicator_code,
                    "sub_item_code": r.sub_item_code,
                    "outcome": r.outcome,
                    "note": r.note,
                    "current": bool(r.current),
                }
                for r in results[v.id]
            ],
            "evidence": [
                {"sub_item_code": e.sub_item_code, "file_ref": e.file_ref, "sha256": e.sha256}
                for e in evidence[v.id]
            ],
        }
        for v in visits
    ]


def field_sheet_template(session: Session, system_id: int) -> bytes:
    """The platform's xlsx field sheet for a system: the record sheet and its checklist."""
    system = released_system(session, system_id)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "检查记录"
    ws.append([zh for _, zh, _ in FIELD_SHEET_COLUMNS])
    ws.append([key for key, _, _ in FIELD_SHEET_COLUMNS])
    ref = wb.create_sheet("子项清单")
    ref.append(["指标编码", "指标名称", "子项编码", "子项名称"])
    rows = session.execute(
        select(Indicator.code, Indicator.name_zh, SubItem.code, SubItem.name)
        .join(SubItem, SubItem.indicator_id == Indicator.id)
        .where(Indicator.system_id == system.id)
        .order_by(Indicator.sort_order, Indicator.code, SubItem.sort_order, SubItem.code)
    )
    for r in rows:
        ref.append(list(r))
    notes = wb.create_sheet("说明")
    for line in (
        f"指标体系: {system.name} ({system.year} 版本 {system.version})",
        "每行记录一个对象（楼栋或小区）的一个子项检查结果；同一对象、检查人、检查时间的行视为一次检查。",
        "检查结果: 合格 / 不合格 / 不适用（或 pass / fail / na）。",
        "检查时间: 如 2025-06-01 09:30（北京时间）。经纬度为 CGCS2000。",
        "照片: 多张用分号分隔，照片校验值为对应的 SHA-256，顺序一致。",
        "第二行是英文列名，可保留或删除。",
    ):
        notes.append([line])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
