"""Compounds, buildings and facilities: validated bulk import and region-scoped reads.

What an import checks, row by row (documented in docs/spatial.md):

* the geometry is readable, of an allowed type, valid (no self-intersection), 2-D, and its
  coordinates are longitude/latitude inside China (a projected CRS or swapped axes fail);
* the region code exists, is a community (12 digits) for compounds and buildings, and lies
  inside the caller's region scope;
* the geometry lies inside every configured extent (bounding box) of the region or of one of
  its ancestors — Jiangxi's public extent ships with the migration;
* a building that names its compound lies inside the compound's polygon;
* codes are unique within the file, and a code already used by another kind is refused.

Writes are set-based: the clean rows go to a staging table (COPY on PostgreSQL,
executemany on SQLite) and one INSERT … SELECT … ON CONFLICT upserts them; one more
INSERT … SELECT writes the audit events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from services.indicator.regions.models import Region
from services.indicator.spatial.dialect import spatial_sql
from services.indicator.spatial.geoio import InRow, detect_format, read_rows
from services.indicator.spatial.models import (
    FACILITY_TYPES,
    Facility,
    RegionExtent,
    SpatialBatch,
    SpatialEvent,
    SpatialUnit,
)
from shared.dbtypes import UtcDateTime, utcnow
from shared.errors import NotFound, ValidationFailed
from shared.identity import Identity
from shared.regions import contains, is_valid_code, level_of

__all__ = [
    "FACILITY_TYPE_ALIASES",
    "ImportReport",
    "get_facility",
    "get_unit",
    "import_objects",
    "import_rows",
    "object_detail",
    "set_extent",
]

# Longitude/latitude box of the People's Republic (with margin): outside it, coordinates
# are projected metres, swapped axes or plain errors.
CHINA_BOX = (73.0, 3.0, 136.0, 54.0)
# Chinese labels of facility types accepted in files (the stored value is the English key).
FACILITY_TYPE_ALIASES = {
    "幼儿园": "kindergarten",
    "小学": "primary_school",
    "中学": "middle_school",
    "初中": "middle_school",
    "社区卫生服务中心": "clinic",
    "卫生服务站": "clinic",
    "诊所": "clinic",
    "卫生室": "clinic",
    "养老服务设施": "elderly_care",
    "养老院": "elderly_care",
    "日间照料中心": "elderly_care",
    "公园": "park",
    "社区公园": "park",
    "运动场地": "sports_ground",
    "体育场": "sports_ground",
    "应急避难场所": "emergency_shelter",
    "消防站": "fire_station",
}
_ALIASES = {
    "code": ("code", "编码", "编号", "id"),
    "name": ("name", "名称", "小区名称", "楼栋名称"),
    "region_code": ("region_code", "community_code", "社区代码", "区划代码"),
    "compound_code": ("compound_code", "compound", "小区编码"),
    "residents": ("residents", "居住人口", "人口"),
    "dwellings": ("dwellings", "套数", "户数"),
    "floors": ("floors", "层数"),
    "built_year": ("built_year", "建成年份", "建成年代"),
    "facility_type": ("facility_type", "type", "设施类型", "类型"),
    "capacity": ("capacity", "规模", "学位数", "床位数"),
    "area_m2": ("area_m2", "面积", "占地面积"),
}
_ALLOWED_TYPES = {
    "compound": ("Polygon", "MultiPolygon"),
    "building": ("Point", "Polygon", "MultiPolygon"),
    "facility": ("Point", "Polygon", "MultiPolygon"),
}
# Large loads change the planner's picture (coverage plans rely on it); small ones are left
# to autovacuum.
BULK_ANALYZE_ROWS = 1_000
_TARGET_LABEL = {"compound": "小区", "building": "楼栋", "facility": "设施"}


@dataclass
class ImportReport:
    """Outcome of one import, as the API returns it."""

    batch_id: int
    status: str
    rows_total: int
    rows_applied: int
    rows_rejected: int
    created: int = 0
    updated: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Clean:
    row: int
    code: str
    name: str
    region_code: str
    geom: BaseGeometry
    point: BaseGeometry
    compound_code: str | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    facility_type: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def _take(props: dict[str, Any], key: str) -> Any:
    lowered = {str(k).strip().lower(): k for k in props}
    for alias in _ALIASES[key]:
        if alias in lowered:
            return props.pop(lowered[alias])
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _number(value: Any, kind: type) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = float(value)
    if kind is int:
        if not number.is_integer():
            raise ValueError("not an integer")
        return int(number)
    return number


def representative_point(geom: BaseGeometry) -> BaseGeometry:
    """The point itself, or a point guaranteed to lie on a polygon's surface."""
    return geom if geom.geom_type == "Point" else geom.representative_point()


