"""Writers for deliverables in CGCS2000: GeoPackage (own code) and zipped Shapefile (pyshp).

The GeoPackage is written with the standard library's sqlite3 following OGC 12-128r18
(GeoPackage 1.3): application id, the required metadata tables, and geometries in the
GeoPackage binary encoding (header with envelope + ISO WKB). The Shapefile zip holds one
shapefile per geometry family (point / polygon), each with a ``.prj`` naming CGCS2000 and a
``.cpg`` declaring UTF-8 attribute text.
"""

from __future__ import annotations

import io
import sqlite3
import struct
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import shapefile
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

__all__ = ["CGCS2000_WKT", "ExportField", "write_geopackage", "write_shapefile_zip"]

# OGC WKT 1 of EPSG:4490 (as PROJ and GDAL identify it back to the EPSG code).
CGCS2000_WKT = (
    'GEOGCS["China Geodetic Coordinate System 2000",'
    'DATUM["China_2000",SPHEROID["CGCS2000",6378137,298.257222101,'
    'AUTHORITY["EPSG","1024"]],AUTHORITY["EPSG","1043"]],'
    'PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],'
    'UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4490"]]'
)
SRID = 4490


@dataclass(frozen=True)
class ExportField:
    """One attribute column: property key, column name (≤ 10 chars for DBF), kind."""

    key: str
    column: str
    kind: str  # text / int / float


def _gpkg_geometry(geom: BaseGeometry) -> bytes:
    minx, miny, maxx, maxy = geom.bounds
    flags = 0b0000_0011  # little-endian, envelope [minx, maxx, miny, maxy]
    header = b"GP" + bytes([0, flags]) + struct.pack("<i", SRID)
    envelope = struct.pack("<4d", minx, maxx, miny, maxy)
    return header + envelope + shapely.to_wkb(geom, byte_order=1, flavor="iso")


def _sql_type(kind: str) -> str:
    return {"text": "TEXT", "int": "INTEGER", "float": "REAL"}[kind]


def write_geopackage(
    path: Path,
    layer: str,
    description: str,
    fields: Sequence[ExportField],
    features: Iterable[tuple[BaseGeometry, dict[str, Any]]],
) -> int:
    """Write one feature table in CGCS2000 to a new GeoPackage; returns features written."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
        conn.execute("PRAGMA user_version = 10300")
        conn.executescript(
            """
            CREATE TABLE gpkg_spatial_ref_sys (
              srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
              organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL,
              description TEXT);
            CREATE TABLE gpkg_contents (
              table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
              identifier TEXT UNIQUE, description TEXT DEFAULT '',
              last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
              min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
              CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id)
                REFERENCES gpkg_spatial_ref_sys(srs_id));
            CREATE TABLE gpkg_geometry_columns (
              table_name TEXT NOT NULL, column_name TEXT NOT NULL,
              geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL,
              z TINYINT NOT NULL, m TINYINT NOT NULL,
              CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
              CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
              CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
            """
        )
        conn.executemany(
            "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", None),
                ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
                (
                    "WGS 84 geodetic",
                    4326,
                    "EPSG",
                    4326,
                    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
                    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
                    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,'
                    'AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]]',
                    None,
                ),
                ("China Geodetic Coordinate System 2000", SRID, "EPSG", SRID, CGCS2000_WKT, None),
            ],
        )
        cols = ", ".join(f'"{f.column}" {_sql_type(f.kind)}' for f in fields)
        conn.execute(
            f'CREATE TABLE "{layer}" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom BLOB'
            + (f", {cols}" if cols else "")
            + ")"
        )
        marks = ", ".join("?" for _ in range(len(fields) + 1))
        names = ", ".join(["geom", *(f'"{f.column}"' for f in fields)])
        bounds = [float("inf"), float("inf"), float("-inf"), float("-inf")]
        n = 0
        batch: list[list[Any]] = []
        for geom, props in features:
            minx, miny, maxx, maxy = geom.bounds
            bounds = [
                min(bounds[0], minx),
                min(bounds[1], miny),
                max(bounds[2], maxx),
                max(bounds[3], maxy),
            ]
            batch.append([_gpkg_geometry(geom), *(props.get(f.key) for f in fields)])
            n += 1
            if len(batch) >= 5000:
                conn.executemany(f'INSERT INTO "{layer}" ({names}) VALUES ({marks})', batch)
                batch = []
        if batch:
            conn.executemany(f'INSERT INTO "{layer}" ({names}) VALUES ({marks})', batch)
        box = bounds if n else [None, None, None, None]
        conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
            "last_change, min_x, min_y, max_x, max_y, srs_id) VALUES "
            "(?, 'features', ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                layer,
                layer,
                description,
                datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z",
                *box,
                SRID,
            ],
        )
        conn.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'GEOMETRY', ?, 0, 0)",
            [layer, SRID],
        )
        conn.commit()
    finally:
        conn.close()
    return n


def _family(geom: BaseGeometry) -> str:
    return "point" if geom.geom_type in ("Point", "MultiPoint") else "polygon"


def _dbf_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return str(value)


def _rings(geom: BaseGeometry) -> list[list[tuple[float, float]]]:
    parts = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
    rings: list[list[tuple[float, float]]] = []
    for part in parts:
        # Shapefile rings: outer clockwise, holes counter-clockwise (orient sign -1).
        p = orient(part, sign=-1.0)
        rings.append([(x, y) for x, y in p.exterior.coords])
        rings.extend([(x, y) for x, y in hole.coords] for hole in p.interiors)
    return rings


def write_shapefile_zip(
    layer: str,
    fields: Sequence[ExportField],
    features: Iterable[tuple[BaseGeometry, dict[str, Any]]],
) -> tuple[bytes, int]:
    """A zip of one shapefile per geometry family of the layer; returns (zip bytes, count)."""
    with tempfile.TemporaryDirectory(prefix="checkup-shp-") as tmp:
        writers: dict[str, shapefile.Writer] = {}
        n = 0

        def writer_for(family: str) -> shapefile.Writer:
            if family not in writers:
                shape_type = shapefile.POINT if family == "point" else shapefile.POLYGON
                w = shapefile.Writer(
                    str(Path(tmp) / f"{layer}_{family}"), shapeType=shape_type, encoding="utf-8"
                )
                for f in fields:
                    if f.kind == "int":
                        w.field(f.column, "N", size=18, decimal=0)
                    elif f.kind == "float":
                        w.field(f.column, "N", size=24, decimal=8)
                    else:
                        w.field(f.column, "C", size=254)
                writers[family] = w
            return writers[family]

        for geom, props in features:
            family = _family(geom)
            w = writer_for(family)
            if family == "point":
                w.point(geom.x, geom.y)
            else:
                w.poly(_rings(geom))
            w.record(*(_dbf_value(f.kind, props.get(f.key)) for f in fields))
            n += 1
        if not writers:
            writer_for("point")
        for family, w in writers.items():
            w.close()
            base = Path(tmp) / f"{layer}_{family}"
            base.with_suffix(".prj").write_text(CGCS2000_WKT, encoding="ascii")
            base.with_suffix(".cpg").write_text("UTF-8", encoding="ascii")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(Path(tmp).iterdir()):
                zf.write(f, f.name)
        return buf.getvalue(), n
