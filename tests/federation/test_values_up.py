"""Up: county values reach the city and the province with their origin, once."""

from __future__ import annotations

from sqlalchemy import select

from checkup.sample_data import sample_values, to_csv
from services.indicator.values.models import IndicatorValue
from shared.sync import Change, build_batch, read_stream
from tests.federation.conftest import LiveNode, Tiers
from tests.federation.helpers import (
    checksum,
    links,
    release_starter_at_province,
    start_three_tiers,
)
from tests.federation.waiting import wait_for

COUNTY = "360121"


def _origins(node: LiveNode, region: str) -> set[str]:
    db = node.indicator_db()
    try:
        with db.session() as session:
            return set(
                session.scalars(
                    select(IndicatorValue.updated_by).where(IndicatorValue.region_code == region)
                )
            )
    finally:
        db.dispose()


def _same_everywhere(tiers: Tiers, key: str, period: str) -> dict[str, object] | None:
    want = checksum(tiers.county, key, period, COUNTY)
    for node in (tiers.city, tiers.province):
        got = checksum(node, key, period, COUNTY)
        if (got["count"], got["checksum"]) != (want["count"], want["checksum"]):
            return None
    return want


def test_county_values_reach_every_tier_once(tiers: Tiers) -> None:
    start_three_tiers(tiers)
    system = release_starter_at_province(tiers)
    with tiers.county.client() as c:
        r = c.get(f"/api/v1/systems/{system['id']}")
        indicators = r.json()["indicators"]
        rows = sample_values(indicators, [COUNTY], "2025")
        r = c.post(
            "/api/v1/values/import",
            params={"system_id": system["id"], "period": "2025", "source": "self_checkup"},
            content=to_csv(rows).encode(),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        entered = r.json()["rows_applied"]
        assert entered > 5

    same = wait_for(lambda: _same_everywhere(tiers, system["key"], "2025"), what="values up")
    assert same["count"] >= entered
    # The origin travels with the values: the upper copies name the county node.
    assert _origins(tiers.province, COUNTY) == {"node-360121"}
    assert _origins(tiers.city, COUNTY) == {"node-360121"}

    # Edits of the same value, twice: the latest wins above, nothing is doubled.
    code = rows[0]["indicator_code"]
    with tiers.county.client() as c:
        for value in (3.0, 4.0):
            r = c.put(
                "/api/v1/values",
                json={
                    "system_id": system["id"],
                    "indicator_code": code,
                    "region_code": COUNTY,
                    "period": "2025",
                    "source": "self_checkup",
                    "value": value,
                    "reason": "更正",
                },
            )
            assert r.status_code in (200, 201), r.text
    again = wait_for(lambda: _same_everywhere(tiers, system["key"], "2025"), what="edits up")
    assert again["count"] == same["count"] and again["checksum"] != same["checksum"]

    # A duplicate delivery (the county's whole stream again, under a new batch id) is
    # acknowledged and skipped: nothing applied twice.
    db = tiers.county.indicator_db()
    try:
        from services.indicator.sync.tables import SYNC

        with db.session() as session:
            changes = read_stream(session, SYNC, "up", "node-360121", 0, 10_000)
    finally:
        db.dispose()
    secret = tiers.county.settings.credential_secret()
    assert secret
    batch = build_batch(
        sender="node-360121",
        service="indicator",
        origins={"node-360121": COUNTY},
        changes=changes,
        secret=secret,
    )
    with tiers.city.client() as c:
        r = c.post("/api/v1/sync/indicator/batches", content=batch.encode())
        assert r.status_code == 200, r.text
        assert r.json()["applied"] == 0 and r.json()["duplicates"] == len(changes)
    assert _same_everywhere(tiers, system["key"], "2025") == again

    # Value payloads that do not hold: the batch is refused whole, naming row and field.
    last = changes[-1]
    good = Change(last.origin, last.seq + 1, last.entity, last.key, "upsert", dict(last.payload))
    no_number = Change(
        last.origin, last.seq + 2, last.entity, last.key, "upsert", {**last.payload, "value": "多"}
    )
    no_period = {k: v for k, v in last.payload.items() if k != "period"}
    no_period_change = Change(last.origin, last.seq + 3, last.entity, last.key, "upsert", no_period)
    bad = build_batch(
        sender="node-360121",
        service="indicator",
        origins={"node-360121": COUNTY},
        changes=[good, no_number, no_period_change],
        secret=secret,
    )
    with tiers.city.client() as c:
        r = c.post("/api/v1/sync/indicator/batches", content=bad.encode())
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/sync-malformed")
    named = {(e["row"], e["field"]) for e in r.json()["errors"]}
    assert {(1, "payload.value"), (2, "payload.period")} <= named
    assert _same_everywhere(tiers, system["key"], "2025") == again


def test_revoked_county_dead_letters_and_keeps_its_changes(tiers: Tiers) -> None:
    start_three_tiers(tiers)
    system = release_starter_at_province(tiers)
    with tiers.city.client() as admin:
        r = admin.post("/api/v1/nodes/node-360121/revoke", json={"reason": "凭据泄露"})
        assert r.status_code == 200
    with tiers.county.client() as c:
        indicators = c.get(f"/api/v1/systems/{system['id']}").json()["indicators"]
        r = c.post(
            "/api/v1/values/import",
            params={"system_id": system["id"], "period": "2025", "source": "self_checkup"},
            content=to_csv(sample_values(indicators, [COUNTY], "2025")).encode(),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text

    def dead() -> list[dict[str, object]]:
        return [
            link
            for link in links(tiers.county)
            if link["kind"] == "push" and link["state"] == "dead_letter"
        ]

    link = wait_for(dead, timeout=60, what="the county's push dead-lettered")[0]
    assert "sync-credential-revoked" in str(link["last_error"]) and "凭据泄露" in str(
        link["last_error"]
    )
    # Nothing dropped: every recorded change is still pending in the county's outbox, and
    # nothing of it reached the city.
    db = tiers.county.indicator_db()
    try:
        from services.indicator.sync.tables import SYNC

        with db.session() as session:
            recorded = len(read_stream(session, SYNC, "up", "node-360121", 0, 100_000))
    finally:
        db.dispose()
    assert recorded > 0 and link["pending"] == recorded and link["last_acked_seq"] == 0
    assert checksum(tiers.city, system["key"], "2025", COUNTY)["count"] == 0