def _extents_for(extents: Sequence[RegionExtent], region_code: str) -> list[RegionExtent]:
    return [e for e in extents if contains(e.region_code, region_code)]


class _Validator:
    """Row checks that need the database: regions, extents, compounds, existing codes."""

    def __init__(self, session: Session, identity: Identity, target: str, rows: list[InRow]):
        self.session = session
        self.identity = identity
        self.target = target
        self.errors: list[dict[str, Any]] = []
        self.extents = list(session.scalars(select(RegionExtent)))
        self._rows = rows

    def error(self, row: InRow, fld: str, message: str) -> None:
        self.errors.append({"row": row.row, "field": fld, "message": f"{row.where}: {message}"})

    def run(self) -> list[_Clean]:
        parsed: list[tuple[InRow, _Clean]] = []
        for row in self._rows:
            clean = self._parse(row)
            if clean is not None:
                parsed.append((row, clean))
        parsed = self._check_database(parsed)
        return [c for _, c in parsed]

    def _parse(self, row: InRow) -> _Clean | None:
        props = dict(row.props)
        code = _text(_take(props, "code"))
        name = _text(_take(props, "name"))
        region_code = _text(_take(props, "region_code"))
        compound_code = _text(_take(props, "compound_code")) or None
        ftype = _text(_take(props, "facility_type"))
        numbers: dict[str, Any] = {}
        ok = True
        if not code:
            self.error(row, "code", "缺少编码 (missing code)")
            ok = False
        elif len(code) > 64:
            self.error(row, "code", "编码超过 64 个字符 (code longer than 64)")
            ok = False
        for key, kind in (
            ("residents", int),
            ("dwellings", int),
            ("floors", int),
            ("built_year", int),
            ("capacity", float),
            ("area_m2", float),
        ):
            raw = _take(props, key)
            try:
                value = _number(raw, kind)
            except (TypeError, ValueError):
                self.error(row, key, f"不是有效数字: {raw!r} (not a number)")
                ok = False
                continue
            if value is not None and value < 0:
                self.error(row, key, f"不能为负数: {value} (negative)")
                ok = False
                continue
            numbers[key] = value
        if self.target == "facility":
            ftype = FACILITY_TYPE_ALIASES.get(ftype, ftype)
            if ftype not in FACILITY_TYPES:
                self.error(
                    row,
                    "facility_type",
                    f"未知设施类型 {ftype or '(空)'}，应为 {', '.join(FACILITY_TYPES)} "
                    "(unknown facility type)",
                )
                ok = False
        if not region_code and not (self.target == "building" and compound_code):
            self.error(row, "region_code", "缺少所属社区代码 (missing community code)")
            ok = False
        elif region_code and not is_valid_code(region_code):
            self.error(row, "region_code", f"区划代码格式错误: {region_code} (bad division code)")
            ok = False
        elif region_code and self.target != "facility" and len(region_code) != 12:
            self.error(
                row,
                "region_code",
                f"{_TARGET_LABEL[self.target]}须挂在 12 位社区代码下: {region_code} "
                "(units belong to a 12-digit community)",
            )
            ok = False
        elif region_code and not self.identity.can_read(region_code):
            self.error(
                row,
                "region_code",
                f"区划 {region_code} 不在当前身份的管辖范围 {self.identity.region} 内 "
                "(outside the caller's region)",
            )
            ok = False
        geom = self._geometry(row)
        if geom is None or not ok:
            return None
        return _Clean(
            row=row.row,
            code=code,
            name=name,
            region_code=region_code,
            geom=geom,
            point=representative_point(geom),
            compound_code=compound_code if self.target == "building" else None,
            numbers=numbers,
            facility_type=ftype or None,
            attrs={str(k): v for k, v in props.items() if v not in (None, "")},
        )

    def _geometry(self, row: InRow) -> BaseGeometry | None:
        if row.geom is None:
            self.error(row, "geometry", row.geom_error or "缺少几何 (missing geometry)")
            return None
        geom = row.geom
        if geom.has_z:
            geom = shapely.force_2d(geom)
        allowed = _ALLOWED_TYPES[self.target]
        if geom.geom_type not in allowed:
            self.error(
                row,
                "geometry",
                f"{_TARGET_LABEL[self.target]}的几何应为 {'/'.join(allowed)}，"
                f"实为 {geom.geom_type} (wrong geometry type)",
            )
            return None
        if geom.is_empty:
            self.error(row, "geometry", "几何为空 (empty geometry)")
            return None
        minx, miny, maxx, maxy = geom.bounds
        if not (
            CHINA_BOX[0] <= minx
            and maxx <= CHINA_BOX[2]
            and CHINA_BOX[1] <= miny
            and maxy <= CHINA_BOX[3]
        ):
            self.error(
                row,
                "geometry",
                f"坐标 ({minx:.6g}, {miny:.6g}) 不是中国范围内的 CGCS2000 经纬度："
                "可能是投影坐标或经纬度颠倒 (coordinates are not CGCS2000 lon/lat in China: "
                "projected CRS or swapped axes?)",
            )
            return None
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            self.error(
                row, "geometry", f"几何无效（如自相交）: {reason} (invalid geometry: {reason})"
            )
            return None
        return geom

    def _check_database(self, parsed: list[tuple[InRow, _Clean]]) -> list[tuple[InRow, _Clean]]:
        session = self.session
        compounds: dict[str, tuple[int, str, BaseGeometry]] = {}
        if self.target == "building":
            wanted = {c.compound_code for _, c in parsed if c.compound_code}
            sql = spatial_sql(session)
            for chunk in _chunks(sorted(wanted), 5000):
                rows = session.execute(
                    text(
                        f"SELECT code, id, region_code, {sql.as_wkb('geom')} FROM spatial_units "
                        "WHERE kind = 'compound' AND code IN :codes"
                    ).bindparams(bindparam("codes", expanding=True)),
                    {"codes": chunk},
                )
                for code, uid, region, wkb in rows:
                    compounds[code] = (uid, region, shapely.from_wkb(sql.wkb_bytes(wkb)))
        for _, c in parsed:
            if not c.region_code and c.compound_code in compounds:
                c.region_code = compounds[c.compound_code][1]
        codes = {c.region_code for _, c in parsed if c.region_code}
        known: set[str] = set()
        for chunk in _chunks(sorted(codes), 5000):
            known.update(session.scalars(select(Region.code).where(Region.code.in_(chunk))))
        other_kind: dict[str, str] = {}
        if self.target != "facility":
            all_codes = sorted({c.code for _, c in parsed})
            for chunk in _chunks(all_codes, 5000):
                for code, kind in session.execute(
                    select(SpatialUnit.code, SpatialUnit.kind).where(SpatialUnit.code.in_(chunk))
                ):
                    if kind != self.target:
                        other_kind[code] = kind
        seen: set[str] = set()
        kept: list[tuple[InRow, _Clean]] = []
        for row, c in parsed:
            if c.code in seen:
                self.error(row, "code", f"文件中编码重复: {c.code} (duplicate code in the file)")
                continue
            seen.add(c.code)
            if c.code in other_kind:
                self.error(
                    row,
                    "code",
                    f"编码 {c.code} 已被{_TARGET_LABEL[other_kind[c.code]]}使用 "
                    "(code already used by another kind of object)",
                )
                continue
            if self.target == "building" and c.compound_code:
                compound = compounds.get(c.compound_code)
                if compound is None:
                    self.error(
                        row, "compound_code", f"小区不存在: {c.compound_code} (unknown compound)"
                    )
                    continue
                if not compound[2].buffer(1e-7).covers(c.point):
                    self.error(
                        row,
                        "geometry",
                        f"楼栋位置不在所属小区 {c.compound_code} 的范围内 "
                        "(building lies outside its compound's polygon)",
                    )
                    continue
            if c.region_code not in known:
                self.error(row, "region_code", f"区划代码不存在: {c.region_code} (unknown region)")
                continue
            if not self.identity.can_read(c.region_code):
                self.error(
                    row, "region_code", f"区划 {c.region_code} 不在管辖范围内 (out of scope)"
                )
                continue
            outside = [
                e
                for e in _extents_for(self.extents, c.region_code)
                if not _inside_extent(c.geom, e)
            ]
            if outside:
                e = outside[0]
                self.error(
                    row,
                    "geometry",
                    f"位置超出区划 {e.region_code} 的范围 [{e.min_lon}, {e.min_lat}, "
                    f"{e.max_lon}, {e.max_lat}] (outside the region's extent)",
                )
                continue
            kept.append((row, c))
        return kept


