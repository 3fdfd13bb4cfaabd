"""The one place where SQLite and PostgreSQL differ for bulk value work.

Loading a staging table (COPY vs executemany), temporary-table naming and the robust
statistics of the outlier check (percentile_cont in PostgreSQL, Python on SQLite) live
here; everything else in the bulk path is SQL both databases accept as written.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["BulkDialect", "OutlierStat", "PostgresBulk", "SqliteBulk", "bulk_dialect"]

# Joins a target value to the same indicator × region × source in earlier periods
# of the same granularity ("2024" before "2025", "2025-Q1" before "2025-Q2").
HISTORY_PAIRS = "values_history_pairs"
# The same key's values in earlier periods of the same length (any system version).
_HISTORY_ON = (
    "h.indicator_code = t.indicator_code AND h.region_code = t.region_code "
    "AND h.source = t.source AND h.period < t.period "
    "AND length(h.period) = length(t.period) AND h.value IS NOT NULL"
)

# Scale factors of the modified z score: MAD ≈ 0.6745σ, mean absolute deviation ≈ 0.7979σ
# (the fallback when more than half of the history is identical and MAD is 0).
MAD_FACTOR = 0.6745
MEANAD_FACTOR = 1.253314


@dataclass(frozen=True)
class OutlierStat:
    """Robust statistics of one value's history and its z score (None: constant history)."""

    value_id: int
    n: int
    median: float
    mad: float
    z: float | None


def robust_z(x: float, median: float, mad: float, meanad: float) -> float | None:
    """Modified z score; None when the history is constant (every deviation is 0)."""
    if mad > 0:
        return MAD_FACTOR * (x - median) / mad
    if meanad > 0:
        return (x - median) / (MEANAD_FACTOR * meanad)
    return None


def is_outlier(stat: OutlierStat, x: float, threshold: float) -> bool:
    if stat.z is None:
        return x != stat.median
    return abs(stat.z) > threshold


