"""Dashboard JSON: summary, series and children over evaluated data (both backends)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from services.indicator.systems.models import IndicatorSystem
from shared.settings import NodeSettings
from tests.conftest import identity_headers
from tests.indicator.evaluation_builders import (
    add_values,
    create_indicator,
    create_system,
    seed,
)

COUNTY = "360121"
SIBLING = "360102"
CITY = "360100"


def define_indicators(session: Session, system: IndicatorSystem) -> None:
    create_indicator(
        session,
        system,
        "A1",
        direction="higher",
        standard=90,
        warning=80,
        dimension="住房",
        weight=2,
        name_zh="住房完好率",
    )
    create_indicator(
        session,
        system,
        "A2",
        direction="higher",
        standard=90,
        dimension="住房",
        name_zh="成套住宅比例",
    )
    create_indicator(
        session,
        system,
        "C1",
        direction="lower",
        standard=0,
        warning=5,
        dimension="小区",
        unit="栋",
        name_zh="存在燃气安全隐患的住宅数量",
    )
    create_indicator(
        session,
        system,
        "C2",
        direction="lower",
        standard=10,
        dimension="小区",
        weight=3,
        unit="个",
        name_zh="停车泊位缺口数",
    )
    create_indicator(
        session, system, "C3", direction="lower", dimension="小区", name_zh="无标准指标"
    )


def evaluate(client: TestClient, settings: NodeSettings, system_id: int, period: str) -> None:
    r = client.post(
        "/api/v1/evaluations/run",
        json={"system_id": system_id, "period": period, "region_code": CITY},
        headers=identity_headers(settings, CITY, "admin"),
    )
    assert r.status_code == 200, r.text


def two_years(client: TestClient, settings: NodeSettings) -> dict[str, int]:
    """JX 2024 (equal weights) and JX 2025 (住房 3 : 小区 1), graded for county and sibling."""
    with seed(settings) as s:
        last = create_system(s, year=2024)
        this = create_system(
            s, year=2025, index_method={"dimension_weights": {"住房": 3, "小区": 1}}
        )
        for system in (last, this):
            define_indicators(s, system)
        add_values(
            s,
            last,
            "2024",
            [("A1", COUNTY, 95.0), ("A2", COUNTY, 95.0), ("C1", COUNTY, 9.0), ("C2", COUNTY, 30.0)],
        )
        add_values(
            s,
            this,
            "2025",
            [
                ("A1", COUNTY, 85.0),  # yellow
                ("A2", COUNTY, 70.0),  # red, 22 % short
                ("C1", COUNTY, 9.0),  # red, far beyond 0
                ("C2", COUNTY, 30.0),  # red, weight 3
                ("C3", COUNTY, 1.0),  # grey
                ("A1", SIBLING, 99.0),
                ("A2", SIBLING, 99.0),
                ("C1", SIBLING, 0.0),
                ("C2", SIBLING, 1.0),
            ],
        )
        ids = {"2024": last.id, "2025": this.id}
    evaluate(client, settings, ids["2024"], "2024")
    evaluate(client, settings, ids["2025"], "2025")
    return ids


def test_summary_has_colours_scores_index_rank_change_and_red_items(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    ids = two_years(indicator_client, node_settings)
    r = indicator_client.get(
        "/api/v1/dashboard/summary", params={"period": "2025", "system_id": ids["2025"], "top": 2}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["region_code"], body["region_name"], body["region_level"]) == (
        COUNTY,
        "南昌县",
        "county",
    )
    assert body["counts"] == {"green": 0, "yellow": 1, "red": 3, "grey": 1}
    assert body["n_graded"] == 4
    dims = {d["dimension"]: d for d in body["dimensions"]}
    # 住房 = (2·60 + 1·0) / 3 = 40; 小区 = 0; index = (3·40 + 1·0) / 4 = 30.
    assert dims["住房"]["score"] == pytest.approx(40)
    assert dims["小区"]["score"] == 0
    assert (dims["住房"]["weight"], dims["小区"]["weight"]) == (3, 1)
    assert dims["小区"]["counts"] == {"green": 0, "yellow": 0, "red": 2, "grey": 1}
    assert body["index"] == pytest.approx(30)
    assert (body["rank"], body["rank_of"]) == (2, 2)  # the sibling scores 100
    # 2024 under the 2024 version (equal weights): 住房 100, 小区 0 → index 50.
    assert body["previous_period"] == "2024"
    assert body["previous_system_id"] == ids["2024"]
    assert body["index_previous"] == pytest.approx(50)
    assert body["index_change"] == pytest.approx(-20)
    assert dims["住房"]["previous"] == 100
    assert dims["住房"]["change"] == pytest.approx(-60)
    assert dims["小区"]["change"] == 0
    # Heaviest first, then furthest from the standard.
    assert [i["indicator_code"] for i in body["top_red"]] == ["C2", "C1"]
    c2 = body["top_red"][0]
    assert c2 == {
        "indicator_code": "C2",
        "name": "停车泊位缺口数",
        "dimension": "小区",
        "unit": "个",
        "weight": 3,
        "source": "self_checkup",
        "value": 30,
        "standard": "≤ 10",
        "rule": "越小越好：≤ 10 达标，否则不达标；实际值 30 → 不达标",
    }
    assert body["generated_at"] and body["evaluated_at"]
    everything = indicator_client.get(
        "/api/v1/dashboard/summary", params={"period": "2025", "system_id": ids["2025"]}
    ).json()
    assert [i["indicator_code"] for i in everything["top_red"]] == ["C2", "C1", "A2"]


def test_summary_without_a_previous_period_has_no_change(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    ids = two_years(indicator_client, node_settings)
    body = indicator_client.get(
        "/api/v1/dashboard/summary", params={"period": "2024", "system_id": ids["2024"]}
    ).json()
    assert body["index"] == 50
    assert (body["previous_period"], body["index_previous"], body["index_change"]) == (
        None,
        None,
        None,
    )
    assert all(d["change"] is None for d in body["dimensions"])


def test_summary_problems_and_scope(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    ids = two_years(indicator_client, node_settings)
    r = indicator_client.get(
        "/api/v1/dashboard/summary", params={"period": "2023", "system_id": ids["2025"]}
    )
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"].endswith("/not-evaluated")
    assert "尚无评价结果" in problem["detail"] and "/api/v1/evaluations/run" in problem["detail"]
    r = indicator_client.get(
        "/api/v1/dashboard/summary", params={"period": "2025", "system_id": 9999}
    )
    assert r.status_code == 404
    assert r.json()["type"].endswith("/unknown-system")
    r = indicator_client.get(
        "/api/v1/dashboard/summary",
        params={"period": "2025", "system_id": ids["2025"], "region_code": SIBLING},
    )
    assert r.status_code == 403
    assert r.json()["type"].endswith("/out-of-scope")
    r = indicator_client.get(
        "/api/v1/dashboard/summary", params={"period": "2025年", "system_id": ids["2025"]}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "query.period"
    city = identity_headers(node_settings, CITY, "viewer")
    r = indicator_client.get(
        "/api/v1/dashboard/summary",
        params={"period": "2025", "system_id": ids["2025"], "region_code": SIBLING},
        headers=city,
    )
    assert r.status_code == 200
    assert (r.json()["index"], r.json()["rank"]) == (100, 1)


def test_children_compare_every_child_for_a_map(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    ids = two_years(indicator_client, node_settings)
    city = identity_headers(node_settings, CITY, "viewer")
    r = indicator_client.get(
        "/api/v1/dashboard/children",
        params={"period": "2025", "system_id": ids["2025"], "region_code": CITY},
        headers=city,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["region_name"] == "南昌市"
    assert body["evaluated_children"] == 2
    kids = {c["region_code"]: c for c in body["children"]}
    assert len(kids) == 9 and "360124" in kids
    assert kids[SIBLING]["index"] == 100 and kids[SIBLING]["rank"] == 1
    county = kids[COUNTY]
    assert (county["index"], county["rank"], county["rank_of"]) == (30, 2, 2)
    assert county["counts"] == {"green": 0, "yellow": 1, "red": 3, "grey": 1}
    assert county["dimensions"] == {"住房": 40, "小区": 0}
    assert county["evaluated"] is True
    assert kids["360124"] == {
        "region_code": "360124",
        "name": "进贤县",
        "level": "county",
        "index": None,
        "rank": None,
        "rank_of": None,
        "n_graded": 0,
        "counts": {"green": 0, "yellow": 0, "red": 0, "grey": 0},
        "dimensions": {},
        "evaluated": False,
    }
    # A county cannot compare its city's children; its own streets are fine (none graded).
    r = indicator_client.get(
        "/api/v1/dashboard/children",
        params={"period": "2025", "system_id": ids["2025"], "region_code": CITY},
    )
    assert r.status_code == 403
    own = indicator_client.get(
        "/api/v1/dashboard/children", params={"period": "2025", "system_id": ids["2025"]}
    ).json()
    assert own["region_code"] == COUNTY
    assert own["evaluated_children"] == 0 and len(own["children"]) > 10


def test_series_follows_an_indicator_across_system_versions(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with seed(node_settings) as s:
        systems = {
            "2024": create_system(s, year=2024),
            "2025v1": create_system(s, year=2025, version=1),
            "2025v2": create_system(s, year=2025, version=2),
            "other": create_system(s, code="OTHER", year=2026),
        }
        for system in systems.values():
            create_indicator(
                s, system, "A1", direction="higher", standard=90, warning=80, name_zh="住房完好率"
            )
        add_values(s, systems["2024"], "2024", [("A1", COUNTY, 95.0)])
        add_values(s, systems["2025v1"], "2025", [("A1", COUNTY, 50.0)])
        add_values(
            s,
            systems["2025v2"],
            "2025",
            [("A1", COUNTY, 85.0, "self_checkup"), ("A1", COUNTY, 99.0, "third_party")],
        )
        add_values(s, systems["other"], "2026", [("A1", COUNTY, 1.0)])
        ids = {k: v.id for k, v in systems.items()}
    for key, period in (
        ("2024", "2024"),
        ("2025v1", "2025"),
        ("2025v2", "2025"),
        ("other", "2026"),
    ):
        evaluate(indicator_client, node_settings, ids[key], period)

    r = indicator_client.get(
        "/api/v1/dashboard/series", params={"indicator_code": "A1", "system_code": "JX-CHECKUP"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["region_code"], body["indicator_name"], body["unit"]) == (
        COUNTY,
        "住房完好率",
        "%",
    )
    points = body["points"]
    assert [(p["period"], p["system_id"], p["value"], p["grade"]) for p in points] == [
        ("2024", ids["2024"], 95, "green"),
        ("2025", ids["2025v2"], 85, "yellow"),  # the later version of 2025 speaks for it
    ]
    assert points[1]["source"] == "self_checkup"
    assert points[1]["sources"] == [
        {"source": "self_checkup", "value": 85, "grade": "yellow"},
        {"source": "third_party", "value": 99, "grade": "green"},
    ]
    assert points[1]["rule"].endswith("实际值 85 → 预警")
    every_family = indicator_client.get(
        "/api/v1/dashboard/series", params={"indicator_code": "A1"}
    ).json()
    assert [p["period"] for p in every_family["points"]] == ["2024", "2025", "2026"]
    nothing = indicator_client.get(
        "/api/v1/dashboard/series", params={"indicator_code": "NOPE"}
    ).json()
    assert nothing["points"] == [] and nothing["indicator_name"] is None
    r = indicator_client.get(
        "/api/v1/dashboard/series", params={"indicator_code": "A1", "region_code": SIBLING}
    )
    assert r.status_code == 403


def test_dashboard_json_is_documented_in_openapi(indicator_client: TestClient) -> None:
    spec: dict[str, Any] = indicator_client.get("/openapi.json").json()
    for path in ("summary", "series", "children"):
        op = spec["paths"][f"/api/v1/dashboard/{path}"]["get"]
        assert op["description"], path
        assert "200" in op["responses"] and "403" in op["responses"]
    summary = spec["components"]["schemas"]["SummaryOut"]["properties"]
    for field in ("counts", "dimensions", "index", "rank", "rank_of", "top_red", "index_change"):
        assert field in summary


def test_summary_explains_scores_with_the_method_they_were_computed_with(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    ids = two_years(indicator_client, node_settings)
    with seed(node_settings) as s:
        s.execute(
            update(IndicatorSystem)
            .where(IndicatorSystem.id == ids["2025"])
            .values(index_method={"dimension_weights": {"住房": 1, "小区": 1}})
        )
    params = {"period": "2025", "system_id": ids["2025"]}
    before = indicator_client.get("/api/v1/dashboard/summary", params=params).json()
    assert before["index"] == 30
    assert {d["dimension"]: d["weight"] for d in before["dimensions"]} == {"住房": 3, "小区": 1}
    evaluate(indicator_client, node_settings, ids["2025"], "2025")
    after = indicator_client.get("/api/v1/dashboard/summary", params=params).json()
    assert after["index"] == 20  # (40 + 0) / 2
    assert {d["dimension"]: d["weight"] for d in after["dimensions"]} == {"住房": 1, "小区": 1}
