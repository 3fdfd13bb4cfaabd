"""Region catalog through the indicator service, on both backends."""

from __future__ import annotations

from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.conftest import identity_headers


def test_jiangxi_counts_match_the_2023_edition(indicator_client: TestClient) -> None:
    tree = indicator_client.get("/api/v1/regions/360000/tree", params={"depth": 2}).json()
    assert tree["name"] == "江西省"
    assert len(tree["children"]) == 11
    assert sum(len(c["children"]) for c in tree["children"]) == 100
    counts = {}
    for level in ("street", "community"):
        n, cursor = 0, None
        while True:
            params = {"within": "360000", "level": level, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = indicator_client.get("/api/v1/regions", params=params).json()
            n += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        counts[level] = n
    assert counts == {"street": 1767, "community": 22080}


def test_children_ancestors_and_search(indicator_client: TestClient) -> None:
    kids = indicator_client.get("/api/v1/regions/360100/children").json()
    assert {"code": "360121", "name": "南昌县", "level": "county"}.items() <= {
        k: v for k, v in next(k for k in kids if k["code"] == "360121").items()
    }.items()
    chain = indicator_client.get("/api/v1/regions/360121001/ancestors").json()
    assert [r["code"] for r in chain] == ["360000", "360100", "360121"]
    found = indicator_client.get("/api/v1/regions", params={"q": "南昌县"}).json()["items"]
    assert found[0]["code"] == "360121"
    assert all("南昌县" in r["name"] for r in found)
    nationally = indicator_client.get("/api/v1/regions/110000/children").json()
    assert nationally[0]["name"] == "市辖区"


def test_unknown_and_malformed_codes_are_problems(indicator_client: TestClient) -> None:
    r = indicator_client.get("/api/v1/regions/369999")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/unknown-region")
    r = indicator_client.get("/api/v1/regions/36x")
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "code"


def test_service_refuses_calls_without_the_gateway_identity(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    r = indicator_client.get("/api/v1/regions/360121", headers={"x-checkup-identity": ""})
    assert r.status_code == 401
    forged = identity_headers(node_settings, "360000", "admin")
    forged["x-checkup-identity"] = forged["x-checkup-identity"][:-4] + "AAAA"
    r = indicator_client.get("/api/v1/regions/360121", headers=forged)
    assert r.status_code == 401
    assert indicator_client.get("/health", headers={"x-checkup-identity": ""}).status_code == 200
