"""Map layers: region-scoped feature queries with bbox and property filters, and exports.

Three layers — ``compounds``, ``buildings``, ``facilities`` — are served as GeoJSON, through
OGC API – Features, and exported as GeoPackage or zipped Shapefile in CGCS2000. Every query
is limited to the caller's region scope; bbox filters go through the spatial index.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.indicator.spatial.dialect import spatial_sql
from services.indicator.spatial.exporters import (
    ExportField,
    write_geopackage,
    write_shapefile_zip,
)
from shared.errors import NotFound, ValidationFailed
from shared.identity import Identity
from shared.regions import contains, is_valid_code, prefix_of

__all__ = [
    "LAYERS",
    "FeatureQuery",
    "Layer",
    "export_layer",
    "feature_collection",
    "get_layer",
    "layer_extent",
    "query_features",
    "value_objects",
]


@dataclass(frozen=True)
class Layer:
    """A feature collection over one table: its columns, filters and export fields."""

    name: str
    title: str
    table: str
    where: str  # fixed filter (kind of unit)
    columns: tuple[tuple[str, str, str], ...]  # (property, SQL expression, kind)
    filters: tuple[str, ...]  # properties usable as equality filters

    @property
    def fields(self) -> list[ExportField]:
        return [ExportField(p, _dbf_name(p), k) for p, _, k in self.columns]


def _dbf_name(prop: str) -> str:
    return {
        "region_code": "region",
        "compound_code": "compound",
        "facility_type": "ftype",
        "built_year": "built_year",
        "dwellings": "dwellings",
        "residents": "residents",
    }.get(prop, prop[:10])


_UNIT_COLUMNS = (
    ("code", "t.code", "text"),
    ("name", "t.name", "text"),
    ("region_code", "t.region_code", "text"),
    ("residents", "t.residents", "int"),
    ("dwellings", "t.dwellings", "int"),
    ("built_year", "t.built_year", "int"),
)
LAYERS: dict[str, Layer] = {
    "compounds": Layer(
        "compounds",
        "小区 (residential compounds)",
        "spatial_units",
        "t.kind = 'compound'",
        _UNIT_COLUMNS,
        ("code", "name", "region_code"),
    ),
    "buildings": Layer(
        "buildings",
        "楼栋 (buildings)",
        "spatial_units",
        "t.kind = 'building'",
        (
            *_UNIT_COLUMNS,
            ("floors", "t.floors", "int"),
            (
                "compound_code",
                "(SELECT c.code FROM spatial_units c WHERE c.id = t.compound_id)",
                "text",
            ),
        ),
        ("code", "name", "region_code", "compound_code"),
    ),
    "facilities": Layer(
        "facilities",
        "公共服务设施 (facilities)",
        "facilities",
        "1 = 1",
        (
            ("code", "t.code", "text"),
            ("name", "t.name", "text"),
            ("facility_type", "t.facility_type", "text"),
            ("region_code", "t.region_code", "text"),
            ("capacity", "t.capacity", "float"),
            ("area_m2", "t.area_m2", "float"),
        ),
        ("code", "name", "region_code", "facility_type"),
    ),
}


def get_layer(name: str) -> Layer:
    layer = LAYERS.get(name)
    if layer is None:
        raise NotFound(
            f"图层不存在: {name}，可用 {', '.join(LAYERS)} (unknown layer)", slug="unknown-layer"
        )
    return layer


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    """``minLon,minLat,maxLon,maxLat`` (OGC order) → tuple; 422 naming ``bbox`` when bad."""
    if not value:
        return None
    try:
        parts = [float(p) for p in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or parts[0] > parts[2] or parts[1] > parts[3]:
        raise ValidationFailed(
            f"bbox 应为 minLon,minLat,maxLon,maxLat: {value} (bad bbox)",
            errors=[{"field": "bbox", "message": "minLon,minLat,maxLon,maxLat"}],
        )
    return parts[0], parts[1], parts[2], parts[3]


@dataclass
class FeatureQuery:
    """Filters of one layer read (all optional)."""

    bbox: tuple[float, float, float, float] | None = None
    region_code: str | None = None
    props: dict[str, str] | None = None
    name_contains: str | None = None
    # Objects behind a computed value: system × period × indicator, optionally one outcome.
    system_id: int | None = None
    period: str | None = None
    indicator_code: str | None = None
    outcome: str | None = None
    cursor: int | None = None
    limit: int | None = 1000


def _scope(identity: Identity, region_code: str | None) -> str:
    if region_code:
        if not is_valid_code(region_code):
            raise ValidationFailed(
                f"区划代码格式错误: {region_code}",
                errors=[{"field": "region_code", "message": "6, 9 or 12 digits"}],
            )
        identity.check_read(region_code)
        return region_code
    return identity.region


def _statement(
    session: Session, layer: Layer, identity: Identity, q: FeatureQuery, count: bool = False
) -> tuple[str, dict[str, Any]]:
    sql = spatial_sql(session)
    scope = _scope(identity, q.region_code)
    where = [layer.where, "t.region_code LIKE :scope"]
    params: dict[str, Any] = {"scope": prefix_of(scope) + "%"}
    if q.bbox:
        where.append(sql.bbox_filter(layer.table, "geom", "t"))
        params.update(dict(zip(("min_lon", "min_lat", "max_lon", "max_lat"), q.bbox, strict=True)))
    exprs = {p: e for p, e, _ in layer.columns}
    for i, (prop, value) in enumerate(sorted((q.props or {}).items())):
        if prop not in layer.filters:
            raise ValidationFailed(
                f"图层 {layer.name} 不能按 {prop} 过滤，可用 {', '.join(layer.filters)}",
                errors=[{"field": prop, "message": f"filters: {', '.join(layer.filters)}"}],
            )
        where.append(f"{exprs[prop]} = :f{i}")
        params[f"f{i}"] = value
    if q.name_contains:
        where.append("t.name LIKE :name_like")
        params["name_like"] = f"%{q.name_contains}%"
    if q.indicator_code:
        if q.system_id is None or not q.period:
            raise ValidationFailed(
                "按指标过滤时须同时给出 system_id 和 period (indicator filter needs both)",
                errors=[{"field": "system_id", "message": "required with indicator_code"}],
            )
        if layer.table != "spatial_units":
            raise ValidationFailed(
                "只有小区和楼栋图层可按指标结果过滤",
                errors=[{"field": "indicator_code", "message": "compounds/buildings only"}],
            )
        where.append(
            "t.id IN (SELECT o.unit_id FROM spatial_value_objects o WHERE o.system_id = :vs "
            "AND o.period = :vp AND o.indicator_code = :vi"
            + (" AND o.outcome = :vo" if q.outcome else "")
            + ")"
        )
        params.update({"vs": q.system_id, "vp": q.period, "vi": q.indicator_code})
        if q.outcome:
            params["vo"] = q.outcome
    if q.cursor is not None and not count:
        where.append("t.id > :cursor")
        params["cursor"] = q.cursor
    cond = " AND ".join(where)
    if count:
        return f"SELECT COUNT(*) FROM {layer.table} t WHERE {cond}", params
    cols = ", ".join(f"{e} AS {p}" for p, e, _ in layer.columns)
    stmt = (
        f"SELECT t.id, {sql.as_wkb('t.geom')} AS wkb, {cols} FROM {layer.table} t "
        f"WHERE {cond} ORDER BY t.id"
    )
    if q.limit is not None:
        stmt += " LIMIT :limit"
        params["limit"] = q.limit
    return stmt, params


def query_features(
    session: Session, layer: Layer, identity: Identity, q: FeatureQuery
) -> Iterator[tuple[int, BaseGeometry, dict[str, Any]]]:
    """(id, geometry, properties) of the matching features, ordered by id."""
    sql = spatial_sql(session)
    stmt, params = _statement(session, layer, identity, q)
    result = session.execute(text(stmt).execution_options(yield_per=5000), params)
    for row in result:
        m = row._mapping
        geom = shapely.from_wkb(sql.wkb_bytes(m["wkb"]))
        props = {p: m[p] for p, _, _ in layer.columns}
        yield int(m["id"]), geom, props


def count_features(session: Session, layer: Layer, identity: Identity, q: FeatureQuery) -> int:
    stmt, params = _statement(session, layer, identity, q, count=True)
    return int(session.execute(text(stmt), params).scalar() or 0)


def feature_collection(
    session: Session, layer: Layer, identity: Identity, q: FeatureQuery
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection page; ``next_cursor`` when more features follow."""
    features = [
        {"type": "Feature", "id": fid, "geometry": mapping(geom), "properties": props}
        for fid, geom, props in query_features(session, layer, identity, q)
    ]
    more = q.limit is not None and len(features) == q.limit
    return {
        "type": "FeatureCollection",
        "name": layer.name,
        "features": features,
        "numberReturned": len(features),
        "next_cursor": features[-1]["id"] if more and features else None,
    }


