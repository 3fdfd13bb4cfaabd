"""initial

Revision ID: 0001
Revises:
Create Date: 2026-11-22 05:24:19.261139
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("value_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("indicator_code", sa.String(length=40), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("grade", sa.String(length=6), nullable=False),
        sa.Column("points", sa.Float(), nullable=True),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("value_id", name=op.f("pk_evaluations")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_evaluations_region_period", ["region_code", "period", "system_id"], unique=False
        )

    op.create_table(
        "indicator_systems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("parent_system_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "index_method",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_by", sa.String(length=100), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_system_id"],
            ["indicator_systems.id"],
            name=op.f("fk_indicator_systems_parent_system_id_indicator_systems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicator_systems")),
        sa.UniqueConstraint(
            "code", "year", "version", name=op.f("uq_indicator_systems_code_year_version")
        ),
    )
    op.create_table(
        "region_scores",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("dimension", sa.String(length=60), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("n_graded", sa.Integer(), nullable=False),
        sa.Column("green", sa.Integer(), nullable=False),
        sa.Column("yellow", sa.Integer(), nullable=False),
        sa.Column("red", sa.Integer(), nullable=False),
        sa.Column("grey", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("rank_of", sa.Integer(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_region_scores")),
    )
    with op.batch_alter_table("region_scores", schema=None) as batch_op:
        batch_op.create_index(
            "ix_region_scores_key", ["system_id", "region_code", "period", "dimension"], unique=True
        )

    op.create_table(
        "regions",
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("level", sa.String(length=12), nullable=False),
        sa.Column("level_rank", sa.Integer(), nullable=False),
        sa.Column("parent_code", sa.String(length=12), nullable=True),
        sa.Column("has_node", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_regions")),
    )
    with op.batch_alter_table("regions", schema=None) as batch_op:
        batch_op.create_index("ix_regions_name", ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_regions_parent_code"), ["parent_code"], unique=False)

    op.create_table(
        "value_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("value_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("old_value", sa.Float(), nullable=True),
        sa.Column("new_value", sa.Float(), nullable=True),
        sa.Column("action", sa.String(length=12), nullable=False),
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_value_history")),
    )
    with op.batch_alter_table("value_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_value_history_value_id"), ["value_id"], unique=False)

    op.create_table(
        "import_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_applied", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("rows_unchanged", sa.Integer(), nullable=False),
        sa.Column(
            "errors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["indicator_systems.id"],
            name=op.f("fk_import_batches_system_id_indicator_systems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batches")),
    )
    op.create_table(
        "indicators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name_zh", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=300), nullable=False),
        sa.Column("level", sa.String(length=12), nullable=False),
        sa.Column("dimension", sa.String(length=60), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("standard_value", sa.Float(), nullable=True),
        sa.Column("warning_value", sa.Float(), nullable=True),
        sa.Column("band_low", sa.Float(), nullable=True),
        sa.Column("band_high", sa.Float(), nullable=True),
        sa.Column("warning_low", sa.Float(), nullable=True),
        sa.Column("warning_high", sa.Float(), nullable=True),
        sa.Column("standard_source", sa.Text(), nullable=False),
        sa.Column("min_value", sa.Float(), nullable=True),
        sa.Column("max_value", sa.Float(), nullable=True),
        sa.Column("value_type", sa.String(length=8), nullable=False),
        sa.Column("data_source", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=12), nullable=False),
        sa.Column("compute", sa.String(length=12), nullable=False),
        sa.Column("formula", sa.Text(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("inherited", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["indicator_systems.id"],
            name=op.f("fk_indicators_system_id_indicator_systems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicators")),
        sa.UniqueConstraint("system_id", "code", name=op.f("uq_indicators_system_id_code")),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["indicator_systems.id"],
            name=op.f("fk_submissions_system_id_indicator_systems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint(
            "system_id",
            "region_code",
            "period",
            name=op.f("uq_submissions_system_id_region_code_period"),
        ),
    )
    op.create_table(
        "indicator_sub_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("indicator_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["indicator_id"],
            ["indicators.id"],
            name=op.f("fk_indicator_sub_items_indicator_id_indicators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicator_sub_items")),
        sa.UniqueConstraint(
            "indicator_id", "code", name=op.f("uq_indicator_sub_items_indicator_id_code")
        ),
    )
    op.create_table(
        "indicator_values",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("indicator_code", sa.String(length=40), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "flags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("on_behalf", sa.Boolean(), nullable=False),
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["import_batches.id"],
            name=op.f("fk_indicator_values_batch_id_import_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["indicator_systems.id"],
            name=op.f("fk_indicator_values_system_id_indicator_systems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicator_values")),
        sa.UniqueConstraint(
            "system_id",
            "indicator_code",
            "region_code",
            "period",
            "source",
            name=op.f("uq_indicator_values_system_id_indicator_code_region_code_period_source"),
        ),
    )
    with op.batch_alter_table("indicator_values", schema=None) as batch_op:
        batch_op.create_index(
            "ix_indicator_values_code_region", ["indicator_code", "region_code"], unique=False
        )
        batch_op.create_index(
            "ix_indicator_values_region_period", ["region_code", "period"], unique=False
        )

    op.create_table(
        "submission_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=12), nullable=False),
        sa.Column("from_state", sa.String(length=12), nullable=False),
        sa.Column("to_state", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("actor_region", sa.String(length=12), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_events_submission_id_submissions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_events")),
    )
    with op.batch_alter_table("submission_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_submission_events_submission_id"), ["submission_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("submission_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_events_submission_id"))

    op.drop_table("submission_events")
    with op.batch_alter_table("indicator_values", schema=None) as batch_op:
        batch_op.drop_index("ix_indicator_values_region_period")
        batch_op.drop_index("ix_indicator_values_code_region")

    op.drop_table("indicator_values")
    op.drop_table("indicator_sub_items")
    op.drop_table("submissions")
    op.drop_table("indicators")
    op.drop_table("import_batches")
    with op.batch_alter_table("value_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_value_history_value_id"))

    op.drop_table("value_history")
    with op.batch_alter_table("regions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_regions_parent_code"))
        batch_op.drop_index("ix_regions_name")

    op.drop_table("regions")
    with op.batch_alter_table("region_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_region_scores_key")

    op.drop_table("region_scores")
    op.drop_table("indicator_systems")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_region_period")

    op.drop_table("evaluations")
