"""A county that entered its data before it had a parent: on its first start with one, what
it already holds goes up (systems, values, submission states), once."""

from __future__ import annotations

from checkup.cluster import link_child
from checkup.sample_data import sample_values, to_csv
from services.indicator.sync.tables import SYNC
from shared.sync import read_stream
from tests.federation.conftest import Tiers
from tests.federation.helpers import (
    checksum,
    system_of,
)
from tests.federation.waiting import wait_for

COUNTY = "360121"


def test_data_entered_before_joining_goes_up_once(tiers: Tiers) -> None:
    tiers.province.start()
    tiers.province.login_admin()
    link_child(tiers.province.settings, tiers.city.settings, by="test")
    tiers.city.start()
    tiers.city.login_admin()
    parent_url = tiers.county.settings.parent_url
    # The county runs alone first.
    tiers.county.settings = tiers.county.settings.model_copy(update={"parent_url": None})
    tiers.county.start()
    tiers.county.login_admin()
    # Alone, it set up its own system (as a county may before the province releases one).
    from services.indicator.systems.service import STARTER_FILE

    document = STARTER_FILE.read_bytes()
    with tiers.county.client() as c:
        r = c.post(
            "/api/v1/systems/import",
            content=document,
            headers={"content-type": "application/json"},
        )
        assert r.status_code in (200, 201), r.text
        released = c.post(f"/api/v1/systems/{r.json()['id']}/release").json()
        sid, code = released["id"], released["code"]
        indicators = c.get(f"/api/v1/systems/{sid}").json()["indicators"]
        rows = sample_values(indicators, [COUNTY], "2025")
        r = c.post(
            "/api/v1/values/import",
            params={"system_id": sid, "period": "2025", "source": "self_checkup"},
            content=to_csv(rows).encode(),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        for action in ("submit", "approve"):
            r = c.post(f"/api/v1/submissions/{sid}/{COUNTY}/2025/{action}", json={})
            assert r.status_code == 200, r.text
    tiers.county.stop()
    db = tiers.county.indicator_db()
    try:
        with db.session() as session:
            assert read_stream(session, SYNC, "up", "node-360121", 0, 10) == []
    finally:
        db.dispose()

    # It joins the city and starts again with its parent.
    link_child(tiers.city.settings, tiers.county.settings, by="test")
    tiers.county.settings = tiers.county.settings.model_copy(update={"parent_url": parent_url})
    tiers.county.start()
    key = system_of(tiers.county, code)["key"]  # type: ignore[index]

    def same() -> dict[str, object] | None:
        want = checksum(tiers.county, key, "2025", COUNTY)
        for node in (tiers.city, tiers.province):
            if system_of(node, code) is None or checksum(node, key, "2025", COUNTY) != want:
                return None
        return want

    got = wait_for(same, timeout=60, what="backfilled values at every tier")
    assert got["count"] >= len(rows)
    with tiers.province.client() as c:
        pid = system_of(tiers.province, code)["id"]  # type: ignore[index]
        r = c.get(f"/api/v1/submissions/{pid}/{COUNTY}/2025")
        assert r.status_code == 200 and r.json()["state"] == "approved", r.text

    # A restart does not queue it all again.
    db = tiers.county.indicator_db()
    try:
        with db.session() as session:
            recorded = len(read_stream(session, SYNC, "up", "node-360121", 0, 100_000))
    finally:
        db.dispose()
    tiers.county.stop()
    tiers.county.start()
    db = tiers.county.indicator_db()
    try:
        with db.session() as session:
            again = len(read_stream(session, SYNC, "up", "node-360121", 0, 100_000))
    finally:
        db.dispose()
    assert again == recorded > 0