def layer_extent(
    session: Session, layer: Layer, identity: Identity
) -> tuple[float, float, float, float] | None:
    """Bounding box of the layer within the caller's scope (None when empty)."""
    sql = spatial_sql(session)
    row = session.execute(
        text(
            f"SELECT {sql.extent_of('t.geom')} FROM {layer.table} t "
            f"WHERE {layer.where} AND t.region_code LIKE :scope"
        ),
        {"scope": prefix_of(identity.region) + "%"},
    ).one()
    if row[0] is None:
        return None
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def export_layer(
    session: Session, layer: Layer, identity: Identity, q: FeatureQuery, fmt: str
) -> tuple[bytes, str, str]:
    """(file bytes, media type, file name) of the layer as GeoPackage or zipped Shapefile."""
    q.limit = None
    q.cursor = None
    feats = ((geom, props) for _, geom, props in query_features(session, layer, identity, q))
    if fmt == "gpkg":
        with tempfile.TemporaryDirectory(prefix="checkup-gpkg-") as tmp:
            path = Path(tmp) / f"{layer.name}.gpkg"
            write_geopackage(path, layer.name, layer.title, layer.fields, feats)
            return path.read_bytes(), "application/geopackage+sqlite3", f"{layer.name}.gpkg"
    if fmt == "shapefile":
        data, _n = write_shapefile_zip(layer.name, layer.fields, feats)
        return data, "application/zip", f"{layer.name}.shp.zip"
    raise ValidationFailed(
        f"不支持的导出格式 {fmt} (unsupported export format)",
        errors=[{"field": "format", "message": "gpkg or shapefile"}],
    )


