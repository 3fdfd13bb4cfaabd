"""federation: shared.sync tables; submissions.origin_node for upper-tier mirrors

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.sync import create_sync_tables, drop_sync_tables

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_sync_tables(op)
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("origin_node", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("origin_node")
    drop_sync_tables(op)
