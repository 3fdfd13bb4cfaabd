"""Reading spatial files (GeoJSON, CSV with coordinates, zipped Shapefile, GeoPackage).

Every reader returns the same thing: a list of ``InRow`` (row number as the user sees it,
properties, geometry or the reason it could not be read). A file that cannot be read at all
— broken, empty, or declaring a CRS other than CGCS2000 — raises ``ValidationFailed`` naming
the file or its CRS, before anything is stored.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from shared.errors import ValidationFailed

# CGCS2000 (EPSG:4490). WGS 84 / CRS84 is accepted as the same frame: the two agree to a
# few centimetres, far below the accuracy of field coordinates.
ACCEPTED_CRS = {
    "EPSG:4490": "EPSG:4490",
    "EPSG:4326": "EPSG:4326",
    "OGC:CRS84": "OGC:CRS84",
    "URN:OGC:DEF:CRS:EPSG::4490": "EPSG:4490",
    "URN:OGC:DEF:CRS:EPSG::4326": "EPSG:4326",
    "URN:OGC:DEF:CRS:OGC:1.3:CRS84": "OGC:CRS84",
    "HTTP://WWW.OPENGIS.NET/DEF/CRS/EPSG/0/4490": "EPSG:4490",
    "HTTP://WWW.OPENGIS.NET/DEF/CRS/EPSG/0/4326": "EPSG:4326",
    "HTTP://WWW.OPENGIS.NET/DEF/CRS/OGC/1.3/CRS84": "OGC:CRS84",
}

FORMATS = {
    "application/geo+json": "geojson",
    "application/json": "geojson",
    "text/csv": "csv",
    "application/zip": "shapefile",
    "application/x-zip-compressed": "shapefile",
    "application/geopackage+sqlite3": "gpkg",
    "application/x-sqlite3": "gpkg",
}

# Column names accepted for coordinates in CSV files (English and the usual Chinese).
_LON = ("lon", "lng", "longitude", "x", "经度")
_LAT = ("lat", "latitude", "y", "纬度")
_WKT = ("wkt", "geometry", "geom", "几何")


@dataclass
class InRow:
    """One input row: where it is in the file, its fields, its geometry or why not."""

    row: int
    where: str  # human label of the row in the file, e.g. "第 3 行（文件第 4 行）"
    props: dict[str, Any]
    geom: BaseGeometry | None = None
    geom_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def normalise_crs(value: str | None) -> str | None:
    """The canonical name of an accepted CRS, None when not given; raises when not accepted."""
    if value is None or value == "":
        return None
    key = value.strip().upper()
    if key in ACCEPTED_CRS:
        return ACCEPTED_CRS[key]
    raise ValidationFailed(
        f"坐标系 {value} 不是 CGCS2000 经纬度 (EPSG:4490)，请先转换 "
        f"(CRS {value} is not CGCS2000 geographic; reproject to EPSG:4490 first)",
        errors=[{"field": "crs", "message": f"unsupported CRS {value}"}],
        slug="wrong-crs",
    )


def detect_format(content_type: str | None, fmt: str | None) -> str:
    """The input format from an explicit ``format`` or the request's content type."""
    if fmt:
        if fmt not in ("geojson", "csv", "shapefile", "gpkg"):
            raise ValidationFailed(
                f"不支持的格式 {fmt} (unsupported format)",
                errors=[{"field": "format", "message": "geojson, csv, shapefile or gpkg"}],
            )
        return fmt
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype not in FORMATS:
        raise ValidationFailed(
            f"不支持的内容类型 {ctype or '(无)'}：请用 GeoJSON、CSV、zip 压缩的 Shapefile 或 "
            "GeoPackage (unsupported content type)",
            errors=[{"field": "content-type", "message": ", ".join(sorted(FORMATS))}],
        )
    return FORMATS[ctype]


def _broken(fmt: str, reason: str) -> ValidationFailed:
    return ValidationFailed(
        f"无法读取 {fmt} 文件：{reason} (cannot read the {fmt} file)",
        errors=[{"field": "file", "message": reason}],
        slug="broken-file",
    )


def read_rows(body: bytes, fmt: str, crs: str | None) -> list[InRow]:
    """Rows of a file in one of the supported formats (see module docstring)."""
    if not body:
        raise _broken(fmt, "请求体为空 (empty body)")
    if fmt == "geojson":
        return _read_geojson(body, crs)
    if fmt == "csv":
        return _read_csv(body, crs)
    return _read_ogr(body, fmt, crs)


def _geom_from_geojson(obj: Any) -> tuple[BaseGeometry | None, str | None]:
    if obj is None:
        return None, "缺少几何 (missing geometry)"
    try:
        geom = shape(obj)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        return None, f"几何无法解析 (unreadable geometry): {exc}"
    return geom, None


def _read_geojson(body: bytes, crs: str | None) -> list[InRow]:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _broken("GeoJSON", str(exc)) from exc
    if not isinstance(doc, dict):
        raise _broken("GeoJSON", "顶层不是对象 (top level is not an object)")
    declared = None
    crs_member = doc.get("crs")
    if isinstance(crs_member, dict):
        declared = (crs_member.get("properties") or {}).get("name")
    normalise_crs(declared or crs)
    if doc.get("type") == "Feature":
        features = [doc]
    elif doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
        features = doc["features"]
    else:
        raise _broken("GeoJSON", "需要 FeatureCollection 或 Feature (expected a FeatureCollection)")
    rows: list[InRow] = []
    for i, feat in enumerate(features, start=1):
        where = f"第 {i} 个要素 (feature {i})"
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            rows.append(InRow(i, where, {}, None, "不是 Feature 对象 (not a Feature)"))
            continue
        props = dict(feat.get("properties") or {})
        if "id" in feat and "code" not in props:
            props["code"] = feat["id"]
        geom, err = _geom_from_geojson(feat.get("geometry"))
        rows.append(InRow(i, where, props, geom, err))
    return rows


