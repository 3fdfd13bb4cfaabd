"""values domain schema changes: batch scope and summary, self-describing value history

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 05:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

_HISTORY_COLUMNS = (
    ("system_id", sa.Integer()),
    ("indicator_code", sa.String(length=40)),
    ("region_code", sa.String(length=12)),
    ("period", sa.String(length=10)),
    ("source", sa.String(length=16)),
    ("old_note", sa.Text()),
    ("new_note", sa.Text()),
    ("revision", sa.Integer()),
    ("on_behalf", sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_region", sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column("source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("summary", _JSON, nullable=True))
    with op.batch_alter_table("value_history", schema=None) as batch_op:
        for name, type_ in _HISTORY_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("value_history", schema=None) as batch_op:
        for name, _type in reversed(_HISTORY_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_column("summary")
        batch_op.drop_column("source")
        batch_op.drop_column("actor_region")