def _inside_extent(geom: BaseGeometry, e: RegionExtent) -> bool:
    minx, miny, maxx, maxy = geom.bounds
    return e.min_lon <= minx and maxx <= e.max_lon and e.min_lat <= miny and maxy <= e.max_lat


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def import_objects(
    session: Session,
    identity: Identity,
    *,
    target: str,
    body: bytes,
    content_type: str | None,
    fmt: str | None = None,
    crs: str | None = None,
    mode: str = "per_row",
) -> ImportReport:
    """Read a file of compounds, buildings or facilities and store its valid rows."""
    identity.check_write(identity.region)
    fmt = detect_format(content_type, fmt)
    rows = read_rows(body, fmt, crs)
    return import_rows(session, identity, target=target, rows=rows, fmt=fmt, mode=mode)


def import_rows(
    session: Session,
    identity: Identity,
    *,
    target: str,
    rows: list[InRow],
    fmt: str,
    mode: str = "per_row",
) -> ImportReport:
    """Validate parsed rows and upsert the valid ones set-based (per_row or all_or_nothing)."""
    if target not in _ALLOWED_TYPES:
        raise ValidationFailed(
            f"未知对象类别 {target} (unknown target)",
            errors=[{"field": "kind", "message": "compound, building or facility"}],
        )
    if mode not in ("per_row", "all_or_nothing"):
        raise ValidationFailed(
            f"未知导入模式 {mode} (unknown mode)",
            errors=[{"field": "mode", "message": "per_row or all_or_nothing"}],
        )
    validator = _Validator(session, identity, target, rows)
    clean = validator.run()
    errors = sorted(validator.errors, key=lambda e: e["row"])
    rejected_rows = len({e["row"] for e in errors})
    apply = clean if (mode == "per_row" or not errors) else []
    if not apply:
        status = "rejected" if rows else "applied"
    else:
        status = "partial" if errors else "applied"
    batch = SpatialBatch(
        target=target,
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
        rows_rejected=max(rejected_rows, len(rows) - len(apply)),
        errors=errors,
    )
    if apply:
        if target == "facility":
            report.created, report.updated = _write_facilities(session, apply, batch.id, identity)
        else:
            report.created, report.updated = _write_units(
                session, target, apply, batch.id, identity
            )
    return report