class BulkDialect:
    """Bulk operations with a database-specific best path."""

    name = "generic"

    def temp(self, table: str) -> str:
        return table

    def claim_writer(self, session: Session) -> None:
        """Make this transaction a writer before it reads (where the database needs that)."""

    def lock_period(self, session: Session, system_id: int, period: str) -> None:
        """Serialise writers of one system × period until the transaction ends.

        Two imports of the same keys would otherwise both decide "create" and the second
        would fail on the unique key; an import and a submit would race on the lock check.
        """

    def create_temp(self, session: Session, table: str, columns: str) -> None:
        """(Re)create an empty temporary table for this transaction."""
        self.drop_temp(session, table)
        session.execute(text(f"CREATE TEMP TABLE {table} ({columns})"))

    def create_temp_as(
        self, session: Session, table: str, select_sql: str, params: dict[str, Any]
    ) -> None:
        """(Re)create a temporary table from a query."""
        self.drop_temp(session, table)
        made = session.execute(text(f"CREATE TEMP TABLE {table} AS {select_sql}"), params)
        rows = getattr(made, "rowcount", -1)
        self.analyze(session, table, rows if rows >= 0 else None)

    def drop_temp(self, session: Session, table: str) -> None:
        session.execute(text(f"DROP TABLE IF EXISTS {self.temp(table)}"))

    def join_values(self, alias: str, on: str, *, left: bool = False) -> str:
        """A join of ``indicator_values`` as ``alias`` on ``on``, probed row by row.

        Every join from a batch's temporary table into the values is such a probe: its
        cost follows the batch, never the rows already stored. SQLite keeps the written
        order (temp table outside, the big table looked up through its indexes).
        """
        return f"{'LEFT JOIN' if left else 'CROSS JOIN'} indicator_values {alias} ON {on}"

    def history_join(self) -> str:
        """FROM clause pairing each ``values_targets`` row with its key's earlier values."""
        return f"FROM values_targets t {self.join_values('h', _HISTORY_ON)}"

    def analyze(self, session: Session, table: str, rows: int | None = None) -> None:
        """Give the planner statistics of a freshly filled table (of ``rows`` rows, if
        known)."""

    def load(
        self, session: Session, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        """Append rows to a table as fast as the database allows."""
        raise NotImplementedError

    def outlier_stats(
        self, session: Session, min_history: int, threshold: float
    ) -> list[OutlierStat]:
        """Robust z of every row of ``values_targets`` that has enough history and is an outlier."""
        raise NotImplementedError


class SqliteBulk(BulkDialect):
    """SQLite: executemany into TEMP tables (in memory), medians in Python."""

    name = "sqlite"

    def claim_writer(self, session: Session) -> None:
        # SQLite has one writer at a time, and in WAL mode a transaction that has read
        # cannot become the writer once another writer committed after its read began.
        # A (no-op) write as the first statement takes the write lock, waiting up to
        # busy_timeout, before anything is read for the decision.
        session.execute(text("DELETE FROM import_batches WHERE 0"))

    def lock_period(self, session: Session, system_id: int, period: str) -> None:
        self.claim_writer(session)

    def temp(self, table: str) -> str:
        return f"temp.{table}"

    def load(
        self, session: Session, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        dbapi = session.connection().connection.driver_connection
        assert dbapi is not None
        marks = ", ".join("?" for _ in columns)
        cur = dbapi.cursor()
        try:
            cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        finally:
            cur.close()

    def outlier_stats(
        self, session: Session, min_history: int, threshold: float
    ) -> list[OutlierStat]:
        # SQLite has no percentile aggregate; only keys that have history come back here.
        history: dict[int, list[float]] = defaultdict(list)
        current: dict[int, float] = {}
        for value_id, x, hv in session.execute(
            text(f"SELECT t.value_id, t.value, h.value {self.history_join()}")
        ):
            history[value_id].append(hv)
            current[value_id] = x
        out: list[OutlierStat] = []
        for value_id, values in history.items():
            if len(values) < min_history:
                continue
            med = statistics.median(values)
            deviations = [abs(v - med) for v in values]
            mad = statistics.median(deviations)
            meanad = sum(deviations) / len(deviations)
            x = current[value_id]
            stat = OutlierStat(value_id, len(values), med, mad, robust_z(x, med, mad, meanad))
            if is_outlier(stat, x, threshold):
                out.append(stat)
        return out


ANALYZE_ABOVE_ROWS = 10_000


class PostgresBulk(BulkDialect):
    """PostgreSQL: COPY into TEMP tables, percentile_cont for medians."""

    name = "postgresql"

    def temp(self, table: str) -> str:
        return f"pg_temp.{table}"

    def analyze(self, session: Session, table: str, rows: int | None = None) -> None:
        # Autovacuum never sees temporary tables; without this the planner guesses. A
        # sample of 3,000 rows (statistics target 10, not 100) gives their size and spread
        # as well for these uniform batches. Up to ANALYZE_ABOVE_ROWS rows (a sync batch is
        # at most 10,000) the size alone, which the planner reads off a table never
        # analysed, plans as well: for a batch of 10,000 received values the two ANALYZE
        # cost ~9 ms and the flag check and the apply table ran ~11 ms faster without them.
        if rows is not None and rows <= ANALYZE_ABOVE_ROWS:
            return
        session.execute(text("SET LOCAL default_statistics_target = 10"))
        session.execute(text(f"ANALYZE {table}"))
        session.execute(text("SET LOCAL default_statistics_target TO DEFAULT"))

    def join_values(self, alias: str, on: str, *, left: bool = False) -> str:
        # A period being filled is missing from the table's statistics (they are a few
        # minutes old), so the planner expects one row for it and hashes the whole period,
        # once per batch: loading a period in batches became quadratic. A LATERAL subquery
        # behind OFFSET 0 is not flattened and so is probed through the indexes per row.
        sub = f"LATERAL (SELECT * FROM indicator_values {alias} WHERE {on} OFFSET 0) {alias}"
        return f"LEFT JOIN {sub} ON TRUE" if left else f"CROSS JOIN {sub}"

    def lock_period(self, session: Session, system_id: int, period: str) -> None:
        session.execute(
            text("SELECT pg_advisory_xact_lock(:k1, hashtext(:k2))"),
            {"k1": system_id, "k2": f"values:{period}"},
        )

    def load(
        self, session: Session, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        raw = session.connection().connection.driver_connection
        assert raw is not None
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def outlier_stats(
        self, session: Session, min_history: int, threshold: float
    ) -> list[OutlierStat]:
        # The history pairs as a table with statistics: as a CTE the planner guesses one
        # row and joins it to itself in a nested loop, quadratic in the rows written.
        self.create_temp_as(
            session,
            HISTORY_PAIRS,
            f"SELECT t.value_id, t.value AS x, h.value AS hv {self.history_join()}",
            {},
        )
        rows = session.execute(
            text(
                f"""
                WITH m AS (
                    SELECT value_id, min(x) AS x, count(*) AS n,
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY hv) AS med
                    FROM {HISTORY_PAIRS} GROUP BY value_id HAVING count(*) >= :min_history
                ),
                d AS (
                    SELECT m.value_id, m.x, m.n, m.med,
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(h.hv - m.med)) AS mad,
                           avg(abs(h.hv - m.med)) AS meanad
                    FROM m JOIN {HISTORY_PAIRS} h ON h.value_id = m.value_id
                    GROUP BY m.value_id, m.x, m.n, m.med
                )
                SELECT value_id, x, n, med, mad, meanad FROM d
                WHERE CASE
                    WHEN mad > 0 THEN abs(:mad_factor * (x - med) / mad) > :threshold
                    WHEN meanad > 0 THEN abs((x - med) / (:meanad_factor * meanad)) > :threshold
                    ELSE x <> med
                END
                """
            ),
            {
                "min_history": min_history,
                "threshold": threshold,
                "mad_factor": MAD_FACTOR,
                "meanad_factor": MEANAD_FACTOR,
            },
        )
        return [
            OutlierStat(vid, n, med, mad, robust_z(x, med, mad, meanad))
            for vid, x, n, med, mad, meanad in rows
        ]


def bulk_dialect(session: Session) -> BulkDialect:
    """The bulk dialect of the session's database."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return PostgresBulk()
    if name == "sqlite":
        return SqliteBulk()
    raise NotImplementedError(f"no bulk path for {name}")
