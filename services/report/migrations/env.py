"""Alembic environment of the report service."""

from services.report.models import Base
from shared.migrations_env import run_migrations

run_migrations(Base.metadata)
