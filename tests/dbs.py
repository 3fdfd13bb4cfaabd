"""Test databases: migrated once per backend, then cloned per test (file copy / TEMPLATE)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import psycopg

from checkup.node import run_migrations
from shared.settings import NodeSettings

PG_ADMIN_URL = os.environ.get("CHECKUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def _pg_exec(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def pg_url(dbname: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


class Template:
    """A migrated node for one backend that tests clone."""

    def __init__(self, backend: str, root: Path) -> None:
        self.backend = backend
        self.root = root
        self.name = f"checkup_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        if backend == "postgres":
            _pg_exec(f'CREATE DATABASE "{self.name}"')
            settings = NodeSettings(
                environment="test", data_dir=root / "tpl", database_url=pg_url(self.name)
            )
        else:
            settings = NodeSettings(environment="test", data_dir=root / "tpl")
        run_migrations(settings)

    def clone(self, dest: Path, **overrides: object) -> tuple[NodeSettings, object]:
        """Settings of a fresh node cloned from the template, and a cleanup callable."""
        dest.mkdir(parents=True, exist_ok=True)
        if self.backend == "postgres":
            name = f"checkup_t_{uuid.uuid4().hex[:12]}"
            _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
            settings = NodeSettings(
                environment="test",
                data_dir=dest,
                database_url=pg_url(name),
                **overrides,  # type: ignore[arg-type]
            )

            def cleanup() -> None:
                _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

            return settings, cleanup
        for f in (self.root / "tpl").glob("*.db"):
            shutil.copy(f, dest / f.name)
        settings = NodeSettings(environment="test", data_dir=dest, **overrides)  # type: ignore[arg-type]
        return settings, lambda: None

    def drop(self) -> None:
        if self.backend == "postgres":
            _pg_exec(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
