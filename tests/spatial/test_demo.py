"""The synthetic demo generator: deterministic, inside real Jiangxi regions, rolls up right."""

from __future__ import annotations

from collections import defaultdict

import shapely
from sqlalchemy import text

from services.indicator.spatial.demo import (
    DemoPlan,
    demo_system,
    generate,
    inspection_rows,
    load_demo,
)
from shared.db import Database
from shared.identity import Identity

PROVINCE = Identity(subject="demo", kind="user", roles=frozenset({"admin"}), region="360000")


def test_same_seed_same_data_inside_real_regions(indicator_db: Database) -> None:
    plan = DemoPlan(region_code="360100", compounds=40, facilities_per_type=3, seed=7)
    with indicator_db.session() as s:
        a, b = generate(s, plan), generate(s, plan)
        c = generate(s, DemoPlan(region_code="360100", compounds=40, seed=8))
        communities = set(
            s.execute(text("SELECT code FROM regions WHERE level = 'community'")).scalars()
        )
    assert [(r.props, shapely.to_wkt(r.geom)) for r in a.buildings] == [
        (r.props, shapely.to_wkt(r.geom)) for r in b.buildings
    ]
    assert [shapely.to_wkt(r.geom) for r in a.compounds] != [
        shapely.to_wkt(r.geom) for r in c.compounds
    ]
    assert all(r.props["region_code"] in communities for r in a.compounds)
    assert all(r.props["region_code"].startswith("3601") for r in a.compounds)
    jiangxi = shapely.box(113.55, 24.45, 118.5, 30.1)
    assert all(jiangxi.contains(r.geom) for r in a.compounds + a.buildings + a.facilities)


def test_demo_roll_up_matches_an_independent_count(indicator_db: Database) -> None:
    plan = DemoPlan(region_code="360100", compounds=60, buildings_per_compound=(3, 6), seed=11)
    with indicator_db.session() as s:
        system_id = demo_system(s)
        out = load_demo(s, PROVINCE, plan, system_id=system_id, period="2025")
        buildings = [str(r.props["code"]) for r in generate(s, plan).buildings]
        community_of: dict[str, str] = {
            code: region
            for code, region in s.execute(text("SELECT code, region_code FROM spatial_units"))
        }
    assert out["building"]["rejected"] == 0 and out["inspection_rows"]["rejected"] == 0
    failing: dict[str, set[str]] = defaultdict(set)
    for row in inspection_rows(buildings, period="2025", seed=plan.seed):
        if row.values["outcome"] == "fail":
            failing[str(row.values["indicator_code"])].add(str(row.values["unit_code"]))
    with indicator_db.session() as s:
        vals = s.execute(
            text(
                "SELECT indicator_code, region_code, value FROM indicator_values "
                "WHERE source = 'self_checkup' AND period = '2025'"
            )
        ).all()
    by = {(i, r): v for i, r, v in vals}
    for indicator, units in failing.items():
        assert by[(indicator, "360000")] == len(units)
        assert by[(indicator, "360100")] == len(units)
        per_community: dict[str, int] = defaultdict(int)
        for u in units:
            per_community[community_of[u]] += 1
        for community, n in per_community.items():
            assert by[(indicator, community)] == n
        street_total = sum(
            v for (i, r), v in by.items() if i == indicator and len(r) == 9 and v is not None
        )
        assert street_total == len(units)
