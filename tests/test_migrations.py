"""Every service's migrations go from empty to head and back, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from checkup.node import package_dirs
from shared.db import Database
from shared.migrate import current_revision, downgrade, head_revision, upgrade
from shared.settings import NodeSettings
from tests.dbs import _pg_exec, pg_available, pg_url


def _pg_settings(tmp_path: Path) -> Iterator[NodeSettings]:
    if not pg_available():
        pytest.skip("PostgreSQL not reachable")
    name = f"checkup_mig_{uuid.uuid4().hex[:10]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    yield NodeSettings(environment="test", data_dir=tmp_path, database_url=pg_url(name))
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_settings(backend: str, tmp_path: Path) -> Iterator[NodeSettings]:
    if backend == "postgres":
        yield from _pg_settings(tmp_path)
    else:
        yield NodeSettings(environment="test", data_dir=tmp_path)


@pytest.fixture
def empty_pg_settings(tmp_path: Path) -> Iterator[NodeSettings]:
    yield from _pg_settings(tmp_path)


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


@pytest.mark.parametrize("service", ["indicator", "survey", "report"])
def test_relayed_runs_are_stored_lz4_compressed_on_postgres(
    empty_pg_settings: NodeSettings, service: str
) -> None:
    pkg, spatial = package_dirs()[service]
    url, schema = empty_pg_settings.database_for(service)  # type: ignore[arg-type]
    db = Database(url, schema=schema, spatial=spatial)
    table = f"{schema}.sync_relay" if schema else "sync_relay"
    # A run as a relaying node stores it: a few MB of repetitive JSON.
    run = (
        "["
        + ",".join(f'{{"seq":{i},"payload":{{"value":{i * 0.5}}}}}' for i in range(50_000))
        + "]"
    )
    column = (
        "SELECT attstorage, attcompression FROM pg_attribute "
        f"WHERE attrelid = '{table}'::regclass AND attname = 'changes'"
    )
    try:
        upgrade(pkg, db)
        with db.engine.begin() as conn:
            assert tuple(conn.exec_driver_sql(column).one()) == ("x", "l")
            conn.exec_driver_sql(
                f"INSERT INTO {table} (stream, first_seq, last_seq, changes, created_at) "
                "VALUES ('node-360121', 1, 50000, %(run)s, now())",
                {"run": run},
            )
            stored, method, size = conn.exec_driver_sql(
                f"SELECT changes, pg_column_compression(changes), pg_column_size(changes) "
                f"FROM {table}"
            ).one()
        assert stored == run
        assert method == "lz4"
        assert size < len(run) / 4
        # One revision down: out of line and uncompressed again; the stored run reads the same.
        downgrade(pkg, db, "-1")
        with db.engine.begin() as conn:
            assert tuple(conn.exec_driver_sql(column).one()) == ("e", "")
            assert conn.exec_driver_sql(f"SELECT changes FROM {table}").scalar() == run
    finally:
        db.dispose()
