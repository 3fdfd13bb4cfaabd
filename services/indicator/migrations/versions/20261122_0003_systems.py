"""systems domain schema changes: audit events, version lineage, indicator definitions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "indicator_system_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("node", sa.String(length=60), nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicator_system_events")),
    )
    with op.batch_alter_table("indicator_system_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_indicator_system_events_system", ["system_id", "id"], unique=False
        )

    with op.batch_alter_table("indicator_systems", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retired_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("based_on_id", sa.Integer(), nullable=True))

    with op.batch_alter_table("indicators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("indicators", schema=None) as batch_op:
        batch_op.drop_column("description")

    with op.batch_alter_table("indicator_systems", schema=None) as batch_op:
        batch_op.drop_column("based_on_id")
        batch_op.drop_column("retired_by")

    with op.batch_alter_table("indicator_system_events", schema=None) as batch_op:
        batch_op.drop_index("ix_indicator_system_events_system")
    op.drop_table("indicator_system_events")
