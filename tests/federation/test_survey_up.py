"""Up: a county's published satisfaction results reach the city and the province, once."""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx

from tests.federation.conftest import LiveNode, Tiers
from tests.federation.helpers import release_starter_at_province, start_three_tiers
from tests.federation.waiting import wait_for
from tests.survey.helpers import make_campaign, population_rows, small_definition

COUNTY = "360121"
ORIGIN = "node-360121"
COMMUNITIES = ["360121001001", "360121100001"]
RESULTS = "/api/v1/surveys/received-results"


def _campaign(county: LiveNode, system_id: int) -> dict[str, Any]:
    definition = small_definition(communities=COMMUNITIES, region_code=COUNTY, indicators=False)
    definition["sections"][1]["questions"][0]["indicator_code"] = "D-06"
    with county.client() as c:
        return make_campaign(
            c,  # type: ignore[arg-type]
            definition,
            region_code=COUNTY,
            population=population_rows({COUNTY: 100_000}),
            settings={
                # Every test resident answers from 127.0.0.1.
                "limits": {"per_address_per_hour": 100_000, "attempts_per_minute": 100_000},
                "screening": {"duplicates": False},
                "weighting": {"margins": [["region"], ["age_band", "sex"]], "min_n": 10},
            },
            system_id=system_id,
        )


def _residents_answer(county: LiveNode, token: str, n: int, seed: int, q1: list[int]) -> None:
    """Anonymous submissions through the county's gateway (no credentials)."""
    rng = random.Random(seed)
    url = f"/api/v1/public/campaigns/{token}/responses"
    with httpx.Client(base_url=county.url, timeout=30.0) as phone:
        for i in range(n):
            answers = {
                "C1": COMMUNITIES[i % 2],
                "AGE": rng.choice(["30-39", "50-59"]),
                "SEX": rng.choice(["M", "F"]),
                "Q1": rng.choice(q1),
                "Q2": rng.randint(1, 5),
            }
            body = {"client_id": uuid.uuid4().hex, "answers": answers, "meta": {"duration_s": 600}}
            r = phone.post(url, json=body)
            assert r.status_code == 201, r.text


def _publish(county: LiveNode, campaign_id: int) -> tuple[dict[str, Any], float]:
    """Compute and publish; the publication and the county's own overall satisfaction rate."""
    with county.client() as c:
        assert c.post(f"/api/v1/campaigns/{campaign_id}/results").status_code == 201
        r = c.post(f"/api/v1/campaigns/{campaign_id}/publish", json={})
        assert r.status_code == 200, r.text
        overall = c.get(
            f"/api/v1/campaigns/{campaign_id}/results",
            params={"breakdown": "overall", "target": "*"},
        ).json()["items"]
        return dict(r.json()), float(overall[0]["rate"])


def _copies(node: LiveNode, **params: Any) -> list[dict[str, Any]]:
    with node.client() as c:
        r = c.get(RESULTS, params={"region_code": COUNTY, **params})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


def _showing(node: LiveNode, key: str) -> list[dict[str, Any]] | None:
    copies = _copies(node)
    return copies if any(x["key"] == key for x in copies) else None


def _survey_links(node: LiveNode) -> list[dict[str, Any]]:
    with node.client() as c:
        r = c.get("/api/v1/sync/status")
        assert r.status_code == 200, r.text
        links: list[dict[str, Any]] = r.json()["services"]["survey"]["links"]
        return links


def test_county_results_reach_every_tier_once(tiers: Tiers) -> None:
    start_three_tiers(tiers)
    system = release_starter_at_province(tiers)
    campaign = _campaign(tiers.county, int(system["id"]))
    _residents_answer(tiers.county, campaign["token"], 40, seed=11, q1=[4, 5])
    first, rate = _publish(tiers.county, campaign["id"])
    key = f"{ORIGIN}:{campaign['id']}:{first['id']}"

    for node in (tiers.city, tiers.province):
        [copy] = wait_for(lambda node=node: _showing(node, key), what=f"{node.settings.node_id}")
        assert copy["origin_node"] == ORIGIN and copy["region_code"] == COUNTY
        assert copy["campaign_name"] == campaign["name"] and copy["period"] == "2026"
        assert copy["overall"]["rate"] == rate and copy["sample"]["accepted"] == 40
        assert copy["current"] is True

    # Unhappier residents, results published again: the latest shows, nothing doubled.
    _residents_answer(tiers.county, campaign["token"], 40, seed=12, q1=[1, 2])
    second, rate2 = _publish(tiers.county, campaign["id"])
    assert rate2 < rate
    key2 = f"{ORIGIN}:{campaign['id']}:{second['id']}"
    for node in (tiers.city, tiers.province):
        [latest] = wait_for(lambda node=node: _showing(node, key2), what="republished")
        assert latest["overall"]["rate"] == rate2 and latest["sample"]["accepted"] == 80
        history = _copies(node, history="true")
        assert [(x["key"], x["current"]) for x in history] == [(key, False), (key2, True)]

    # Status shows the survey service's links: the county's push is drained, the city got
    # both publications from the county's stream.
    def drained() -> list[dict[str, Any]]:
        return [
            x
            for x in _survey_links(tiers.county)
            if x["kind"] == "push"
            and (x["stream"], x["pending"], x["last_acked_seq"]) == (ORIGIN, 0, 2)
        ]

    wait_for(drained, what="the county's survey push drained")
    received = [x for x in _survey_links(tiers.city) if x["kind"] == "receive"]
    assert [(x["stream"], x["last_acked_seq"]) for x in received] == [(ORIGIN, 2)]
