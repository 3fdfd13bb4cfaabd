"""The shared.sync tables in the survey service's own metadata."""

from __future__ import annotations

from services.survey.models import Base
from shared.sync import define_sync_tables

__all__ = ["SYNC"]

SYNC = define_sync_tables(Base.metadata)
