"""spatial domain: units, facilities, inspections, coverage rules, roll-up tables

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 05:45:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import geoalchemy2
import geoalchemy2.alembic_helpers
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

# Jiangxi's extent as publicly described (24°29′–30°04′N, 113°34′–118°28′E), with a small
# margin; a node may narrow it per region through the API.
JIANGXI_EXTENT = (113.55, 24.45, 118.50, 30.10)


def _geom(kind: str) -> geoalchemy2.Geometry:
    return geoalchemy2.Geometry(kind, srid=4490, spatial_index=True)


def _audit_columns() -> list[sa.Column]:
    return [
        sa.Column("batch_id", BigId, nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    # SpatiaLite keeps geometry metadata in its own tables; create them once. No
    # transaction argument (InitSpatialMetaData(1) would BEGIN): Alembic already runs this
    # revision inside a transaction.
    if (
        bind.dialect.name == "sqlite"
        and not bind.execute(sa.text("SELECT CheckSpatialMetaData()")).scalar()
    ):
        bind.execute(sa.text("SELECT InitSpatialMetaData()"))

    op.create_table(
        "spatial_batches",
        sa.Column("id", BigId, nullable=False),
        sa.Column("target", sa.String(length=12), nullable=False),
        sa.Column("format", sa.String(length=12), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_applied", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("errors", Json, nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spatial_batches")),
    )
    op.create_geospatial_table(  # type: ignore[attr-defined]
        "spatial_units",
        sa.Column("id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("compound_id", BigId, nullable=True),
        sa.Column("residents", sa.Integer(), nullable=True),
        sa.Column("dwellings", sa.Integer(), nullable=True),
        sa.Column("floors", sa.Integer(), nullable=True),
        sa.Column("built_year", sa.Integer(), nullable=True),
        sa.Column("attrs", Json, nullable=False),
        sa.Column("geom", _geom("GEOMETRY"), nullable=False),
        sa.Column("point", _geom("POINT"), nullable=False),
        *_audit_columns(),
        sa.ForeignKeyConstraint(
            ["compound_id"],
            ["spatial_units.id"],
            name=op.f("fk_spatial_units_compound_id_spatial_units"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spatial_units")),
        sa.UniqueConstraint("code", name=op.f("uq_spatial_units_code")),
    )
    op.create_index("ix_spatial_units_region_kind", "spatial_units", ["region_code", "kind"])
    op.create_index("ix_spatial_units_compound_id", "spatial_units", ["compound_id"])

    op.create_geospatial_table(  # type: ignore[attr-defined]
        "facilities",
        sa.Column("id", BigId, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("facility_type", sa.String(length=24), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("capacity", sa.Float(), nullable=True),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column("attrs", Json, nullable=False),
        sa.Column("geom", _geom("GEOMETRY"), nullable=False),
        sa.Column("point", _geom("POINT"), nullable=False),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facilities")),
        sa.UniqueConstraint("code", name=op.f("uq_facilities_code")),
    )
    op.create_index("ix_facilities_type_region", "facilities", ["facility_type", "region_code"])

    if bind.dialect.name == "postgresql":
        # Coverage measures metres on the CGCS2000 ellipsoid (geography); these expression
        # indexes let ST_DWithin(geography, geography, m) use an index on either side.
        op.execute("CREATE INDEX ix_facilities_geog ON facilities USING gist ((geom::geography))")
        op.execute(
            "CREATE INDEX ix_spatial_units_point_geog ON spatial_units "
            "USING gist ((point::geography))"
        )

    op.create_table(
        "spatial_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("object_type", sa.String(length=16), nullable=False),
        sa.Column("object_id", BigId, nullable=False),
        sa.Column("action", sa.String(length=12), nullable=False),
        sa.Column("batch_id", BigId, nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", Json, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spatial_events")),
    )
    op.create_index("ix_spatial_events_object", "spatial_events", ["object_type", "object_id"])

    extents = op.create_table(
        "spatial_region_extents",
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("region_code", name=op.f("pk_spatial_region_extents")),
    )
    min_lon, min_lat, max_lon, max_lat = JIANGXI_EXTENT
    op.bulk_insert(
        extents,
        [
            {
                "region_code": "360000",
                "min_lon": min_lon,
                "min_lat": min_lat,
                "max_lon": max_lon,
                "max_lat": max_lat,
                "source": "江西省地理范围（公开资料，含少量余量） (Jiangxi's public extent)",
                "updated_by": "migration",
                "updated_at": datetime(2026, 11, 22, tzinfo=UTC),
            }
        ],
    )

    op.create_table(
        "inspections",
        sa.Column("id", BigId, nullable=False),
        sa.Column("unit_id", BigId, nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("inspector", sa.String(length=100), nullable=False),
        sa.Column("inspected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("batch_id", BigId, nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["spatial_units.id"], name=op.f("fk_inspections_unit_id_spatial_units")
        ),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["indicator_systems.id"],
            name=op.f("fk_inspections_system_id_indicator_systems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspections")),
    )
    op.create_index("ix_inspections_unit", "inspections", ["unit_id", "system_id", "period"])

    op.create_table(
        "inspection_results",
        sa.Column("id", BigId, nullable=False),
        sa.Column("inspection_id", BigId, nullable=False),
        sa.Column("unit_id", BigId, nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("inspected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("indicator_code", sa.String(length=40), nullable=False),
        sa.Column("sub_item_code", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=4), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
            name=op.f("fk_inspection_results_inspection_id_inspections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_results")),
    )
    op.create_index(
        "ix_inspection_results_key",
        "inspection_results",
        ["system_id", "period", "unit_id", "indicator_code", "sub_item_code"],
    )
    op.create_index(
        "ix_inspection_results_scope",
        "inspection_results",
        ["system_id", "period", "region_code", "current"],
    )
    op.create_index("ix_inspection_results_inspection", "inspection_results", ["inspection_id"])

    op.create_table(
        "inspection_evidence",
        sa.Column("id", BigId, nullable=False),
        sa.Column("inspection_id", BigId, nullable=False),
        sa.Column("sub_item_code", sa.String(length=40), nullable=True),
        sa.Column("file_ref", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
            name=op.f("fk_inspection_evidence_inspection_id_inspections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_evidence")),
    )
    op.create_index(
        op.f("ix_inspection_evidence_inspection_id"), "inspection_evidence", ["inspection_id"]
    )

    op.create_table(
        "coverage_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("indicator_code", sa.String(length=40), nullable=False),
        sa.Column("facility_type", sa.String(length=24), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=False),
        sa.Column("basis", sa.String(length=10), nullable=False),
        sa.Column("radius_source", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["indicator_systems.id"],
            name=op.f("fk_coverage_rules_system_id_indicator_systems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coverage_rules")),
        sa.UniqueConstraint(
            "system_id", "indicator_code", name=op.f("uq_coverage_rules_system_id_indicator_code")
        ),
    )

    op.create_table(
        "spatial_value_objects",
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("indicator_code", sa.String(length=40), nullable=False),
        sa.Column("unit_id", BigId, nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("residents", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint(
            "system_id",
            "period",
            "indicator_code",
            "unit_id",
            name=op.f("pk_spatial_value_objects"),
        ),
    )
    op.create_index(
        "ix_spatial_value_objects_region",
        "spatial_value_objects",
        ["system_id", "period", "indicator_code", "region_code"],
    )

    op.create_table(
        "spatial_rollup_counts",
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("indicator_code", sa.String(length=40), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("level_rank", sa.Integer(), nullable=False),
        sa.Column("objects", sa.Integer(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("residents", sa.Integer(), nullable=True),
        sa.Column("residents_hit", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint(
            "system_id",
            "period",
            "indicator_code",
            "region_code",
            name=op.f("pk_spatial_rollup_counts"),
        ),
    )
    op.create_table(
        "spatial_rollup_dirty",
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.PrimaryKeyConstraint(
            "system_id", "period", "region_code", name=op.f("pk_spatial_rollup_dirty")
        ),
    )
    op.create_table(
        "spatial_runs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("scope", sa.String(length=12), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("communities", sa.Integer(), nullable=False),
        sa.Column("values_written", sa.Integer(), nullable=False),
        sa.Column("detail", Json, nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spatial_runs")),
    )


def downgrade() -> None:
    op.drop_table("spatial_runs")
    op.drop_table("spatial_rollup_dirty")
    op.drop_table("spatial_rollup_counts")
    op.drop_index("ix_spatial_value_objects_region", table_name="spatial_value_objects")
    op.drop_table("spatial_value_objects")
    op.drop_table("coverage_rules")
    op.drop_index(op.f("ix_inspection_evidence_inspection_id"), table_name="inspection_evidence")
    op.drop_table("inspection_evidence")
    op.drop_index("ix_inspection_results_inspection", table_name="inspection_results")
    op.drop_index("ix_inspection_results_scope", table_name="inspection_results")
    op.drop_index("ix_inspection_results_key", table_name="inspection_results")
    op.drop_table("inspection_results")
    op.drop_index("ix_inspections_unit", table_name="inspections")
    op.drop_table("inspections")
    op.drop_table("spatial_region_extents")
    op.drop_index("ix_spatial_events_object", table_name="spatial_events")
    op.drop_table("spatial_events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_spatial_units_point_geog")
        op.execute("DROP INDEX IF EXISTS ix_facilities_geog")
    op.drop_index("ix_facilities_type_region", table_name="facilities")
    op.drop_geospatial_table("facilities")  # type: ignore[attr-defined]
    op.drop_index("ix_spatial_units_compound_id", table_name="spatial_units")
    op.drop_index("ix_spatial_units_region_kind", table_name="spatial_units")
    op.drop_geospatial_table("spatial_units")  # type: ignore[attr-defined]
    op.drop_table("spatial_batches")
    # SpatiaLite's metadata tables stay: other spatial tables of the file may need them.