def value_objects(
    session: Session,
    identity: Identity,
    *,
    system_id: int,
    indicator_code: str,
    region_code: str,
    period: str,
    outcome: str | None = None,
) -> dict[str, Any]:
    """GeoJSON of the objects behind one computed value (with their outcome).

    The documented query: rows of ``spatial_value_objects`` for the system, period and
    indicator whose community code starts with the region's prefix.
    """
    identity.check_read(region_code)
    if not is_valid_code(region_code):
        raise ValidationFailed(
            f"区划代码格式错误: {region_code}",
            errors=[{"field": "region_code", "message": "6, 9 or 12 digits"}],
        )
    sql = spatial_sql(session)
    params: dict[str, Any] = {
        "s": system_id,
        "p": period,
        "i": indicator_code,
        "like": prefix_of(region_code) + "%",
    }
    extra = ""
    if outcome:
        extra = " AND o.outcome = :o"
        params["o"] = outcome
    rows = session.execute(
        text(
            f"SELECT u.id, u.kind, u.code, u.name, u.region_code, o.outcome, o.residents, "
            f"{sql.as_wkb('u.geom')} FROM spatial_value_objects o "
            "JOIN spatial_units u ON u.id = o.unit_id WHERE o.system_id = :s AND o.period = :p "
            f"AND o.indicator_code = :i AND o.region_code LIKE :like{extra} ORDER BY u.id"
        ),
        params,
    )
    features = []
    for uid, kind, code, name, region, out, residents, wkb in rows:
        if not contains(identity.region, region):
            continue
        features.append(
            {
                "type": "Feature",
                "id": uid,
                "geometry": mapping(shapely.from_wkb(sql.wkb_bytes(wkb))),
                "properties": {
                    "kind": kind,
                    "code": code,
                    "name": name,
                    "region_code": region,
                    "outcome": out,
                    "residents": residents,
                },
            }
        )
    counts: dict[str, int] = {}
    for f in features:
        key = str(f["properties"]["outcome"])
        counts[key] = counts.get(key, 0) + 1
    return {
        "type": "FeatureCollection",
        "name": f"{indicator_code}@{region_code}/{period}",
        "system_id": system_id,
        "indicator_code": indicator_code,
        "region_code": region_code,
        "period": period,
        "counts": counts,
        "features": features,
    }
