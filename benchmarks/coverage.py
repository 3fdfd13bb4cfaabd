"""Benchmark: service-radius coverage of compounds against facilities, PostGIS and SpatiaLite.

A province node (360000) on each backend gets the same SYNTHETIC compounds (spread over all
of Jiangxi's communities) and facilities of one type from the demo generator, through the
normal import path. Measured per backend, median over ``--repeat`` runs:

* baseline: a plain read of every compound's id, community and residents (the rows any
  coverage computation must produce);
* coverage query: the per-compound EXISTS within ``--radius`` metres (ellipsoidal metres,
  through the facilities' spatial index) — the statement ``run_coverage`` inserts from;
* end to end (once): ``run_coverage`` writing the link table, counts at every level and
  values.

The plan of the coverage query is printed and checked for the spatial index. Goal (issue
4): PostGIS median ≤ 2 s for 100,000 compounds × 5,000 facilities at 500 m, plan on the
index; SpatiaLite is reported beside it.

    .venv/bin/python benchmarks/coverage.py --compounds 100000 --facilities 5000
    .venv/bin/python benchmarks/coverage.py --compounds 5000 --facilities 250   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.indicator.app import PACKAGE_DIR
from services.indicator.spatial import coverage
from services.indicator.spatial.demo import DemoPlan, demo_system, generate
from services.indicator.spatial.service import import_rows
from shared.db import Database
from shared.identity import Identity
from shared.migrate import upgrade

PG_ADMIN_URL = os.environ.get("CHECKUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PROVINCE = Identity(subject="bench", kind="user", roles=frozenset({"admin"}), region="360000")
FTYPE = "primary_school"
GOALS = {"postgis_coverage_median_s": 2.0, "postgis_plan_uses_spatial_index": True}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_db(backend: str, root: Path) -> tuple[Database, str | None]:
    if backend == "postgres":
        dbname = f"checkup_bench_cov_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        base = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
        db = Database(f"{base}/{dbname}", schema="indicator", spatial=True)
    else:
        dbname = None
        db = Database(f"sqlite:///{root / 'indicator.db'}", spatial=True)
    upgrade(PACKAGE_DIR, db)
    return db, dbname


def drop_db(db: Database, dbname: str | None) -> None:
    db.dispose()
    if dbname:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def load(db: Database, compounds: int, facilities: int, seed: int) -> int:
    plan = DemoPlan(
        region_code="360000",
        compounds=compounds,
        buildings_per_compound=(0, 0),
        facilities_per_type=facilities,
        facility_types=(FTYPE,),
        seed=seed,
    )
    with db.session() as s:
        system_id = demo_system(s)
        data = generate(s, plan)
        for target, rows in (("compound", data.compounds), ("facility", data.facilities)):
            t = time.perf_counter()
            report = import_rows(s, PROVINCE, target=target, rows=rows, fmt="demo")
            assert report.rows_rejected == 0, report.errors[:3]
            log(
                f"  imported {report.rows_applied} {target} rows in {time.perf_counter() - t:.1f} s"
            )
        coverage.set_rule(
            s,
            PROVINCE,
            system_id=system_id,
            indicator_code="C-COV-PS",
            facility_type=FTYPE,
            radius_m=None,
        )
    return system_id


def run_backend(backend: str, args: argparse.Namespace, root: Path) -> dict[str, object]:
    log(f"{backend}:")
    db, dbname = make_db(backend, root)
    try:
        system_id = load(db, args.compounds, args.facilities, args.seed)
        params = {"ftype": FTYPE, "radius": args.radius, "like": "36%"}
        with db.session() as s:
            stmt = coverage.coverage_select(s)
            plan = coverage.explain_coverage(
                s, facility_type=FTYPE, radius_m=args.radius, scope="360000"
            )
        log("  plan:\n    " + plan.plan.replace("\n", "\n    "))

        def baseline() -> None:
            with db.session() as s:
                s.execute(
                    text(
                        "SELECT c.id, c.region_code, c.residents FROM spatial_units c "
                        "WHERE c.kind = 'compound' AND c.region_code LIKE :like"
                    ),
                    params,
                ).all()

        covered: list[int] = []

        def query() -> None:
            with db.session() as s:
                rows = s.execute(text(stmt), params).all()
                covered.append(sum(1 for r in rows if r[3] == "covered"))

        def timed(fn: Callable[[], None]) -> float:
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t

        base = [timed(baseline) for _ in range(args.repeat)]
        cov = [timed(query) for _ in range(args.repeat)]
        t = time.perf_counter()
        with db.session() as s:
            coverage.run_coverage(s, PROVINCE, system_id=system_id, period="2025")
        end_to_end = time.perf_counter() - t
        b, c = statistics.median(base), statistics.median(cov)
        log(f"  baseline {[round(x, 3) for x in base]} s; coverage {[round(x, 3) for x in cov]} s")
        log(f"  covered {covered[0]} of {args.compounds}; end to end {end_to_end:.2f} s")
        return {
            "baseline_s": round(b, 3),
            "coverage_median_s": round(c, 3),
            "coverage_vs_baseline": round(c / b, 2),
            "end_to_end_s": round(end_to_end, 3),
            "covered_share": round(covered[0] / args.compounds, 4),
            "plan_uses_spatial_index": plan.uses_spatial_index,
        }
    finally:
        drop_db(db, dbname)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compounds", type=int, default=100_000)
    ap.add_argument("--facilities", type=int, default=5_000)
    ap.add_argument("--radius", type=float, default=500.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--backends", default="postgres,sqlite")
    args = ap.parse_args()
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="checkup-bench-cov-") as tmp:
        for backend in args.backends.split(","):
            results[backend] = run_backend(backend, args, Path(tmp))
    figures: dict[str, object] = {
        "compounds": args.compounds,
        "facilities": args.facilities,
        "radius_m": args.radius,
    }
    names = {"postgres": "postgis", "sqlite": "spatialite"}
    for backend, res in results.items():
        for k, v in res.items():
            figures[f"{names[backend]}_{k}"] = v
        print(
            f"{names[backend]}: coverage {res['coverage_median_s']} s = "
            f"{res['coverage_vs_baseline']} × plain read of the compounds "
            f"({res['baseline_s']} s); index used: {res['plan_uses_spatial_index']}"
        )
    if "postgres" in results and "sqlite" in results:
        agree = results["postgres"]["covered_share"] == results["sqlite"]["covered_share"]
        figures["backends_agree"] = agree
    met = {
        "postgis_coverage_median_s": float(str(figures.get("postgis_coverage_median_s", 1e9)))
        <= float(GOALS["postgis_coverage_median_s"]),
        "postgis_plan_uses_spatial_index": figures.get("postgis_plan_uses_spatial_index") is True,
    }
    print(json.dumps({"benchmark": "coverage", "figures": figures, "goals": GOALS, "met": met}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