def _pick(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    for n in names:
        if n in lowered:
            return lowered[n]
    return None


def _read_csv(body: bytes, crs: str | None) -> list[InRow]:
    normalise_crs(crs)
    try:
        content = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            content = body.decode("gb18030")  # Excel on Chinese Windows saves CSV in GBK
        except UnicodeDecodeError as exc:
            raise _broken("CSV", "编码既不是 UTF-8 也不是 GB18030 (unknown encoding)") from exc
    reader = csv.DictReader(io.StringIO(content, newline=""))
    header = list(reader.fieldnames or [])
    if not header:
        raise _broken("CSV", "缺少表头行 (missing header row)")
    lon_col, lat_col, wkt_col = _pick(header, _LON), _pick(header, _LAT), _pick(header, _WKT)
    if not wkt_col and not (lon_col and lat_col):
        raise ValidationFailed(
            "CSV 需要经纬度列 (lon, lat) 或 wkt 列 (CSV needs lon/lat or wkt columns)",
            errors=[{"field": "header", "message": "missing lon/lat or wkt"}],
        )
    geo_cols = {c for c in (lon_col, lat_col, wkt_col) if c}
    rows: list[InRow] = []
    try:
        for i, rec in enumerate(reader, start=1):
            where = f"第 {i} 行数据（文件第 {i + 1} 行） (data row {i}, file line {i + 1})"
            props = {k.strip(): v for k, v in rec.items() if k and k not in geo_cols}
            geom: BaseGeometry | None = None
            err: str | None = None
            try:
                if wkt_col and (rec.get(wkt_col) or "").strip():
                    geom = shapely.from_wkt(rec[wkt_col])
                elif lon_col and lat_col:
                    lon_s, lat_s = (
                        (rec.get(lon_col) or "").strip(),
                        (rec.get(lat_col) or "").strip(),
                    )
                    if not lon_s or not lat_s:
                        err = "缺少经纬度 (missing lon/lat)"
                    else:
                        geom = shapely.Point(float(lon_s), float(lat_s))
                else:
                    err = "缺少几何 (missing geometry)"
            except (ValueError, shapely.errors.GEOSException) as exc:
                err = f"几何无法解析 (unreadable geometry): {exc}"
            rows.append(InRow(i, where, props, geom, err))
    except csv.Error as exc:
        raise _broken("CSV", str(exc)) from exc
    return rows


def _read_ogr(body: bytes, fmt: str, crs: str | None) -> list[InRow]:
    import pyogrio
    import pyogrio.errors

    label = "Shapefile" if fmt == "shapefile" else "GeoPackage"
    with tempfile.TemporaryDirectory(prefix="checkup-import-") as tmp:
        if fmt == "shapefile":
            path = Path(tmp) / "upload.zip"
            path.write_bytes(body)
            try:
                with zipfile.ZipFile(path) as zf:
                    shps = [n for n in zf.namelist() if n.lower().endswith(".shp")]
            except zipfile.BadZipFile as exc:
                raise _broken(label, "不是有效的 zip 文件 (not a zip file)") from exc
            if len(shps) != 1:
                raise _broken(
                    label, f"zip 中应恰有一个 .shp，实际 {len(shps)} 个 (expected one .shp)"
                )
            source = f"/vsizip/{path}/{shps[0]}"
        else:
            path = Path(tmp) / "upload.gpkg"
            path.write_bytes(body)
            source = str(path)
        try:
            meta, _fids, geoms, fields = pyogrio.raw.read(source)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise _broken(label, str(exc).splitlines()[0]) from exc
        file_crs = meta.get("crs")
        if file_crs is None:
            if crs is None:
                raise ValidationFailed(
                    f"{label} 未声明坐标系（缺少 .prj），请在参数 crs 中注明 EPSG:4490 "
                    "(the file declares no CRS: pass crs=EPSG:4490 if it is CGCS2000)",
                    errors=[{"field": "crs", "message": "no CRS in the file"}],
                    slug="wrong-crs",
                )
            normalise_crs(crs)
        else:
            normalise_crs(str(file_crs))
        names = list(meta["fields"])
        rows: list[InRow] = []
        for i in range(len(geoms)):
            where = f"第 {i + 1} 个要素 (feature {i + 1})"
            props = {n: _plain(fields[j][i]) for j, n in enumerate(names)}
            wkb = geoms[i]
            if wkb is None:
                rows.append(InRow(i + 1, where, props, None, "缺少几何 (missing geometry)"))
                continue
            try:
                rows.append(InRow(i + 1, where, props, shapely.from_wkb(wkb)))
            except shapely.errors.GEOSException as exc:
                rows.append(InRow(i + 1, where, props, None, f"几何无法解析: {exc}"))
        return rows


def _plain(value: Any) -> Any:
    """numpy scalars → Python values (JSON-able)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN from empty numeric cells
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
