"""The one place where PostGIS and SpatiaLite differ for the spatial domain.

Everything dialect-specific — metre distances, spatial-index filters, staging tables and
their bulk load, JSON casts, query plans — is a method here; services ask
``spatial_sql(session)`` for the right implementation and never branch on the dialect.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

SRID = 4490
# Metres per degree of latitude is at least this everywhere (110 574 m at the equator);
# used only to widen index search frames, never for the distance itself.
_M_PER_DEG_MIN = 110_000.0

# Staging column kinds → SQL types per backend.
_PG_TYPES = {
    "text": "text",
    "int": "bigint",
    "float": "double precision",
    "blob": "bytea",
    "bool": "boolean",
    "ts": "timestamptz",
}
_SQLITE_TYPES = {
    "text": "TEXT",
    "int": "INTEGER",
    "float": "REAL",
    "blob": "BLOB",
    "bool": "INTEGER",
    "ts": "TEXT",
}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe identifier: {name!r}")
    return name


def degree_frame(lat: float, radius_m: float) -> tuple[float, float]:
    """(Δlon, Δlat) in degrees that surely contain every point within ``radius_m`` of lat."""
    dlat = radius_m / _M_PER_DEG_MIN * 1.01
    far = min(89.0, abs(lat) + dlat)
    dlon = radius_m / (_M_PER_DEG_MIN * math.cos(math.radians(far))) * 1.01
    return dlon, dlat


class SpatialSql:
    """SQL fragments and helpers shared by both backends; subclasses override differences."""

    name = "generic"

    # -- geometry in and out -------------------------------------------------------------
    def geom_from_wkb(self, expr: str) -> str:
        return f"ST_GeomFromWKB({expr}, {SRID})"

    def as_wkb(self, expr: str) -> str:
        return f"ST_AsBinary({expr})"

    def json_value(self, expr: str) -> str:
        """A JSON text expression as the value of a JSON column."""
        return expr

    def extent_of(self, expr: str) -> str:
        """Aggregate select list: min lon, min lat, max lon, max lat of a geometry column."""
        return (
            f"MIN(ST_XMin({expr})), MIN(ST_YMin({expr})), "
            f"MAX(ST_XMax({expr})), MAX(ST_YMax({expr}))"
        )

    def wkb_bytes(self, value: Any) -> bytes:
        return bytes(value)

    # -- spatial predicates --------------------------------------------------------------
    def bbox_filter(self, table: str, column: str, alias: str) -> str:
        """A WHERE fragment that keeps rows of ``alias`` whose geometry meets the box.

        Binds :min_lon, :min_lat, :max_lon, :max_lat.
        """
        raise NotImplementedError

    def covered_exists(self, facility_alias: str, point_expr: str) -> str:
        """EXISTS fragment: a facility of type :ftype lies within :radius metres of a point."""
        raise NotImplementedError

    def distance_m(self, a: str, b: str) -> str:
        """Distance in metres on the CGCS2000 ellipsoid between two 4490 geometries."""
        raise NotImplementedError

    # -- staging and bulk load -----------------------------------------------------------
    def create_staging(
        self, session: Session, name: str, columns: Sequence[tuple[str, str]]
    ) -> None:
        """A fresh temporary table for one bulk operation."""
        types = self._types()
        cols = ", ".join(f"{_ident(c)} {types[k]}" for c, k in columns)
        session.execute(text(f"DROP TABLE IF EXISTS {self.table_ref(name)}"))
        session.execute(text(f"CREATE TEMPORARY TABLE {_ident(name)} ({cols})"))

    def drop_staging(self, session: Session, name: str) -> None:
        session.execute(text(f"DROP TABLE IF EXISTS {self.table_ref(name)}"))

    def load_staging(
        self, session: Session, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int:
        """Bulk-load rows into a staging table; returns the number loaded."""
        raise NotImplementedError

    def analyze(self, session: Session, *tables: str) -> None:
        """Refresh planner statistics after a bulk load."""

    def for_bulk(self, session: Session) -> None:
        """Settings for the rest of this transaction when it aggregates millions of rows."""

    def index_staging(self, session: Session, name: str, *columns: str) -> None:
        """An index on a loaded staging table (joins from it drive index lookups)."""
        cols = ", ".join(_ident(c) for c in columns)
        session.execute(text(f"CREATE INDEX {_ident(name)}_ix ON {_ident(name)} ({cols})"))

    def reserve_ids(self, session: Session, table: str, n: int) -> list[int]:
        """``n`` fresh primary keys of ``table`` for rows inserted set-based afterwards."""
        raise NotImplementedError

    def ts_value(self, value: datetime) -> Any:
        """A UTC datetime as a staging-table value comparable with stored timestamps."""
        return value

    def explain(self, session: Session, sql: str, params: dict[str, Any]) -> str:
        raise NotImplementedError

    def plan_uses_spatial_index(self, plan: str, table: str, alias: str) -> bool:
        """Whether a plan reaches ``table`` (as ``alias``) through a spatial index only."""
        raise NotImplementedError

    def _types(self) -> dict[str, str]:
        raise NotImplementedError

    def table_ref(self, name: str) -> str:
        """How statements name a staging table (SQLite keeps them in schema ``temp``)."""
        return _ident(name)


class PostgisSql(SpatialSql):
    """PostGIS: geography for metres, GiST indexes, COPY for bulk loads."""

    name = "postgis"

    def json_value(self, expr: str) -> str:
        return f"CAST({expr} AS jsonb)"

    def bbox_filter(self, table: str, column: str, alias: str) -> str:
        return (
            f"{alias}.{column} && ST_MakeEnvelope(:min_lon, :min_lat, :max_lon, :max_lat, {SRID})"
            f" AND ST_Intersects({alias}.{column},"
            f" ST_MakeEnvelope(:min_lon, :min_lat, :max_lon, :max_lat, {SRID}))"
        )

    def covered_exists(self, facility_alias: str, point_expr: str) -> str:
        f = facility_alias
        # The geography casts match the expression index ix_facilities_geog.
        return (
            f"EXISTS (SELECT 1 FROM facilities {f} WHERE {f}.facility_type = :ftype"
            f" AND ST_DWithin({f}.geom::geography, ({point_expr})::geography, :radius))"
        )

    def distance_m(self, a: str, b: str) -> str:
        return f"ST_Distance(({a})::geography, ({b})::geography)"

    def load_staging(
        self, session: Session, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int:
        cols = ", ".join(_ident(c) for c in columns)
        raw: Any = session.connection().connection.driver_connection
        n = 0
        with raw.cursor() as cur, cur.copy(f"COPY {_ident(name)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        return n

    def analyze(self, session: Session, *tables: str) -> None:
        for t in tables:
            session.execute(text(f"ANALYZE {_ident(t)}"))

    def for_bulk(self, session: Session) -> None:
        # Hash aggregates over object × indicator spill to disk at the default 4 MB.
        session.execute(text("SET LOCAL work_mem = '256MB'"))

    def reserve_ids(self, session: Session, table: str, n: int) -> list[int]:
        if n == 0:
            return []
        rows = session.execute(
            text(
                f"SELECT nextval(pg_get_serial_sequence('{_ident(table)}', 'id')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": n},
        )
        return [int(r[0]) for r in rows]

    def explain(self, session: Session, sql: str, params: dict[str, Any]) -> str:
        rows = session.execute(text("EXPLAIN " + sql), params).scalars().all()
        return "\n".join(rows)

    def plan_uses_spatial_index(self, plan: str, table: str, alias: str) -> bool:
        scans_table = re.search(rf"Seq Scan on {table}\b", plan) is not None
        spatial_index = rf"(ix_{table}_\w*geog|idx_{table}_\w+)"
        uses_index = re.search(
            rf"Index Scan using {spatial_index} on {table}\b", plan
        ) or re.search(rf"Bitmap Index Scan on {spatial_index}", plan)
        return bool(uses_index) and not scans_table

    def _types(self) -> dict[str, str]:
        return _PG_TYPES


class SpatialiteSql(SpatialSql):
    """SpatiaLite: ellipsoidal ST_Distance, R*Tree search frames, executemany loads."""

    name = "spatialite"

    def extent_of(self, expr: str) -> str:
        return (
            f"MIN(ST_MinX({expr})), MIN(ST_MinY({expr})), "
            f"MAX(ST_MaxX({expr})), MAX(ST_MaxY({expr}))"
        )

    def bbox_filter(self, table: str, column: str, alias: str) -> str:
        idx = f"idx_{_ident(table)}_{_ident(column)}"
        return (
            f"{alias}.id IN (SELECT pkid FROM {idx} WHERE xmax >= :min_lon AND xmin <= :max_lon"
            f" AND ymax >= :min_lat AND ymin <= :max_lat)"
            f" AND ST_Intersects({alias}.{column},"
            f" BuildMbr(:min_lon, :min_lat, :max_lon, :max_lat, {SRID}))"
        )

    def covered_exists(self, facility_alias: str, point_expr: str) -> str:
        f = facility_alias
        # Search frame in degrees wide enough for :radius metres at the point's latitude
        # (see degree_frame); the exact test is the ellipsoidal distance.
        dlat = f"(:radius / {_M_PER_DEG_MIN} * 1.01)"
        dlon = (
            f"(:radius / ({_M_PER_DEG_MIN} * cos(radians(min(89.0, abs(ST_Y({point_expr}))"
            f" + {dlat})))) * 1.01)"
        )
        return (
            f"EXISTS (SELECT 1 FROM facilities {f} WHERE {f}.id IN ("
            f"SELECT pkid FROM idx_facilities_geom"
            f" WHERE xmax >= ST_X({point_expr}) - {dlon} AND xmin <= ST_X({point_expr}) + {dlon}"
            f" AND ymax >= ST_Y({point_expr}) - {dlat} AND ymin <= ST_Y({point_expr}) + {dlat})"
            f" AND {f}.facility_type = :ftype"
            f" AND ST_Distance({f}.geom, {point_expr}, 1) <= :radius)"
        )

    def distance_m(self, a: str, b: str) -> str:
        return f"ST_Distance({a}, {b}, 1)"

    def load_staging(
        self, session: Session, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int:
        cols = ", ".join(_ident(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        raw: Any = session.connection().connection.driver_connection
        cur = raw.cursor()
        n = 0
        chunk: list[Sequence[Any]] = []
        sql = f"INSERT INTO temp.{_ident(name)} ({cols}) VALUES ({marks})"
        for row in rows:
            chunk.append(row)
            if len(chunk) >= 10_000:
                cur.executemany(sql, chunk)
                n += len(chunk)
                chunk = []
        if chunk:
            cur.executemany(sql, chunk)
            n += len(chunk)
        cur.close()
        return n

    def analyze(self, session: Session, *tables: str) -> None:
        for t in tables:
            session.execute(text(f"ANALYZE {_ident(t)}"))

    def index_staging(self, session: Session, name: str, *columns: str) -> None:
        cols = ", ".join(_ident(c) for c in columns)
        session.execute(text(f"CREATE INDEX temp.{_ident(name)}_ix ON {_ident(name)} ({cols})"))

    def reserve_ids(self, session: Session, table: str, n: int) -> list[int]:
        # The session already holds SQLite's write lock (it wrote the batch row), so no
        # other writer can take these ids before the INSERT.
        start = session.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {_ident(table)}")).scalar()
        return list(range(int(start or 0) + 1, int(start or 0) + 1 + n))

    def ts_value(self, value: datetime) -> Any:
        # The text form SQLAlchemy's SQLite DateTime stores, so comparisons stay ordered.
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

    def explain(self, session: Session, sql: str, params: dict[str, Any]) -> str:
        rows = session.execute(text("EXPLAIN QUERY PLAN " + sql), params).all()
        return "\n".join(str(r[-1]) for r in rows)

    def plan_uses_spatial_index(self, plan: str, table: str, alias: str) -> bool:
        uses_rtree = re.search(rf"idx_{table}_\w+ VIRTUAL TABLE INDEX", plan) is not None
        full_scan = re.search(rf"\bSCAN ({table}|{alias})\b", plan) is not None
        return uses_rtree and not full_scan

    def _types(self) -> dict[str, str]:
        return _SQLITE_TYPES

    def table_ref(self, name: str) -> str:
        return "temp." + _ident(name)


def spatial_sql(session: Session) -> SpatialSql:
    """The implementation for the session's backend."""
    name = session.get_bind().dialect.name
    return PostgisSql() if name == "postgresql" else SpatialiteSql()
