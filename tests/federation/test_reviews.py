"""Multi-level approval across tiers: county approves, the city reviews (or rejects with a
reason), the province accepts only after the city; approved data is locked at the county."""

from __future__ import annotations

from typing import Any

from checkup.sample_data import sample_values, to_csv
from tests.federation.conftest import LiveNode, Tiers
from tests.federation.helpers import (
    checksum,
    release_starter_at_province,
    start_three_tiers,
    system_of,
)
from tests.federation.waiting import wait_for

COUNTY = "360121"
PERIOD = "2025"


def _sub(node: LiveNode, system_id: int) -> dict[str, Any]:
    with node.client() as c:
        r = c.get(f"/api/v1/submissions/{system_id}/{COUNTY}/{PERIOD}")
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result


def _act(node: LiveNode, system_id: int, action: str, reason: str | None = None) -> Any:
    with node.client() as c:
        return c.post(
            f"/api/v1/submissions/{system_id}/{COUNTY}/{PERIOD}/{action}",
            json={"reason": reason} if reason else {},
        )


def _state_is(node: LiveNode, system_id: int, state: str) -> dict[str, Any] | None:
    got = _sub(node, system_id)
    return got if got["state"] == state else None


def test_reject_resubmit_review_accept(tiers: Tiers) -> None:
    start_three_tiers(tiers)
    system = release_starter_at_province(tiers)
    key = system["key"]
    ids = {
        "county": system["id"],
        "city": system_of(tiers.city, system["code"])["id"],  # type: ignore[index]
        "province": system_of(tiers.province, system["code"])["id"],  # type: ignore[index]
    }
    with tiers.county.client() as c:
        indicators = c.get(f"/api/v1/systems/{ids['county']}").json()["indicators"]
        rows = sample_values(indicators, [COUNTY], PERIOD)
        r = c.post(
            "/api/v1/values/import",
            params={"system_id": ids["county"], "period": PERIOD, "source": "self_checkup"},
            content=to_csv(rows).encode(),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text
    assert _act(tiers.county, ids["county"], "submit").status_code == 200
    assert _act(tiers.county, ids["county"], "approve").status_code == 200

    # The mirrors above follow the county; the province cannot accept before the city.
    wait_for(lambda: _state_is(tiers.province, ids["province"], "approved"), what="mirror")
    r = _act(tiers.province, ids["province"], "approve")
    assert r.status_code == 409, r.text
    assert "市级" in r.json()["detail"]

    # The city rejects with a reason: the county sees it, unlocked, with the reason.
    wait_for(lambda: _state_is(tiers.city, ids["city"], "approved"), what="city mirror")
    r = _act(tiers.city, ids["city"], "reject", "第3项数据与统计年鉴不符")
    assert r.status_code == 200, r.text
    county = wait_for(lambda: _state_is(tiers.county, ids["county"], "rejected"), what="reject")
    assert county["reason"] == "第3项数据与统计年鉴不符" and county["locked"] is False
    assert county["events"][-1]["actor"].startswith("node-360100:")

    # The county corrects a value and resubmits; its reviewer approves again.
    with tiers.county.client() as c:
        r = c.put(
            "/api/v1/values",
            json={
                "system_id": ids["county"],
                "indicator_code": rows[0]["indicator_code"],
                "region_code": COUNTY,
                "period": PERIOD,
                "source": "self_checkup",
                "value": 42.0,
                "reason": "按市级意见更正",
            },
        )
        assert r.status_code == 200, r.text
    assert _act(tiers.county, ids["county"], "submit").status_code == 200
    assert _act(tiers.county, ids["county"], "approve").status_code == 200

    # The city approves; the county's data is reviewed and locked there.
    wait_for(lambda: _state_is(tiers.city, ids["city"], "approved"), what="city mirror again")
    assert _act(tiers.city, ids["city"], "approve").status_code == 200
    county = wait_for(lambda: _state_is(tiers.county, ids["county"], "reviewed"), what="review")
    assert county["locked"] is True
    with tiers.county.client() as c:
        r = c.put(
            "/api/v1/values",
            json={
                "system_id": ids["county"],
                "indicator_code": rows[0]["indicator_code"],
                "region_code": COUNTY,
                "period": PERIOD,
                "source": "self_checkup",
                "value": 1.0,
            },
        )
        assert r.status_code == 409, r.text

    # Now the province accepts; the decision reaches the county through the city.
    wait_for(lambda: _state_is(tiers.province, ids["province"], "reviewed"), what="relay up")
    assert _act(tiers.province, ids["province"], "approve").status_code == 200
    wait_for(lambda: _state_is(tiers.county, ids["county"], "accepted"), what="accept down")
    wait_for(lambda: _state_is(tiers.province, ids["province"], "accepted"), what="accept up")

    # Reconciliation: the province holds exactly what the county approved.
    want = checksum(tiers.county, key, PERIOD, COUNTY)
    for node in (tiers.city, tiers.province):
        got = checksum(node, key, PERIOD, COUNTY)
        assert (got["count"], got["checksum"]) == (want["count"], want["checksum"])
