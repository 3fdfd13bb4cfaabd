"""The SQL fragments where SQLite and PostgreSQL differ, for the evaluation statements."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["EvaluationSql", "PostgresEvaluationSql", "SqliteEvaluationSql", "sql_for"]


class EvaluationSql:
    """Portable defaults; a dialect overrides only what it spells differently."""

    def number_text(self, expr: str) -> str:
        """A REAL as text with 15 significant digits, as ``rules.fmt_number`` writes it."""
        return f"printf('%.15g', {expr})"

    def round(self, expr: str, digits: int) -> str:
        """A float rounded to ``digits`` decimals, still a float."""
        return f"ROUND({expr}, {digits})"

    def refresh_statistics(self, session: Session, table: str) -> None:
        """Update the planner's statistics of a table after a large write (no-op by default)."""


class SqliteEvaluationSql(EvaluationSql):
    pass


class PostgresEvaluationSql(EvaluationSql):
    def number_text(self, expr: str) -> str:
        # float8 → numeric keeps 15 significant digits (DBL_DIG) and prints no trailing
        # zeros, matching printf('%.15g') for every value between 1e-4 and 1e15.
        return f"CAST(CAST({expr} AS NUMERIC) AS TEXT)"

    def round(self, expr: str, digits: int) -> str:
        # round(double precision, int) does not exist; numeric's does.
        return f"CAST(ROUND(CAST({expr} AS NUMERIC), {digits}) AS DOUBLE PRECISION)"

    def refresh_statistics(self, session: Session, table: str) -> None:
        # Until autovacuum gets to it, a table filled in one go is planned as if empty:
        # the dashboard's key lookups then filter tens of thousands of rows instead of
        # probing the index. ANALYZE samples a fixed number of rows (cheap) and counts
        # this transaction's own inserts.
        session.execute(text(f"ANALYZE {table}"))


_BY_DIALECT: dict[str, EvaluationSql] = {
    "sqlite": SqliteEvaluationSql(),
    "postgresql": PostgresEvaluationSql(),
}


def sql_for(session: Session) -> EvaluationSql:
    """The fragments for the session's database."""
    return _BY_DIALECT.get(session.get_bind().dialect.name, EvaluationSql())
