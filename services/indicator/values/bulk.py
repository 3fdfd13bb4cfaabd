"""The set-based value pipeline: stage → validate in SQL → apply with history → flag.

Every write of values (bulk import, single entry, roll-ups of other domains) goes
through these steps, so that checks, history and flags are the same whichever door
the data came in by. Rows are staged in a TEMP table (COPY / executemany), checked by
joins and scans, and applied with INSERT … SELECT and UPDATE … FROM; nothing goes row
by row through the ORM.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, bindparam, text, update
from sqlalchemy.orm import Session

from services.indicator.values.dialect import HISTORY_PAIRS, BulkDialect, OutlierStat
from services.indicator.values.models import SOURCES, IndicatorValue
from shared.dbtypes import UtcDateTime

__all__ = [
    "APPLY",
    "ERR",
    "STAGE",
    "STAGE_COLUMNS",
    "STAGE_DDL",
    "TARGETS",
    "ApplyCounts",
    "FlagCounts",
    "LockedScope",
    "RowError",
    "StageRow",
    "apply_staged",
    "cleanup",
    "collect_errors",
    "compute_flags",
    "max_rank_of",
    "recheck_flags",
    "stage",
    "validate_staged",
]

STAGE = "values_stage"
BAD = "values_bad"
ERR = "values_err"
APPLY = "values_apply"
TARGETS = "values_targets"
RECHECK = "values_recheck"
PAGE = "values_err_page"
TEMP_TABLES = (STAGE, BAD, ERR, PAGE, APPLY, TARGETS, RECHECK, HISTORY_PAIRS)

# rn: data row number as the user counts it (from 1); line: where it is in the file.
# Text fields use '' for "absent": binding None costs pysqlite ten times more per field.
STAGE_COLUMNS = (
    "rn",
    "line",
    "indicator_code",
    "region_code",
    "source",
    "value",
    "bad_value",
    "unit",
    "note",
    "parse_error",
)
StageRow = tuple[int, int, str, str, str, float | None, str, str, str, str]
STAGE_DDL = (
    "rn INTEGER, line INTEGER, indicator_code TEXT, region_code TEXT, source TEXT, "
    "value DOUBLE PRECISION, bad_value TEXT, unit TEXT, note TEXT, parse_error TEXT"
)

# The deepest region level (rank) an indicator of each level may be entered for:
# housing/compound/community indicators down to communities, block indicators down to
# streets, district/city indicators for counties and above. Unknown levels: no limit.
MAX_RANK = {"block": 4, "district": 3, "city": 3}
_MAX_RANK_SQL = (
    "CASE i.level "
    + " ".join(f"WHEN '{level}' THEN {rank}" for level, rank in MAX_RANK.items())
    + " ELSE 5 END"
)


def max_rank_of(indicator_level: str) -> int:
    """The deepest region rank (1 province … 5 community) an indicator level is entered for."""
    return MAX_RANK.get(indicator_level, 5)


_SOURCES_SQL = ", ".join(f"'{s}'" for s in SOURCES)
# Joins from a temporary table into indicator_values by key go through
# BulkDialect.join_values (row-by-row index probes on both databases); joins by id are
# written "t CROSS JOIN indicator_values v WHERE …", an order SQLite keeps (it has no
# statistics of temp tables and would otherwise scan the big table against an unindexed
# temp one).
_KEY_JOIN = (
    "{v}.system_id = :sid AND {v}.indicator_code = {a}.indicator_code "
    "AND {v}.region_code = {a}.region_code AND {v}.period = :period AND {v}.source = {a}.source"
)


@dataclass(frozen=True)
class LockedScope:
    """A submitted or approved submission: values under its region prefix are frozen."""

    submission_id: int
    region_code: str
    prefix: str
    state: str


@dataclass
class RowError:
    rn: int
    line: int
    field: str
    code: str
    ref: int | None
    indicator_code: str | None
    region_code: str | None
    source: str | None
    value: float | None
    bad_value: str | None
    unit: str | None
    ind_unit: str | None
    min_value: float | None
    max_value: float | None
    value_type: str | None


@dataclass
class ApplyCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class FlagCounts:
    outliers: int = 0
    disagreements: int = 0
    flagged_ids: list[int] = field(default_factory=list)


# --- staging -------------------------------------------------------------------------


def stage(session: Session, dialect: BulkDialect, rows: Iterable[StageRow]) -> int:
    """Load parsed rows into the staging table; returns how many were staged."""
    counter = _Counter(rows)
    dialect.create_temp(session, STAGE, STAGE_DDL)
    dialect.load(session, STAGE, STAGE_COLUMNS, counter)
    dialect.analyze(session, STAGE, counter.n)
    return counter.n


class _Counter:
    """Counts rows as the loader pulls them (the body is never materialised twice)."""

    def __init__(self, rows: Iterable[StageRow]) -> None:
        self.rows = rows
        self.n = 0

    def __iter__(self) -> Iterator[StageRow]:
        for row in self.rows:
            self.n += 1
            yield row


# --- validation ----------------------------------------------------------------------

# (field, code, condition over values_work) — each a row-level rejection reason.
_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("indicator_code", "missing", "indicator_code IS NULL"),
    ("indicator_code", "unknown_indicator", "indicator_code IS NOT NULL AND ind_id IS NULL"),
    ("indicator_code", "formula_indicator", "compute = 'formula'"),
    ("region_code", "missing", "region_code IS NULL"),
    ("region_code", "unknown_region", "region_code IS NOT NULL AND level_rank IS NULL"),
    (
        "region_code",
        "level",
        "level_rank IS NOT NULL AND ind_id IS NOT NULL AND level_rank > max_rank",
    ),
    ("value", "not_number", "bad_value IS NOT NULL"),
    (
        "value",
        "out_of_range",
        "value IS NOT NULL AND ind_id IS NOT NULL AND ("
        "value < COALESCE(min_value, CASE WHEN value_type = 'percent' THEN 0 END) OR "
        "value > COALESCE(max_value, CASE WHEN value_type = 'percent' THEN 100 END))",
    ),
    (
        "value",
        "not_integer",
        "value_type = 'integer' AND value IS NOT NULL AND value <> round(value)",
    ),
    ("unit", "unit", "unit IS NOT NULL AND ind_id IS NOT NULL AND unit <> ind_unit"),
    ("source", "source", f"source IS NULL OR source NOT IN ({_SOURCES_SQL})"),
    ("note", "note_too_long", "length(note) > :max_note"),
)  # fmt: skip


# The staged rows with what validation needs to know about their codes.
_LOOKUP_SQL = f"""
    SELECT s.rn, s.line, NULLIF(s.indicator_code, '') AS indicator_code,
           NULLIF(s.region_code, '') AS region_code, NULLIF(s.source, '') AS source,
           s.value, NULLIF(s.bad_value, '') AS bad_value, NULLIF(s.unit, '') AS unit,
           NULLIF(s.note, '') AS note, NULLIF(s.parse_error, '') AS parse_error,
           i.id AS ind_id, i.compute, i.min_value, i.max_value, i.value_type,
           i.unit AS ind_unit, {_MAX_RANK_SQL} AS max_rank, r.level_rank
    FROM {STAGE} s
    LEFT JOIN indicators i ON i.system_id = :sid AND i.code = s.indicator_code
    LEFT JOIN regions r ON r.code = s.region_code
