"""Benchmark: full weighted survey results for N responses on PostgreSQL, against a plain GROUP BY.

    .venv/bin/python benchmarks/survey_results.py --responses 1000000

It builds a fresh database, migrates the survey service, creates the shipped example
questionnaire and a Nanchang campaign with the synthetic margins, and fills responses and
their score rows set-based in SQL (generation is not timed). Then, in the same run:

* baseline: the plain unweighted ``GROUP BY target`` of the same score rows (count,
  mean score, top-two share) — what an unweighted report would print;
* full: ``compute_results`` — cell table, raking, trimming, every breakdown (overall,
  county, street, age, sex, age × sex, tenure, residence) for every question, dimension and
  overall, with 95% CIs, stored as a run. It reads the per-profile running sums intake
  keeps (``score_sums``);
* full with rebuild: the same, first recomputing those sums from every score row (one
  scan) — printed beside, as the figure for a campaign whose sums must be rebuilt.

Each is run twice after a warm-up of the cache; the better time counts. The last line is
JSON: {"benchmark", "figures", "goals", "met"}. Goal: full ≤ 5 × baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.survey.app import PACKAGE_DIR  # noqa: E402
from services.survey.campaigns.schemas import CampaignIn  # noqa: E402
from services.survey.campaigns.service import create_campaign, set_population  # noqa: E402
from services.survey.models import Campaign  # noqa: E402
from services.survey.questionnaires.service import (  # noqa: E402
    create_questionnaire,
    release_questionnaire,
)
from services.survey.results.service import compute_results  # noqa: E402
from services.survey.results.sums import rebuild_sums  # noqa: E402
from shared.db import Database  # noqa: E402
from shared.identity import Identity  # noqa: E402
from shared.migrate import upgrade  # noqa: E402

DATA = ROOT / "services" / "survey" / "data"
ADMIN = Identity(subject="bench", kind="user", roles=frozenset({"admin"}), region="360100")


def _admin_url() -> str:
    return os.environ.get("CHECKUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _setup(db: Database, n: int) -> int:
    """Questionnaire, campaign, margins; then N responses and their score rows in SQL."""
    definition = json.loads((DATA / "example-questionnaire.json").read_text("utf-8"))
    # A city-sized picker: 9 counties × 12 streets × 10 communities (synthetic codes).
    counties = [
        "360102",
        "360103",
        "360104",
        "360111",
        "360112",
        "360113",
        "360121",
        "360123",
        "360124",
    ]
    streets = [f"{c}{s:03d}" for c in counties for s in range(1, 13)]
    definition["sections"][0]["questions"][0]["options"] = [
        {"code": f"{st}{m:03d}", "label": f"社区{st}{m:03d}"}
        for st in streets
        for m in range(1, 11)
    ]
    with db.session() as s:
        q = create_questionnaire(s, definition, ADMIN)
        release_questionnaire(s, q.id, ADMIN)
        now = datetime.now(UTC)
        c = create_campaign(
            s,
            CampaignIn(
                name="bench",
                questionnaire_id=q.id,
                region_code="360100",
                period="2026",
                opens_at=now - timedelta(days=1),
                closes_at=now + timedelta(days=30),
            ),
            ADMIN,
        )
        set_population(
            s, c.id, (DATA / "population-nanchang-synthetic.csv").read_bytes(), "text/csv", ADMIN
        )
        campaign_id, questionnaire_id = c.id, q.id
    values = ",".join(f"('{code}', {i})" for i, code in enumerate(streets))
    with db.engine.begin() as conn:
        # Every combination of the grouping attributes is a profile (108 × 6 × 2 × 4 × 4).
        conn.execute(
            text(
                "INSERT INTO profiles (campaign_id, region_code, age_band, sex, tenure, residence) "
                f"SELECT :c, r.code, a.v, x.v, t.v, d.v FROM (VALUES {values}) AS r(code, i) "
                "CROSS JOIN (VALUES ('18-29'),('30-39'),('40-49'),('50-59'),('60-69'),"
                "('70+')) a(v) "
                "CROSS JOIN (VALUES ('M'),('F')) x(v) "
                "CROSS JOIN (VALUES ('own'),('rent'),('public'),('other')) t(v) "
                "CROSS JOIN (VALUES ('lt1'),('1-5'),('5-10'),('10+')) d(v)"
            ),
            {"c": campaign_id},
        )
        n_profiles = conn.execute(
            text("SELECT COUNT(*) FROM profiles WHERE campaign_id = :c"), {"c": campaign_id}
        ).scalar_one()
        # Skewed sample: low profile ids (first communities, young ages) are over-represented,
        # so weighting has work to do; ~3% are screened out.
        conn.execute(
            text(
                "INSERT INTO responses (campaign_id, client_id, content_hash, received_at, "
                "duration_s, timing, region_code, profile_id, addr_hash, device_hash, "
                "answers_hash, located_region, answers, status, flags) "
                "SELECT :c, 'bench-' || g, md5(g::text), now(), 300, 'client', p.region_code, "
                "p.id, substr(md5('a' || g), 1, 32), NULL, substr(md5('x' || g), 1, 32), NULL, "
                "'{}'::jsonb, CASE WHEN g % 33 = 0 THEN 'excluded' ELSE 'included' END, "
                'CASE WHEN g % 33 = 0 THEN \'[{"code": "speeder"}]\'::jsonb '
                "ELSE '[]'::jsonb END "
                "FROM generate_series(1, :n) AS g "
                "JOIN (SELECT id, region_code, row_number() OVER (ORDER BY id) - 1 AS k "
                "      FROM profiles WHERE campaign_id = :c) p "
                "ON p.k = floor(:np * power(((g * 2654435761::bigint) % 1000003) / 1000003.0, 1.6))"
            ),
            {"c": campaign_id, "n": n, "np": n_profiles},
        )
        # Question rows: a Likert answer per scored question, better in some communities.
        conn.execute(
            text(
                "INSERT INTO scores (response_id, target_id, campaign_id, profile_id, included, "
                "k, s, t) "
                "SELECT r.id, t.id, r.campaign_id, r.profile_id, r.status = 'included', 1, "
                "(v.v - 1) * 25.0, CASE WHEN v.v >= 4 THEN 1 ELSE 0 END "
                "FROM responses r "
                "JOIN score_targets t ON t.questionnaire_id = :q AND t.kind = 'question' "
                "CROSS JOIN LATERAL (SELECT 1 + ((r.id * 7919 + t.id * 104729 "
                "  + (r.profile_id % 7) * 3) % 5)::int AS v) v "
                "WHERE r.campaign_id = :c"
            ),
            {"c": campaign_id, "q": questionnaire_id},
        )
        # Dimension and overall rows: the sums of each respondent's question rows.
        for kind, key in (("dimension", "qt.dimension"), ("overall", "'*'")):
            conn.execute(
                text(
                    "INSERT INTO scores (response_id, target_id, campaign_id, profile_id, "
                    "included, k, s, t) "
                    "SELECT s.response_id, dt.id, s.campaign_id, s.profile_id, s.included, "
                    "SUM(s.k), SUM(s.s), SUM(s.t) "
                    "FROM scores s JOIN score_targets qt ON qt.id = s.target_id "
                    f"JOIN score_targets dt ON dt.questionnaire_id = :q AND dt.kind = '{kind}' "
                    f"AND dt.code = {key} "
                    "WHERE s.campaign_id = :c AND qt.kind = 'question' "
                    "GROUP BY s.response_id, dt.id, s.campaign_id, s.profile_id, s.included"
                ),
                {"c": campaign_id, "q": questionnaire_id},
            )
    return campaign_id


def _timed(fn: object, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()

    name = f"checkup_bench_survey_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _admin_url().rsplit("/", 1)[0] + "/" + name
    db = Database(url.replace("postgresql://", "postgresql+psycopg://"), schema="survey")
    try:
        upgrade(PACKAGE_DIR, db)
        t0 = time.perf_counter()
        campaign_id = _setup(db, args.responses)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET search_path = survey")
            conn.execute("VACUUM ANALYZE responses")
            conn.execute("VACUUM ANALYZE scores")
            conn.execute("VACUUM ANALYZE profiles")
        # Intake keeps the per-profile sums with every response; generated rows need a build.
        with db.session() as s:
            rebuild_sums(s, campaign_id)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET search_path = survey")
            conn.execute("VACUUM ANALYZE score_sums")
            score_rows = conn.execute(
                "SELECT COUNT(*) FROM scores WHERE campaign_id = %s", (campaign_id,)
            ).fetchone()[0]  # type: ignore[index]
        setup_s = time.perf_counter() - t0
        print(
            f"generated {args.responses:,} responses, {score_rows:,} score rows in {setup_s:.1f}s"
        )

        baseline_sql = text(
            "SELECT target_id, COUNT(*), AVG(s / k), SUM(t) * 1.0 / SUM(k) "
            "FROM scores WHERE campaign_id = :c AND included GROUP BY target_id"
        )

        def baseline() -> None:
            with db.engine.connect() as conn:
                conn.execute(baseline_sql, {"c": campaign_id}).all()

        runs: list[dict[str, object]] = []

        def full(rebuild: bool = False) -> None:
            with db.session() as s:
                c = s.get(Campaign, campaign_id)
                assert c is not None
                run = compute_results(s, c, ADMIN, rebuild=rebuild)
                runs.append(dict(run.weighting))

        baseline()  # warm the cache
        base_s = _timed(baseline)
        full_s = _timed(full)
        report = runs[-1]
        rebuild_s = _timed(lambda: full(rebuild=True))
        rebuilt = runs[-1]
        ratio = full_s / base_s
        ratio_rebuild = rebuild_s / base_s
        print(f"baseline GROUP BY: {base_s:.3f}s")
        print(f"full weighted results: {full_s:.3f}s  ({ratio:.2f}× the GROUP BY)")
        print(f"  stages: {report.get('timings_s')}")
        print(
            f"full results rebuilding the sums from every row: {rebuild_s:.3f}s "
            f"({ratio_rebuild:.2f}× the GROUP BY)"
        )
        print(f"  stages: {rebuilt.get('timings_s')}")
        print(
            f"  respondents {report.get('matched_respondents')}, deff {report.get('deff'):.3f}, "
            f"n_eff {report.get('n_eff'):.0f}, result cells {report.get('result_cells')}"
        )
        goal = 5.0
        print(
            json.dumps(
                {
                    "benchmark": "survey_results",
                    "figures": {
                        "responses": args.responses,
                        "score_rows": score_rows,
                        "baseline_group_by_s": round(base_s, 4),
                        "full_results_s": round(full_s, 4),
                        "ratio_to_group_by": round(ratio, 3),
                        "full_with_rebuild_s": round(rebuild_s, 4),
                        "ratio_with_rebuild": round(ratio_rebuild, 3),
                        "result_cells": report.get("result_cells"),
                    },
                    "goals": {"ratio_to_group_by": goal},
                    "met": {"ratio_to_group_by": ratio <= goal},
                },
                ensure_ascii=False,
            )
        )
        return 0
    finally:
        db.dispose()
        if not args.keep:
            with psycopg.connect(_admin_url(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    raise SystemExit(main())
