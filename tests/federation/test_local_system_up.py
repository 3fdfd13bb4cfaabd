"""A county's local characteristic version (inherited indicators + its own) goes up before
the values entered against it: the city and the province hold both, read-only."""

from __future__ import annotations

from typing import Any

from checkup.sample_data import sample_values, to_csv
from tests.federation.conftest import LiveNode, Tiers
from tests.federation.helpers import checksum, release_starter_at_province, start_three_tiers
from tests.federation.waiting import wait_for

COUNTY = "360121"


def _system(node: LiveNode, code: str) -> dict[str, Any] | None:
    with node.client() as c:
        items = c.get("/api/v1/systems", params={"code": code}).json()["items"]
    return items[0] if items else None


def test_local_version_and_its_values_reach_every_tier(tiers: Tiers) -> None:
    start_three_tiers(tiers)
    base = release_starter_at_province(tiers)
    with tiers.county.client() as c:
        r = c.post(
            f"/api/v1/systems/{base['id']}/extend",
            json={"code": "JX-360121-TS", "name": "南昌县特色指标体系"},
        )
        assert r.status_code == 201, r.text
        local = r.json()
        r = c.post(
            f"/api/v1/systems/{local['id']}/indicators",
            json={
                "code": "TS-01",
                "name_zh": "县城历史文化街区修缮率",
                "level": "district",
                "dimension": "特色风貌",
                "unit": "%",
                "direction": "higher",
                "value_type": "percent",
            },
        )
        assert r.status_code == 201, r.text
        r = c.post(f"/api/v1/systems/{local['id']}/release")
        assert r.status_code == 200, r.text
        released = r.json()
        indicators = c.get(f"/api/v1/systems/{local['id']}").json()["indicators"]
        rows = sample_values(indicators, [COUNTY], "2025")
        assert any(row["indicator_code"] == "TS-01" for row in rows)
        r = c.post(
            "/api/v1/values/import",
            params={"system_id": local["id"], "period": "2025", "source": "self_checkup"},
            content=to_csv(rows).encode(),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text

    # The version arrives above, same checksum, owned by the county (not writable there).
    for node in (tiers.city, tiers.province):
        copy = wait_for(lambda n=node: _system(n, "JX-360121-TS"), what="local version up")
        assert copy["checksum"] == released["checksum"]
        assert copy["state"] == "released" and copy["region_code"] == COUNTY
        with node.client() as c:
            r = c.patch(f"/api/v1/systems/{copy['id']}", json={"name": "改名"})
            assert r.status_code in (403, 409), r.text

    # The values against it follow, nothing refused, nothing doubled.
    key = f"JX-360121-TS@{released['year']}@{released['version']}"

    def same() -> dict[str, Any] | None:
        want = checksum(tiers.county, key, "2025", COUNTY)
        for node in (tiers.city, tiers.province):
            if checksum(node, key, "2025", COUNTY) != {**want}:
                return None
        return want

    got = wait_for(same, what="values of the local version up")
    assert got["count"] >= len(rows)
    # The link did not stall on them.
    with tiers.county.client() as c:
        links = c.get("/api/v1/sync/status").json()["services"]["indicator"]["links"]
    assert all(link["state"] == "active" for link in links if link["kind"] == "push")
