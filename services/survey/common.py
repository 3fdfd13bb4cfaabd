"""What every survey domain uses: the audit trail, roles, and the dialect differences."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from sqlalchemy import Table, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from services.survey.models import AuditEvent
from shared.errors import PayloadTooLarge
from shared.identity import Identity

__all__ = [
    "DESIGN_ROLES",
    "REVIEW_ROLES",
    "Dialect",
    "audit",
    "dialect_of",
    "limited_body",
    "read_limited_body",
]

# Designing questionnaires and running campaigns; reviewing screened responses.
DESIGN_ROLES = ("admin", "data_entry")
REVIEW_ROLES = ("admin", "reviewer")


def audit(
    session: Session,
    identity: Identity | str,
    object_type: str,
    object_id: int,
    action: str,
    *,
    campaign_id: int | None = None,
    **detail: Any,
) -> None:
    """Record who did what to which object (flushed with the change it describes)."""
    actor = identity if isinstance(identity, str) else identity.subject
    session.add(
        AuditEvent(
            object_type=object_type,
            object_id=object_id,
            campaign_id=campaign_id,
            action=action,
            actor=actor,
            detail=detail,
        )
    )


class Dialect:
    """SQL that differs between SQLite and PostgreSQL, in one overridable place."""

    name = "sqlite"
    TEMP = "tmp_survey_breakdown"

    def insert_ignore_stmt(self, table: Table, keys: list[str]) -> Any:
        """INSERT … ON CONFLICT (keys) DO NOTHING."""
        return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)

    def breakdown_rows(
        self,
        session: Session,
        source_sql: str,
        groups: list[tuple[str, str]],
        sums: str,
        params: dict[str, Any],
    ) -> list[Any]:
        """Rows (breakdown, group, target_id, sums…) of ``source_sql`` for every grouping.

        ``groups`` are (name, SQL expression) pairs, ``''`` for the ungrouped total. The
        portable form materialises the source once and glues one GROUP BY per breakdown
        with UNION ALL.
        """
        session.execute(text(f"DROP TABLE IF EXISTS temp.{self.TEMP}"))
        session.execute(text(f"CREATE TEMP TABLE {self.TEMP} AS {source_sql}"), params)
        parts = []
        for name, expr in groups:
            by = "target_id" if expr == "''" else f"{expr}, target_id"
            parts.append(
                f"SELECT '{name}' AS breakdown, {expr} AS g, target_id, {sums} "
                f"FROM {self.TEMP} GROUP BY {by}"
            )
        rows = list(session.execute(text(" UNION ALL ".join(parts))))
        session.execute(text(f"DROP TABLE IF EXISTS temp.{self.TEMP}"))
        return rows


class PostgresDialect(Dialect):
    name = "postgresql"

    def insert_ignore_stmt(self, table: Table, keys: list[str]) -> Any:
        return pg_insert(table).on_conflict_do_nothing(index_elements=keys)

    def breakdown_rows(
        self,
        session: Session,
        source_sql: str,
        groups: list[tuple[str, str]],
        sums: str,
        params: dict[str, Any],
    ) -> list[Any]:
        # One pass with GROUPING SETS. GROUPING(e1, …, en) is the bit mask of the
        # expressions a row is not grouped by: it names the row's breakdown.
        keyed = [(name, expr) for name, expr in groups if expr != "''"]
        overall = next(name for name, expr in groups if expr == "''")
        exprs = ", ".join(expr for _, expr in keyed)
        full = (1 << len(keyed)) - 1
        names = [f"WHEN {full} THEN '{overall}'"]
        values = [f"WHEN {full} THEN ''"]
        for i, (name, expr) in enumerate(keyed):
            mask = full ^ (1 << (len(keyed) - 1 - i))
            names.append(f"WHEN {mask} THEN '{name}'")
            values.append(f"WHEN {mask} THEN {expr}")
        sets = ", ".join(["(target_id)"] + [f"(target_id, {expr})" for _, expr in keyed])
        # A few hundred thousand groups in memory, not spilled (this transaction only).
        session.execute(text("SET LOCAL work_mem = '256MB'"))
        sql = (
            f"SELECT CASE GROUPING({exprs}) {' '.join(names)} END AS breakdown, "
            f"CASE GROUPING({exprs}) {' '.join(values)} END AS g, target_id, {sums} "
            f"FROM ({source_sql}) AS src GROUP BY GROUPING SETS ({sets})"
        )
        return list(session.execute(text(sql), params))


def dialect_of(session: Session) -> Dialect:
    """The dialect helper for the session's database."""
    bind = session.get_bind()
    return PostgresDialect() if bind.dialect.name == "postgresql" else Dialect()


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"请求体超过 {limit} 字节 (body larger than {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"请求体超过 {limit} 字节 (body larger than {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def limited_body(limit: int) -> Callable[[Request], Awaitable[bytes]]:
    """A dependency reading the body up to ``limit`` bytes.

    Reading is async; the endpoint that takes the bytes can then be a plain ``def``, run
    in the thread pool, so that its database work never blocks the event loop (a blocked
    loop cannot run the commit that would release the row locks another request awaits).
    """

    async def _read(request: Request) -> bytes:
        return await read_limited_body(request, limit)

    return _read
