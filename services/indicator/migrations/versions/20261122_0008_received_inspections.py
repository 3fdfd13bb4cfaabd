"""inspections up the tiers: received_inspections (copies from below); inspections by batch

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "received_inspections",
        sa.Column("id", BigId, nullable=False),
        sa.Column("origin_node", sa.String(length=64), nullable=False),
        sa.Column("entity_key", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("unit_code", sa.String(length=64), nullable=False),
        sa.Column("unit_kind", sa.String(length=10), nullable=False),
        sa.Column("unit_name", sa.String(length=200), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("inspector", sa.String(length=100), nullable=False),
        sa.Column("inspected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("results", Json, nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("evidence_count", sa.Integer(), nullable=False),
        sa.Column("evidence", Json, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_inspections")),
        sa.UniqueConstraint(
            "origin_node",
            "entity_key",
            name=op.f("uq_received_inspections_origin_node_entity_key"),
        ),
    )
    op.create_index(
        "ix_received_inspections_region", "received_inspections", ["region_code", "period"]
    )
    op.create_index(
        "ix_received_inspections_unit",
        "received_inspections",
        ["origin_node", "unit_code", "system", "period", "inspected_at"],
    )
    op.create_index("ix_inspections_batch", "inspections", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_inspections_batch", table_name="inspections")
    op.drop_index("ix_received_inspections_unit", table_name="received_inspections")
    op.drop_index("ix_received_inspections_region", table_name="received_inspections")
    op.drop_table("received_inspections")