"""


def validate_staged(
    session: Session,
    dialect: BulkDialect,
    *,
    system_id: int,
    scope_prefix: str | None,
    locked: Sequence[LockedScope],
    max_note: int,
    allow_formula: bool = False,
) -> tuple[int, int]:
    """Check every staged row in SQL; returns (errors, rejected rows).

    ``allow_formula``: rows of formula indicators are accepted (values derived by their
    owner node and received from it) instead of refused as not enterable.
    """
    dialect.create_temp(session, ERR, "rn INTEGER, field TEXT, code TEXT, ref INTEGER")
    params: dict[str, Any] = {"max_note": max_note, "sid": system_id}
    checks = list(_CHECKS)
    if allow_formula:
        # A derived value is what its owner's formula gave (a rate may pass 100 %): only
        # its key is checked here.
        checks = [
            (f, code, cond if f != "value" else f"({cond}) AND compute <> 'formula'")
            for f, code, cond in checks
            if code != "formula_indicator"
        ]
    if scope_prefix:
        checks.append(
            (
                "region_code",
                "out_of_scope",
                "level_rank IS NOT NULL AND substr(region_code, 1, :plen) <> :prefix",
            )
        )
        params.update(plen=len(scope_prefix), prefix=scope_prefix)
    # One scan collects every suspicious row; the per-reason checks then run on those few.
    any_check = " OR ".join(f"({cond})" for _f, _c, cond in checks)
    dialect.create_temp_as(
        session,
        BAD,
        f"SELECT * FROM ({_LOOKUP_SQL}) w WHERE parse_error IS NOT NULL OR {any_check}",
        params,
    )
    session.execute(
        text(
            f"INSERT INTO {ERR} (rn, field, code, ref) "
            f"SELECT rn, 'row', parse_error, NULL FROM {BAD} WHERE parse_error IS NOT NULL"
        )
    )
    for fld, code, cond in checks:
        session.execute(
            text(
                f"INSERT INTO {ERR} (rn, field, code, ref) SELECT rn, :field, :code, NULL "
                f"FROM {BAD} WHERE parse_error IS NULL AND ({cond})"
            ),
            {"field": fld, "code": code, **params},
        )
    # The same key twice in one file: which one is meant is unknowable, so none applies.
    session.execute(
        text(
            f"""
            INSERT INTO {ERR} (rn, field, code, ref)
            SELECT s.rn, 'region_code', 'duplicate', d.first_rn
            FROM {STAGE} s
            JOIN (
                SELECT indicator_code, region_code, source, min(rn) AS first_rn
                FROM {STAGE} WHERE parse_error = ''
                GROUP BY indicator_code, region_code, source HAVING count(*) > 1
            ) d ON d.indicator_code = s.indicator_code AND d.region_code = s.region_code
               AND d.source = s.source
            WHERE s.parse_error = '' AND s.indicator_code <> '' AND s.region_code <> ''
            """
        )
    )
    for lock in locked:
        session.execute(
            text(
                f"INSERT INTO {ERR} (rn, field, code, ref) "
                f"SELECT rn, 'region_code', 'locked', :sub FROM {STAGE} "
                "WHERE parse_error = '' AND substr(region_code, 1, :plen) = :prefix"
            ),
            {"sub": lock.submission_id, "plen": len(lock.prefix), "prefix": lock.prefix},
        )
    session.execute(text(f"CREATE INDEX ix_{ERR}_rn ON {ERR} (rn)"))
    dialect.analyze(session, ERR)
    n_errors, n_rows = session.execute(
        text(f"SELECT count(*), count(DISTINCT rn) FROM {ERR}")
    ).one()
    return int(n_errors), int(n_rows)


def collect_errors(
    session: Session, dialect: BulkDialect, system_id: int, limit: int
) -> list[RowError]:
    """The first ``limit`` errors in file order, with what a message needs to explain them."""
    dialect.create_temp_as(
        session,
        PAGE,
        f"SELECT * FROM {ERR} ORDER BY rn, field, code LIMIT :limit",
        {"limit": limit},
    )
    session.execute(text(f"CREATE INDEX ix_{PAGE}_rn ON {PAGE} (rn)"))
    rows = session.execute(
        text(
            f"""
            SELECT e.rn, w.line, e.field, e.code, e.ref, w.indicator_code, w.region_code,
                   w.source, w.value, w.bad_value, w.unit, w.ind_unit, w.min_value,
                   w.max_value, w.value_type
            FROM {PAGE} e JOIN ({_LOOKUP_SQL}) w ON w.rn = e.rn
            ORDER BY e.rn, e.field, e.code
            """
        ),
        {"limit": limit, "sid": system_id},
    )
    return [RowError(*r) for r in rows]


# --- apply ---------------------------------------------------------------------------


def _now_params(now: datetime) -> Any:
    return bindparam("now", value=now, type_=UtcDateTime())


def apply_staged(
    session: Session,
    dialect: BulkDialect,
    *,
    system_id: int,
    period: str,
    batch_id: int,
    actor: str,
    now: datetime,
    on_behalf: bool,
    actor_region: str | None,
    reason: str | None = None,
    n_good: int | None = None,
) -> ApplyCounts:
    """Write the staged rows that passed validation, keeping history; returns counts.

    ``n_good`` (staged rows minus rejected ones), when the caller knows it, spares a
    count over the apply table.
    """
    key = _KEY_JOIN.format(v="v", a="w")
    # A note left empty keeps the stored note; only a new text counts as a change.
    dialect.create_temp_as(
        session,
        APPLY,
        f"""
        SELECT w.rn, w.indicator_code, w.region_code, w.source, w.value, w.note,
               v.id AS value_id, v.value AS old_value, v.note AS old_note,
               v.revision AS old_revision, v.batch_id AS old_batch_id,
               v.updated_by AS old_by, v.updated_at AS old_at, v.on_behalf AS old_behalf,
               CASE WHEN v.id IS NULL THEN 'create'
                    WHEN w.value IS DISTINCT FROM v.value
                      OR (w.note IS NOT NULL AND w.note IS DISTINCT FROM v.note) THEN 'update'
                    ELSE 'same' END AS action
        FROM (
            SELECT rn, indicator_code, region_code, source, value, NULLIF(note, '') AS note
            FROM {STAGE} s WHERE NOT EXISTS (SELECT 1 FROM {ERR} e WHERE e.rn = s.rn)
        ) w
        {dialect.join_values("v", key, left=True)}
        """,
        {"sid": system_id, "period": period},
    )
    # Rows written by an identity above the value's county are entries on its behalf.
    behalf_sql = "(substr(a.region_code, 1, 6) <> :actor_region)" if actor_region else ":ob"
    params: dict[str, Any] = {
        "sid": system_id,
        "period": period,
        "bid": batch_id,
        "actor": actor,
        "reason": reason,
        "actor_region": actor_region,
    }
    binds = [_now_params(now), bindparam("ob", value=on_behalf, type_=Boolean())]
    if not actor_region:
        params.pop("actor_region")

    def run(sql: str) -> int:
        stmt = text(sql).bindparams(*(b for b in binds if f":{b.key}" in sql))
        return int(session.execute(stmt, params).rowcount)  # type: ignore[attr-defined]

    # A value's creation is recorded by the value row itself (revision 1, its batch, who
    # and when) until it first changes; then the creation entry is materialised from the
    # row before it is overwritten. Writing a history row per created value would cost a
    # quarter of a large import's time (measured) and add nothing the row does not hold.
    run(
        f"""
        INSERT INTO value_history (value_id, old_value, new_value, action, batch_id, changed_by,
            changed_at, reason, system_id, indicator_code, region_code, period, source,
            old_note, new_note, revision, on_behalf)
        SELECT a.value_id, NULL, a.old_value, 'create', a.old_batch_id, a.old_by, a.old_at,
               NULL, :sid, a.indicator_code, a.region_code, :period, a.source, NULL,
               a.old_note, 1, a.old_behalf
        FROM {APPLY} a WHERE a.action = 'update' AND a.old_revision = 1
        """
    )
    run(
        f"""
        INSERT INTO value_history (value_id, old_value, new_value, action, batch_id, changed_by,
            changed_at, reason, system_id, indicator_code, region_code, period, source,
            old_note, new_note, revision, on_behalf)
        SELECT a.value_id, a.old_value, a.value, 'update', :bid, :actor, :now, :reason, :sid,
               a.indicator_code, a.region_code, :period, a.source, a.old_note,
               COALESCE(a.note, a.old_note), a.old_revision + 1, {behalf_sql}
        FROM {APPLY} a WHERE a.action = 'update'
        """
    )
    counts = ApplyCounts()
    counts.updated = run(
        f"""
        UPDATE indicator_values SET
            value = a.value,
            note = COALESCE(a.note, indicator_values.note),
            revision = indicator_values.revision + 1,
            batch_id = :bid, updated_by = :actor, updated_at = :now, on_behalf = {behalf_sql}
        FROM {APPLY} a WHERE indicator_values.id = a.value_id AND a.action = 'update'
        """
    )
    counts.created = run(
        f"""
        INSERT INTO indicator_values (system_id, indicator_code, region_code, period, source,
            value, note, on_behalf, batch_id, revision, updated_by, updated_at)
        SELECT :sid, a.indicator_code, a.region_code, :period, a.source, a.value, a.note,
               {behalf_sql}, :bid, 1, :actor, :now
        FROM {APPLY} a WHERE a.action = 'create'
        """
    )
    if n_good is None:
        n_good = int(session.execute(text(f"SELECT count(*) FROM {APPLY}")).scalar_one())
    counts.unchanged = n_good - counts.created - counts.updated
    return counts


# --- flags ---------------------------------------------------------------------------

_DISAGREE = (
    "{x}.value IS NOT NULL AND {o}.value IS NOT NULL "
    "AND abs({x}.value - {o}.value) > :tol * abs({x}.value) "
    "AND abs({x}.value - {o}.value) > :tol * abs({o}.value)"
)
# A value (x) and another source's value (o) of the same key that disagree.
_PAIR_ON = (
    "o.system_id = :sid AND o.indicator_code = x.indicator_code "
    "AND o.region_code = x.region_code AND o.period = x.period AND o.source <> x.source "
    f"AND {_DISAGREE.format(x='x', o='o')}"
)


def _rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b))


def compute_flags(
    session: Session,
    dialect: BulkDialect,
    *,
    system_id: int,
    period: str,
    tolerance: float,
    outlier_z: float,
    min_history: int,
) -> FlagCounts:
    """Recompute outlier and source-disagreement flags around the values the last apply wrote.

    Cheap questions first (are there enough earlier periods for a history, any other
    source, any flag on a changed value?) so that an import with nothing to compare
    against never pays for the comparison. Counterparts in other sources are rechecked
    too, so that a disagreement resolved by this write is cleared on both sides and a new
    one is flagged on both sides (both values are kept).
    """
    written = f"{APPLY} a WHERE a.action IN ('create', 'update')"
    sources = [r[0] for r in session.execute(text(f"SELECT DISTINCT a.source FROM {written}"))]
    if not sources:
        return FlagCounts()
    p = {"sid": system_id, "period": period, "tol": tolerance}
    # A key holds at most one value per system version and period, so the earlier (system,
    # period) pairs of the same granularity bound any key's history: below min_history no
    # value can be judged an outlier. They are read from the import log (every write has
    # a batch); the values have no index leading with period, and asking them "is there
    # any earlier period" scanned the whole table while there was none.
    history_bound = session.execute(
        text(
            "SELECT count(*) FROM (SELECT DISTINCT system_id, period FROM import_batches "
            "WHERE period < :period AND length(period) = length(:period)) p"
        ),
        {"period": period},
    ).scalar_one()
    earlier = int(history_bound) >= max(min_history, 1)
    # Which other sources exist decides whether any pair can disagree at all.
    multi = len(sources) > 1 or bool(
        session.execute(
            text(
                "SELECT 1 FROM indicator_values WHERE system_id = :sid AND period = :period "
                "AND source <> :src LIMIT 1"
            ),
            {"sid": system_id, "period": period, "src": sources[0]},
        ).first()
    )
    targets: set[int] = {
        int(r[0])
        for r in session.execute(
            text(
                f"SELECT v.id FROM {APPLY} a CROSS JOIN indicator_values v "
                "WHERE v.id = a.value_id AND a.action = 'update' AND v.flags IS NOT NULL"
            )
        )
    }
    if not (earlier or multi or targets):
        return FlagCounts()
    recheck = set(targets)
    outliers: dict[int, OutlierStat] = {}
    if earlier:
        dialect.create_temp_as(
            session,
            TARGETS,
            f"""
            SELECT v.id AS value_id, v.indicator_code, v.region_code, v.source, v.period,
                   v.value
            FROM {APPLY} a {dialect.join_values("v", _KEY_JOIN.format(v="v", a="a"))}
            WHERE a.action IN ('create', 'update')
            """,
            p,
        )
        outliers = {
            st.value_id: st for st in dialect.outlier_stats(session, min_history, outlier_z)
        }
        targets.update(outliers)
        recheck.update(outliers)
    if multi:
        # One pass from the written rows to the other sources' values (o) and, only where
        # one is found, to the written value's own id (x).
        others = (
            "o.system_id = :sid AND o.indicator_code = a.indicator_code "
            "AND o.region_code = a.region_code AND o.period = :period AND o.source <> a.source "
            f"AND (o.flags IS NOT NULL OR ({_DISAGREE.format(x='a', o='o')}))"
        )
        rows = session.execute(
            text(
                f"""
                SELECT x.id, o.id, CASE WHEN {_DISAGREE.format(x="a", o="o")} THEN 1 ELSE 0 END
                FROM {APPLY} a
                {dialect.join_values("o", others)}
                {dialect.join_values("x", _KEY_JOIN.format(v="x", a="a"))}
                WHERE a.action IN ('create', 'update')
                """
            ),
            p,
        )
        for xid, oid, disagree in rows:
            recheck.add(int(oid))
            if disagree:
                targets.add(int(xid))
                recheck.add(int(xid))
    return _recompute(
        session,
        dialect,
        recheck=recheck,
        targets=targets,
        outliers=outliers,
        system_id=system_id,
        period=period,
        tolerance=tolerance,
        outlier_z=outlier_z,
        multi=multi,
    )


def recheck_flags(
    session: Session,
    dialect: BulkDialect,
    ids: Sequence[int],
    *,
    system_id: int,
    period: str,
    tolerance: float,
    outlier_z: float,
    min_history: int,
) -> FlagCounts:
    """Recompute the flags of given values (e.g. the counterparts of a deleted value)."""
    if not ids:
        return FlagCounts()
    dialect.create_temp(session, RECHECK, "value_id BIGINT")
    dialect.load(session, RECHECK, ("value_id",), ((i,) for i in ids))
    dialect.create_temp_as(
        session,
        TARGETS,
        f"SELECT v.id AS value_id, v.indicator_code, v.region_code, v.source, v.period, v.value "
        f"FROM {RECHECK} r CROSS JOIN indicator_values v WHERE v.id = r.value_id",
        {},
    )
    outliers = {st.value_id: st for st in dialect.outlier_stats(session, min_history, outlier_z)}
    return _recompute(
        session,
        dialect,
        recheck=set(ids),
        targets=set(ids),
        outliers=outliers,
        system_id=system_id,
        period=period,
        tolerance=tolerance,
        outlier_z=outlier_z,
        multi=True,
    )


def _recompute(
    session: Session,
    dialect: BulkDialect,
    *,
    recheck: set[int],
    targets: set[int],
    outliers: dict[int, OutlierStat],
    system_id: int,
    period: str,
    tolerance: float,
    outlier_z: float,
    multi: bool,
) -> FlagCounts:
    """Write the complete flags of every value in ``recheck``.

    Targets (values just written) get a fresh outlier verdict; other values keep theirs.
    Source disagreement is recomputed for all of them against every other source.
    """
    counts = FlagCounts()
    if not recheck:
        return counts
    dialect.create_temp(session, RECHECK, "value_id BIGINT")
    dialect.load(session, RECHECK, ("value_id",), ((i,) for i in sorted(recheck)))
    dialect.analyze(session, RECHECK)
    current = {
        int(vid): _as_dict(stored)
        for vid, stored in session.execute(
            text(
                f"SELECT v.id, v.flags FROM {RECHECK} r CROSS JOIN indicator_values v "
                "WHERE v.id = r.value_id"
            )
        )
    }
    disagreements: dict[int, list[dict[str, Any]]] = {}
    if multi:
        rows = session.execute(
            text(
                "SELECT x.value_id, o.id, o.source, o.value, x.value "
                "FROM (SELECT v.id AS value_id, v.indicator_code, v.region_code, v.period, "
                f"v.source, v.value FROM {RECHECK} r "
                "CROSS JOIN indicator_values v WHERE v.id = r.value_id) x "
                + dialect.join_values("o", _PAIR_ON)
            ),
            {"sid": system_id, "period": period, "tol": tolerance},
        )
        for vid, oid, osrc, oval, val in rows:
            disagreements.setdefault(int(vid), []).append(
                {
                    "source": osrc,
                    "value": oval,
                    "value_id": int(oid),
                    "relative_difference": round(_rel_diff(val, oval), 4),
                    "tolerance": tolerance,
                }
            )

    new_flags: list[dict[str, Any]] = []
    for vid, old in current.items():
        flags: dict[str, Any] = {}
        # Outliers are judged when a value is written; a counterpart keeps its own verdict.
        if vid in targets:
            st = outliers.get(vid)
            outlier = (
                {
                    "z": None if st.z is None else round(st.z, 3),
                    "median": st.median,
                    "mad": st.mad,
                    "n": st.n,
                    "threshold": outlier_z,
                }
                if st
                else None
            )
        else:
            outlier = old.get("outlier")
        if outlier:
            flags["outlier"] = outlier
            if vid in targets:
                counts.outliers += 1
        if vid in disagreements:
            flags["source_disagreement"] = sorted(
                disagreements[vid], key=lambda d: (d["source"], d["value_id"])
            )
            counts.disagreements += 1
        if flags:
            new_flags.append({"id": vid, "flags": flags})
            counts.flagged_ids.append(vid)
    # SQL NULL (not JSON null) marks a clean value, so that `flags IS NULL` means clean.
    session.execute(
        text(
            f"UPDATE indicator_values SET flags = NULL WHERE id IN (SELECT value_id FROM {RECHECK})"
        )
    )
    if new_flags:
        session.execute(update(IndicatorValue), new_flags)
    return counts


def _as_dict(flags: Any) -> dict[str, Any]:
    if isinstance(flags, dict):
        return flags
    if isinstance(flags, str):  # a JSON text where the driver did not decode it
        decoded = json.loads(flags)
        return decoded if isinstance(decoded, dict) else {}
    return {}


def cleanup(session: Session, dialect: BulkDialect) -> None:
    """Drop the pipeline's temporary tables."""
    for table in TEMP_TABLES:
        dialect.drop_temp(session, table)
