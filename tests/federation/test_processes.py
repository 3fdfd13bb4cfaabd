"""Fault cases with every node its own process; each ends in reconciliation: the province
holds exactly the union of what the counties approved, zero lost, zero doubled."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx

from shared.sync import Batch, Change, batch_digest, build_batch, parse_batch
from tests.federation.processes import (
    BATCH_SIZE,
    CITY,
    COUNTY_A,
    COUNTY_B,
    PERIOD,
    PROVINCE,
    FaultProxy,
    Faults,
    Node,
    ProcessTiers,
    assert_reconciled,
    audit,
    checksum,
    edit_value,
    enter_values,
    indicators,
    link_of,
    outbox,
    push_links,
    restart_via,
    streets,
    submit_and_approve,
    values_at,
    wait_for,
)


def test_parent_down_while_child_pushes(process_tiers: ProcessTiers) -> None:
    tiers = process_tiers
    a, b = tiers.counties[COUNTY_A], tiers.counties[COUNTY_B]
    tiers.province.stop()
    tiers.city.stop()
    entered = enter_values(a, tiers) + enter_values(b, tiers)
    for county in (a, b):
        submit_and_approve(county, tiers)

    # The counties keep everything and report the link's trouble while the city is down.
    def failing() -> bool:
        return all(
            link["pending"] > 0 and link["last_error"] for n in (a, b) for link in push_links(n)
        )

    wait_for(failing, what="pending with an error at both counties")

    # The city comes back (the province still down): it takes the counties' changes and
    # keeps them for the province.
    tiers.city.start()
    for county in (a, b):
        wait_for(
            lambda c=county: (
                checksum(tiers.city, tiers, c.region_code) == checksum(c, tiers, c.region_code)
            )
        )
    relayed = [link for link in push_links(tiers.city) if link["pending"] > 0]
    assert {link["stream"] for link in relayed} >= {a.node_id, b.node_id}

    tiers.province.start()
    got = assert_reconciled(tiers)
    # Derived (formula) values are computed at every tier: at least what was entered.
    total = sum(n for n, _ in got.values())
    assert total >= entered > 0
    assert checksum(tiers.province, tiers, CITY)[0] == total
    wait_for(lambda: all(link["pending"] == 0 for link in push_links(tiers.city)))


def _entered_codes(node: Node, tiers: ProcessTiers) -> list[str]:
    """Indicators a county enters for itself (not derived, not street-level only)."""
    return [
        i["code"]
        for i in indicators(node, tiers)
        if i.get("compute", "entered") != "formula" and i.get("level") in ("district", "city")
    ]


def test_city_killed_mid_relay_then_restarted(process_tiers: ProcessTiers) -> None:
    tiers = process_tiers
    city, province = tiers.city, tiers.province
    # Each relayed batch waits a moment on its way up, so the relay of the backlog takes
    # seconds however fast the province applies it, and the city dies with a batch on the
    # wire (forwarded after its death: the resent copy must be skipped).
    slow = FaultProxy(province.url, Faults(delay_s=(0.25, 0.25))).start()
    try:
        restart_via(city, slow.url)
        _kill_city_mid_relay(tiers)
    finally:
        slow.stop()


def _kill_city_mid_relay(tiers: ProcessTiers) -> None:
    city, province = tiers.city, tiers.province
    province.stop()
    entered = 0
    for county in tiers.counties.values():
        entered += enter_values(county, tiers, regions=[county.region_code, *streets(county)])
        submit_and_approve(county, tiers)

    # The city takes everything and holds it as a relay backlog for the province.
    def city_has_all() -> bool:
        return all(
            checksum(city, tiers, code) == checksum(county, tiers, code)
            for code, county in tiers.counties.items()
        )

    wait_for(city_has_all, what="the counties' values at the city")
    total = checksum(city, tiers, CITY)[0]
    backlog = sum(link["pending"] for link in push_links(city))
    assert total >= entered > 1000 and backlog >= entered

    # The province comes back and takes the backlog batch by batch; the city dies (SIGKILL,
    # no shutdown) with part of it delivered.
    province.start()

    def part_way() -> int:
        got = checksum(province, tiers, CITY)[0]
        assert got < total, "the relay finished before the city could be killed"
        return got if got <= total // 2 else 0

    before_kill = wait_for(part_way, what="part of the backlog at the province", every=0.05)
    city.kill()
    at_kill = checksum(province, tiers, CITY)[0]
    assert 0 < before_kill <= at_kill < total

    city.start()
    got = assert_reconciled(tiers)
    # Exactly the union: nothing lost, nothing applied twice.
    assert checksum(province, tiers, CITY)[0] == total == sum(n for n, _ in got.values())
    wait_for(lambda: all(link["pending"] == 0 for link in push_links(city)), what="relay done")
    for county in tiers.counties.values():
        head = link_of(county, "push", county.node_id)["head_seq"]
        assert link_of(province, "receive", county.node_id)["last_acked_seq"] == head
    # A value's history at the province has one entry: the resent batch was skipped.
    sample = values_at(province, tiers, COUNTY_A)[0]
    with province.api() as c:
        history = c.get(f"/api/v1/values/{sample['id']}/history").json()
    assert len(history) == 1, history


def test_faulty_links_duplicate_drop_delay_and_replay(process_tiers: ProcessTiers) -> None:
    tiers = process_tiers
    a, b = tiers.counties[COUNTY_A], tiers.counties[COUNTY_B]

    def faults() -> Faults:
        return Faults(duplicate=0.3, drop_answer=0.2, delay_s=(0.0, 0.3), replay_stale=0.3)

    lower = FaultProxy(tiers.city.url, faults()).start()
    upper = FaultProxy(tiers.province.url, faults(), seed=11).start()
    try:
        restart_via(a, lower.url, (tiers.city, upper.url))
        enter_values(a, tiers, regions=[COUNTY_A, *streets(a)])
        enter_values(b, tiers)
        # The same value edited five times, one commit each (mostly one batch each).
        code = _entered_codes(a, tiers)[0]
        for value in (11.0, 12.0, 13.0, 14.0, 15.0):
            edit_value(a, tiers, code, COUNTY_A, value)
            time.sleep(0.3)
        for county in (a, b):
            submit_and_approve(county, tiers)
        assert_reconciled(tiers)
        # The latest edit stands at every tier, whatever the order of arrival.
        for node in (a, tiers.city, tiers.province):
            assert [v["value"] for v in values_at(node, tiers, COUNTY_A, code)] == [15.0]
        # The faults did happen on both links.
        for proxy in (lower, upper):
            counts = proxy.faults.counts
            assert min(counts.get(k, 0) for k in ("duplicated", "answer_dropped", "replayed")), (
                counts
            )

        # The approval travelled too, through the same faults (recorded after the values,
        # it may still be on its way when they reconcile).
        def approved_at_province() -> bool:
            sid = tiers.system[PROVINCE]["id"]
            with tiers.province.api() as c:
                r = c.get(f"/api/v1/submissions/{sid}/{COUNTY_A}/{PERIOD}")
            assert r.status_code == 200, r.text
            return bool(r.json()["state"] == "approved")

        wait_for(approved_at_province, what="the approval at the province")
    finally:
        lower.stop()
        upper.stop()


def test_corrupted_batches_refused_whole_and_a_revoked_county_readmitted(
    process_tiers: ProcessTiers,
) -> None:
    tiers = process_tiers
    city = tiers.city
    a, b = tiers.counties[COUNTY_A], tiers.counties[COUNTY_B]
    enter_values(a, tiers)
    wait_for(lambda: checksum(city, tiers, COUNTY_A) == checksum(a, tiers, COUNTY_A))
    old_secret = b.settings.credential_secret()
    assert old_secret

    # The city revokes county 360124: its pushes are refused and dead-letter with the
    # reason; nothing of its new values reaches the city.
    with city.api() as c:
        r = c.post("/api/v1/nodes/node-360124/revoke", json={"reason": "设备丢失"})
        assert r.status_code == 200 and r.json()["state"] == "revoked", r.text
    enter_values(b, tiers)
    dead = wait_for(
        lambda: [link for link in push_links(b) if link["state"] == "dead_letter"],
        what="county 360124's push dead-lettered",
    )[0]
    assert "sync-credential-revoked" in dead["last_error"] and "设备丢失" in dead["last_error"]
    assert dead["pending"] == dead["head_seq"] > 0 and dead["last_acked_seq"] == 0
    assert checksum(city, tiers, COUNTY_B)[0] == 0

    # Re-admission: a new credential; the old one stays dead. The county stores the new one;
    # its link stays dead-lettered until an operator revives it, so its undelivered changes
    # make real batches for the tampering below.
    with city.api() as c:
        r = c.post("/api/v1/nodes/node-360124/reinstate")
        assert r.status_code == 200, r.text
        new_secret = r.json()["secret"]
        assert r.json()["node_id"] == "node-360124" and new_secret != old_secret
        listed = {n["node_id"]: n for n in c.get("/api/v1/nodes").json()}
        assert listed["node-360124"]["state"] == "approved"
        assert c.post("/api/v1/nodes/node-360124/reinstate").status_code == 409
    b.settings.store_credential(new_secret)

    pending = outbox(b)
    assert len(pending) == dead["head_seq"]

    def post(body: bytes) -> httpx.Response:
        with httpx.Client(base_url=city.url, timeout=30.0) as anon:
            return anon.post(
                "/api/v1/sync/indicator/batches",
                content=body,
                headers={"content-type": "application/json"},
            )

    def batch_of(changes: list[Change], origins: dict[str, str], secret: str) -> Batch:
        return build_batch(
            sender=b.node_id, service="indicator", origins=origins, changes=changes, secret=secret
        )

    own = {b.node_id: COUNTY_B}
    # The revoked secret no longer verifies.
    r = post(batch_of(pending, own, old_secret).encode())
    assert r.status_code == 401 and r.json()["type"].endswith("sync-bad-signature"), r.text

    # One change's value altered on the way, digest and MAC kept: refused whole, naming the
    # digest; with the digest recomputed, the MAC no longer matches.
    valid = batch_of(pending, own, new_secret)
    doc = json.loads(valid.encode())
    doc["changes"][0]["payload"]["value"] = 999_999.0
    r = post(json.dumps(doc).encode())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("sync-digest-mismatch")
    altered = parse_batch(doc)
    doc["digest"] = batch_digest(altered.sender, altered.service, altered.origins, altered.changes)
    r = post(json.dumps(doc).encode())
    assert r.status_code == 401 and r.json()["type"].endswith("sync-bad-signature"), r.text

    # A batch with one change about another county's region: refused whole (403).
    moved = [*pending]
    first = moved[0]
    moved[0] = Change(
        first.origin,
        first.seq,
        first.entity,
        first.key.replace(COUNTY_B, COUNTY_A),
        first.op,
        {**first.payload, "region_code": COUNTY_A},
    )
    r = post(batch_of(moved, own, new_secret).encode())
    assert r.status_code == 403 and r.json()["type"].endswith("sync-out-of-scope"), r.text
    # 360124's credential relaying 360121's own stream: refused whole.
    r = post(batch_of(outbox(a), {a.node_id: COUNTY_A}, new_secret).encode())
    assert r.status_code == 403 and r.json()["type"].endswith("sync-out-of-scope"), r.text
    assert checksum(city, tiers, COUNTY_B)[0] == 0
    assert link_of(b, "push", b.node_id)["state"] == "dead_letter"

    # The untouched batch of the first changes is taken: the refusals were the tampering's.
    r = post(batch_of(pending[:5], own, new_secret).encode())
    assert r.status_code == 200 and r.json()["applied"] == 5, r.text
    assert r.json()["acks"] == {b.node_id: 5}

    # The operator revives the link (admin only); the county sends the rest from the ack.
    with httpx.Client(base_url=b.url, timeout=30.0) as anon:
        assert anon.post("/api/v1/sync/retry").status_code == 401
    with b.api() as c:
        assert c.post("/api/v1/sync/retry", params={"service": "nope"}).status_code == 404
        r = c.post("/api/v1/sync/retry", params={"service": "report"})
        assert r.status_code == 200, r.text
        assert list(r.json()["services"]) == ["report"]
        assert r.json()["services"]["report"]["revived"] == 0
        assert link_of(b, "push", b.node_id)["state"] == "dead_letter"
        r = c.post("/api/v1/sync/retry")
        assert r.status_code == 200, r.text
        assert r.json()["services"]["indicator"]["revived"] == 1
    wait_for(lambda: link_of(b, "push", b.node_id)["pending"] == 0, what="the county resumed")
    assert link_of(b, "push", b.node_id)["state"] == "active"
    assert audit(b, path="/api/v1/sync/retry")[0]["detail"]["revived"]["indicator"] == 1
    for county in (a, b):
        submit_and_approve(county, tiers)
    got = assert_reconciled(tiers)
    assert got[COUNTY_B][0] >= len({c.key for c in pending if c.entity == "indicator_value"})


def test_county_offline_for_thousands_of_changes_resumes_from_its_ack(
    process_tiers: ProcessTiers,
) -> None:
    tiers = process_tiers
    city, province = tiers.city, tiers.province
    b = tiers.counties[COUNTY_B]
    # A first delivery: the county's link has an acknowledgement to resume from, more than
    # a batch beyond the start of its stream.
    regions = [COUNTY_B, *streets(b)]
    enter_values(b, tiers, regions=regions, seed=1)
    wait_for(lambda: checksum(city, tiers, COUNTY_B) == checksum(b, tiers, COUNTY_B))
    acked = link_of(b, "push", b.node_id)["last_acked_seq"]
    assert acked > BATCH_SIZE

    city.stop()
    for seed in (2, 3, 4):
        enter_values(b, tiers, regions=regions, seed=seed)
    # A few values edited five times each; one deleted.
    codes = _entered_codes(b, tiers)
    edited, gone = codes[:3], codes[3]
    latest: dict[str, float] = {}
    for code in edited:
        (current,) = values_at(b, tiers, COUNTY_B, code)
        for step in range(1, 6):
            latest[code] = round(float(current["value"]) * (1 - step / 100), 4)
            edit_value(b, tiers, code, COUNTY_B, latest[code])
    (doomed,) = values_at(b, tiers, COUNTY_B, gone)
    with b.api() as c:
        r = c.delete(f"/api/v1/values/{doomed['id']}", params={"reason": "误填"})
        assert r.status_code == 204, r.text
    submit_and_approve(b, tiers)

    link = link_of(b, "push", b.node_id)
    assert link["last_acked_seq"] == acked and link["last_error"]
    offline = link["pending"]
    assert offline > 1500 and link["head_seq"] == acked + offline

    since = datetime.now(UTC).isoformat()
    city.start()
    assert_reconciled(tiers)

    # The latest edit of each value at the province, the deleted one gone everywhere.
    for code, value in latest.items():
        assert [v["value"] for v in values_at(province, tiers, COUNTY_B, code)] == [value]
    for node in (b, city, province):
        assert values_at(node, tiers, COUNTY_B, gone) == []
    # Resumed from the acknowledgement, not from 1: the city acknowledges the county's head;
    # after coming back it applied exactly what was pending and saw at most one batch again
    # (resent after a lost answer), not the whole stream (its audit log of the batches).
    head = link_of(b, "push", b.node_id)["head_seq"]
    assert link_of(b, "push", b.node_id)["last_acked_seq"] == head
    assert link_of(city, "receive", b.node_id)["last_acked_seq"] == head
    received = audit(
        city,
        actor=f"node:{b.node_id}",
        path="/api/v1/sync/indicator/batches",
        status=200,
        since=since,
    )
    applied = sum(int(row["detail"]["applied"]) for row in received)
    duplicates = sum(int(row["detail"]["duplicates"]) for row in received)
    assert applied == offline and duplicates <= BATCH_SIZE < acked, (applied, duplicates)
