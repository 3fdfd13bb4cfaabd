"""Run a service's Alembic migrations programmatically (CLI, tests, start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shared.db import Database

__all__ = [
    "Revisions",
    "alembic_config",
    "current_revision",
    "head_revision",
    "storage_revisions",
    "upgrade",
]


def alembic_config(package_dir: Path, db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(package_dir / "migrations"))
    # Date-and-slug file names: 20261122_0002_add_thing.py
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    cfg.attributes["database"] = db
    return cfg


def upgrade(package_dir: Path, db: Database, revision: str = "head") -> None:
    """Bring the service's storage to ``revision`` (creating its schema first on PostgreSQL)."""
    db.ensure_schema()
    command.upgrade(alembic_config(package_dir, db), revision)


def downgrade(package_dir: Path, db: Database, revision: str = "base") -> None:
    command.downgrade(alembic_config(package_dir, db), revision)


def head_revision(package_dir: Path, db: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(package_dir, db)).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        opts = {"version_table_schema": db.schema} if db.is_postgres and db.schema else {}
        return MigrationContext.configure(conn, opts=opts).get_current_revision()


@dataclass(frozen=True)
class Revisions:
    """Where a storage's migrations stand."""

    current: str | None
    head: str | None

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def storage_revisions(package_dir: Path, db: Database) -> Revisions:
    """The storage's current and head revisions; raises if its database does not answer."""
    db.ping()
    return Revisions(current_revision(db), head_revision(package_dir, db))
