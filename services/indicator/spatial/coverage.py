"""Service-radius coverage: share of residential compounds (or residents) near a facility.

A compound is covered when its representative point lies within the rule's radius of a
facility of the rule's type (distance to the facility's geometry, in metres on the CGCS2000
ellipsoid: PostGIS geography / SpatiaLite's ellipsoidal ST_Distance). Facilities anywhere in
the node count (a school across the county line still serves); compounds are those inside
the caller's scope. The test is one EXISTS per compound through the facilities' spatial
index; ``explain_coverage`` returns its plan and whether it uses that index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from services.indicator.spatial.dialect import spatial_sql
from services.indicator.spatial.models import FACILITY_TYPES, CoverageRule, SpatialEvent, SpatialRun
from services.indicator.spatial.rollup import (
    KEY_SQL,
    RollupReport,
    affected_regions,
    aggregate_levels,
    upsert_counts,
    write_values,
)
from services.indicator.systems.models import Indicator
from shared.errors import NotFound, ValidationFailed
from shared.identity import Identity
from shared.regions import prefix_of

__all__ = [
    "DEFAULT_RADII",
    "CoveragePlan",
    "coverage_select",
    "explain_coverage",
    "list_rules",
    "run_coverage",
    "set_rule",
]

GB50180 = "GB 50180-2018 城市居住区规划设计标准"
# Service radii found in GB 50180-2018 (see REFERENCE-indicators.md). Other facility types
# have no radius there: their rules must state one.
DEFAULT_RADII: dict[str, tuple[float, str]] = {
    "kindergarten": (300.0, f"{GB50180}：幼儿园服务半径不宜大于 300 m"),
    "primary_school": (500.0, f"{GB50180}：小学服务半径不宜大于 500 m"),
    "middle_school": (1000.0, f"{GB50180}：中学服务半径不宜大于 1000 m"),
    "clinic": (1000.0, f"{GB50180}：社区卫生服务中心服务半径不宜大于 1000 m"),
    "park": (500.0, f"{GB50180}：社区公园服务半径 500 m（小游园 300 m）"),
}
MAX_RADIUS_M = 20_000.0
IND_SQL = "CAST(:ind AS VARCHAR(40))"


@dataclass
class CoveragePlan:
    """The query plan of one coverage computation and whether it uses the spatial index."""

    plan: str
    uses_spatial_index: bool
    backend: str


def set_rule(
    session: Session,
    identity: Identity,
    *,
    system_id: int,
    indicator_code: str,
    facility_type: str,
    radius_m: float | None = None,
    basis: str = "compounds",
) -> CoverageRule:
    """Create or change the coverage rule of one indicator (audited)."""
    identity.check_write(identity.region, "admin")
    indicator = session.scalar(
        select(Indicator).where(Indicator.system_id == system_id, Indicator.code == indicator_code)
    )
    if indicator is None:
        raise NotFound(
            f"指标体系 {system_id} 中没有指标 {indicator_code} (unknown indicator)",
            slug="unknown-indicator",
        )
    errors = []
    if facility_type not in FACILITY_TYPES:
        errors.append({"field": "facility_type", "message": f"one of {', '.join(FACILITY_TYPES)}"})
    if basis not in ("compounds", "residents"):
        errors.append({"field": "basis", "message": "compounds or residents"})
    source = "按指标配置 (configured for the indicator)"
    if radius_m is None:
        if facility_type in DEFAULT_RADII:
            radius_m, source = DEFAULT_RADII[facility_type]
        else:
            errors.append(
                {
                    "field": "radius_m",
                    "message": f"GB 50180-2018 未给出 {facility_type} 的服务半径，须指定 "
                    "(no standard radius: give radius_m)",
                }
            )
    elif not 0 < radius_m <= MAX_RADIUS_M:
        errors.append({"field": "radius_m", "message": f"0 < radius_m <= {MAX_RADIUS_M:g}"})
    if errors:
        raise ValidationFailed("覆盖率规则无效 (invalid coverage rule)", errors=errors)
    assert radius_m is not None
    rule = session.scalar(
        select(CoverageRule).where(
            CoverageRule.system_id == system_id, CoverageRule.indicator_code == indicator_code
        )
    )
    action = "update" if rule else "create"
    if rule is None:
        rule = CoverageRule(system_id=system_id, indicator_code=indicator_code)
        session.add(rule)
    rule.facility_type = facility_type
    rule.radius_m = float(radius_m)
    rule.basis = basis
    rule.radius_source = source
    rule.updated_by = identity.subject
    rule.updated_at = datetime.now(UTC)
    session.flush()
    session.add(
        SpatialEvent(
            object_type="coverage_rule",
            object_id=rule.id,
            action=action,
            actor=identity.subject,
            detail={
                "system_id": system_id,
                "indicator_code": indicator_code,
                "facility_type": facility_type,
                "radius_m": radius_m,
                "basis": basis,
            },
        )
    )
    session.flush()
    return rule


def list_rules(session: Session, system_id: int) -> list[CoverageRule]:
    """The coverage rules of a system."""
    return list(
        session.scalars(
            select(CoverageRule)
            .where(CoverageRule.system_id == system_id)
            .order_by(CoverageRule.indicator_code)
        )
    )


def coverage_select(session: Session) -> str:
    """The per-compound coverage query (binds :ftype, :radius, :like)."""
    sql = spatial_sql(session)
    return (
        "SELECT c.id, c.region_code, c.residents, "
        f"CASE WHEN {sql.covered_exists('f', 'c.point')} THEN 'covered' ELSE 'uncovered' END "
        "FROM spatial_units c WHERE c.kind = 'compound' AND c.region_code LIKE :like"
    )


def explain_coverage(
    session: Session, *, facility_type: str, radius_m: float, scope: str
) -> CoveragePlan:
    """The plan the database chooses for one coverage computation."""
    sql = spatial_sql(session)
    plan = sql.explain(
        session,
        coverage_select(session),
        {"ftype": facility_type, "radius": radius_m, "like": prefix_of(scope) + "%"},
    )
    return CoveragePlan(plan, sql.plan_uses_spatial_index(plan, "facilities", "f"), sql.name)


def run_coverage(
    session: Session,
    identity: Identity,
    *,
    system_id: int,
    period: str,
    indicator_code: str | None = None,
) -> list[RollupReport]:
    """Compute every coverage rule of the system (or one) over the caller's scope."""
    identity.check_write(identity.region)
    rules = list_rules(session, system_id)
    if indicator_code is not None:
        rules = [r for r in rules if r.indicator_code == indicator_code]
        if not rules:
            raise NotFound(
                f"指标 {indicator_code} 没有覆盖率规则 (no coverage rule)", slug="unknown-rule"
            )
    # Fresh statistics so that the planner sees the facilities' real size (and picks the
    # spatial index); ANALYZE samples, so this stays cheap on large tables.
    spatial_sql(session).analyze(session, "facilities", "spatial_units")
    return [_run_rule(session, identity, rule, period) for rule in rules]


