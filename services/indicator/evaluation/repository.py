"""Set-based statements of the evaluation domain: grading, scores, ranks, listing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Float,
    Integer,
    String,
    bindparam,
    delete,
    insert,
    select,
    text,
)
from sqlalchemy.orm import Session

from services.indicator.evaluation.method import IndexMethod
from services.indicator.evaluation.models import Evaluation, EvaluationRule
from services.indicator.evaluation.rules import GRADE_LABELS, NO_VALUE_TEXT, IndicatorRule
from services.indicator.evaluation.sql import sql_for
from shared.dbtypes import UtcDateTime
from shared.regions import parent_of, prefix_of

__all__ = [
    "Scope",
    "count_scored_regions",
    "delete_evaluations",
    "delete_scores",
    "grade_counts",
    "insert_evaluations",
    "insert_scores",
    "page_evaluations",
    "sync_rules",
    "update_ranks",
]

NOT_IN_SYSTEM_TEXT = "指标体系中无此指标 → 无标准"
SCORE_DIGITS = 2


class Scope:
    """A region and everything below it, as a range of division codes (index-friendly)."""

    def __init__(self, region_code: str) -> None:
        self.region_code = region_code
        prefix = prefix_of(region_code)
        self.low = prefix
        # Codes are digit strings: "starts with 3601" is exactly "≥ '3601' and < '3602'".
        # An all-nines prefix has no successor of the same length; 13 nines sorts after
        # every 12-digit code.
        self.high = str(int(prefix) + 1).zfill(len(prefix)) if prefix.strip("9") else "9" * 13
        self.parent = parent_of(region_code) or ""

    def params(self) -> dict[str, str]:
        return {"scope_low": self.low, "scope_high": self.high}


def _in_scope(column: str) -> str:
    return f"{column} >= :scope_low AND {column} < :scope_high"


def delete_evaluations(session: Session, system_id: int, period: str, scope: Scope) -> int:
    """Remove the scope's previous grades (also of values deleted since)."""
    result = session.execute(
        text(
            "DELETE FROM evaluations WHERE system_id = :system_id AND period = :period AND "
            + _in_scope("region_code")
        ),
        {"system_id": system_id, "period": period, **scope.params()},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def sync_rules(
    session: Session, system_id: int, rules: Sequence[IndicatorRule], now: datetime
) -> bool:
    """Make the stored rules of the system match ``rules``; returns whether anything changed."""
    # A released system never changes, so the usual run reads the rows and writes nothing
    # (no lock taken on rows another run of the same system may be joining).
    wanted = {
        r.code: (
            r.graded,
            r.green_low,
            r.green_high,
            r.yellow_low,
            r.yellow_high,
            r.text,
            r.standard,
        )
        for r in rules
    }
    stored = {
        row.indicator_code: (
            row.graded,
            row.green_low,
            row.green_high,
            row.yellow_low,
            row.yellow_high,
            row.rule_text,
            row.standard,
        )
        for row in session.scalars(
            select(EvaluationRule).where(EvaluationRule.system_id == system_id)
        )
    }
    if stored == wanted:
        return False
    session.execute(delete(EvaluationRule).where(EvaluationRule.system_id == system_id))
    if rules:
        session.execute(
            insert(EvaluationRule),
            [
                {
                    "system_id": system_id,
                    "indicator_code": code,
                    "graded": v[0],
                    "green_low": v[1],
                    "green_high": v[2],
                    "yellow_low": v[3],
                    "yellow_high": v[4],
                    "rule_text": v[5],
                    "standard": v[6],
                    "updated_at": now,
                }
                for code, v in wanted.items()
            ],
        )
    return True


def insert_evaluations(
    session: Session,
    system_id: int,
    period: str,
    scope: Scope,
    method: IndexMethod,
    now: datetime,
) -> int:
    """Grade every value of the scope in one INSERT … SELECT; returns the rows written."""
    # Rules are joined from evaluation_rules by primary key (a VALUES list is not indexed
    # by SQLite: every value scanned every rule). The grade is one uniform CASE over the
    # bounds; the rule text is the stored standard plus the actual value and the label.
    dialect = sql_for(session)
    label = (
        "CASE g.grade WHEN 'green' THEN :l_green WHEN 'yellow' THEN :l_yellow "
        "WHEN 'red' THEN :l_red ELSE :l_grey END"
    )
    sql = f"""
INSERT INTO evaluations (value_id, system_id, indicator_code, region_code, period, source,
                         value, grade, points, rule, evaluated_at)
SELECT g.id, g.system_id, g.indicator_code, g.region_code, g.period, g.source, g.value, g.grade,
       CASE g.grade WHEN 'green' THEN :p_green WHEN 'yellow' THEN :p_yellow
                    WHEN 'red' THEN :p_red END,
       CASE WHEN g.rule_text IS NULL THEN :not_in_system
            WHEN g.value IS NULL THEN g.rule_text || :no_value
            ELSE g.rule_text || '；实际值 ' || {dialect.number_text("g.value")} || ' → ' || {label}
       END,
       :now
FROM (
    SELECT v.id, v.system_id, v.indicator_code, v.region_code, v.period, v.source, v.value,
           r.rule_text,
           CASE WHEN v.value IS NULL OR r.graded IS NULL OR NOT r.graded THEN 'grey'
                WHEN v.value BETWEEN r.green_low AND r.green_high THEN 'green'
                WHEN v.value BETWEEN r.yellow_low AND r.yellow_high THEN 'yellow'
                ELSE 'red' END AS grade
    FROM indicator_values v
    LEFT JOIN evaluation_rules r
           ON r.system_id = v.system_id AND r.indicator_code = v.indicator_code
    WHERE v.system_id = :system_id AND v.period = :period AND {_in_scope("v.region_code")}
) g
"""
    stmt = text(sql).bindparams(
        bindparam("now", type_=UtcDateTime()),
        bindparam("p_green", type_=Float()),
        bindparam("p_yellow", type_=Float()),
        bindparam("p_red", type_=Float()),
    )
    params: dict[str, Any] = dict(
        system_id=system_id,
        period=period,
        now=now,
        p_green=method.grade_points["green"],
        p_yellow=method.grade_points["yellow"],
        p_red=method.grade_points["red"],
        not_in_system=NOT_IN_SYSTEM_TEXT,
        no_value=NO_VALUE_TEXT,
        l_green=GRADE_LABELS["green"],
        l_yellow=GRADE_LABELS["yellow"],
        l_red=GRADE_LABELS["red"],
        l_grey=GRADE_LABELS["grey"],
        **scope.params(),
    )
    result = session.execute(stmt, params)
    return int(result.rowcount)  # type: ignore[attr-defined]


def grade_counts(session: Session, system_id: int, period: str, scope: Scope) -> dict[str, int]:
    """Number of graded values per colour in the scope (all sources)."""
    rows = session.execute(
        text(
            "SELECT grade, COUNT(*) FROM evaluations "
            "WHERE system_id = :system_id AND period = :period AND "
            + _in_scope("region_code")
            + " GROUP BY grade"
        ),
        {"system_id": system_id, "period": period, **scope.params()},
    )
    counts = {"green": 0, "yellow": 0, "red": 0, "grey": 0}
    for grade, n in rows:
        counts[grade] = int(n)
    return counts


def delete_scores(session: Session, system_id: int, period: str, scope: Scope) -> int:
    """Remove the scope's previous dimension scores and indices."""
    result = session.execute(
        text(
            "DELETE FROM region_scores WHERE system_id = :system_id AND period = :period AND "
            + _in_scope("region_code")
        ),
        {"system_id": system_id, "period": period, **scope.params()},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _case(
    column: str, mapping: Sequence[tuple[str, Any]], default: str, prefix: str
) -> tuple[str, dict[str, Any]]:
    """``CASE column WHEN :k0 THEN :v0 … ELSE default END`` with bound keys and values."""
    if not mapping:
        return default, {}
    params: dict[str, Any] = {}
    parts = [f"CASE {column}"]
    for n, (key, value) in enumerate(mapping):
        parts.append(f"WHEN :{prefix}k{n} THEN :{prefix}v{n}")
        params[f"{prefix}k{n}"] = key
        params[f"{prefix}v{n}"] = value
    parts.append(f"ELSE {default} END")
    return " ".join(parts), params


def insert_scores(
    session: Session,
    system_id: int,
    period: str,
    scope: Scope,
    method: IndexMethod,
    dimensions: Sequence[str],
    now: datetime,
) -> int:
    """Dimension scores and the health index ('*') of every region in the scope, one statement."""
    # Per region and indicator one value enters: the first non-null one in source-priority
    # order. Dimension score = Σ weight·points / Σ weight over graded indicators; index =
    # Σ dimension_weight·score / Σ dimension_weight over dimensions that have a score.
    dialect = sql_for(session)
    priority, p_params = _case(
        "e.source", [(s, n) for n, s in enumerate(method.source_priority)], "999", "sp"
    )
    weights, w_params = _case(
        "d.dimension", [(d, method.weight_of(d)) for d in dimensions], "0.0", "dw"
    )
    if method.dimension_weights is None:
        weights, w_params = "1.0", {}
    counts = ", ".join(
        f"SUM(CASE WHEN c.grade = '{g}' THEN 1 ELSE 0 END) AS {g}"
        for g in ("green", "yellow", "red", "grey")
    )
    sql = f"""
WITH ranked AS (
    SELECT e.region_code, e.indicator_code, e.grade, e.points,
           ROW_NUMBER() OVER (
               PARTITION BY e.region_code, e.indicator_code
               ORDER BY CASE WHEN e.value IS NULL THEN 1 ELSE 0 END, {priority}, e.source
           ) AS rn
    FROM evaluations e
    WHERE e.system_id = :system_id AND e.period = :period AND {_in_scope("e.region_code")}
),
dims AS (
    SELECT c.region_code, i.dimension,
           SUM(CASE WHEN c.points IS NOT NULL THEN i.weight * c.points END)
             / NULLIF(SUM(CASE WHEN c.points IS NOT NULL THEN i.weight END), 0) AS score,
           SUM(CASE WHEN c.points IS NOT NULL THEN 1 ELSE 0 END) AS n_graded,
           {counts}
    FROM ranked c
    JOIN indicators i ON i.system_id = :system_id AND i.code = c.indicator_code
    WHERE c.rn = 1
    GROUP BY c.region_code, i.dimension
),
weighted AS (
    SELECT d.*, {weights} AS dw FROM dims d
)
INSERT INTO region_scores (system_id, region_code, period, dimension, score, n_graded,
                           green, yellow, red, grey, computed_at)
SELECT :system_id, region_code, :period, dimension, {dialect.round("score", SCORE_DIGITS)},
       n_graded, green, yellow, red, grey, :now
FROM dims
UNION ALL
SELECT :system_id, region_code, :period, '*',
       {
        dialect.round(
            "SUM(CASE WHEN score IS NOT NULL THEN dw * score END)"
            " / NULLIF(SUM(CASE WHEN score IS NOT NULL THEN dw END), 0)",
            SCORE_DIGITS,
        )
    },
       SUM(n_graded), SUM(green), SUM(yellow), SUM(red), SUM(grey), :now
FROM weighted
GROUP BY region_code
"""
    binds: list[BindParameter[Any]] = [
        bindparam("now", type_=UtcDateTime()),
        bindparam("system_id", type_=Integer()),
        bindparam("period", type_=String()),
    ]
    binds += [bindparam(k, type_=Float()) for k in w_params if k.startswith("dwv")]
    binds += [bindparam(k, type_=Integer()) for k in p_params if k.startswith("spv")]
    result = session.execute(
        text(sql).bindparams(*binds),
        {
            "system_id": system_id,
            "period": period,
            "now": now,
            **p_params,
            **w_params,
            **scope.params(),
        },
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def update_ranks(session: Session, system_id: int, period: str, scope: Scope) -> int:
    """Rank the health index among siblings for every sibling group the scope touched."""
    # The groups are the scope root's own siblings (whose other members may lie outside
    # the scope) and the children of every region inside it. Ties share a rank (RANK()).
    result = session.execute(
        text(
            f"""
UPDATE region_scores SET rank = r.rnk, rank_of = r.n
FROM (
    SELECT s.id,
           RANK() OVER (PARTITION BY g.parent_code ORDER BY s.score DESC) AS rnk,
           COUNT(*) OVER (PARTITION BY g.parent_code) AS n
    FROM region_scores s
    JOIN regions g ON g.code = s.region_code
    WHERE s.system_id = :system_id AND s.period = :period AND s.dimension = '*'
      AND s.score IS NOT NULL
      AND (COALESCE(g.parent_code, '') = :root_parent OR ({_in_scope("g.parent_code")}))
) r
WHERE region_scores.id = r.id
"""
        ),
        {
            "system_id": system_id,
            "period": period,
            "root_parent": scope.parent,
            **scope.params(),
        },
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def count_scored_regions(session: Session, system_id: int, period: str, scope: Scope) -> int:
    """Regions of the scope that have a health-index row."""
    return int(
        session.execute(
            text(
                "SELECT COUNT(*) FROM region_scores WHERE system_id = :system_id "
                "AND period = :period AND dimension = '*' AND " + _in_scope("region_code")
            ),
            {"system_id": system_id, "period": period, **scope.params()},
        ).scalar_one()
    )


def page_evaluations(
    session: Session,
    *,
    scope: Scope,
    system_id: int | None,
    period: str | None,
    region_code: str | None,
    indicator_code: str | None,
    source: str | None,
    grade: str | None,
    after: int | None,
    limit: int,
) -> list[Evaluation]:
    """One page of grades inside the scope, ordered by value id (keyset pagination)."""
    stmt = select(Evaluation).where(
        Evaluation.region_code >= scope.low, Evaluation.region_code < scope.high
    )
    filters: list[tuple[Any, Any]] = [
        (Evaluation.system_id, system_id),
        (Evaluation.period, period),
        (Evaluation.region_code, region_code),
        (Evaluation.indicator_code, indicator_code),
        (Evaluation.source, source),
        (Evaluation.grade, grade),
    ]
    for column, wanted in filters:
        if wanted is not None:
            stmt = stmt.where(column == wanted)
    if after is not None:
        stmt = stmt.where(Evaluation.value_id > after)
    return list(session.scalars(stmt.order_by(Evaluation.value_id).limit(limit)))
