"""Benchmark: report generation — a county's annual report, the province's, a batch on 2 cores.

A province node (360000, SQLite by default, ``--backend postgres`` for PostgreSQL) gets the
starter indicator system and SYNTHETIC 2025 values for all 11 cities and ``--counties``
counties/districts of Jiangxi (graded by the real evaluation), then a diagnosis per county
so that reports carry problem lists. Reports go through the real job path (POST
/api/v1/report-jobs, the worker gathering from the in-process indicator service, rendering
JSON + HTML + DOCX + PDF, storing with SHA-256).

Figures (seconds; each also printed as a ratio to the baseline):

* baseline: rendering an already-built county document in the four formats, directly
  (``render(doc)``: no gathering, no database) — median over ``--repeat``;
* county_median_s: one county's annual report job end to end (gather + build + 4 formats +
  store), median over ``--repeat`` jobs;
* province_s: the provincial report over 11 cities and their counties (median over
  ``--repeat``, formats: all four);
* batch: ``--counties`` county reports queued at once and run by 2 worker processes on the
  machine's 2 cores: wall time, per-report median (job start → finish), and parallel
  efficiency = serial estimate (N × county median) / (2 × span), span = first job start →
  last job end (process start-up excluded; the wall time including it is printed too).

    .venv/bin/python benchmarks/reports.py --counties 100 --repeat 5     # full size
    .venv/bin/python benchmarks/reports.py --counties 6 --repeat 2       # quick
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient
from sqlalchemy import select

from services.indicator.app import PACKAGE_DIR as INDICATOR_DIR
from services.indicator.app import create_app as indicator_app
from services.report.app import PACKAGE_DIR as REPORT_DIR
from services.report.app import create_app as report_app
from services.report.models import ReportJob
from services.report.reports.render import render
from shared.db import Database
from shared.identity import Identity, sign_identity
from shared.migrate import upgrade
from shared.settings import NodeSettings

PG_ADMIN_URL = os.environ.get("CHECKUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
GOALS = {"county_median_s": 5.0, "province_s": 30.0, "batch_efficiency": 0.6}


def headers(settings: NodeSettings, region: str, *roles: str) -> dict[str, str]:
    identity = Identity(subject="bench", kind="user", roles=frozenset(roles), region=region)
    return {
        "x-checkup-identity": sign_identity(identity, settings.internal_secret.get_secret_value())
    }


def node_settings(backend: str, root: Path) -> tuple[NodeSettings, Any]:
    if backend == "postgres":
        import psycopg

        name = f"checkup_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        return NodeSettings(
            environment="test", region_code="360000", data_dir=root, database_url=url
        ), drop
    return NodeSettings(environment="test", region_code="360000", data_dir=root), lambda: None


def migrate(settings: NodeSettings) -> None:
    for name, pkg, spatial in (("indicator", INDICATOR_DIR, True), ("report", REPORT_DIR, False)):
        url, schema = settings.database_for(name)  # type: ignore[arg-type]
        db = Database(url, schema=schema, spatial=spatial)
        try:
            upgrade(pkg, db)
        finally:
            db.dispose()


@contextmanager
def clients(settings: NodeSettings, worker: bool) -> Iterator[tuple[TestClient, TestClient, Any]]:
    ind = indicator_app(settings)
    rep = report_app(settings, run_worker=worker)
    with TestClient(ind) as ic, TestClient(rep, raise_server_exceptions=False) as rc:
        rep.state.peers.register_app("indicator", ind)
        admin = headers(settings, "360000", "admin")
        ic.headers.update(admin)
        rc.headers.update(admin)
        yield ic, rc, rep


def seed(
    ic: TestClient, rc: TestClient, settings: NodeSettings, n_counties: int
) -> tuple[int, list[str]]:
    """Starter system, synthetic graded values for 11 cities and N counties, diagnoses."""
    system_id = int(
        ic.post("/api/v1/systems/starter", params={"region_code": "360000"}).json()["id"]
    )
    tree = ic.get("/api/v1/regions/360000/tree", params={"depth": 2}).json()
    cities = [c["code"] for c in tree["children"]]
    counties = [k["code"] for c in tree["children"] for k in c["children"]][:n_counties]
    rnd = random.Random(2025)
    lines = ["indicator_code,region_code,value"]
    for code in cities + counties:
        lines.append(f"D-06,{code},{rnd.uniform(50, 98):.1f}")
        lines.append(f"D-07,{code},{rnd.choice([60, 80, 100, 100])}")
        lines.append(f"D-08,{code},{rnd.uniform(20, 70):.1f}")
    params = {"system_id": system_id, "period": "2025", "source": "self_checkup"}
    r = ic.post(
        "/api/v1/values/import",
        params=params,
        content="\n".join(lines).encode(),
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    r = ic.post(
        "/api/v1/evaluations/run",
        json={"system_id": system_id, "period": "2025", "region_code": "360000"},
    )
    assert r.status_code == 200, r.text
    for code in counties:
        r = rc.post(
            "/api/v1/diagnosis/run",
            json={"system_id": system_id, "period": "2025"},
            headers=headers(settings, code, "admin"),
        )
        assert r.status_code == 200, r.text
    return system_id, counties


def run_jobs(rc: TestClient, rep: Any, bodies: list[dict[str, Any]]) -> list[float]:
    """Queue jobs and run them in this process; seconds per job (start → finish)."""
    ids = [rc.post("/api/v1/report-jobs", json=b).json()["id"] for b in bodies]
    worker = rep.state.report_worker
    worker.run_pending()
    out = []
    for job_id in ids:
        job = rc.get(f"/api/v1/report-jobs/{job_id}").json()
        assert job["status"] == "succeeded", job
        out.append(_seconds(job))
    return out


def _seconds(job: dict[str, Any]) -> float:
    from datetime import datetime

    return (
        datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    ).total_seconds()


def _batch_worker(where: dict[str, Any]) -> int:
    settings = NodeSettings(environment="test", **where)
    with clients(settings, worker=False) as (_ic, _rc, rep):
        return int(rep.state.report_worker.run_pending())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--counties", type=int, default=100, help="counties in the batch (≤ 100)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    settings, cleanup = node_settings(args.backend, root)
    try:
        t0 = time.perf_counter()
        migrate(settings)
        with clients(settings, worker=False) as (ic, rc, rep):
            system_id, counties = seed(ic, rc, settings, args.counties)
            print(f"setup: {len(counties)} counties seeded in {time.perf_counter() - t0:.1f} s")
            county = counties[counties.index("360121")] if "360121" in counties else counties[0]
            body = {
                "kind": "annual",
                "region_code": county,
                "period": "2025",
                "system_id": system_id,
            }
            county_times = run_jobs(rc, rep, [body])  # warm-up: fonts, caches
            county_times = []
            for _ in range(args.repeat):
                county_times += run_jobs(rc, rep, [body])
                # Draft versions accumulate; that is the real path (a new version per run).
            report_id = rc.get("/api/v1/reports", params={"region_code": county}).json()[0]["id"]
            doc = rc.get(f"/api/v1/reports/{report_id}/document").json()
            base = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                files = render(doc)
                base.append(time.perf_counter() - t)
            sizes = {k: len(v) for k, v in files.items()}
            prov = {
                "kind": "province",
                "region_code": "360000",
                "period": "2025",
                "system_id": system_id,
            }
            province_times = [run_jobs(rc, rep, [prov])[0] for _ in range(args.repeat)]
            # Batch: one job per county, queued at once, run by two processes.
            bodies = [
                {"kind": "annual", "region_code": c, "period": "2025", "system_id": system_id}
                for c in counties
            ]
            ids = [rc.post("/api/v1/report-jobs", json=b).json()["id"] for b in bodies]
        ctx = mp.get_context("spawn")
        t = time.perf_counter()
        with ctx.Pool(2) as pool:
            where = {
                "region_code": "360000",
                "data_dir": str(settings.data_dir),
                "database_url": settings.database_url,
            }
            ran = pool.map(_batch_worker, [where] * 2)
        wall = time.perf_counter() - t
        db = Database(*settings.database_for("report"))
        with db.session() as session:
            jobs = session.scalars(select(ReportJob).where(ReportJob.id.in_(ids))).all()
            failed = [j.id for j in jobs if j.status != "succeeded"]
            # From the first job's start to the last one's end: process start-up excluded.
            span = (
                max(j.finished_at for j in jobs if j.finished_at)
                - min(j.started_at for j in jobs if j.started_at)
            ).total_seconds()
            per = [
                (j.finished_at - j.started_at).total_seconds()
                for j in jobs
                if j.finished_at and j.started_at
            ]
        db.dispose()
        assert not failed, f"failed jobs: {failed}"
        baseline = statistics.median(base)
        county_median = statistics.median(county_times)
        province = statistics.median(province_times)
        batch_median = statistics.median(per)
        efficiency = len(ids) * county_median / (2 * span)
        figures = {
            "baseline_render_4_formats_s": round(baseline, 3),
            "county_median_s": round(county_median, 3),
            "county_vs_baseline": round(county_median / baseline, 2),
            "province_s": round(province, 3),
            "province_vs_baseline": round(province / baseline, 2),
            "batch_reports": len(ids),
            "batch_wall_s": round(wall, 2),
            "batch_span_s": round(span, 2),
            "batch_per_report_median_s": round(batch_median, 3),
            "batch_per_report_vs_baseline": round(batch_median / baseline, 2),
            "batch_reports_per_s": round(len(ids) / span, 3),
            "batch_efficiency": round(efficiency, 2),
            "batch_jobs_per_process": ran,
            "artifact_bytes": sizes,
            "backend": args.backend,
        }
        for k, v in figures.items():
            print(f"{k:32s} {v}")
        met = {
            "county_median_s": county_median <= GOALS["county_median_s"],
            "province_s": province <= GOALS["province_s"],
            "batch_efficiency": efficiency >= GOALS["batch_efficiency"],
        }
        print(
            json.dumps(
                {"benchmark": "reports", "figures": figures, "goals": GOALS, "met": met},
                ensure_ascii=False,
            )
        )
    finally:
        cleanup()


if __name__ == "__main__":
    main()
