"""federation: shared.sync tables and the received copies of children's published results

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:00:00
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
    op.create_table(
        "survey_received_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin_node", sa.String(length=64), nullable=False),
        sa.Column("entity_key", sa.String(length=200), nullable=False),
        sa.Column("campaign_ref", sa.Integer(), nullable=False),
        sa.Column("publication_ref", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_received_results")),
        sa.UniqueConstraint(
            "origin_node",
            "entity_key",
            name=op.f("uq_survey_received_results_origin_node_entity_key"),
        ),
    )
    with op.batch_alter_table("survey_received_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_survey_received_results_region", ["region_code", "period"], unique=False
        )
        batch_op.create_index(
            "ix_survey_received_results_campaign",
            ["origin_node", "campaign_ref", "publication_ref"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("survey_received_results", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_received_results_campaign")
        batch_op.drop_index("ix_survey_received_results_region")
    op.drop_table("survey_received_results")
    drop_sync_tables(op)