def _now_param(now: datetime) -> Any:
    return bindparam("now", now, type_=UtcDateTime())


_UNIT_STAGE = (
    ("row_no", "int"),
    ("code", "text"),
    ("name", "text"),
    ("region_code", "text"),
    ("compound_code", "text"),
    ("residents", "int"),
    ("dwellings", "int"),
    ("floors", "int"),
    ("built_year", "int"),
    ("attrs", "text"),
    ("geom_wkb", "blob"),
    ("point_wkb", "blob"),
    ("existing_id", "int"),
    ("old_region", "text"),
)


def _write_units(
    session: Session, kind: str, rows: list[_Clean], batch_id: int, identity: Identity
) -> tuple[int, int]:
    sql = spatial_sql(session)
    stage = "tmp_sp_units"
    sql.create_staging(session, stage, _UNIT_STAGE)
    sql.load_staging(
        session,
        stage,
        [c for c, _ in _UNIT_STAGE[:12]],
        (
            (
                c.row,
                c.code,
                c.name,
                c.region_code,
                c.compound_code,
                c.numbers.get("residents"),
                c.numbers.get("dwellings"),
                c.numbers.get("floors"),
                c.numbers.get("built_year"),
                json.dumps(c.attrs, ensure_ascii=False, default=str),
                shapely.to_wkb(c.geom),
                shapely.to_wkb(c.point),
            )
            for c in rows
        ),
    )
    session.execute(
        text(
            f"UPDATE {sql.table_ref(stage)} SET existing_id = "
            "(SELECT u.id FROM spatial_units u WHERE u.code = tmp_sp_units.code), "
            "old_region = (SELECT u.region_code FROM spatial_units u "
            "WHERE u.code = tmp_sp_units.code)"
        )
    )
    now = utcnow()
    # A building that moves to another community takes its inspection results along; both
    # communities need their counts recomputed.
    session.execute(
        text(
            "INSERT INTO spatial_rollup_dirty (system_id, period, region_code) "
            "SELECT DISTINCT r.system_id, r.period, x.region_code FROM inspection_results r "
            "JOIN (SELECT existing_id, old_region AS region_code FROM tmp_sp_units "
            "      WHERE existing_id IS NOT NULL AND old_region <> region_code "
            "      UNION SELECT existing_id, region_code FROM tmp_sp_units "
            "      WHERE existing_id IS NOT NULL AND old_region <> region_code) x "
            "ON x.existing_id = r.unit_id "
            "WHERE NOT EXISTS (SELECT 1 FROM spatial_rollup_dirty d WHERE d.system_id = "
            "r.system_id AND d.period = r.period AND d.region_code = x.region_code)"
        )
    )
    session.execute(
        text(
            "UPDATE inspection_results SET region_code = (SELECT s.region_code FROM "
            "tmp_sp_units s WHERE s.existing_id = inspection_results.unit_id) "
            "WHERE unit_id IN (SELECT existing_id FROM tmp_sp_units "
            "WHERE existing_id IS NOT NULL AND old_region <> region_code)"
        )
    )
    session.execute(
        text(
            "INSERT INTO spatial_units (kind, code, name, region_code, compound_id, residents, "
            "dwellings, floors, built_year, attrs, geom, point, batch_id, created_by, "
            "created_at, updated_by, updated_at) "
            f"SELECT :kind, s.code, s.name, s.region_code, c.id, s.residents, s.dwellings, "
            f"s.floors, s.built_year, {sql.json_value('s.attrs')}, "
            f"{sql.geom_from_wkb('s.geom_wkb')}, {sql.geom_from_wkb('s.point_wkb')}, "
            ":batch, :actor, :now, :actor, :now "
            "FROM tmp_sp_units s LEFT JOIN spatial_units c "
            "ON c.code = s.compound_code AND c.kind = 'compound' WHERE true "
            "ON CONFLICT (code) DO UPDATE SET name = excluded.name, "
            "region_code = excluded.region_code, compound_id = excluded.compound_id, "
            "residents = excluded.residents, dwellings = excluded.dwellings, "
            "floors = excluded.floors, built_year = excluded.built_year, "
            "attrs = excluded.attrs, geom = excluded.geom, point = excluded.point, "
            "batch_id = excluded.batch_id, updated_by = excluded.updated_by, "
            "updated_at = excluded.updated_at"
        ).bindparams(_now_param(now)),
        {"kind": kind, "batch": batch_id, "actor": identity.subject},
    )
    created, updated = _audit(session, "unit", "spatial_units", stage, batch_id, identity, now)
    sql.drop_staging(session, stage)
    if len(rows) >= BULK_ANALYZE_ROWS:
        sql.analyze(session, "spatial_units")
    return created, updated


