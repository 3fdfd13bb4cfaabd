"""Publishing into the real indicator service (in-process); subjective–objective disagreements."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.conftest import identity_headers
from tests.survey.helpers import make_campaign, population_rows, small_definition, submit

A, B = "360121001001", "360124100001"


@pytest.fixture
def both(node_settings: NodeSettings) -> Iterator[tuple[TestClient, TestClient]]:
    """Survey and indicator services of one node; the survey calls the indicator in-process."""
    from services.indicator.app import create_app as indicator_app
    from services.survey.app import create_app as survey_app

    # A city node: the indicator service takes systems and values of its own region only.
    city = node_settings.model_copy(update={"region_code": "360100", "node_id": "node-360100"})
    ind = indicator_app(city)
    sur = survey_app(city)
    sur.state.peers.register_app("indicator", ind)
    headers = identity_headers(city, "360100", "admin")
    with (
        TestClient(ind, raise_server_exceptions=False) as ic,
        TestClient(sur, raise_server_exceptions=False) as sc,
    ):
        ic.headers.update(headers)
        sc.headers.update(headers)
        yield sc, ic


def _indicator(code: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name_zh": name,
        "level": "community",
        "dimension": "满意度",
        "unit": "%",
        "direction": "higher",
        "standard_value": 80,
        "warning_value": 60,
        "value_type": "percent",
        "min_value": 0,
        "max_value": 100,
        "data_source": "满意度调查",
        "standard_source": "测试用标准 (test standard)",
        **extra,
    }


def _system(ic: TestClient) -> int:
    body = {
        "code": "NC-SAT-TEST",
        "name": "南昌市体检指标（测试）",
        "year": 2026,
        "region_code": "360100",
        "indicators": [
            _indicator("SAT-Q1", "小区停车满意度"),
            _indicator("SAT-Q2", "垃圾清运满意度"),
            _indicator(
                "OBJ-PARK",
                "停车泊位缺口数",
                unit="个",
                direction="lower",
                standard_value=10,
                warning_value=20,
                value_type="integer",
                min_value=0,
                max_value=100000,
                data_source="自体检",
            ),
        ],
    }
    r = ic.post("/api/v1/systems", json=body)
    if r.status_code == 404:
        pytest.skip("indicator systems API not available in this tree")
    assert r.status_code == 201, r.text
    system_id = int(r.json()["id"])
    r = ic.post(f"/api/v1/systems/{system_id}/release")
    assert r.status_code == 200, r.text
    return system_id


def test_publish_writes_survey_values_and_lists_disagreements(
    both: tuple[TestClient, TestClient], node_settings: NodeSettings
) -> None:
    sc, ic = both
    if "/api/v1/values/import" not in ic.get("/openapi.json").json()["paths"]:
        pytest.skip("values import endpoint not available in this tree")
    system_id = _system(ic)
    # Objective values: many missing parking spaces in 南昌县 (red), few in 进贤县 (green).
    for region, gap in (("360121", 50), ("360124", 5)):
        r = ic.put(
            "/api/v1/values",
            json={
                "system_id": system_id,
                "indicator_code": "OBJ-PARK",
                "region_code": region,
                "period": "2026",
                "source": "self_checkup",
                "value": gap,
            },
        )
        assert r.status_code in (200, 201), r.text
    r = ic.post(
        "/api/v1/evaluations/run",
        json={"system_id": system_id, "period": "2026", "region_code": "360100"},
    )
    assert r.status_code == 200, r.text

    definition = small_definition()
    definition["sections"][1]["questions"][0]["objective_indicators"] = ["OBJ-PARK"]
    c = make_campaign(
        sc,
        definition,
        population=population_rows({"360121": 100_000, "360124": 100_000}),
        settings={"weighting": {"margins": [["region"]], "min_n": 10}},
        system_id=system_id,
    )
    rng = random.Random(40)
    # 南昌县 residents are happy about parking, 进贤县 residents are not.
    for i in range(40):
        for community, q1 in ((A, rng.choice([4, 5, 5])), (B, rng.choice([1, 2, 3, 4]))):
            answers = {
                "C1": community,
                "AGE": rng.choice(["30-39", "50-59"]),
                "SEX": rng.choice(["M", "F"]),
                "Q1": q1,
                "Q2": rng.randint(1, 5),
            }
            r = submit(sc, node_settings, c["token"], answers, addr=f"10.4.{i}.{len(community)}")
            assert r.status_code == 201, r.text
    assert sc.post(f"/api/v1/campaigns/{c['id']}/results").status_code == 201
    r = sc.post(f"/api/v1/campaigns/{c['id']}/publish", json={})
    assert r.status_code == 200, r.text
    pub = r.json()
    # Two indicators × (the campaign region and two counties).
    assert pub["status"] == "applied" and pub["rows_sent"] == 6
    assert pub["batch"]["rows_applied"] == 6

    results = sc.get(
        f"/api/v1/campaigns/{c['id']}/results", params={"target": "Q1", "breakdown": "region"}
    ).json()["items"]
    rate = {i["group"]: i["rate"] for i in results}
    values = ic.get(
        "/api/v1/values",
        params={"system_id": system_id, "period": "2026", "source": "survey", "limit": 100},
    ).json()["items"]
    got = {(v["indicator_code"], v["region_code"]): v["value"] for v in values}
    assert got[("SAT-Q1", "360121")] == round(rate["360121"], 2)
    assert got[("SAT-Q1", "360124")] == round(rate["360124"], 2)
    assert ("SAT-Q2", "360100") in got

    d = sc.get(f"/api/v1/campaigns/{c['id']}/disagreements").json()
    assert d["publication"]["id"] == pub["id"]
    kinds = {(x["region_code"], x["kind"]) for x in d["items"]}
    assert kinds == {("360121", "satisfied_but_red"), ("360124", "dissatisfied_but_green")}
    assert all(x["objective_indicator"] == "OBJ-PARK" for x in d["items"])
    events = [e["action"] for e in sc.get(f"/api/v1/campaigns/{c['id']}/events").json()]
    assert events[-2:] == ["results", "publish"]

    # Publishing again changes nothing in the indicator service: the values are unchanged.
    r = sc.post(f"/api/v1/campaigns/{c['id']}/publish", json={})
    assert r.status_code == 200 and r.json()["batch"]["rows_unchanged"] == 6


def test_publish_needs_a_system_and_results(
    both: tuple[TestClient, TestClient], node_settings: NodeSettings
) -> None:
    sc, _ = both
    c = make_campaign(sc, small_definition(), population=population_rows({"360121": 1000}))
    r = sc.post(f"/api/v1/campaigns/{c['id']}/publish", json={})
    assert r.status_code == 404  # no results yet
    sc.post(f"/api/v1/campaigns/{c['id']}/results")
    r = sc.post(f"/api/v1/campaigns/{c['id']}/publish", json={})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "system_id"
    r = sc.post(f"/api/v1/campaigns/{c['id']}/publish", json={"system_id": 1})
    assert r.status_code == 409 and r.json()["type"].endswith("/nothing-to-publish")
