"""Benchmark: grading N values set-based, as a ratio to a plain INSERT … SELECT of the same rows.

    .venv/bin/python benchmarks/evaluation.py --backend sqlite   --size 1000000
    .venv/bin/python benchmarks/evaluation.py --backend postgres --size 1000000

A fresh indicator-service database is migrated (SQLite file in a temporary folder, or a
new PostgreSQL database that is dropped afterwards), one system of 45 indicators (mixed
directions, with and without warning bounds, some without a standard) is created, and
N community-level values (default 1,000,000 ≈ 22,080 Jiangxi communities × 45) are
generated in the database. Each repetition then times, on emptied tables:

- baseline: ``INSERT INTO eval_baseline SELECT … FROM indicator_values`` (same rows, a
  table shaped and indexed like ``evaluations``);
- evaluation: ``grade_values`` (delete the scope's old grades + the grading INSERT … SELECT);
- region scores: ``compute_region_scores`` (dimension scores, index, sibling ranks).

Figures are medians, printed as ratios baseline_time / step_time (1.0 = as fast as the raw
copy). Dashboard endpoints are then timed through the service's HTTP stack against a
region lookup through the same stack. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import Session

from services.indicator.app import PACKAGE_DIR
from services.indicator.evaluation.service import (
    compute_region_scores,
    grade_values,
)
from services.indicator.systems.models import Indicator, IndicatorSystem
from shared.db import Database
from shared.dbtypes import utcnow
from shared.migrate import upgrade
from shared.settings import NodeSettings

NAME = "evaluation"
PERIOD = "2025"
SCOPE = "360000"
GOALS = {
    "evaluation_ratio": 0.25,
    "dashboard_summary_ms": 100.0,
    "dashboard_children_ms": 100.0,
    "dashboard_series_ms": 100.0,
}
DIMENSIONS = ("安全耐久", "功能完备", "绿色智能", "设施完善", "环境宜居", "管理健全")


def indicator_specs() -> list[dict[str, Any]]:
    """45 indicators: 15 higher, 15 lower, 10 band, 5 without a standard; values lie in 0..100."""
    specs: list[dict[str, Any]] = []
    for n in range(45):
        spec: dict[str, Any] = {
            "code": f"B{n + 1:02d}",
            "dimension": DIMENSIONS[n % len(DIMENSIONS)],
            "weight": 1.0 + (n % 3) * 0.5,
        }
        if n < 15:
            spec.update(direction="higher", standard_value=60.0 + n)
            if n % 2 == 0:
                spec["warning_value"] = 40.0 + n
        elif n < 30:
            spec.update(direction="lower", standard_value=20.0 + n)
            if n % 2 == 1:
                spec["warning_value"] = 40.0 + n
        elif n < 40:
            spec.update(direction="band", band_low=30.0, band_high=70.0)
            if n % 2 == 0:
                spec.update(warning_low=20.0, warning_high=80.0)
        else:
            spec.update(direction="higher")
        specs.append(spec)
    return specs


@contextmanager
def fresh_node(backend: str, pg_url: str) -> Iterator[NodeSettings]:
    """A node with only the indicator service migrated, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        if backend == "postgres":
            import psycopg

            name = f"checkup_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            base = pg_url.rsplit("/", 1)[0]
            settings = NodeSettings(
                environment="test", data_dir=Path(tmp), database_url=f"{base}/{name}"
            )
            try:
                yield settings
            finally:
                with psycopg.connect(pg_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            yield NodeSettings(environment="test", data_dir=Path(tmp))


def baseline_table() -> Table:
    """Shaped and indexed like ``evaluations``."""
    big = BigInteger().with_variant(Integer(), "sqlite")
    return Table(
        "eval_baseline",
        MetaData(),
        Column("value_id", big, primary_key=True),
        Column("system_id", Integer, nullable=False),
        Column("indicator_code", String(40), nullable=False),
        Column("region_code", String(12), nullable=False),
        Column("period", String(10), nullable=False),
        Column("source", String(16), nullable=False),
        Column("value", Float),
        Column("grade", String(6), nullable=False),
        Column("points", Float),
        Column("rule", Text, nullable=False),
        Column("evaluated_at", DateTime(timezone=True), nullable=False),
        Index("ix_eval_baseline_region_period", "region_code", "period", "system_id"),
    )


def populate(db: Database, size: int) -> tuple[int, int]:
    """One system of 45 indicators and ``size`` community values; returns (system id, rows)."""
    specs = indicator_specs()
    with db.session() as session:
        system = IndicatorSystem(
            code="BENCH",
            name="基准测试指标体系",
            year=2025,
            version=1,
            state="released",
            region_code=SCOPE,
            description="",
            index_method={"dimension_weights": {d: 1.0 + i for i, d in enumerate(DIMENSIONS)}},
            created_by="bench",
        )
        session.add(system)
        session.flush()
        for n, spec in enumerate(specs):
            session.add(
                Indicator(
                    system_id=system.id,
                    name_zh=f"基准指标{n + 1}",
                    level="community",
                    unit="%",
                    standard_source="",
                    data_source="",
                    sort_order=n,
                    **spec,
                )
            )
        session.flush()
        system_id = system.id
        communities = -(-size // len(specs))
        # Deterministic pseudo-random values 0..99.9 from the codes; about 1% missing.
        mix = "(CAST(r.code AS BIGINT) % 100003) * 7919 + i.id * 104729"
        session.execute(
            text(
                f"""
INSERT INTO indicator_values (system_id, indicator_code, region_code, period, source, value,
                              on_behalf, revision, updated_by, updated_at)
SELECT :system_id, i.code, r.code, :period, 'self_checkup',
       CASE WHEN ({mix}) % 97 = 0 THEN NULL ELSE (({mix}) % 1000) / 10.0 END,
       false, 1, 'bench', :now
FROM (SELECT code FROM regions WHERE level = 'community' AND code >= '36' AND code < '37'
      ORDER BY code LIMIT :communities) r
CROSS JOIN indicators i
WHERE i.system_id = :system_id
ORDER BY r.code, i.code
LIMIT :size
"""
            ),
            {
                "system_id": system_id,
                "period": PERIOD,
                "now": utcnow().replace(tzinfo=None) if not db.is_postgres else utcnow(),
                "communities": communities,
                "size": size,
            },
        )
        rows = session.execute(
            text("SELECT COUNT(*) FROM indicator_values WHERE system_id = :s"), {"s": system_id}
        ).scalar_one()
    with db.engine.begin() as conn:
        baseline_table().create(conn)
    if db.is_postgres:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return system_id, int(rows)


def clear(db: Database) -> None:
    with db.engine.begin() as conn:
        for table in ("evaluations", "eval_baseline", "region_scores"):
            conn.execute(text(f"TRUNCATE {table}" if db.is_postgres else f"DELETE FROM {table}"))
    if db.is_postgres:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CHECKPOINT"))


def timed(db: Database, work: Callable[[Session], Any]) -> float:
    """Wall time of ``work`` in its own transaction, commit included."""
    t0 = time.perf_counter()
    with db.session() as session:
        work(session)
    return time.perf_counter() - t0


def baseline_copy(system_id: int) -> Callable[[Session], Any]:
    def work(session: Session) -> None:
        session.execute(
            text(
                """
INSERT INTO eval_baseline (value_id, system_id, indicator_code, region_code, period, source,
                           value, grade, points, rule, evaluated_at)
SELECT v.id, v.system_id, v.indicator_code, v.region_code, v.period, v.source, v.value,
       'grey', NULL, '', :now
FROM indicator_values v
WHERE v.system_id = :system_id AND v.period = :period
  AND v.region_code >= :low AND v.region_code < :high
"""
            ),
            {
                "system_id": system_id,
                "period": PERIOD,
                "now": utcnow().isoformat(),
                "low": "36",
                "high": "37",
            },
        )

    return work


def time_http(call: Callable[[], Any], n: int) -> float:
    """Median wall time of one call, in seconds."""
    call()  # warm up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def dashboard_figures(settings: NodeSettings, system_id: int, db: Database) -> dict[str, float]:
    """Median latency of the dashboard endpoints vs a region lookup, same HTTP stack."""
    from fastapi.testclient import TestClient

    from services.indicator.app import create_app
    from shared.identity import IDENTITY_HEADER, Identity, sign_identity

    with db.session() as session:
        community = session.execute(
            text("SELECT MIN(region_code) FROM region_scores WHERE dimension = '*'")
        ).scalar_one()
    street = community[:9]
    with TestClient(create_app(settings)) as client:
        viewer = Identity(subject="bench", kind="user", roles=frozenset({"viewer"}), region=SCOPE)
        secret = settings.internal_secret.get_secret_value()
        client.headers[IDENTITY_HEADER] = sign_identity(viewer, secret)

        def get(path: str, **params: Any) -> None:
            r = client.get(path, params=params)
            if r.status_code != 200:
                raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")

        base = time_http(lambda: get(f"/api/v1/regions/{community}"), 50)
        q = {"period": PERIOD, "system_id": system_id}
        summary = time_http(
            lambda: get("/api/v1/dashboard/summary", region_code=community, **q), 50
        )
        children = time_http(lambda: get("/api/v1/dashboard/children", region_code=street, **q), 50)
        series = time_http(
            lambda: get("/api/v1/dashboard/series", region_code=community, indicator_code="B01"), 50
        )
    return {
        "region_lookup_ms": round(base * 1000, 2),
        "dashboard_summary_ms": round(summary * 1000, 2),
        "dashboard_children_ms": round(children * 1000, 2),
        "dashboard_series_ms": round(series * 1000, 2),
        "dashboard_summary_ratio": round(base / summary, 3),
        "dashboard_children_ratio": round(base / children, 3),
        "dashboard_series_ratio": round(base / series, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--size", type=int, default=1_000_000, help="number of values")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (median)")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    with fresh_node(args.backend, args.pg_url) as settings:
        url, schema = settings.database_for("indicator")
        db = Database(url, schema=schema, spatial=True)
        try:
            upgrade(PACKAGE_DIR, db)
            t0 = time.perf_counter()
            system_id, rows = populate(db, args.size)
            print(f"{args.backend}: {rows} values generated in {time.perf_counter() - t0:.1f} s")
            with db.session() as session:
                system = session.get(IndicatorSystem, system_id)
                assert system is not None
                session.expunge(system)

            def grade(session: Session) -> int:
                return grade_values(session, system, PERIOD, SCOPE)

            def score(session: Session) -> int:
                return compute_region_scores(session, system, PERIOD, SCOPE)

            base_t: list[float] = []
            eval_t: list[float] = []
            score_t: list[float] = []
            for n in range(args.repeat):
                clear(db)
                base_t.append(timed(db, baseline_copy(system_id)))
                eval_t.append(timed(db, grade))
                score_t.append(timed(db, score))
                print(
                    f"  run {n + 1}: baseline {base_t[-1]:.2f} s, evaluation {eval_t[-1]:.2f} s, "
                    f"region scores {score_t[-1]:.2f} s"
                )
            # Re-evaluation over existing grades (the usual case after corrections).
            rerun = timed(db, grade)
            with db.session() as session:
                graded = session.execute(text("SELECT COUNT(*) FROM evaluations")).scalar_one()
                scored = session.execute(
                    text("SELECT COUNT(*) FROM region_scores WHERE dimension = '*'")
                ).scalar_one()
            if graded != rows:
                raise SystemExit(f"graded {graded} of {rows} values")
            base, ev, sc = (statistics.median(t) for t in (base_t, eval_t, score_t))
            figures: dict[str, float] = {
                "values": rows,
                "regions_scored": scored,
                "baseline_s": round(base, 3),
                "evaluation_s": round(ev, 3),
                "region_scores_s": round(sc, 3),
                "reevaluation_s": round(rerun, 3),
                "evaluation_ratio": round(base / ev, 3),
                "region_scores_ratio": round(base / sc, 3),
                "reevaluation_ratio": round(base / rerun, 3),
                "evaluation_values_per_s": round(rows / ev),
            }
            figures.update(dashboard_figures(settings, system_id, db))
        finally:
            db.dispose()

    met = {
        "evaluation_ratio": figures["evaluation_ratio"] >= GOALS["evaluation_ratio"],
        **{k: figures[k] <= GOALS[k] for k in GOALS if k.endswith("_ms")},
    }
    for key, value in figures.items():
        print(f"{key:28s} {value}")
    print(
        json.dumps(
            {
                "benchmark": NAME,
                "backend": args.backend,
                "figures": figures,
                "goals": GOALS,
                "met": met,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
