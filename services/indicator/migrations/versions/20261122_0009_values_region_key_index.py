"""indicator_values: the region × period index continues to the key

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 11:30:00

A lookup by key (system, indicator, region, period, source) may be planned through the
region × period index when the period is new to the table's statistics; on two columns it
then reads every indicator and source of the region in that period. With the key's other
columns it finds the one row, as the unique index does.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_indicator_values_region_period_key",
        "indicator_values",
        ["region_code", "period", "indicator_code", "source"],
    )
    op.drop_index("ix_indicator_values_region_period", table_name="indicator_values")


def downgrade() -> None:
    op.create_index(
        "ix_indicator_values_region_period", "indicator_values", ["region_code", "period"]
    )
    op.drop_index("ix_indicator_values_region_period_key", table_name="indicator_values")
