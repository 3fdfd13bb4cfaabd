"""Spatial ground of the indicator service: compounds, buildings, facilities, inspections.

Geometry is stored in CGCS2000 (EPSG:4490, longitude/latitude degrees). Every object also
keeps a representative point (``point``: the point itself, or a point on the surface of a
polygon) that coverage and map clients use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.indicator.base import Base
from services.indicator.values.models import BigId
from shared.dbtypes import JsonType, UtcDateTime, utcnow

SRID = 4490
UNIT_KINDS = ("compound", "building")
FACILITY_TYPES = (
    "kindergarten",
    "primary_school",
    "middle_school",
    "clinic",
    "elderly_care",
    "park",
    "sports_ground",
    "emergency_shelter",
    "fire_station",
)
OUTCOMES = ("pass", "fail", "na")


class SpatialBatch(Base):
    """One import of objects or inspections: who, when, what, and the rows it rejected."""

    __tablename__ = "spatial_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    target: Mapped[str] = mapped_column(String(12))  # compound/building/facility/inspection
    format: Mapped[str] = mapped_column(String(12))  # geojson/csv/shapefile/gpkg/xlsx/json
    mode: Mapped[str] = mapped_column(String(16))  # per_row / all_or_nothing
    status: Mapped[str] = mapped_column(String(12))  # applied/partial/rejected
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_applied: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SpatialUnit(Base):
    """A residential compound (小区, polygon) or a building (楼栋, point or footprint)."""

    __tablename__ = "spatial_units"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # compound/building
    code: Mapped[str] = mapped_column(String(64))  # the county's own identifier, unique per node
    name: Mapped[str] = mapped_column(String(200), default="")
    region_code: Mapped[str] = mapped_column(String(12))  # community (12 digits)
    compound_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("spatial_units.id", ondelete="SET NULL")
    )
    residents: Mapped[int | None] = mapped_column(Integer)
    dwellings: Mapped[int | None] = mapped_column(Integer)
    floors: Mapped[int | None] = mapped_column(Integer)
    built_year: Mapped[int | None] = mapped_column(Integer)
    attrs: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    geom: Mapped[Any] = mapped_column(
        Geometry("GEOMETRY", srid=SRID, spatial_index=True), nullable=False
    )
    point: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=SRID, spatial_index=True), nullable=False
    )
    batch_id: Mapped[int | None] = mapped_column(BigId)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("code"),
        Index("ix_spatial_units_region_kind", "region_code", "kind"),
        Index("ix_spatial_units_compound_id", "compound_id"),
    )


class Facility(Base):
    """A public service facility (kindergarten, school, clinic, park, fire station …)."""

    __tablename__ = "facilities"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    facility_type: Mapped[str] = mapped_column(String(24))
    region_code: Mapped[str] = mapped_column(String(12))  # 6, 9 or 12 digits
    capacity: Mapped[float | None] = mapped_column(Float)
    area_m2: Mapped[float | None] = mapped_column(Float)
    attrs: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    geom: Mapped[Any] = mapped_column(
        Geometry("GEOMETRY", srid=SRID, spatial_index=True), nullable=False
    )
    point: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=SRID, spatial_index=True), nullable=False
    )
    batch_id: Mapped[int | None] = mapped_column(BigId)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("code"),
        Index("ix_facilities_type_region", "facility_type", "region_code"),
    )


class SpatialEvent(Base):
    """Audit trail of object writes: create/update of units and facilities, coverage rules."""

    __tablename__ = "spatial_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16))  # unit/facility/coverage_rule/extent
    object_id: Mapped[int] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(12))  # create/update/delete
    batch_id: Mapped[int | None] = mapped_column(BigId)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonType)

    __table_args__ = (Index("ix_spatial_events_object", "object_type", "object_id"),)


class RegionExtent(Base):
    """A configurable bounding box of a region: objects of the region must lie inside it."""

    __tablename__ = "spatial_region_extents"

    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Inspection(Base):
    """One visit of one object by an inspector: when, where, against which system and period."""

    __tablename__ = "inspections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    unit_id: Mapped[int] = mapped_column(BigId, ForeignKey("spatial_units.id"))
    system_id: Mapped[int] = mapped_column(ForeignKey("indicator_systems.id"))
    period: Mapped[str] = mapped_column(String(10))
    inspector: Mapped[str] = mapped_column(String(100))
    inspected_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    batch_id: Mapped[int | None] = mapped_column(BigId)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_inspections_unit", "unit_id", "system_id", "period"),
        # Recording for the parent reads the inspections one write created (revision 0008).
        Index("ix_inspections_batch", "batch_id"),
    )


class InspectionResult(Base):
    """Outcome of one sub-item in one inspection; ``current`` marks the latest per object."""

    __tablename__ = "inspection_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("inspections.id", ondelete="CASCADE")
    )
    # Denormalised from the inspection and the object so that roll-ups read one table.
    unit_id: Mapped[int] = mapped_column(BigId)
    system_id: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(10))
    region_code: Mapped[str] = mapped_column(String(12))
    inspected_at: Mapped[datetime] = mapped_column(UtcDateTime)
    indicator_code: Mapped[str] = mapped_column(String(40))
    sub_item_code: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(4))  # pass/fail/na
    note: Mapped[str | None] = mapped_column(Text)
    current: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        Index(
            "ix_inspection_results_key",
            "system_id",
            "period",
            "unit_id",
            "indicator_code",
            "sub_item_code",
        ),
        Index("ix_inspection_results_scope", "system_id", "period", "region_code", "current"),
        Index("ix_inspection_results_inspection", "inspection_id"),
    )


class InspectionEvidence(Base):
    """A photo (or other file) behind an inspection, by reference and SHA-256 checksum."""

    __tablename__ = "inspection_evidence"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("inspections.id", ondelete="CASCADE"), index=True
    )
    sub_item_code: Mapped[str | None] = mapped_column(String(40))
    file_ref: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))


class ReceivedInspection(Base):
    """The read-only copy of an inspection recorded at a node below (entity ``inspection``).

    One row per (origin node, key): the key is the visit's natural key at its origin,
    ``<unit code>/<inspected_at>/<system>/<period>/<inspector>``; a later change of the
    same key replaces the row. Nothing here refers to local ids of the origin.
    """

    __tablename__ = "received_inspections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    origin_node: Mapped[str] = mapped_column(String(64))
    entity_key: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(BigInteger)
    region_code: Mapped[str] = mapped_column(String(12))  # the unit's community
    unit_code: Mapped[str] = mapped_column(String(64))
    unit_kind: Mapped[str] = mapped_column(String(10))
    unit_name: Mapped[str] = mapped_column(String(200), default="")
    lon: Mapped[float | None] = mapped_column(Float)  # the unit's representative point
    lat: Mapped[float | None] = mapped_column(Float)
    system: Mapped[str] = mapped_column(String(64))  # code@year@version
    period: Mapped[str] = mapped_column(String(10))
    inspector: Mapped[str] = mapped_column(String(100))
    inspected_at: Mapped[datetime] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    # [{indicator_code, sub_item_code, outcome, note}] sorted by indicator and sub-item.
    results: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    items: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    evidence_count: Mapped[int] = mapped_column(Integer, default=0)
    evidence: Mapped[list[str]] = mapped_column(JsonType, default=list)  # file references
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("origin_node", "entity_key"),
        Index("ix_received_inspections_region", "region_code", "period"),
        Index(
            "ix_received_inspections_unit",
            "origin_node",
            "unit_code",
            "system",
            "period",
            "inspected_at",
        ),
    )


class CoverageRule(Base):
    """How one coverage indicator is computed: facility type, service radius, basis."""

    __tablename__ = "coverage_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("indicator_systems.id"))
    indicator_code: Mapped[str] = mapped_column(String(40))
    facility_type: Mapped[str] = mapped_column(String(24))
    radius_m: Mapped[float] = mapped_column(Float)
    basis: Mapped[str] = mapped_column(String(10), default="compounds")  # compounds/residents
    radius_source: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("system_id", "indicator_code"),)


class ValueObject(Base):
    """Link from a computed value (indicator × community × period) to each object behind it.

    Rows are kept per community; the objects behind a value of a street, county, city or
    province are the rows whose community code starts with that region's prefix.
    """

    __tablename__ = "spatial_value_objects"

    system_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    indicator_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    unit_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12))
    # deficient/ok for count indicators; covered/uncovered for coverage indicators.
    outcome: Mapped[str] = mapped_column(String(10))
    residents: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index(
            "ix_spatial_value_objects_region",
            "system_id",
            "period",
            "indicator_code",
            "region_code",
        ),
    )


class RollupCount(Base):
    """Per indicator × region (every level) × period: objects counted and hits among them."""

    __tablename__ = "spatial_rollup_counts"

    system_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    indicator_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    level_rank: Mapped[int] = mapped_column(Integer)  # 1 province … 5 community
    objects: Mapped[int] = mapped_column(Integer)
    hits: Mapped[int] = mapped_column(Integer)
    residents: Mapped[int | None] = mapped_column(Integer)
    residents_hit: Mapped[int | None] = mapped_column(Integer)


class RollupDirty(Base):
    """Communities whose inspections changed since their last roll-up."""

    __tablename__ = "spatial_rollup_dirty"

    system_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)


class SpatialRun(Base):
    """Audit of one roll-up or coverage computation."""

    __tablename__ = "spatial_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # rollup/coverage
    system_id: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(10))
    scope: Mapped[str] = mapped_column(String(12))
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    communities: Mapped[int] = mapped_column(Integer, default=0)
    values_written: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    actor: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
