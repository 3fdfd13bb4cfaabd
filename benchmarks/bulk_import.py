"""Benchmark: bulk import of indicator values through the HTTP endpoint vs the raw load rate.

Jiangxi's real scale is 22,080 communities × 45 community-level indicators (993,600
values); beyond that, rows continue with a second source (third_party, same values, so
no disagreement flags). The import goes through POST /api/v1/values/import as CSV on an
in-process TestClient (the full ASGI stack, identity middleware, parsing, validation in
SQL, history and flags; no network hop). The baseline is the same database's raw load
of the same rows into indicator_values in one transaction: COPY on PostgreSQL,
executemany on SQLite, both with already-parsed rows. Each figure is the median over
repetitions of (raw seconds / endpoint seconds), i.e. the endpoint's rate as a share of
the raw rate.

    .venv/bin/python benchmarks/bulk_import.py --backend sqlite --rows 1000000
    .venv/bin/python benchmarks/bulk_import.py --backend postgres --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from services.indicator.app import PACKAGE_DIR, create_app
from services.indicator.systems.models import Indicator, IndicatorSystem
from shared.db import Database
from shared.identity import Identity, sign_identity
from shared.migrate import upgrade
from shared.settings import NodeSettings

N_INDICATORS = 45
GOAL = 0.3
PG_ADMIN_URL = os.environ.get("CHECKUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def log(msg: str) -> None:
    print(msg, flush=True)


def make_node(backend: str, root: Path) -> tuple[NodeSettings, Database, str | None]:
    """A province node (360000) with the indicator service migrated."""
    dbname = None
    if backend == "postgres":
        dbname = f"checkup_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname
        settings = NodeSettings(
            environment="test", region_code="360000", data_dir=root, database_url=url
        )
    else:
        settings = NodeSettings(environment="test", region_code="360000", data_dir=root)
    url, schema = settings.database_for("indicator")
    db = Database(url, schema=schema, spatial=True)
    upgrade(PACKAGE_DIR, db)
    return settings, db, dbname


def drop_node(db: Database, dbname: str | None) -> None:
    db.dispose()
    if dbname:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def make_system(db: Database) -> tuple[int, list[str], list[str]]:
    """A released system of 45 community-level indicators; Jiangxi's communities."""
    with db.session() as s:
        system = IndicatorSystem(
            code="BENCH",
            name="基准测试指标体系",
            year=2025,
            version=1,
            state="released",
            region_code="360000",
            description="",
            index_method={},
            created_by="bench",
        )
        s.add(system)
        s.flush()
        codes = [f"B{i:02d}" for i in range(1, N_INDICATORS + 1)]
        for i, code in enumerate(codes):
            s.add(
                Indicator(
                    system_id=system.id,
                    code=code,
                    name_zh=f"社区指标{i + 1}",
                    level="community",
                    dimension="设施完善",
                    unit="个",
                    direction="lower",
                    value_type="number",
                    min_value=0,
                    max_value=1_000_000,
                    compute="entered",
                    sort_order=i,
                )
            )
        communities = [
            r[0]
            for r in s.execute(
                text(
                    "SELECT code FROM regions WHERE code LIKE '36%' AND level_rank = 5 "
                    "ORDER BY code"
                )
            )
        ]
        return system.id, codes, communities


def keys(n: int, codes: list[str], communities: list[str]) -> Iterator[tuple[str, str, str]]:
    i = 0
    for source in ("self_checkup", "third_party", "department", "survey", "hotline"):
        for region in communities:
            for code in codes:
                if i >= n:
                    return
                yield code, region, source
                i += 1
    raise SystemExit(f"at most {i} distinct rows at this scale")


def build_rows(
    n: int, codes: list[str], communities: list[str], salt: int
) -> list[tuple[str, str, str, float]]:
    out = []
    for code, region, source in keys(n, codes, communities):
        # Same value for every source of a key: no disagreement flags in the benchmark.
        rnd = random.Random(hash((code, region, salt)))
        out.append((code, region, source, round(rnd.uniform(0, 500), 2)))
    return out


def csv_body(rows: list[tuple[str, str, str, float]]) -> bytes:
    lines = ["indicator_code,region_code,source,value"]
    lines.extend(f"{c},{r},{s},{v}" for c, r, s, v in rows)
    return ("\n".join(lines) + "\n").encode()


