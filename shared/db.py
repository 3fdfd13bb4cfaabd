"""Engines, sessions and the one place where SQLite and PostgreSQL differ."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "NAMING_CONVENTION",
    "Database",
    "DbSession",
    "get_session",
]

# Execution option naming how a SQLite transaction begins ("IMMEDIATE" for writers).
BEGIN_OPTION = "checkup_sqlite_begin"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _sqlite_module() -> Any:
    # The stdlib sqlite3 here cannot load extensions; pysqlite3 can (SpatiaLite).
    import pysqlite3.dbapi2 as sqlite

    return sqlite


def _json_text(value: Any) -> str:
    """JSON columns through orjson: the same JSON as json.dumps, several times faster."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


@dataclass
class Database:
    """One service's storage: engine, session factory and dialect facts."""

    url: str
    schema: str | None = None
    spatial: bool = False
    pool_size: int = 10

    def __post_init__(self) -> None:
        self.engine: Engine = self._create_engine()
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def _create_engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            engine = create_engine(
                self.url,
                module=_sqlite_module(),
                connect_args={"check_same_thread": False, "timeout": 30},
                # One pooled connection per worker thread (anyio's default is 40): a new
                # SQLite connection loads SpatiaLite, far too slow to open per request.
                pool_size=max(self.pool_size, 40),
                max_overflow=10,
                json_serializer=_json_text,
                json_deserializer=orjson.loads,
            )
            spatial = self.spatial

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                # Autocommit off at the driver; SQLAlchemy emits BEGIN itself so that
                # SAVEPOINTs and transactional DDL behave.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute("PRAGMA temp_store=MEMORY")
                cur.execute("PRAGMA cache_size=-65536")
                if spatial:
                    dbapi_conn.enable_load_extension(True)
                    dbapi_conn.load_extension("mod_spatialite")
                    dbapi_conn.enable_load_extension(False)
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Any) -> None:
                # Write requests take SQLite's write lock up front (BEGIN IMMEDIATE): a
                # deferred transaction that reads and then writes fails with "database is
                # locked" when another writer commits in between; busy_timeout cannot help.
                mode = conn.get_execution_options().get(BEGIN_OPTION, "")
                conn.exec_driver_sql(f"BEGIN {mode}".strip())

            return engine

        connect_args: dict[str, Any] = {}
        if self.schema:
            connect_args["options"] = f"-csearch_path={self.schema},public"
        return create_engine(
            self.url,
            connect_args=connect_args,
            pool_size=self.pool_size,
            max_overflow=20,
            pool_pre_ping=True,
            json_serializer=_json_text,
            json_deserializer=orjson.loads,
        )

    def ensure_schema(self) -> None:
        """Create the service's schema (and PostGIS where spatial) on PostgreSQL."""
        if not self.is_postgres or not self.schema:
            return
        with self.engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            if self.spatial:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public"))

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessionmaker() as session:
            if write and not self.is_postgres:
                session.connection(execution_options={BEGIN_OPTION: "IMMEDIATE"})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def get_session(request: Request) -> Iterator[Session]:
    """Request-scoped session: committed when the endpoint returns, rolled back on error."""
    db: Database = request.app.state.db
    with db.session(write=request.method in WRITE_METHODS) as session:
        yield session


# Committed before the response is sent (scope="function"): a client never sees success
# for a write that could still fail to commit.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
