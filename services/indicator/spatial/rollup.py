"""Bottom-up roll-up of count indicators: 楼栋/小区 → 社区 → 街道 → 区县 → 市 → 省.

An object is deficient for an indicator when the current (latest) outcome of any of the
indicator's sub-items is ``fail``. All of it is set-based SQL:

1. The status of every object × indicator (one GROUP BY over the current inspection
   results of the communities being recomputed, into a temporary table).
2. ``spatial_value_objects`` — the deficient objects (the link from every value to the
   objects behind it), per community.
3. ``spatial_rollup_counts`` — community counts (objects inspected, deficient) from (1);
   then each level above from the level below, grouping by the parent code (substr).
4. The counts of every touched region are written as values (source ``self_checkup``)
   through ``services.indicator.values.service.upsert_values``.

Incremental by default: only communities marked in ``spatial_rollup_dirty`` (by inspection
writes and object moves) and their ancestors are recomputed. Values are written for regions
inside the caller's scope only (a county node writes community, street and county values).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from services.indicator.spatial.dialect import SpatialSql, spatial_sql
from services.indicator.spatial.models import SpatialRun
from services.indicator.systems.models import Indicator
from shared.identity import Identity
from shared.regions import LEVEL_RANK, contains, level_of, parent_of, prefix_of

__all__ = [
    "KEY_SQL",
    "PARENT_SQL",
    "RollupReport",
    "aggregate_levels",
    "count_indicators",
    "rollup_counts",
    "upsert_counts",
    "write_values",
]

SOURCE = "self_checkup"
# System and period as typed select-list values (PostgreSQL must not guess text vs varchar).
KEY_SQL = "CAST(:s AS INTEGER), CAST(:p AS VARCHAR(10))"
# Parent code of a region one level up, by level rank of the child (derived by substr).
PARENT_SQL = {
    5: "substr(region_code, 1, 9)",
    4: "substr(region_code, 1, 6)",
    3: "substr(region_code, 1, 4) || '00'",
    2: "substr(region_code, 1, 2) || '0000'",
}


@dataclass
class RollupReport:
    """What one roll-up or coverage run recomputed and wrote."""

    run_id: int
    system_id: int
    period: str
    scope: str
    full: bool
    communities: int
    regions: int
    values_written: int
    values_created: int = 0
    values_updated: int = 0
    values_unchanged: int = 0
    indicators: list[str] = field(default_factory=list)


def count_indicators(session: Session, system_id: int) -> list[str]:
    """Codes of the system's indicators computed from sub-item checklists."""
    return list(
        session.scalars(
            select(Indicator.code)
            .where(Indicator.system_id == system_id, Indicator.compute == "sub_items")
            .order_by(Indicator.code)
        )
    )


def _in(name: str) -> Any:
    return bindparam(name, expanding=True)


def _scope_prefix(scope: str) -> str:
    return prefix_of(scope) + "%"


def affected_regions(communities: Iterable[str], scope: str) -> dict[int, set[str]]:
    """Level rank → codes of the communities and of every ancestor inside the scope."""
    out: dict[int, set[str]] = {r: set() for r in range(1, 6)}
    for code in communities:
        current: str | None = code
        while current is not None and contains(scope, current):
            out[LEVEL_RANK[level_of(current)]].add(current)
            current = parent_of(current)
    return out


def aggregate_levels(
    session: Session,
    sql: SpatialSql,
    *,
    system_id: int,
    period: str,
    indicators: Sequence[str],
    affected: dict[int, set[str]],
) -> None:
    """Recompute street, county, city and province counts from the level below (set-based)."""
    params = {"s": system_id, "p": period, "inds": list(indicators)}
    sql.create_staging(session, "tmp_sp_affected", (("region_code", "text"), ("lvl", "int")))
    sql.load_staging(
        session,
        "tmp_sp_affected",
        ["region_code", "lvl"],
        ((code, lvl) for lvl in range(1, 5) for code in sorted(affected[lvl])),
    )
    sql.analyze(session, "tmp_sp_affected")
    for child in (5, 4, 3, 2):
        parent = child - 1
        if not affected[parent]:
            continue
        parent_expr = PARENT_SQL[child]
        session.execute(
            text(
                "DELETE FROM spatial_rollup_counts WHERE system_id = :s AND period = :p "
                "AND indicator_code IN :inds AND level_rank = :lvl AND region_code IN "
                "(SELECT region_code FROM tmp_sp_affected WHERE lvl = :lvl)"
            ).bindparams(_in("inds")),
            {**params, "lvl": parent},
        )
        session.execute(
            text(
                "INSERT INTO spatial_rollup_counts (system_id, period, indicator_code, "
                "region_code, level_rank, objects, hits, residents, residents_hit) "
                f"SELECT {KEY_SQL}, indicator_code, {parent_expr}, :lvl, "
                "SUM(objects), SUM(hits), "
                "SUM(residents), SUM(residents_hit) FROM spatial_rollup_counts "
                "WHERE system_id = :s AND period = :p AND indicator_code IN :inds "
                f"AND level_rank = :child AND {parent_expr} IN "
                "(SELECT region_code FROM tmp_sp_affected WHERE lvl = :lvl) "
                f"GROUP BY indicator_code, {parent_expr}"
            ).bindparams(_in("inds")),
            {**params, "lvl": parent, "child": child},
        )
    sql.drop_staging(session, "tmp_sp_affected")


