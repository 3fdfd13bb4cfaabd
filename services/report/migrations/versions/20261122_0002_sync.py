"""federation: shared.sync tables replace the report service's own outbox and cursors

The received copies stay in report_received (filled by the sync appliers now). Nothing was
deployed with the old outbox, so its rows are not carried over.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.sync import create_sync_tables, drop_sync_tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_sync_tables(op)
    op.drop_table("report_receive_cursors")
    op.drop_table("report_outbox")


def downgrade() -> None:
    op.create_table(
        "report_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin_node", sa.String(length=60), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("entity_key", sa.String(length=200), nullable=False),
        sa.Column("op", sa.String(length=12), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_outbox")),
        sa.UniqueConstraint("origin_node", "seq", name=op.f("uq_report_outbox_origin_node_seq")),
    )
    op.create_table(
        "report_receive_cursors",
        sa.Column("origin_node", sa.String(length=60), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("origin_node", name=op.f("pk_report_receive_cursors")),
    )
    drop_sync_tables(op)