_FACILITY_STAGE = (
    ("row_no", "int"),
    ("code", "text"),
    ("name", "text"),
    ("facility_type", "text"),
    ("region_code", "text"),
    ("capacity", "float"),
    ("area_m2", "float"),
    ("attrs", "text"),
    ("geom_wkb", "blob"),
    ("point_wkb", "blob"),
    ("existing_id", "int"),
)


def _write_facilities(
    session: Session, rows: list[_Clean], batch_id: int, identity: Identity
) -> tuple[int, int]:
    sql = spatial_sql(session)
    stage = "tmp_sp_facilities"
    sql.create_staging(session, stage, _FACILITY_STAGE)
    sql.load_staging(
        session,
        stage,
        [c for c, _ in _FACILITY_STAGE[:10]],
        (
            (
                c.row,
                c.code,
                c.name,
                c.facility_type,
                c.region_code,
                c.numbers.get("capacity"),
                c.numbers.get("area_m2"),
                json.dumps(c.attrs, ensure_ascii=False, default=str),
                shapely.to_wkb(c.geom),
                shapely.to_wkb(c.point),
            )
            for c in rows
        ),
    )
    session.execute(
        text(
            f"UPDATE {sql.table_ref(stage)} SET existing_id = "
            "(SELECT f.id FROM facilities f WHERE f.code = tmp_sp_facilities.code)"
        )
    )
    now = utcnow()
    session.execute(
        text(
            "INSERT INTO facilities (code, name, facility_type, region_code, capacity, area_m2, "
            "attrs, geom, point, batch_id, created_by, created_at, updated_by, updated_at) "
            "SELECT s.code, s.name, s.facility_type, s.region_code, s.capacity, s.area_m2, "
            f"{sql.json_value('s.attrs')}, {sql.geom_from_wkb('s.geom_wkb')}, "
            f"{sql.geom_from_wkb('s.point_wkb')}, :batch, :actor, :now, :actor, :now "
            "FROM tmp_sp_facilities s WHERE true "
            "ON CONFLICT (code) DO UPDATE SET name = excluded.name, "
            "facility_type = excluded.facility_type, region_code = excluded.region_code, "
            "capacity = excluded.capacity, area_m2 = excluded.area_m2, attrs = excluded.attrs, "
            "geom = excluded.geom, point = excluded.point, batch_id = excluded.batch_id, "
            "updated_by = excluded.updated_by, updated_at = excluded.updated_at"
        ).bindparams(_now_param(now)),
        {"batch": batch_id, "actor": identity.subject},
    )
    created, updated = _audit(session, "facility", "facilities", stage, batch_id, identity, now)
    sql.drop_staging(session, stage)
    if len(rows) >= BULK_ANALYZE_ROWS:
        sql.analyze(session, "facilities")
    return created, updated


