"""Node registry at a parent's gateway: join, approve, pick up once, rotate, revoke."""

from __future__ import annotations

from sqlalchemy import select

from gateway import nodes
from gateway.node_models import NodeCredential
from shared.sync import BATCH_HEADER, Batch, Change, build_batch
from tests.federation.conftest import Tiers
from tests.federation.helpers import gateway_db


def city_batch(secret: str, changes: list[Change] | None = None) -> Batch:
    """A batch of node-360100 (city 360100) about itself, signed with ``secret``."""
    return build_batch(
        sender="node-360100",
        service="indicator",
        origins={"node-360100": "360100"},
        changes=changes or [],
        secret=secret,
    )


def test_join_approve_pickup_rotate_revoke(tiers: Tiers) -> None:
    province = tiers.province.start()
    province.login_admin()
    anon = province.client()
    anon.headers.clear()
    admin = province.client()

    # Out of the province, or a tier that does not match the region: refused, field named.
    r = anon.post(
        "/api/v1/nodes/join",
        json={"node_id": "node-440100", "region_code": "440100", "tier": "city"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "region_code"
    r = anon.post(
        "/api/v1/nodes/join",
        json={"node_id": "node-360100", "region_code": "360100", "tier": "county"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "tier"

    r = anon.post(
        "/api/v1/nodes/join",
        json={"node_id": "node-360100", "region_code": "360100", "tier": "city", "name": "南昌"},
    )
    assert r.status_code == 202, r.text
    request_id, token = r.json()["request_id"], r.json()["pickup_token"]
    r = anon.post(
        "/api/v1/nodes/join",
        json={"node_id": "node-360100", "region_code": "360100", "tier": "city"},
    )
    assert r.status_code == 409

    # Before approval: pending; approving needs the parent's admin.
    r = anon.get(f"/api/v1/nodes/join/{request_id}", params={"token": token})
    assert r.json() == {"node_id": "node-360100", "state": "requested"}
    assert anon.post("/api/v1/nodes/node-360100/approve").status_code == 401
    r = anon.get(f"/api/v1/nodes/join/{request_id}", params={"token": "wrong-token-xx"})
    assert r.status_code == 404

    r = admin.post("/api/v1/nodes/node-360100/approve")
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text
    r = anon.get(f"/api/v1/nodes/join/{request_id}", params={"token": token})
    assert r.status_code == 200, r.text
    first = r.json()["secret"]
    # Once only.
    assert anon.get(f"/api/v1/nodes/join/{request_id}", params={"token": token}).status_code == 404

    # The secret is stored encrypted, not in clear.
    db = gateway_db(province)
    try:
        with db.session() as session:
            blobs = [bytes(b) for b in session.scalars(select(NodeCredential.secret_enc))]
            assert blobs and all(first.encode() not in b for b in blobs)
            assert nodes.authenticate_node(session, province.settings, "node-360100").secrets == (
                first,
            )
    finally:
        db.dispose()

    # Rotation: both secrets verify during the grace period, the new one first.
    r = admin.post("/api/v1/nodes/node-360100/rotate")
    assert r.status_code == 200, r.text
    second = r.json()["secret"]
    db = gateway_db(province)
    try:
        with db.session() as session:
            auth = nodes.authenticate_node(session, province.settings, "node-360100")
            assert auth.secrets == (second, first)
            assert auth.region_code == "360100"
    finally:
        db.dispose()

    # A batch signed with a wrong secret is refused at the gateway with a reason.
    batch = city_batch("not-the-secret")
    r = anon.post("/api/v1/sync/indicator/batches", content=batch.encode())
    assert r.status_code == 401 and "sync-bad-signature" in r.json()["type"], r.text
    # Signed right, it passes the gateway; the service then judges the content (an entity
    # it does not know: rejected whole, naming the row).
    ok = city_batch(
        first,
        [Change("node-360100", 1, "no_such_entity", "k", "upsert", {"region_code": "360100"})],
    )
    r = anon.post("/api/v1/sync/indicator/batches", content=ok.encode())
    assert r.status_code == 422 and "sync-malformed" in r.json()["type"], r.text
    assert "no_such_entity" in str(r.json()["errors"])
    # Pushers repeat the header in x-checkup-batch (the gateway then reads no changes): the
    # same verdict. A body other than the batch that header signs is refused, even one
    # signed right itself; so is a header without a valid signature or shape.
    signed = {BATCH_HEADER: ok.encode_header()}
    r = anon.post("/api/v1/sync/indicator/batches", content=ok.encode(), headers=signed)
    assert r.status_code == 422 and "no_such_entity" in str(r.json()["errors"]), r.text
    other = city_batch(first)
    r = anon.post("/api/v1/sync/indicator/batches", content=other.encode(), headers=signed)
    assert r.status_code == 401 and "sync-bad-signature" in r.json()["type"], r.text
    assert "网关验证签名" in r.json()["detail"]
    r = anon.post(
        "/api/v1/sync/indicator/batches",
        content=ok.encode(),
        headers={BATCH_HEADER: batch.encode_header()},
    )
    assert r.status_code == 401 and "sync-bad-signature" in r.json()["type"], r.text
    r = anon.post(
        "/api/v1/sync/indicator/batches", content=ok.encode(), headers={BATCH_HEADER: "[1]"}
    )
    assert r.status_code == 422 and "sync-malformed" in r.json()["type"], r.text

    # Revoked: every secret stops at once, with the reason the child will see.
    r = admin.post("/api/v1/nodes/node-360100/revoke", json={"reason": "设备报废"})
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    again = city_batch(second)
    r = anon.post("/api/v1/sync/indicator/batches", content=again.encode())
    assert r.status_code == 401 and "revoked" in r.json()["type"], r.text
    assert "设备报废" in r.json()["detail"]

    listed = admin.get("/api/v1/nodes").json()
    assert [(n["node_id"], n["state"]) for n in listed] == [("node-360100", "revoked")]

    # Re-admitted by the admin: a new secret works, the revoked ones stay dead.
    assert anon.post("/api/v1/nodes/node-360100/reinstate").status_code == 401
    r = admin.post("/api/v1/nodes/node-360100/reinstate")
    assert r.status_code == 200, r.text
    third = r.json()["secret"]
    assert third not in (first, second)
    listed = admin.get("/api/v1/nodes").json()
    assert [(n["node_id"], n["state"], n["revoke_reason"]) for n in listed] == [
        ("node-360100", "approved", None)
    ]
    r = anon.post("/api/v1/sync/indicator/batches", content=again.encode())
    assert r.status_code == 401 and "sync-bad-signature" in r.json()["type"], r.text
    fresh = city_batch(third, ok.changes)
    r = anon.post("/api/v1/sync/indicator/batches", content=fresh.encode())
    assert r.status_code == 422 and "sync-malformed" in r.json()["type"], r.text
    r = admin.post("/api/v1/nodes/node-360100/reinstate")
    assert r.status_code == 409 and r.json()["type"].endswith("invalid-state")
    # Both the revocation and the re-admission are in the audit log.
    paths = [
        e["path"] for e in admin.get("/api/v1/audit", params={"actor": "admin"}).json()["items"]
    ]
    assert "/api/v1/nodes/node-360100/reinstate" in paths
    assert "/api/v1/nodes/node-360100/revoke" in paths
    anon.close()
    admin.close()
