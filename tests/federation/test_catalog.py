"""Down: a system released at the province reaches city and county, immutable there."""

from __future__ import annotations

from sqlalchemy import select

from gateway.node_cli import format_status, status_of
from services.indicator.systems.models import IndicatorSystem
from services.indicator.systems.service import load_starter_system
from tests.federation.conftest import LiveNode, Tiers
from tests.federation.helpers import links, start_three_tiers
from tests.federation.waiting import wait_for


def _systems(node: LiveNode) -> dict[str, tuple[int, str | None, str, str]]:
    db = node.indicator_db()
    try:
        with db.session() as session:
            rows = session.execute(
                select(
                    IndicatorSystem.code,
                    IndicatorSystem.id,
                    IndicatorSystem.checksum,
                    IndicatorSystem.state,
                    IndicatorSystem.region_code,
                )
            ).all()
            return {r.code: (r.id, r.checksum, r.state, r.region_code) for r in rows}
    finally:
        db.dispose()


def test_release_reaches_every_tier_and_stays_immutable(tiers: Tiers) -> None:
    start_three_tiers(tiers)
    db = tiers.province.indicator_db()
    try:
        with db.session(write=True) as session:
            system = load_starter_system(session, "360000", "省级管理员")
            code, checksum = system.code, system.checksum
    finally:
        db.dispose()

    for node in (tiers.city, tiers.county):
        got = wait_for(lambda n=node: _systems(n).get(code), what=f"release at {node.url}")
        _id, copy_checksum, state, region = got
        assert (copy_checksum, state, region) == (checksum, "released", "360000")

    # The county cannot change the inherited system: not a draft, and not its region.
    county_id = _systems(tiers.county)[code][0]
    with tiers.county.client() as c:
        r = c.patch(f"/api/v1/systems/{county_id}", json={"name": "改名"})
        assert r.status_code in (403, 409), r.text
        r = c.delete(f"/api/v1/systems/{county_id}")
        assert r.status_code in (403, 409), r.text
        r = c.get(f"/api/v1/systems/{county_id}")
        assert r.status_code == 200 and r.json()["checksum"] == checksum

    # The county's pull link shows the broadcast stream fully applied.
    pulled = [link for link in links(tiers.county) if link["kind"] == "pull"]
    assert any(link["stream"] == "*" and link["last_acked_seq"] >= 1 for link in pulled), pulled
    # The city serves its county the relayed release: nothing pending once fetched.
    served = wait_for(
        lambda: [
            link
            for link in links(tiers.city)
            if link["kind"] == "serve" and link["stream"] == "*" and link["pending"] == 0
        ],
        what="county fetched the city's broadcast",
    )
    assert served

    # The same status on the command line (read from the node's storage).
    text = format_status(status_of(tiers.county.settings))
    assert "pull" in text and "parent" in text


def test_revoked_city_dead_letters_with_the_reason(tiers: Tiers) -> None:
    start_three_tiers(tiers)
    with tiers.province.client() as admin:
        r = admin.post("/api/v1/nodes/node-360100/revoke", json={"reason": "测试吊销"})
        assert r.status_code == 200
    dead = wait_for(
        lambda: [
            link
            for link in links(tiers.city)
            if link["kind"] == "pull" and link["state"] == "dead_letter"
        ],
        timeout=60,
        what="the city's pull link dead-lettered",
    )
    assert "sync-credential-revoked" in dead[0]["last_error"]
    assert "测试吊销" in dead[0]["last_error"]