def write_values(
    session: Session,
    identity: Identity,
    *,
    system_id: int,
    period: str,
    indicators: Sequence[str],
    affected: dict[int, set[str]],
    value_of: str,
    note: str,
) -> tuple[int, Any]:
    """Write the counts of every affected region as values; regions left empty get None."""
    from services.indicator.values.bulk import max_rank_of
    from services.indicator.values.service import upsert_values

    codes = sorted(set().union(*affected.values()))
    # Each indicator level is entered down to some region level only (e.g. block-level
    # indicators down to streets): values below it are not written.
    levels: dict[str, str] = {
        code: level
        for code, level in session.execute(
            select(Indicator.code, Indicator.level).where(
                Indicator.system_id == system_id, Indicator.code.in_(list(indicators))
            )
        )
    }
    found: dict[tuple[str, str], tuple[float | None, int]] = {}
    for i in range(0, len(codes), 5000):
        rows = session.execute(
            text(
                f"SELECT indicator_code, region_code, {value_of}, objects "
                "FROM spatial_rollup_counts WHERE system_id = :s AND period = :p "
                "AND indicator_code IN :inds AND region_code IN :codes"
            ).bindparams(_in("inds"), _in("codes")),
            {"s": system_id, "p": period, "inds": list(indicators), "codes": codes[i : i + 5000]},
        )
        for ind, region, value, objects in rows:
            found[(ind, region)] = (None if value is None else float(value), int(objects))
    out: list[tuple[str, str, float | None, str | None]] = []
    for ind in indicators:
        deepest = max_rank_of(levels.get(ind, "community"))
        for code in codes:
            if LEVEL_RANK[level_of(code)] > deepest:
                continue
            value, objects = found.get((ind, code), (None, 0))
            out.append((ind, code, value, note.format(objects=objects)))
    if not out:
        return 0, None
    result = upsert_values(
        session,
        system_id=system_id,
        period=period,
        source=SOURCE,
        rows=out,
        actor=identity.subject,
    )
    return len(out), result


def upsert_counts(result: Any) -> tuple[int, int, int]:
    """(created, updated, unchanged) of an upsert_values result."""
    if result is None:
        return 0, 0, 0
    return (
        int(getattr(result, "created", 0) or 0),
        int(getattr(result, "updated", 0) or 0),
        int(getattr(result, "unchanged", 0) or 0),
    )


