"""Sync fixtures: tiny nodes (own tables, own schema or file) on both databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.db import Database
from tests.dbs import _pg_exec, pg_available, pg_url
from tests.sync.tiny import TinyNode

_pg_databases: list[str] = []


@pytest.fixture(scope="session")
def sync_pg_url(backend: str) -> Iterator[str | None]:
    """One PostgreSQL database for the session's sync tests; each node gets its own schema."""
    if backend != "postgres":
        yield None
        return
    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL + PostGIS is required in CI but is not reachable")
        pytest.skip("PostgreSQL not reachable")
    name = f"checkup_sync_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    yield pg_url(name)
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_db(sync_pg_url: str | None, tmp_path: Path) -> Iterator[Callable[[str], Database]]:
    """Fresh, empty storage for one node of the test: a schema on PostgreSQL, a file on SQLite."""
    made: list[Database] = []

    def make(name: str) -> Database:
        if sync_pg_url is not None:
            db = Database(sync_pg_url, schema=f"t_{uuid.uuid4().hex[:10]}_{name}", pool_size=4)
        else:
            db = Database(f"sqlite:///{tmp_path / f'{name}-{len(made)}.db'}", pool_size=4)
        made.append(db)
        return db

    yield make
    for db in made:
        if db.is_postgres and db.schema:
            with db.engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE')
        db.dispose()


@pytest.fixture
def make_node(make_db: Callable[[str], Database]) -> Callable[[str, str], TinyNode]:
    """A tiny node with the given id and region, on the test's backend."""

    def make(node_id: str, region: str) -> TinyNode:
        return TinyNode(make_db(node_id.replace("-", "_")), node_id, region)

    return make


@pytest.fixture
def province(make_node: Callable[[str, str], TinyNode]) -> TinyNode:
    return make_node("node-360000", "360000")


@pytest.fixture
def city(make_node: Callable[[str, str], TinyNode]) -> TinyNode:
    return make_node("node-360100", "360100")


@pytest.fixture
def county(make_node: Callable[[str, str], TinyNode]) -> TinyNode:
    return make_node("node-360121", "360121")


@pytest.fixture
def county2(make_node: Callable[[str, str], TinyNode]) -> TinyNode:
    return make_node("node-360122", "360122")
