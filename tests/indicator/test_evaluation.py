"""Evaluation: grades with their rules, dimension scores, health index and ranks (both backends)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from services.indicator.evaluation import service as evaluation_service
from services.indicator.evaluation.method import parse_index_method
from services.indicator.evaluation.models import Evaluation, EvaluationRun
from services.indicator.evaluation.rules import rule_for
from services.indicator.systems.models import Indicator, IndicatorSystem
from services.indicator.values.models import IndicatorValue
from shared.errors import ValidationFailed
from shared.settings import NodeSettings
from tests.conftest import identity_headers
from tests.indicator.evaluation_builders import (
    add_values,
    children_of,
    create_indicator,
    create_system,
    scores_of,
    seed,
)

COUNTY = "360121"
CITY = "360100"


def run(client: TestClient, system_id: int, region: str | None = None, **headers: Any) -> Any:
    body: dict[str, Any] = {"system_id": system_id, "period": "2025"}
    if region:
        body["region_code"] = region
    r = client.post("/api/v1/evaluations/run", json=body, headers=headers or None)
    assert r.status_code == 200, r.text
    return r.json()


def grades(client: TestClient, system_id: int, **filters: Any) -> dict[tuple[str, str], Any]:
    """Every grade visible to the client, keyed by (indicator, region) — walks all pages."""
    out: dict[tuple[str, str], Any] = {}
    params: dict[str, Any] = {"system_id": system_id, "limit": 1000, **filters}
    while True:
        page = client.get("/api/v1/evaluations", params=params).json()
        for item in page["items"]:
            key = (item["indicator_code"], item["region_code"])
            if item["source"] != "self_checkup":
                key = (item["indicator_code"], item["region_code"] + "/" + item["source"])
            out[key] = item
        if not page["next_cursor"]:
            return out
        params["cursor"] = page["next_cursor"]


def test_higher_is_better_grades_at_the_boundaries(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        streets = children_of(s, COUNTY, 6)
        system = create_system(s)
        create_indicator(s, system, "H1", direction="higher", standard=90, warning=80)
        create_indicator(s, system, "H2", direction="higher", standard=90)  # no warning bound
        values = [100.0, 90.0, 89.99, 80.0, 79.99, -5.0]
        add_values(s, system, "2025", [("H1", r, v) for r, v in zip(streets, values, strict=True)])
        add_values(s, system, "2025", [("H2", streets[0], 90.0), ("H2", streets[1], 89.0)])
        system_id = system.id

    run(indicator_client, system_id)
    got = grades(indicator_client, system_id)
    assert [got[("H1", r)]["grade"] for r in streets] == [
        "green",
        "green",
        "yellow",
        "yellow",
        "red",
        "red",
    ]
    assert [got[("H1", r)]["points"] for r in streets] == [100, 100, 60, 60, 0, 0]
    assert got[("H2", streets[0])]["grade"] == "green"
    # Without a warning value, anything short of the standard is red, never yellow.
    assert got[("H2", streets[1])]["grade"] == "red"
    assert got[("H1", streets[3])]["rule"] == (
        "越大越好：≥ 90 达标，≥ 80 预警，否则不达标；实际值 80 → 预警"
    )
    assert got[("H2", streets[1])]["rule"] == "越大越好：≥ 90 达标，否则不达标；实际值 89 → 不达标"


def test_lower_is_better_mirrors_and_states_its_rule(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        streets = children_of(s, COUNTY, 5)
        system = create_system(s)
        create_indicator(s, system, "L1", direction="lower", standard=0, warning=5, unit="栋")
        create_indicator(s, system, "L2", direction="lower", standard=10)
        values = [-1.0, 0.0, 0.5, 5.0, 7.0]
        add_values(s, system, "2025", [("L1", r, v) for r, v in zip(streets, values, strict=True)])
        add_values(s, system, "2025", [("L2", streets[0], 10.0), ("L2", streets[1], 10.01)])
        system_id = system.id

    run(indicator_client, system_id)
    got = grades(indicator_client, system_id)
    assert [got[("L1", r)]["grade"] for r in streets] == [
        "green",
        "green",
        "yellow",
        "yellow",
        "red",
    ]
    assert got[("L1", streets[4])]["rule"] == (
        "越小越好：≤ 0 达标，≤ 5 预警，否则不达标；实际值 7 → 不达标"
    )
    assert got[("L2", streets[0])]["grade"] == "green"
    assert got[("L2", streets[1])]["grade"] == "red"
    assert got[("L2", streets[1])]["value"] == pytest.approx(10.01)


def test_band_grades_with_inclusive_and_open_bounds(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        streets = children_of(s, COUNTY, 7)
        system = create_system(s)
        create_indicator(s, system, "B1", direction="band", band=(10, 20), warning_band=(8, 25))
        create_indicator(s, system, "B2", direction="band", band=(None, 3))  # upper bound only
        create_indicator(s, system, "B3", direction="band", band=(50, 60), warning_band=(45, None))
        values = [10.0, 20.0, 15.0, 8.0, 25.0, 7.99, 25.01]
        add_values(s, system, "2025", [("B1", r, v) for r, v in zip(streets, values, strict=True)])
        add_values(
            s,
            system,
            "2025",
            [
                ("B2", streets[0], -100.0),
                ("B2", streets[1], 3.5),
                ("B3", streets[0], 99.0),
                ("B3", streets[1], 44.0),
            ],
        )
        system_id = system.id

    run(indicator_client, system_id)
    got = grades(indicator_client, system_id)
    assert [got[("B1", r)]["grade"] for r in streets] == [
        "green",
        "green",
        "green",
        "yellow",
        "yellow",
        "red",
        "red",
    ]
    assert got[("B1", streets[3])]["rule"] == (
        "区间为宜：10 ~ 20 达标，8 ~ 25 预警，否则不达标；实际值 8 → 预警"
    )
    assert got[("B2", streets[0])]["grade"] == "green"
    assert got[("B2", streets[1])]["grade"] == "red"
    assert got[("B2", streets[1])]["rule"].startswith("区间为宜：≤ 3 达标，否则不达标")
    assert got[("B3", streets[0])]["grade"] == "yellow"  # above the band, inside ≥ 45
    assert got[("B3", streets[1])]["grade"] == "red"


def test_grey_without_standard_without_value_or_outside_the_system(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        streets = children_of(s, COUNTY, 2)
        system = create_system(s)
        create_indicator(s, system, "N1", direction="higher")  # no standard
        create_indicator(s, system, "N2", direction="band", standard=5)  # band without bounds
        create_indicator(s, system, "V1", direction="lower", standard=1)
        add_values(
            s,
            system,
            "2025",
            [
                ("N1", streets[0], 3.0),
                ("N2", streets[0], 5.0),
                ("V1", streets[0], None),
                ("ZZ9", streets[0], 1.0),  # not an indicator of this system
                ("V1", streets[1], 0.5),
            ],
        )
        system_id = system.id

    body = run(indicator_client, system_id)
    assert body["grades"] == {"green": 1, "yellow": 0, "red": 0, "grey": 4}
    got = grades(indicator_client, system_id)
    for key in (("N1", streets[0]), ("N2", streets[0]), ("V1", streets[0]), ("ZZ9", streets[0])):
        assert got[key]["grade"] == "grey"
        assert got[key]["points"] is None
    assert got[("N1", streets[0])]["rule"] == "越大越好：无标准；实际值 3 → 无标准"
    assert got[("N2", streets[0])]["rule"] == "区间为宜：无标准；实际值 5 → 无标准"
    assert (
        got[("V1", streets[0])]["rule"] == "越小越好：≤ 1 达标，否则不达标；实际值缺失 → 无法评价"
    )
    assert got[("ZZ9", streets[0])]["rule"] == "指标体系中无此指标 → 无标准"
    # Grey values do not count as graded: the street's index rests on nothing.
    with seed(node_settings) as s:
        only_grey = scores_of(s, system_id, "2025", streets[0])
    assert only_grey["*"].score is None
    assert (only_grey["*"].n_graded, only_grey["*"].grey) == (0, 3)


def test_rule_numbers_read_the_same_on_both_databases(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        streets = children_of(s, COUNTY, 4)
        system = create_system(s)
        create_indicator(s, system, "P1", direction="higher", standard=33.3, warning=0.25)
        values = [100 / 3, 0.1, 1234567.5, 0.0]
        add_values(s, system, "2025", [("P1", r, v) for r, v in zip(streets, values, strict=True)])
        system_id = system.id

    run(indicator_client, system_id)
    got = grades(indicator_client, system_id)
    tails = [got[("P1", r)]["rule"].split("；")[1] for r in streets]
    assert tails == [
        "实际值 33.3333333333333 → 达标",
        "实际值 0.1 → 不达标",
        "实际值 1234567.5 → 达标",
        "实际值 0 → 不达标",
    ]
    assert got[("P1", streets[0])]["rule"].startswith("越大越好：≥ 33.3 达标，≥ 0.25 预警")


def test_rerun_replaces_grades_and_forgets_deleted_values(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        streets = children_of(s, COUNTY, 2)
        system = create_system(s)
        create_indicator(s, system, "R1", direction="higher", standard=50)
        ids = add_values(s, system, "2025", [("R1", streets[0], 40.0), ("R1", streets[1], 60.0)])
        system_id = system.id

    run(indicator_client, system_id)
    with seed(node_settings) as s:
        s.execute(
            update(IndicatorValue)
            .where(IndicatorValue.id == ids[("R1", streets[0], "self_checkup")])
            .values(value=55.0)
        )
        s.execute(
            delete(IndicatorValue).where(
                IndicatorValue.id == ids[("R1", streets[1], "self_checkup")]
            )
        )
    body = run(indicator_client, system_id)
    assert body["values_evaluated"] == 1
    got = grades(indicator_client, system_id)
    assert list(got) == [("R1", streets[0])]
    assert got[("R1", streets[0])]["grade"] == "green"
    with seed(node_settings) as s:
        assert scores_of(s, system_id, "2025", streets[1]) == {}
        assert scores_of(s, system_id, "2025", streets[0])["*"].score == 100


def test_dimension_scores_and_index_follow_the_weights(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        weighted = create_system(
            s, version=1, index_method={"dimension_weights": {"住房": 3, "小区": 1}}
        )
        equal = create_system(s, version=2)
        for system in (weighted, equal):
            create_indicator(
                s,
                system,
                "A1",
                direction="higher",
                standard=90,
                warning=80,
                dimension="住房",
                weight=2,
            )
            create_indicator(s, system, "A2", direction="higher", standard=90, dimension="住房")
            create_indicator(
                s, system, "C1", direction="lower", standard=0, warning=5, dimension="小区"
            )
            create_indicator(s, system, "C2", direction="lower", dimension="小区")  # grey
            add_values(
                s,
                system,
                "2025",
                [
                    ("A1", COUNTY, 85.0),
                    ("A2", COUNTY, 95.0),
                    ("C1", COUNTY, 9.0),
                    ("C2", COUNTY, 4.0),
                ],
            )
        ids = (weighted.id, equal.id)

    for system_id in ids:
        run(indicator_client, system_id)
    with seed(node_settings) as s:
        w = scores_of(s, ids[0], "2025", COUNTY)
        e = scores_of(s, ids[1], "2025", COUNTY)
    # 住房 = (2·60 + 1·100) / 3 = 73.33; 小区 = red 0 (grey C2 left out).
    assert w["住房"].score == pytest.approx(73.33)
    assert (w["住房"].green, w["住房"].yellow, w["住房"].n_graded) == (1, 1, 2)
    assert w["小区"].score == 0
    assert (w["小区"].red, w["小区"].grey, w["小区"].n_graded) == (1, 1, 1)
    # Index = (3·73.33 + 1·0) / 4 = 55.0 with weights; (73.33 + 0) / 2 = 36.67 without.
    assert w["*"].score == pytest.approx(55.0)
    assert e["*"].score == pytest.approx(36.67)
    assert (w["*"].green, w["*"].yellow, w["*"].red, w["*"].grey) == (1, 1, 1, 1)


def test_grade_points_can_be_set_per_system(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        system = create_system(s, index_method={"grade_points": {"yellow": 80, "red": 20}})
        create_indicator(s, system, "G1", direction="higher", standard=90, warning=80)
        create_indicator(s, system, "G2", direction="higher", standard=90, warning=80)
        add_values(s, system, "2025", [("G1", COUNTY, 85.0), ("G2", COUNTY, 10.0)])
        system_id = system.id
    body = run(indicator_client, system_id)
    assert body["index_method"]["grade_points"] == {"green": 100, "yellow": 80, "red": 20}
    got = grades(indicator_client, system_id)
    assert (got[("G1", COUNTY)]["points"], got[("G2", COUNTY)]["points"]) == (80, 20)
    with seed(node_settings) as s:
        assert scores_of(s, system_id, "2025", COUNTY)["*"].score == 50


def test_one_value_per_indicator_enters_the_index_by_source_priority(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        default = create_system(s, version=1)
        custom = create_system(
            s, version=2, index_method={"source_priority": ["third_party", "self_checkup"]}
        )
        for system in (default, custom):
            create_indicator(s, system, "S1", direction="higher", standard=50)
            create_indicator(s, system, "S2", direction="higher", standard=50)
            add_values(
                s,
                system,
                "2025",
                [
                    ("S1", COUNTY, 80.0, "self_checkup"),  # green
                    ("S1", COUNTY, 20.0, "third_party"),  # red
                    ("S1", COUNTY, 10.0, "hotline"),  # red
                    ("S2", COUNTY, None, "self_checkup"),  # missing: falls back
                    ("S2", COUNTY, 70.0, "survey"),  # green
                ],
            )
        ids = (default.id, custom.id)
    for system_id in ids:
        run(indicator_client, system_id)
    with seed(node_settings) as s:
        by_default = scores_of(s, ids[0], "2025", COUNTY)["*"]
        by_custom = scores_of(s, ids[1], "2025", COUNTY)["*"]
    assert (by_default.score, by_default.green, by_default.red, by_default.grey) == (100, 2, 0, 0)
    # third_party first: S1 is red; S2 has no third_party or self_checkup value → survey.
    assert (by_custom.score, by_custom.green, by_custom.red) == (50, 1, 1)
    # Every source keeps its own grade.
    got = grades(indicator_client, ids[0])
    assert got[("S1", COUNTY)]["grade"] == "green"
    assert got[("S1", COUNTY + "/third_party")]["grade"] == "red"
    assert got[("S1", COUNTY + "/hotline")]["grade"] == "red"
    assert got[("S2", COUNTY)]["grade"] == "grey"
    only_third = grades(indicator_client, ids[0], source="third_party")
    assert list(only_third) == [("S1", COUNTY + "/third_party")]


def test_rank_among_siblings_with_ties_and_partial_reruns(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    counties = ["360102", "360103", "360104", "360121"]
    with seed(node_settings) as s:
        system = create_system(s)
        create_indicator(s, system, "K1", direction="higher", standard=50, warning=30)
        create_indicator(s, system, "K2", direction="higher", standard=50, warning=30)
        # Indices: 100, 80 (green + yellow), 80, 30 (yellow + red).
        values = {"360102": (60, 60), "360103": (60, 40), "360104": (40, 60), "360121": (40, 10)}
        add_values(
            s,
            system,
            "2025",
            [
                (k, c, float(v))
                for c in counties
                for k, v in zip(("K1", "K2"), values[c], strict=True)
            ],
        )
        system_id = system.id
    city = identity_headers(node_settings, CITY, "reviewer")
    body = run(indicator_client, system_id, CITY, **city)
    assert body["regions_scored"] == 4
    with seed(node_settings) as s:
        ranks = {c: scores_of(s, system_id, "2025", c)["*"] for c in counties}
    assert {c: (r.score, r.rank, r.rank_of) for c, r in ranks.items()} == {
        "360102": (100, 1, 4),
        "360103": (80, 2, 4),
        "360104": (80, 2, 4),  # a tie shares the rank …
        "360121": (30, 4, 4),  # … and the next rank is skipped
    }
    # The county improves and re-runs only its own scope: its siblings' ranks follow.
    with seed(node_settings) as s:
        s.execute(
            update(IndicatorValue).where(IndicatorValue.region_code == COUNTY).values(value=90.0)
        )
    run(indicator_client, system_id)
    with seed(node_settings) as s:
        ranks = {c: scores_of(s, system_id, "2025", c)["*"] for c in counties}
    assert {c: r.rank for c, r in ranks.items()} == {
        "360102": 1,
        "360103": 3,
        "360104": 3,
        "360121": 1,
    }


def test_communities_are_graded_scored_and_ranked_within_their_street(
    indicator_client: TestClient, node_settings: NodeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Take the large-run path too: planner statistics refreshed inside the run's transaction.
    monkeypatch.setattr(evaluation_service, "ANALYZE_AFTER_ROWS", 1)
    with seed(node_settings) as s:
        street = children_of(s, COUNTY, 2)[1]
        communities = children_of(s, street, 3)
        system = create_system(s)
        create_indicator(s, system, "Q1", direction="lower", standard=0, warning=2, level="housing")
        add_values(
            s,
            system,
            "2025",
            [("Q1", c, v) for c, v in zip(communities, (0.0, 1.0, 3.0), strict=True)],
        )
        system_id = system.id
    body = run(indicator_client, system_id)
    assert body["values_evaluated"] == 3
    assert body["regions_scored"] == 3
    with seed(node_settings) as s:
        got = [scores_of(s, system_id, "2025", c)["*"] for c in communities]
    assert [(r.score, r.rank, r.rank_of) for r in got] == [(100, 1, 3), (60, 2, 3), (0, 3, 3)]


def test_run_is_audited_with_actor_counts_and_method(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        system = create_system(s)
        create_indicator(s, system, "U1", direction="higher", standard=1)
        add_values(s, system, "2025", [("U1", COUNTY, 2.0)])
        system_id = system.id
    headers = identity_headers(node_settings, COUNTY, "data_entry", subject="zhang.san")
    body = run(indicator_client, system_id, None, **headers)
    assert body["region_code"] == COUNTY  # the caller's region by default
    assert body["evaluated_by"] == "zhang.san"
    assert body["grades"]["green"] == 1
    assert body["duration_ms"] >= 0
    runs = indicator_client.get("/api/v1/evaluations/runs", params={"system_id": system_id})
    assert runs.status_code == 200
    [audit] = runs.json()
    assert audit["run_id"] == body["run_id"]
    assert audit["evaluated_by"] == "zhang.san"
    assert audit["index_method"]["source_priority"][0] == "self_checkup"
    with seed(node_settings) as s:
        stored = s.scalars(select(EvaluationRun)).one()
        assert (stored.actor, stored.actor_region, stored.values_evaluated) == (
            "zhang.san",
            COUNTY,
            1,
        )


def test_scope_and_roles_are_enforced(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        system = create_system(s)
        create_indicator(s, system, "X1", direction="higher", standard=1)
        add_values(s, system, "2025", [("X1", COUNTY, 2.0), ("X1", "360102", 0.0)])
        system_id = system.id

    r = indicator_client.post(
        "/api/v1/evaluations/run",
        json={"system_id": system_id, "period": "2025", "region_code": "360102"},
    )
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/out-of-scope")
    viewer = identity_headers(node_settings, COUNTY, "viewer")
    r = indicator_client.post(
        "/api/v1/evaluations/run", json={"system_id": system_id, "period": "2025"}, headers=viewer
    )
    assert r.status_code == 403
    assert r.json()["type"].endswith("/role-required")
    with seed(node_settings) as s:
        assert s.scalar(select(func.count()).select_from(Evaluation)) == 0

    run(indicator_client, system_id, CITY, **identity_headers(node_settings, CITY, "admin"))
    # The county sees its own grades only, whatever it asks for.
    mine = grades(indicator_client, system_id)
    assert list(mine) == [("X1", COUNTY)]
    for params in ({"within": CITY}, {"region_code": "360102"}):
        r = indicator_client.get("/api/v1/evaluations", params=params)
        assert r.status_code == 403, params
        assert r.json()["type"].endswith("/out-of-scope")
    city_view = identity_headers(node_settings, CITY, "viewer")
    page = indicator_client.get(
        "/api/v1/evaluations", params={"system_id": system_id}, headers=city_view
    ).json()
    assert {i["region_code"] for i in page["items"]} == {COUNTY, "360102"}


def test_bad_input_is_a_problem_and_keeps_previous_results(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        system = create_system(s)
        create_indicator(s, system, "E1", direction="higher", standard=1, dimension="住房")
        create_indicator(s, system, "E2", direction="higher", standard=1, dimension="小区")
        add_values(s, system, "2025", [("E1", COUNTY, 2.0), ("E2", COUNTY, 0.0)])
        system_id = system.id
    first = run(indicator_client, system_id)

    r = indicator_client.post(
        "/api/v1/evaluations/run", json={"system_id": system_id, "period": "20x5"}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.period"
    r = indicator_client.post("/api/v1/evaluations/run", json={"system_id": 9999, "period": "2025"})
    assert r.status_code == 404
    assert r.json()["type"].endswith("/unknown-system")
    r = indicator_client.post(
        "/api/v1/evaluations/run",
        json={"system_id": system_id, "period": "2025", "region_code": "360121999"},
    )
    assert r.status_code == 404
    assert r.json()["type"].endswith("/unknown-region")

    with seed(node_settings) as s:
        s.execute(
            update(IndicatorSystem)
            .where(IndicatorSystem.id == system_id)
            .values(index_method={"dimension_weights": {"住房": 2}, "normalisation": "zscore"})
        )
        s.execute(update(IndicatorValue).values(value=5.0))
    r = indicator_client.post(
        "/api/v1/evaluations/run", json={"system_id": system_id, "period": "2025"}
    )
    assert r.status_code == 422
    problem = r.json()
    assert problem["type"].endswith("/invalid-index-method")
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"index_method.normalisation", "index_method.dimension_weights.小区"}
    # Nothing of the failed run is stored: the previous grades and scores stand.
    got = grades(indicator_client, system_id)
    assert got[("E2", COUNTY)]["grade"] == "red"
    with seed(node_settings) as s:
        assert scores_of(s, system_id, "2025", COUNTY)["*"].score == 50
        assert s.scalar(select(func.count()).select_from(EvaluationRun)) == 1
    assert first["grades"] == {"green": 1, "yellow": 0, "red": 1, "grey": 0}


def test_cursor_pagination_returns_every_grade_once(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        streets = children_of(s, COUNTY, 7)
        system = create_system(s)
        create_indicator(s, system, "C1", direction="higher", standard=5)
        add_values(s, system, "2025", [("C1", r, float(n)) for n, r in enumerate(streets)])
        system_id = system.id
    run(indicator_client, system_id)
    seen: list[int] = []
    params: dict[str, Any] = {"system_id": system_id, "period": "2025", "limit": 3}
    pages = 0
    while True:
        page = indicator_client.get("/api/v1/evaluations", params=params).json()
        seen += [i["value_id"] for i in page["items"]]
        pages += 1
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 7
    assert pages == 3
    reds = indicator_client.get(
        "/api/v1/evaluations", params={"system_id": system_id, "grade": "red"}
    ).json()["items"]
    assert sorted(i["value"] for i in reds) == [0, 1, 2, 3, 4]
    r = indicator_client.get("/api/v1/evaluations", params={"cursor": "abc"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "cursor"
    r = indicator_client.get("/api/v1/evaluations", params={"grade": "purple"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "query.grade"


def test_rules_are_derived_from_the_indicator_columns() -> None:
    def ind(**kw: Any) -> Indicator:
        base: dict[str, Any] = {"code": "T", "direction": "higher", "standard_value": None}
        base.update(kw)
        fields = ("warning_value", "band_low", "band_high", "warning_low", "warning_high")
        for f in fields:
            base.setdefault(f, None)
        return Indicator(**base)

    higher = rule_for(ind(standard_value=90, warning_value=80))
    assert [higher.grade(v) for v in (95, 90, 85, 80, 79, None)] == [
        "green",
        "green",
        "yellow",
        "yellow",
        "red",
        "grey",
    ]
    assert higher.standard == "≥ 90"
    assert rule_for(ind(direction="sideways", standard_value=1)).grade(1) == "grey"
    assert rule_for(ind(direction="sideways")).text == "评价方向未定义（sideways），无标准"
    band = rule_for(ind(direction="band", band_low=1, band_high=2))
    assert band.gap(4) == pytest.approx(1.0)
    assert band.full_text(1.5) == "区间为宜：1 ~ 2 达标，否则不达标；实际值 1.5 → 达标"


def test_index_method_is_validated_with_named_fields() -> None:
    method = parse_index_method({}, ["住房"])
    assert method.grade_points == {"green": 100, "yellow": 60, "red": 0}
    assert method.weight_of("住房") == 1.0
    with pytest.raises(ValidationFailed) as info:
        parse_index_method(
            {
                "grade_points": {"green": 120, "blue": 1},
                "dimension_weights": {"住房": -1},
                "source_priority": ["self_checkup", "rumour"],
                "weights": {},
            },
            ["住房", "小区"],
        )
    assert {e["field"] for e in info.value.errors or []} == {
        "index_method.weights",
        "index_method.grade_points.green",
        "index_method.grade_points.blue",
        "index_method.dimension_weights.住房",
        "index_method.dimension_weights.小区",
        "index_method.source_priority",
    }
