"""Alembic environment of the survey service."""

from services.survey.models import Base
from shared.migrations_env import run_migrations

run_migrations(Base.metadata)
