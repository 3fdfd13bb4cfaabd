"""A GIS client reads the layers through the node's gateway with an API key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.settings import NodeSettings
from tests.gateway.conftest import add_user, assert_problem, login, node_client
from tests.spatial.conftest import seed_objects


def test_gis_client_reads_ogc_features_with_an_api_key(node_settings: NodeSettings) -> None:
    add_user(node_settings, "gis-admin", ("admin",), node_settings.region_code)
    with node_client(node_settings) as client:
        admin = login(client, "gis-admin")
        client.headers.update(admin)
        seed_objects(client)
        key = client.post(
            "/api/v1/api-keys",
            json={
                "name": "省级GIS平台",
                "roles": ["viewer"],
                "region_code": "360121",
                "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            },
        )
        assert key.status_code == 201, key.text
        client.headers.pop("Authorization")
        gis = {"X-API-Key": key.json()["key"]}

        assert_problem(client.get("/api/v1/ogc/collections"), 401)  # no key, no layers
        landing = client.get("/api/v1/ogc", headers=gis)
        assert landing.status_code == 200, landing.text
        rels = {link["rel"] for link in landing.json()["links"]}
        # Links point at the gateway the client called, not at an internal service.
        assert all(
            link["href"].startswith("http://testserver/") for link in landing.json()["links"]
        ), landing.json()["links"]
        assert {"self", "conformance", "data"} <= rels
        collections = client.get("/api/v1/ogc/collections", headers=gis).json()["collections"]
        ids = {c["id"] for c in collections}
        assert "compounds" in ids, ids
        items = client.get(
            "/api/v1/ogc/collections/compounds/items", params={"limit": 10}, headers=gis
        )
        assert items.status_code == 200, items.text
        fc = items.json()
        assert fc["type"] == "FeatureCollection"
        assert sorted(f["properties"]["code"] for f in fc["features"]) == ["C1", "C2"]
        assert fc["features"][0]["geometry"]["type"] == "Polygon"
        # A viewer key cannot write.
        r = client.post("/api/v1/units/import", params={"kind": "compound"}, json={}, headers=gis)
        assert r.status_code in (403, 415, 422)
        assert r.status_code == 403 or "type" in r.json()