def _audit(
    session: Session,
    object_type: str,
    table: str,
    stage: str,
    batch_id: int,
    identity: Identity,
    now: datetime,
) -> tuple[int, int]:
    """One event per written object (create or update), set-based; returns the counts."""
    session.execute(
        text(
            "INSERT INTO spatial_events (object_type, object_id, action, batch_id, actor, at) "
            "SELECT :otype, t.id, CASE WHEN s.existing_id IS NULL THEN 'create' ELSE 'update' "
            f"END, :batch, :actor, :now FROM {stage} s JOIN {table} t ON t.code = s.code"
        ).bindparams(_now_param(now)),
        {"otype": object_type, "batch": batch_id, "actor": identity.subject},
    )
    created, total = session.execute(
        text(f"SELECT COUNT(*) - COUNT(existing_id), COUNT(*) FROM {stage}")
    ).one()
    return int(created), int(total) - int(created)


def get_unit(session: Session, identity: Identity, unit_id: int) -> SpatialUnit:
    """One compound or building, if inside the caller's scope."""
    unit = session.get(SpatialUnit, unit_id)
    if unit is None:
        raise NotFound(f"对象不存在: {unit_id} (unknown unit)", slug="unknown-unit")
    identity.check_read(unit.region_code)
    return unit


def get_facility(session: Session, identity: Identity, facility_id: int) -> Facility:
    """One facility, if inside the caller's scope."""
    facility = session.get(Facility, facility_id)
    if facility is None:
        raise NotFound(f"设施不存在: {facility_id} (unknown facility)", slug="unknown-facility")
    identity.check_read(facility.region_code)
    return facility


