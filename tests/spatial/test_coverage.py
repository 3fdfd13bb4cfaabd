"""Service-radius coverage: metres, rules, plans using the spatial index, backend agreement."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from services.indicator.spatial import coverage
from services.indicator.spatial.demo import DemoPlan, demo_system, load_demo
from shared.db import Database
from shared.identity import Identity
from tests import conftest as root
from tests.dbs import Template, pg_available
from tests.spatial.conftest import C1, COMMUNITY, CSV, GJ, create_system, csv_bytes, seed_objects

ADMIN = Identity(subject="tester", kind="user", roles=frozenset({"admin"}), region="360121")
# Metres east of C1 at its latitude: 1e-3° of longitude ≈ 97.9 m at 28.55°N.
M_PER_MILLIDEG = 97.89


def _kindergartens(client: TestClient, *offsets_m: float) -> None:
    rows = [
        [f"K{i}", "幼儿园", "kindergarten", "360121", C1[0] + m / M_PER_MILLIDEG / 1000, C1[1]]
        for i, m in enumerate(offsets_m)
    ]
    r = client.post(
        "/api/v1/facilities/import",
        content=csv_bytes(["code", "name", "facility_type", "region_code", "lon", "lat"], rows),
        headers=CSV,
    )
    assert r.status_code == 200, r.text


def _values(db: Database, indicator: str) -> dict[str, float | None]:
    with db.session() as s:
        rows = s.execute(
            text(
                "SELECT region_code, value FROM indicator_values WHERE indicator_code = :i "
                "AND source = 'self_checkup'"
            ),
            {"i": indicator},
        ).all()
    return {r[0]: r[1] for r in rows}


def test_radius_is_measured_in_metres(indicator_client: TestClient, indicator_db: Database) -> None:
    system_id = create_system(indicator_db)
    seed_objects(indicator_client)  # C1 (900 residents) and C2 (300), 0.02° ≈ 1.96 km apart
    _kindergartens(indicator_client, 290.0)  # 290 m east of C1's centre
    r = indicator_client.put(
        f"/api/v1/facilities/coverage/rules/{system_id}/COV-KG",
        json={"facility_type": "kindergarten"},
    )
    assert r.status_code == 200 and r.json()["radius_m"] == 300  # GB 50180-2018 default
    assert "GB 50180" in r.json()["radius_source"]
    r = indicator_client.post(
        "/api/v1/facilities/coverage/run", json={"system_id": system_id, "period": "2025"}
    )
    assert r.status_code == 200, r.text
    county = _values(indicator_db, "COV-KG")
    assert county[COMMUNITY] == 100 and county["360121"] == 50
    # 280 m is too short: 290 m away is outside. Degrees would have said 0.003 < 280.
    indicator_client.put(
        f"/api/v1/facilities/coverage/rules/{system_id}/COV-KG",
        json={"facility_type": "kindergarten", "radius_m": 280, "basis": "residents"},
    )
    indicator_client.post(
        "/api/v1/facilities/coverage/run", json={"system_id": system_id, "period": "2025"}
    )
    assert _values(indicator_db, "COV-KG")["360121"] == 0
    indicator_client.put(
        f"/api/v1/facilities/coverage/rules/{system_id}/COV-KG",
        json={"facility_type": "kindergarten", "radius_m": 300, "basis": "residents"},
    )
    indicator_client.post(
        "/api/v1/facilities/coverage/run", json={"system_id": system_id, "period": "2025"}
    )
    assert _values(indicator_db, "COV-KG")["360121"] == pytest.approx(75.0)  # 900 of 1200
    doc = indicator_client.get(
        f"/api/v1/layers/values/{system_id}/COV-KG/360121/2025/objects"
    ).json()
    assert {f["properties"]["code"]: f["properties"]["outcome"] for f in doc["features"]} == {
        "C1": "covered",
        "C2": "uncovered",
    }


def test_rules_without_a_standard_radius_must_state_one(
    indicator_client: TestClient, indicator_db: Database
) -> None:
    system_id = create_system(indicator_db)
    r = indicator_client.put(
        f"/api/v1/facilities/coverage/rules/{system_id}/COV-KG",
        json={"facility_type": "fire_station"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "radius_m"
    r = indicator_client.put(
        f"/api/v1/facilities/coverage/rules/{system_id}/NOPE", json={"facility_type": "park"}
    )
    assert r.status_code == 404
    r = indicator_client.put(
        f"/api/v1/facilities/coverage/rules/{system_id}/COV-KG",
        json={"facility_type": "park", "radius_m": -5},
    )
    assert r.status_code == 422


def test_coverage_plan_uses_the_spatial_index(indicator_db: Database) -> None:
    with indicator_db.session() as s:
        system_id = demo_system(s)
        out = load_demo(
            s,
            ADMIN,
            DemoPlan(compounds=400, buildings_per_compound=(1, 2), facilities_per_type=60),
            system_id=system_id,
            period="2025",
            inspect=False,
        )
        assert out["compound"]["rejected"] == 0 and out["facility"]["rejected"] == 0
        for indicator, ftype in (("C-COV-KG", "kindergarten"), ("B-COV-MS", "middle_school")):
            coverage.set_rule(
                s, ADMIN, system_id=system_id, indicator_code=indicator, facility_type=ftype
            )
        coverage.run_coverage(s, ADMIN, system_id=system_id, period="2025")
    with indicator_db.session() as s:
        details = s.execute(
            text("SELECT detail FROM spatial_runs WHERE kind = 'coverage' ORDER BY id")
        ).scalars()
        runs = [d if isinstance(d, dict) else json.loads(d) for d in details]
        assert sorted(r["radius_m"] for r in runs) == [300.0, 1000.0]
        for run in runs:
            assert run["plan_uses_spatial_index"] is True, run["plan"]
            # Never a sequential scan of facilities inside the per-compound test.
            assert "Seq Scan on facilities" not in run["plan"]
            assert "SCAN f\n" not in run["plan"] + "\n"
        plan = coverage.explain_coverage(
            s, facility_type="kindergarten", radius_m=300.0, scope="360121"
        )
        assert plan.uses_spatial_index and plan.backend in ("postgis", "spatialite")


def _coverage_by_code(db: Database) -> tuple[dict[str, str], dict[str, float | None]]:
    with db.session() as s:
        system_id = demo_system(s)
        load_demo(
            s,
            ADMIN,
            DemoPlan(compounds=300, buildings_per_compound=(1, 1), facilities_per_type=25),
            system_id=system_id,
            period="2025",
            inspect=False,
        )
        coverage.set_rule(
            s,
            ADMIN,
            system_id=system_id,
            indicator_code="C-COV-PS",
            facility_type="primary_school",
            radius_m=None,
        )
        coverage.set_rule(
            s,
            ADMIN,
            system_id=system_id,
            indicator_code="C-COV-KG",
            facility_type="park",
            radius_m=800.0,
            basis="residents",
        )
        coverage.run_coverage(s, ADMIN, system_id=system_id, period="2025")
    with db.session() as s:
        outcomes = {
            f"{ind}:{code}": outcome
            for ind, code, outcome in s.execute(
                text(
                    "SELECT o.indicator_code, u.code, o.outcome FROM spatial_value_objects o "
                    "JOIN spatial_units u ON u.id = o.unit_id"
                )
            )
        }
        vals = {
            f"{ind}:{region}": value
            for ind, region, value in s.execute(
                text(
                    "SELECT indicator_code, region_code, value FROM indicator_values "
                    "WHERE source = 'self_checkup'"
                )
            )
        }
    return outcomes, vals


@pytest.fixture
def both_backends(tmp_path: Path) -> Iterator[dict[str, Database]]:
    if not pg_available():
        pytest.skip("PostgreSQL not reachable")
    dbs: dict[str, Database] = {}
    cleanups = []
    for backend in ("sqlite", "postgres"):
        if backend not in root._templates:
            root._templates[backend] = Template(backend, tmp_path / f"tpl-{backend}")
        settings, cleanup = root._templates[backend].clone(tmp_path / backend)
        cleanups.append(cleanup)
        url, schema = settings.database_for("indicator")
        dbs[backend] = Database(url, schema=schema, spatial=True)
    yield dbs
    for db in dbs.values():
        db.dispose()
    for c in cleanups:
        c()  # type: ignore[operator]


def test_spatialite_and_postgis_agree(both_backends: dict[str, Database]) -> None:
    """Same synthetic data on both backends: identical coverage per compound and region.

    Stated tolerance: both measure on the CGCS2000 ellipsoid (PostGIS geography, SpatiaLite
    ST_Distance(…, 1)); distances agree to better than 0.01 m, so outcomes may differ only for
    a compound within 0.01 m of the radius — none in this seed — and percentages to 1e-9.
    """
    lite_out, lite_vals = _coverage_by_code(both_backends["sqlite"])
    pg_out, pg_vals = _coverage_by_code(both_backends["postgres"])
    assert len(lite_out) == 600
    assert lite_out == pg_out
    covered = sum(1 for v in lite_out.values() if v == "covered")
    assert 0 < covered < 600  # the data exercises both outcomes
    assert lite_vals.keys() == pg_vals.keys()
    for key, value in lite_vals.items():
        assert value == pytest.approx(pg_vals[key], abs=1e-9), key
    # Distances themselves, compound to nearest primary school, on both backends.
    dists: dict[str, dict[str, float]] = {}
    for name, db in both_backends.items():
        from services.indicator.spatial.dialect import spatial_sql

        with db.session() as s:
            d = spatial_sql(s).distance_m("c.point", "f.geom")
            dists[name] = dict(
                s.execute(
                    text(
                        f"SELECT c.code, MIN({d}) FROM spatial_units c, facilities f "
                        "WHERE c.kind = 'compound' AND f.facility_type = 'primary_school' "
                        "GROUP BY c.code"
                    )
                ).all()
            )
    assert dists["sqlite"].keys() == dists["postgres"].keys()
    worst = max(abs(dists["sqlite"][k] - dists["postgres"][k]) for k in dists["sqlite"])
    assert worst < 0.01


def test_import_from_geojson_with_json_content_type(indicator_client: TestClient) -> None:
    seed_objects(indicator_client)
    layer = indicator_client.get("/api/v1/layers/compounds").json()
    assert layer["numberReturned"] == 2
    assert GJ["content-type"] == "application/geo+json"
