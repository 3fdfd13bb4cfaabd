"""federation: sync_relay's runs kept lz4-compressed on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 13:00:00

A relayed run of 10,000 changes is ~3.5 MB of JSON. Stored uncompressed it took ~1,800
TOAST chunks and as much WAL per batch; lz4 stores it in about an eighth of the space and
costs the relaying node's database a third less CPU to insert. Servers without lz4 (and
SQLite) keep the earlier form; rows already stored are read as they are.
"""

from collections.abc import Sequence

from alembic import op

from shared.sync import compress_relay_runs, uncompress_relay_runs

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    compress_relay_runs(op)


def downgrade() -> None:
    uncompress_relay_runs(op)
