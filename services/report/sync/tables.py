"""The shared.sync tables in the report service's own metadata."""

from __future__ import annotations

from services.report.models import Base
from shared.sync import define_sync_tables

__all__ = ["SYNC"]

SYNC = define_sync_tables(Base.metadata)
