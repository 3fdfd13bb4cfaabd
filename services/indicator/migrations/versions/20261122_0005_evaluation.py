"""evaluation domain schema changes: grading rules per indicator, audit of evaluation runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 05:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evaluation_rules",
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("indicator_code", sa.String(length=40), nullable=False),
        sa.Column("graded", sa.Boolean(), nullable=False),
        sa.Column("green_low", sa.Float(), nullable=False),
        sa.Column("green_high", sa.Float(), nullable=False),
        sa.Column("yellow_low", sa.Float(), nullable=False),
        sa.Column("yellow_high", sa.Float(), nullable=False),
        sa.Column("rule_text", sa.Text(), nullable=False),
        sa.Column("standard", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system_id", "indicator_code", name=op.f("pk_evaluation_rules")),
    )
    op.create_table(
        "evaluation_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("actor_region", sa.String(length=12), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("values_evaluated", sa.Integer(), nullable=False),
        sa.Column("green", sa.Integer(), nullable=False),
        sa.Column("yellow", sa.Integer(), nullable=False),
        sa.Column("red", sa.Integer(), nullable=False),
        sa.Column("grey", sa.Integer(), nullable=False),
        sa.Column("regions_scored", sa.Integer(), nullable=False),
        sa.Column(
            "index_method",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_runs")),
    )
    with op.batch_alter_table("evaluation_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_evaluation_runs_system_period",
            ["system_id", "period", "region_code"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("evaluation_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluation_runs_system_period")
    op.drop_table("evaluation_runs")
    op.drop_table("evaluation_rules")
