"""Every service's migrations go from empty to head and back, on both backends."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect

from checkup.node import package_dirs
from shared.db import Database
from shared.migrate import current_revision, downgrade, head_revision, upgrade
from shared.settings import NodeSettings
from tests.dbs import _pg_exec, pg_available, pg_url


@pytest.fixture
def empty_settings(backend: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    if backend == "postgres":
        if not pg_available():
            pytest.skip("PostgreSQL not reachable")
        name = f"checkup_mig_{uuid.uuid4().hex[:10]}"
        _pg_exec(f'CREATE DATABASE "{name}"')
        yield NodeSettings(environment="test", data_dir=tmp_path, database_url=pg_url(name))
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield NodeSettings(environment="test", data_dir=tmp_path)


@pytest.mark.parametrize("service", ["indicator", "survey", "report", "gateway"])
def test_upgrade_downgrade_upgrade(empty_settings: NodeSettings, service: str) -> None:
    pkg, spatial = package_dirs()[service]
    url, schema = empty_settings.database_for(service)  # type: ignore[arg-type]
    db = Database(url, schema=schema, spatial=spatial)
    try:
        upgrade(pkg, db)
        head = head_revision(pkg, db)
        assert current_revision(db) == head
        tables = set(inspect(db.engine).get_table_names(schema=schema))
        assert "alembic_version" in tables
        downgrade(pkg, db, "base")
        assert current_revision(db) is None
        upgrade(pkg, db)
        assert current_revision(db) == head
    finally:
        db.dispose()
