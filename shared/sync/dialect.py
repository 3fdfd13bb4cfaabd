"""The one place where the sync SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Float, Table, Text, insert, literal_column, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = [
    "SyncDialect",
    "bulk_insert",
    "dialect_of",
    "json_array_agg",
    "json_object",
    "register_dialect",
    "utc_iso",
]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class json_object(FunctionElement[Any]):  # lower case: reads like the SQL function
    """A JSON object built in SQL from ``key=column`` pairs (for INSERT … SELECT payloads)."""

    type = JSON()
    inherit_cache = True
    name = "json_object"

    def __init__(self, **fields: ColumnElement[Any] | Any) -> None:
        args: list[Any] = []
        for key, value in fields.items():
            if not _KEY.match(key):
                raise ValueError(f"payload key must be an identifier: {key!r}")
            # Inline literal keys: PostgreSQL cannot infer the type of a bound "any" argument.
            if isinstance(getattr(value, "type", None), Float):
                value = _exact_float(value)
            args += [literal_column(f"'{key}'", Text), value]
        super().__init__(*args)


class _exact_float(FunctionElement[Any]):  # lower case: reads like an SQL function
    """A float column inside a JSON object without losing digits (SQLite's json_object
    writes REAL with 15 significant digits; 17 round-trip every double exactly)."""

    type = JSON()
    inherit_cache = True
    name = "exact_float"


@compiles(_exact_float, "postgresql")
def _exact_float_pg(element: _exact_float, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_exact_float)
def _exact_float_default(element: _exact_float, compiler: SQLCompiler, **kw: Any) -> str:
    x = compiler.process(element.clauses, **kw)
    return f"CASE WHEN {x} IS NULL THEN NULL ELSE json(printf('%!.17g', {x})) END"


@compiles(json_object, "postgresql")
def _json_object_pg(element: json_object, compiler: SQLCompiler, **kw: Any) -> str:
    return f"jsonb_build_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object)
def _json_object_default(element: json_object, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


class json_array_agg(FunctionElement[Any]):  # lower case: reads like the SQL aggregate
    """Aggregate: a JSON array of the group's values (``json_group_array`` / ``jsonb_agg``),
    of its distinct values with ``distinct=True``.

    Order inside the array is not defined. Over no rows it is ``[]`` on SQLite and NULL on
    PostgreSQL.
    """

    type = JSON()
    inherit_cache = True
    name = "json_array_agg"
    # ``distinct`` changes the SQL, so it is part of the statement cache key.
    _traverse_internals = [
        *FunctionElement._traverse_internals,
        ("only_distinct", InternalTraversal.dp_boolean),
    ]

    def __init__(self, value: ColumnElement[Any], *, distinct: bool = False) -> None:
        self.only_distinct = distinct
        super().__init__(value)


def _agg_args(element: json_array_agg, compiler: SQLCompiler, **kw: Any) -> str:
    args = compiler.process(element.clauses, **kw)
    return f"DISTINCT {args}" if element.only_distinct else args


@compiles(json_array_agg, "postgresql")
def _json_array_agg_pg(element: json_array_agg, compiler: SQLCompiler, **kw: Any) -> str:
    return f"jsonb_agg({_agg_args(element, compiler, **kw)})"


@compiles(json_array_agg)
def _json_array_agg_default(element: json_array_agg, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array({_agg_args(element, compiler, **kw)})"


class utc_iso(FunctionElement[str]):  # lower case: reads like an SQL function
    """A stored UTC datetime as ISO 8601 text to the second, ``2025-05-01T01:00:00Z``."""

    type = Text()
    inherit_cache = True
    name = "utc_iso"


@compiles(utc_iso, "postgresql")
def _utc_iso_pg(element: utc_iso, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    return f"""to_char(({value}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""


@compiles(utc_iso)
def _utc_iso_default(element: utc_iso, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps UTC datetimes as naive text (shared.dbtypes.UtcDateTime).
    return f"strftime('%Y-%m-%dT%H:%M:%SZ', {compiler.process(element.clauses, **kw)})"


class SyncDialect:
    """Statements the sync library needs whose SQL is dialect-specific."""

    name = "generic"

    def insert_ignore(self, table: Table, conflict: Sequence[str]) -> Insert:
        """INSERT that silently skips rows whose key ``conflict`` already exists."""
        raise NotImplementedError

    def claim_write_lock(self, session: Session, table: Table) -> None:
        """Make the transaction a writer before it reads what it will decide on."""

    def bulk_insert(
        self, session: Session, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert many rows (same keys each) in the session's transaction, as fast as it gets."""
        if rows:
            session.execute(insert(table), list(rows))


class PostgresSyncDialect(SyncDialect):
    name = "postgresql"
    copy_threshold = 20  # below this a plain multi-row insert is as quick

    def insert_ignore(self, table: Table, conflict: Sequence[str]) -> Insert:
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))

    def bulk_insert(
        self, session: Session, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        # psycopg's executemany sends one INSERT per row; COPY is several times faster.
        if len(rows) < self.copy_threshold:
            super().bulk_insert(session, table, rows)
            return
        connection = session.connection()
        dialect = connection.dialect
        names = list(rows[0])
        # The column types' own bind processing (JSON, UTC datetimes), as an INSERT would do.
        processors = [
            _copy_processor(table.c[n].type.dialect_impl(dialect), dialect) for n in names
        ]
        quote = dialect.identifier_preparer
        sql = (
            f"COPY {quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)}) "
            "FROM STDIN"
        )
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(
                    [p(row[n]) if p else row[n] for n, p in zip(names, processors, strict=True)]
                )


def _copy_processor(impl: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """How a value goes into COPY: JSON through orjson (several times faster than the
    driver's json.dumps, same JSON), anything else through the type's own processing."""
    if isinstance(impl, JSON):
        return _orjson_text
    processor: Callable[[Any], Any] | None = impl.bind_processor(dialect)
    return processor


def _orjson_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class SqliteSyncDialect(SyncDialect):
    name = "sqlite"

    def insert_ignore(self, table: Table, conflict: Sequence[str]) -> Insert:
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))

    def claim_write_lock(self, session: Session, table: Table) -> None:
        # A WAL reader that later writes fails with SQLITE_BUSY_SNAPSHOT if another writer
        # committed in between; a (no-op) write first takes the single writer lock instead.
        first = next(iter(table.primary_key.columns))
        session.execute(update(table).where(first.is_(None)).values({first.name: first}))


_DIALECTS: dict[str, SyncDialect] = {
    "postgresql": PostgresSyncDialect(),
    "sqlite": SqliteSyncDialect(),
}


def register_dialect(name: str, dialect: SyncDialect) -> None:
    """Support (or override) a database dialect by its SQLAlchemy name."""
    _DIALECTS[name] = dialect


def bulk_insert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows fast in the session's transaction (COPY on PostgreSQL): for appliers."""
    dialect_of(session).bulk_insert(session, table, rows)


def dialect_of(session: Session) -> SyncDialect:
    """The sync dialect of the session's database."""
    name = session.get_bind().dialect.name
    try:
        return _DIALECTS[name]
    except KeyError:
        raise RuntimeError(f"shared.sync does not support the {name} dialect") from None