def _run_rule(
    session: Session, identity: Identity, rule: CoverageRule, period: str
) -> RollupReport:
    sql = spatial_sql(session)
    scope = identity.region
    like = prefix_of(scope) + "%"
    inds = [rule.indicator_code]
    params: dict[str, Any] = {
        "s": rule.system_id,
        "p": period,
        "ind": rule.indicator_code,
        "like": like,
        "ftype": rule.facility_type,
        "radius": rule.radius_m,
    }
    started = datetime.now(UTC)
    plan = explain_coverage(
        session, facility_type=rule.facility_type, radius_m=rule.radius_m, scope=scope
    )
    before = set(
        session.scalars(
            text(
                "SELECT region_code FROM spatial_rollup_counts WHERE system_id = :s "
                "AND period = :p AND indicator_code = :ind AND level_rank = 5 "
                "AND region_code LIKE :like"
            ),
            params,
        )
    )
    session.execute(
        text(
            "DELETE FROM spatial_value_objects WHERE system_id = :s AND period = :p "
            "AND indicator_code = :ind AND region_code LIKE :like"
        ),
        params,
    )
    session.execute(
        text(
            "INSERT INTO spatial_value_objects (system_id, period, indicator_code, unit_id, "
            "region_code, residents, outcome) "
            f"SELECT {KEY_SQL}, {IND_SQL}, q.* FROM ({coverage_select(session)}) q"
        ),
        params,
    )
    session.execute(
        text(
            "DELETE FROM spatial_rollup_counts WHERE system_id = :s AND period = :p "
            "AND indicator_code = :ind AND region_code LIKE :like"
        ),
        params,
    )
    session.execute(
        text(
            "INSERT INTO spatial_rollup_counts (system_id, period, indicator_code, region_code, "
            "level_rank, objects, hits, residents, residents_hit) "
            f"SELECT {KEY_SQL}, {IND_SQL}, region_code, 5, COUNT(*), "
            "SUM(CASE WHEN outcome = 'covered' THEN 1 ELSE 0 END), "
            "SUM(COALESCE(residents, 0)), "
            "SUM(CASE WHEN outcome = 'covered' THEN COALESCE(residents, 0) ELSE 0 END) "
            "FROM spatial_value_objects WHERE system_id = :s AND period = :p "
            "AND indicator_code = :ind AND region_code LIKE :like GROUP BY region_code"
        ),
        params,
    )
    now_present = set(
        session.scalars(
            text(
                "SELECT region_code FROM spatial_rollup_counts WHERE system_id = :s "
                "AND period = :p AND indicator_code = :ind AND level_rank = 5 "
                "AND region_code LIKE :like"
            ),
            params,
        )
    )
    communities = sorted(before | now_present)
    affected = affected_regions(communities, scope)
    aggregate_levels(
        session, sql, system_id=rule.system_id, period=period, indicators=inds, affected=affected
    )
    if rule.basis == "residents":
        value_of = "CASE WHEN residents > 0 THEN 100.0 * residents_hit / residents END"
        note = "{objects} 个小区按居住人口计的服务半径覆盖率 (residents within radius)"
    else:
        value_of = "CASE WHEN objects > 0 THEN 100.0 * hits / objects END"
        note = "{objects} 个小区中在服务半径内的比例 (share of compounds within radius)"
    note = f"{note}；{rule.facility_type} {rule.radius_m:g} m"
    written, result = write_values(
        session,
        identity,
        system_id=rule.system_id,
        period=period,
        indicators=inds,
        affected=affected,
        value_of=value_of,
        note=note,
    )
    created, updated, unchanged = upsert_counts(result)
    run = SpatialRun(
        kind="coverage",
        system_id=rule.system_id,
        period=period,
        scope=scope,
        full=True,
        communities=len(communities),
        values_written=written,
        actor=identity.subject,
        started_at=started,
        finished_at=datetime.now(UTC),
        detail={
            "indicator_code": rule.indicator_code,
            "facility_type": rule.facility_type,
            "radius_m": rule.radius_m,
            "basis": rule.basis,
            "backend": plan.backend,
            "plan_uses_spatial_index": plan.uses_spatial_index,
            "plan": plan.plan[:4000],
        },
    )
    session.add(run)
    session.flush()
    return RollupReport(
        run_id=run.id,
        system_id=rule.system_id,
        period=period,
        scope=scope,
        full=True,
        communities=len(communities),
        regions=sum(len(v) for v in affected.values()),
        values_written=written,
        values_created=created,
        values_updated=updated,
        values_unchanged=unchanged,
        indicators=inds,
    )
