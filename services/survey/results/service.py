"""Weighted results: rake the cell table, then every breakdown with CIs as set-based SQL.

1. Cell table: included respondents by region (at the margins' level) × age band × sex.
2. Raking on that table in NumPy (``weighting.rake``) → one weight per cell.
3. Sums per (profile, target) (``score_sums``, kept with every write, or rebuilt from
   ``scores`` in one scan); a profile lies in one cell, so its weight factors out of
   every sum (Σ w·y = w · Σ y).
4. The breakdowns are GROUP BYs of those sums joined to the cell weights.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from services.survey.campaigns.service import campaign_settings
from services.survey.common import DESIGN_ROLES, audit, dialect_of
from services.survey.models import (
    Campaign,
    PopulationCell,
    ResultCell,
    ResultRun,
    ScoreTarget,
    WeightCell,
)
from services.survey.results.estimates import Sums, estimate
from services.survey.results.sums import rebuild_sums
from services.survey.results.weighting import rake
from shared.errors import Conflict, NotFound
from shared.identity import Identity

__all__ = [
    "BREAKDOWNS",
    "compute_results",
    "latest_run",
    "read_results",
    "read_weights",
]

BREAKDOWNS = ("overall", "region", "street", "age_band", "sex", "age_sex", "tenure", "residence")
WEIGHTED_COLUMNS = (
    "n",
    "k1",
    "wn",
    "w2n",
    "wk",
    "ws",
    "wt",
    "w2kk",
    "w2sk",
    "w2ss",
    "w2tk",
    "w2tt",
)


def _group_expressions(level: int) -> list[tuple[str, str]]:
    exprs = [("overall", "''"), ("region", f"substr(region_code, 1, {level})")]
    if level < 9:
        exprs.append(("street", "substr(region_code, 1, 9)"))
    exprs += [
        ("age_band", "age_band"),
        ("sex", "sex"),
        ("age_sex", "age_band || '|' || sex"),
        ("tenure", "tenure"),
        ("residence", "residence"),
    ]
    return exprs


def _cell_counts(session: Session, c: Campaign, level: int) -> list[tuple[str, str, str, int]]:
    rows = session.execute(
        text(
            "SELECT substr(p.region_code, 1, :level) AS region, p.age_band, p.sex, SUM(x.n) "
            "FROM (SELECT profile_id, COUNT(*) AS n FROM responses "
            "      WHERE campaign_id = :c AND status = 'included' GROUP BY profile_id) x "
            "JOIN profiles p ON p.id = x.profile_id "
            "GROUP BY substr(p.region_code, 1, :level), p.age_band, p.sex "
            "ORDER BY 1, 2, 3"
        ),
        {"c": c.id, "level": level},
    )
    return [(r[0], r[1], r[2], int(r[3])) for r in rows]


def compute_results(
    session: Session, c: Campaign, identity: Identity, *, rebuild: bool = False
) -> ResultRun:
    """Weights and every weighted breakdown of a campaign, stored as a new run.

    ``rebuild`` first recomputes the per-profile sums from every score row.
    """
    identity.check_write(c.region_code, *DESIGN_ROLES)
    started = time.perf_counter()
    if rebuild:
        rebuild_sums(session, c.id)
    t_rebuild = time.perf_counter()
    settings = campaign_settings(c).weighting
    population = [
        (r.region_code, r.age_band, r.sex, r.population)
        for r in session.scalars(select(PopulationCell).where(PopulationCell.campaign_id == c.id))
    ]
    if not population or not c.margin_level:
        raise Conflict(
            "请先上传人口边际，才能加权 (upload population margins first)",
            slug="population-missing",
        )
    level = c.margin_level
    t_start = time.perf_counter()
    cells = _cell_counts(session, c, level)
    t_cells = time.perf_counter()
    raked = rake(
        cells,
        population,
        [list(m) for m in settings.margins],
        trim_low=settings.trim_low,
        trim_high=settings.trim_high,
        max_iterations=settings.max_iterations,
        tolerance=settings.tolerance,
    )
    t_rake = time.perf_counter()
    pop_by_cell = {(p[0], p[1], p[2]): p[3] for p in population}
    run = ResultRun(
        campaign_id=c.id,
        region_code=c.region_code,
        period=c.period,
        weighting=raked.report,
        computed_by=identity.subject,
    )
    session.add(run)
    session.flush()
    weight_rows = [
        {
            "run_id": run.id,
            "region_code": cell[0],
            "age_band": cell[1],
            "sex": cell[2],
            "n": cell[3],
            "population": pop_by_cell.get((cell[0], cell[1], cell[2])),
            "weight": float(w),
        }
        for cell, w, ok in zip(cells, raked.weights, raked.matched, strict=True)
        if ok
    ]
    if weight_rows:
        session.execute(insert(WeightCell), weight_rows)
    sums = _aggregate(session, c, run.id, level)
    t_agg = time.perf_counter()
    min_n = settings.min_n
    result_rows = []
    for (breakdown, group, target_id), s in sums.items():
        e = estimate(s, min_n)
        result_rows.append(
            {
                "run_id": run.id,
                "breakdown": breakdown,
                "group_key": group,
                "target_id": target_id,
                "n": e.n,
                "items": e.items,
                "sum_w": e.sum_w,
                "n_eff": e.n_eff,
                "deff": e.deff,
                "suppressed": e.suppressed,
                "rate": e.rate,
                "rate_lo": e.rate_lo,
                "rate_hi": e.rate_hi,
                "mean": e.mean,
                "mean_lo": e.mean_lo,
                "mean_hi": e.mean_hi,
            }
        )
    if result_rows:
        session.execute(insert(ResultCell), result_rows)
    done = time.perf_counter()
    run.seconds = done - started
    run.weighting = {
        **raked.report,
        "min_n": min_n,
        "margin_level": level,
        "result_cells": len(result_rows),
        "timings_s": {
            "rebuild": round(t_rebuild - started, 4),
            "cells": round(t_cells - t_start, 4),
            "rake": round(t_rake - t_cells, 4),
            "breakdowns": round(t_agg - t_rake, 4),
            "store": round(done - t_agg, 4),
        },
    }
    session.flush()
    audit(
        session,
        identity,
        "campaign",
        c.id,
        "results",
        campaign_id=c.id,
        run_id=run.id,
        respondents=raked.report.get("matched_respondents"),
        deff=raked.report.get("deff"),
    )
    return run


def _aggregate(
    session: Session, c: Campaign, run_id: int, level: int
) -> dict[tuple[str, str, int], Sums]:
    # Weighted products once per (profile, target) row; the breakdowns then only add.
    source = (
        "SELECT a.target_id, p.region_code, p.age_band, p.sex, p.tenure, p.residence, "
        # Counts as integers: SUM over bigint would accumulate in numeric.
        "CAST(a.n AS INTEGER) AS n, CAST(a.k1 AS INTEGER) AS k1, "
        "wc.weight * a.n AS wn, wc.weight * wc.weight * a.n AS w2n, "
        "wc.weight * a.k1 AS wk, wc.weight * a.s1 AS ws, wc.weight * a.t1 AS wt, "
        "wc.weight * wc.weight * a.kk AS w2kk, wc.weight * wc.weight * a.sk AS w2sk, "
        "wc.weight * wc.weight * a.ss AS w2ss, wc.weight * wc.weight * a.tk AS w2tk, "
        "wc.weight * wc.weight * a.tt AS w2tt "
        "FROM score_sums a "
        "JOIN profiles p ON p.id = a.profile_id "
        "JOIN weight_cells wc ON wc.run_id = :run "
        "AND wc.region_code = substr(p.region_code, 1, :level) "
        "AND wc.age_band = p.age_band AND wc.sex = p.sex "
        "WHERE a.campaign_id = :c AND a.n > 0"
    )
    sums_sql = ", ".join(f"SUM({col})" for col in WEIGHTED_COLUMNS)
    rows = dialect_of(session).breakdown_rows(
        session,
        source,
        _group_expressions(level),
        sums_sql,
        {"run": run_id, "level": level, "c": c.id},
    )
    out: dict[tuple[str, str, int], Sums] = {}
    for row in rows:
        breakdown, group = row[0], row[1] or ""
        if breakdown in ("tenure", "residence") and not group:
            continue  # not asked, or not answered: no group to report
        out[(breakdown, group, int(row[2]))] = Sums(
            n=int(row[3]),
            items=int(row[4]),
            w=float(row[5]),
            w2=float(row[6]),
            wk=float(row[7]),
            ws=float(row[8]),
            wt=float(row[9]),
            w2kk=float(row[10]),
            w2sk=float(row[11]),
            w2ss=float(row[12]),
            w2tk=float(row[13]),
            w2tt=float(row[14]),
        )
    return out


def latest_run(session: Session, c: Campaign, run_id: int | None = None) -> ResultRun:
    """The given run of the campaign, or its latest."""
    stmt = select(ResultRun).where(ResultRun.campaign_id == c.id)
    stmt = (
        stmt.where(ResultRun.id == run_id)
        if run_id
        else stmt.order_by(ResultRun.id.desc()).limit(1)
    )
    run = session.scalar(stmt)
    if run is None:
        raise NotFound(
            "尚无计算结果，请先计算 (no results yet: compute them first)", slug="no-results"
        )
    return run


def read_results(
    session: Session,
    run: ResultRun,
    *,
    breakdown: str | None,
    target: str | None,
    group: str | None,
) -> list[dict[str, Any]]:
    """Result cells of a run with their targets, filtered."""
    stmt = (
        select(ResultCell, ScoreTarget)
        .join(ScoreTarget, ScoreTarget.id == ResultCell.target_id)
        .where(ResultCell.run_id == run.id)
        .order_by(ResultCell.breakdown, ResultCell.group_key, ScoreTarget.sort_order)
    )
    if breakdown:
        stmt = stmt.where(ResultCell.breakdown == breakdown)
    if target:
        stmt = stmt.where(ScoreTarget.code == target)
    if group is not None:
        stmt = stmt.where(ResultCell.group_key == group)
    out = []
    for cell, tgt in session.execute(stmt):
        out.append(
            {
                "breakdown": cell.breakdown,
                "group": cell.group_key,
                "target": {
                    "kind": tgt.kind,
                    "code": tgt.code,
                    "label": tgt.label,
                    "dimension": tgt.dimension,
                    "indicator_code": tgt.indicator_code,
                },
                "n": cell.n,
                "items": cell.items,
                "sum_w": cell.sum_w,
                "n_eff": cell.n_eff,
                "deff": cell.deff,
                "suppressed": cell.suppressed,
                "rate": cell.rate,
                "rate_ci": None if cell.rate is None else [cell.rate_lo, cell.rate_hi],
                "mean": cell.mean,
                "mean_ci": None if cell.mean is None else [cell.mean_lo, cell.mean_hi],
            }
        )
    return out


def read_weights(session: Session, run: ResultRun) -> list[WeightCell]:
    """The cell weights of a run."""
    return list(
        session.scalars(
            select(WeightCell)
            .where(WeightCell.run_id == run.id)
            .order_by(WeightCell.region_code, WeightCell.age_band, WeightCell.sex)
        )
    )
