"""federation: sync_relay, relayed changes kept one row per applied run

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:00:00

A node relaying its children's changes to its parent wrote one outbox row per change and
read them back and re-encoded them to push: the relay tier's largest cost after applying.
The run of changes applied from a child's batch is now kept as one row of canonical JSON
that the pusher sends as it is. Relayed rows still in ``sync_outbox`` are read as before.
"""

from collections.abc import Sequence

from alembic import op

from shared.sync import create_relay_table, drop_relay_table

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_relay_table(op)


def downgrade() -> None:
    drop_relay_table(op)