def set_extent(
    session: Session,
    identity: Identity,
    region_code: str,
    bbox: tuple[float, float, float, float],
    source: str,
) -> RegionExtent:
    """Configure the bounding box objects of a region must lie in (audited)."""
    if not is_valid_code(region_code):
        raise ValidationFailed(
            f"区划代码格式错误: {region_code}",
            errors=[{"field": "region_code", "message": "6, 9 or 12 digits"}],
        )
    level_of(region_code)
    identity.check_write(region_code, "admin")
    min_lon, min_lat, max_lon, max_lat = bbox
    if not (min_lon < max_lon and min_lat < max_lat):
        raise ValidationFailed(
            "范围无效：最小值须小于最大值 (min must be below max)",
            errors=[{"field": "bbox", "message": "min_lon < max_lon and min_lat < max_lat"}],
        )
    if session.get(Region, region_code) is None:
        raise NotFound(f"区划代码不存在: {region_code} (unknown region)", slug="unknown-region")
    extent = session.get(RegionExtent, region_code)
    action = "update" if extent else "create"
    if extent is None:
        extent = RegionExtent(region_code=region_code)
        session.add(extent)
    extent.min_lon, extent.min_lat, extent.max_lon, extent.max_lat = bbox
    extent.source = source
    extent.updated_by = identity.subject
    extent.updated_at = datetime.now(UTC)
    session.add(
        SpatialEvent(
            object_type="extent",
            object_id=int(region_code),
            action=action,
            actor=identity.subject,
            detail={"region_code": region_code, "bbox": list(bbox), "source": source},
        )
    )
    session.flush()
    return extent


def object_detail(
    session: Session, identity: Identity, target: str, object_id: int
) -> dict[str, Any]:
    """A unit or facility with its point and GeoJSON geometry, if inside the caller's scope."""
    obj: SpatialUnit | Facility = (
        get_facility(session, identity, object_id)
        if target == "facility"
        else get_unit(session, identity, object_id)
    )
    sql = spatial_sql(session)
    table = "facilities" if target == "facility" else "spatial_units"
    geom_wkb, point_wkb = session.execute(
        text(f"SELECT {sql.as_wkb('geom')}, {sql.as_wkb('point')} FROM {table} WHERE id = :id"),
        {"id": object_id},
    ).one()
    geom = shapely.from_wkb(sql.wkb_bytes(geom_wkb))
    point = shapely.from_wkb(sql.wkb_bytes(point_wkb))
    out = {
        c.key: getattr(obj, c.key) for c in obj.__table__.columns if c.key not in ("geom", "point")
    }
    out.update(lon=point.x, lat=point.y, geometry=shapely.geometry.mapping(geom))
    return out
