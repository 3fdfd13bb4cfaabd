"""Alembic environment of the indicator service."""

from services.indicator.models import Base
from shared.migrations_env import run_migrations

run_migrations(Base.metadata)