def reset(db: Database) -> None:
    with db.session() as s:
        if db.is_postgres:
            s.execute(text("TRUNCATE indicator_values, value_history"))
            s.execute(text("DELETE FROM import_batches"))
        else:
            s.execute(text("DELETE FROM indicator_values"))
            s.execute(text("DELETE FROM value_history"))
            s.execute(text("DELETE FROM import_batches"))
    if db.is_postgres:
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE indicator_values, value_history, import_batches")
            )
    else:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def raw_load(db: Database, system_id: int, rows: list[tuple[str, str, str, float]]) -> float:
    """Seconds to load the parsed rows into indicator_values (rolled back afterwards)."""
    now = datetime.now(UTC)
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        t0 = time.perf_counter()
        if db.is_postgres:
            with (
                raw.cursor() as cur,
                cur.copy(
                    "COPY indicator_values (system_id, indicator_code, region_code, period, "
                    "source, value, on_behalf, revision, updated_by, updated_at) FROM STDIN"
                ) as copy,
            ):
                for c, r, s, v in rows:
                    copy.write_row((system_id, c, r, "2025", s, v, False, 1, "bench", now))
        else:
            naive = now.replace(tzinfo=None).isoformat(sep=" ")
            cur = raw.cursor()
            cur.execute("BEGIN")
            cur.executemany(
                "INSERT INTO indicator_values (system_id, indicator_code, region_code, period, "
                "source, value, on_behalf, revision, updated_by, updated_at) "
                "VALUES (?, ?, ?, '2025', ?, ?, 0, 1, 'bench', ?)",
                ((system_id, c, r, s, v, naive) for c, r, s, v in rows),
            )
        elapsed = time.perf_counter() - t0
        raw.rollback()
    return elapsed


def endpoint_import(
    client: TestClient, system_id: int, body: bytes, expect: str, identity: dict[str, str]
) -> float:
    t0 = time.perf_counter()
    r = client.post(
        "/api/v1/values/import",
        params={"system_id": system_id, "period": "2025", "mode": "all_or_nothing"},
        content=body,
        headers={"content-type": "text/csv", **identity},
    )
    elapsed = time.perf_counter() - t0
    out = r.json()
    if r.status_code != 200 or out["status"] != "applied":
        raise SystemExit(f"import failed: {r.status_code} {str(out)[:500]}")
    if out[expect] != out["rows_total"]:
        raise SystemExit(f"expected every row {expect}: {str(out)[:300]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-values-") as tmp:
        settings, db, dbname = make_node(args.backend, Path(tmp))
        try:
            system_id, codes, communities = make_system(db)
            rows = build_rows(args.rows, codes, communities, 1)
            changed = [(c, r, s, v + 1.0) for c, r, s, v in rows]
            body, body_changed = csv_body(rows), csv_body(changed)
            log(
                f"{args.backend}: {len(rows):,} rows ({len(communities):,} communities × "
                f"{len(codes)} indicators), CSV {len(body) / 1e6:.1f} MB, "
                f"{args.repeat} repetitions, in-process TestClient"
            )
            ident = Identity(
                subject="bench", kind="user", roles=frozenset({"admin"}), region="360000"
            )
            secret = settings.internal_secret.get_secret_value()

            def run(payload: bytes, expect: str) -> float:
                # A fresh signature per call: signed identities are valid for 5 minutes.
                header = {"x-checkup-identity": sign_identity(ident, secret)}
                return endpoint_import(client, system_id, payload, expect, header)

            raw_s, create_s, update_s, same_s = [], [], [], []
            with TestClient(create_app(settings)) as client:
                for rep in range(args.repeat):
                    reset(db)
                    raw_s.append(raw_load(db, system_id, rows))
                    create_s.append(run(body, "rows_created"))
                    same_s.append(run(body, "rows_unchanged"))
                    update_s.append(run(body_changed, "rows_updated"))
                    log(
                        f"  rep {rep + 1}: raw {raw_s[-1]:.2f}s  create {create_s[-1]:.2f}s  "
                        f"unchanged {same_s[-1]:.2f}s  update {update_s[-1]:.2f}s"
                    )
        finally:
            drop_node(db, dbname)

    raw = statistics.median(raw_s)
    figures = {
        "rows": len(rows),
        "raw_load_s": round(raw, 3),
        "raw_rows_per_s": round(len(rows) / raw),
        "import_create_s": round(statistics.median(create_s), 3),
        "import_create_ratio": round(raw / statistics.median(create_s), 3),
        "import_unchanged_ratio": round(raw / statistics.median(same_s), 3),
        "import_update_ratio": round(raw / statistics.median(update_s), 3),
    }
    log(
        f"raw load {figures['raw_rows_per_s']:,} rows/s; endpoint create "
        f"{figures['import_create_ratio']}× raw, unchanged re-import "
        f"{figures['import_unchanged_ratio']}×, update with history "
        f"{figures['import_update_ratio']}×"
    )
    goals = {"import_create_ratio": GOAL}
    met = {k: figures[k] >= v for k, v in goals.items()}
    print(
        json.dumps(
            {
                "benchmark": f"bulk_import_{args.backend}",
                "figures": figures,
                "goals": goals,
                "met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