def rollup_counts(
    session: Session,
    identity: Identity,
    *,
    system_id: int,
    period: str,
    full: bool = False,
) -> RollupReport:
    """Recompute count indicators for changed communities (or all, ``full``) and ancestors."""
    identity.check_write(identity.region)
    sql = spatial_sql(session)
    scope = identity.region
    like = _scope_prefix(scope)
    started = datetime.now(UTC)
    indicators = count_indicators(session, system_id)
    base = {"s": system_id, "p": period, "like": like}
    if full:
        communities = sorted(
            set(
                session.scalars(
                    text(
                        "SELECT DISTINCT region_code FROM inspection_results "
                        "WHERE system_id = :s AND period = :p AND region_code LIKE :like"
                    ),
                    base,
                )
            )
            | set(
                session.scalars(
                    text(
                        "SELECT region_code FROM spatial_rollup_counts WHERE system_id = :s "
                        "AND period = :p AND level_rank = 5 AND region_code LIKE :like"
                    ),
                    base,
                )
            )
        )
    else:
        communities = list(
            session.scalars(
                text(
                    "SELECT region_code FROM spatial_rollup_dirty WHERE system_id = :s "
                    "AND period = :p AND region_code LIKE :like ORDER BY region_code"
                ),
                base,
            )
        )
    run = SpatialRun(
        kind="rollup",
        system_id=system_id,
        period=period,
        scope=scope,
        full=full,
        communities=len(communities),
        actor=identity.subject,
        started_at=started,
    )
    session.add(run)
    session.flush()
    report = RollupReport(
        run_id=run.id,
        system_id=system_id,
        period=period,
        scope=scope,
        full=full,
        communities=len(communities),
        regions=0,
        values_written=0,
        indicators=indicators,
    )
    if not communities or not indicators:
        run.finished_at = datetime.now(UTC)
        return report

    params: dict[str, Any] = {**base, "inds": indicators}
    sql.create_staging(session, "tmp_sp_dirty", (("region_code", "text"),))
    sql.load_staging(session, "tmp_sp_dirty", ["region_code"], ((c,) for c in communities))
    sql.analyze(session, "tmp_sp_dirty")  # temporary tables have no statistics until then
    if full or len(communities) > 1000:
        sql.for_bulk(session)
    # Which communities: the whole scope, a short literal list (index lookups), or a join.
    if full:
        where_region = "region_code LIKE :like"
    elif len(communities) <= 1000:
        where_region = "region_code IN :codes"
        params["codes"] = communities
    else:
        where_region = "region_code IN (SELECT region_code FROM tmp_sp_dirty)"
    binds = [_in("inds")] + ([_in("codes")] if "codes" in params else [])
    # 1. Status of each object × indicator from current outcomes (one pass, temp table).
    sql.create_staging(
        session,
        "tmp_sp_status",
        (("indicator_code", "text"), ("unit_id", "int"), ("region_code", "text"), ("bad", "int")),
    )
    session.execute(
        text(
            "INSERT INTO tmp_sp_status (indicator_code, unit_id, region_code, bad) "
            # An object's rows all carry its community: MAX(region_code) keeps the
            # grouping key short.
            "SELECT indicator_code, unit_id, MAX(region_code), "
            "MAX(CASE WHEN outcome = 'fail' THEN 1 ELSE 0 END) FROM inspection_results "
            "WHERE system_id = :s AND period = :p AND current AND indicator_code IN :inds "
            f"AND {where_region} GROUP BY indicator_code, unit_id"
        ).bindparams(*binds),
        params,
    )
    sql.analyze(session, "tmp_sp_status")
    # 2. The link from values to the deficient objects behind them, per community.
    session.execute(
        text(
            "DELETE FROM spatial_value_objects WHERE system_id = :s AND period = :p "
            f"AND indicator_code IN :inds AND {where_region}"
        ).bindparams(*binds),
        params,
    )
    session.execute(
        text(
            "INSERT INTO spatial_value_objects (system_id, period, indicator_code, unit_id, "
            f"region_code, outcome, residents) SELECT {KEY_SQL}, indicator_code, unit_id, "
            "region_code, 'deficient', NULL FROM tmp_sp_status WHERE bad = 1"
        ),
        params,
    )
    # 3. Community counts: objects inspected and deficient.
    session.execute(
        text(
            "DELETE FROM spatial_rollup_counts WHERE system_id = :s AND period = :p "
            f"AND indicator_code IN :inds AND level_rank = 5 AND {where_region}"
        ).bindparams(*binds),
        params,
    )
    session.execute(
        text(
            "INSERT INTO spatial_rollup_counts (system_id, period, indicator_code, region_code, "
            "level_rank, objects, hits, residents, residents_hit) "
            f"SELECT {KEY_SQL}, indicator_code, region_code, 5, COUNT(*), SUM(bad), NULL, NULL "
            "FROM tmp_sp_status GROUP BY indicator_code, region_code"
        ),
        params,
    )
    sql.drop_staging(session, "tmp_sp_status")
    # 4. Every level above, from the level below.
    affected = affected_regions(communities, scope)
    aggregate_levels(
        session, sql, system_id=system_id, period=period, indicators=indicators, affected=affected
    )
    session.execute(
        text(
            "DELETE FROM spatial_rollup_dirty WHERE system_id = :s AND period = :p "
            "AND region_code IN (SELECT region_code FROM tmp_sp_dirty)"
        ),
        params,
    )
    sql.drop_staging(session, "tmp_sp_dirty")
    if full:
        sql.analyze(session, "spatial_value_objects", "spatial_rollup_counts")
    # 5. Values, with the number of inspected objects behind each in the note.
    written, result = write_values(
        session,
        identity,
        system_id=system_id,
        period=period,
        indicators=indicators,
        affected=affected,
        value_of="hits",
        note="由 {objects} 个已检查对象汇总 (rolled up from {objects} inspected objects)",
    )
    report.regions = sum(len(v) for v in affected.values())
    report.values_written = written
    report.values_created, report.values_updated, report.values_unchanged = upsert_counts(result)
    run.values_written = written
    run.detail = {
        "indicators": indicators,
        "regions": report.regions,
        "created": report.values_created,
        "updated": report.values_updated,
        "unchanged": report.values_unchanged,
    }
    run.finished_at = datetime.now(UTC)
    session.flush()
    return report
