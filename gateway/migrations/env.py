"""Alembic environment of the gateway."""

import gateway.node_models  # noqa: F401  (registers the node registry tables)
from gateway.models import Base
from shared.migrations_env import run_migrations

run_migrations(Base.metadata)
