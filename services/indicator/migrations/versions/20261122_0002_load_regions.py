"""load the 2023 national division codes (Jiangxi down to communities)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.indicator.regions.loader import load_regions

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    load_regions(op.get_bind())


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM regions"))
