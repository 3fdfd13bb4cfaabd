"""Steps shared by the three-tier tests: registering the children, reading node storage."""

from __future__ import annotations

from typing import Any

from checkup.cluster import link_child
from shared.db import Database
from tests.federation.conftest import LiveNode, Tiers


def gateway_db(node: LiveNode) -> Database:
    url, schema = node.settings.database_for("gateway")
    return Database(url, schema=schema)


def join_through_http(parent: LiveNode, child: LiveNode) -> str:
    """The child asks, the parent's admin approves, the child picks its credential up."""
    with parent.client() as admin:
        r = admin.post(
            "/api/v1/nodes/join",
            headers={"Authorization": ""},
            json={
                "node_id": child.settings.node_id,
                "region_code": child.settings.region_code,
                "tier": child.settings.tier,
            },
        )
        assert r.status_code == 202, r.text
        request_id, token = r.json()["request_id"], r.json()["pickup_token"]
        assert admin.post(f"/api/v1/nodes/{child.settings.node_id}/approve").status_code == 200
        r = admin.get(f"/api/v1/nodes/join/{request_id}", params={"token": token})
        assert r.status_code == 200, r.text
        secret: str = r.json()["secret"]
        return secret


def start_three_tiers(tiers: Tiers) -> None:
    """Province up; the city registered there; the county joined at the city; all running."""
    tiers.province.start()
    tiers.province.login_admin()
    link_child(tiers.province.settings, tiers.city.settings, by="test")
    tiers.city.start()
    tiers.city.login_admin()
    tiers.county.settings.store_credential(join_through_http(tiers.city, tiers.county))
    tiers.county.start()
    tiers.county.login_admin()


def links(node: LiveNode) -> list[dict[str, Any]]:
    """The node's indicator links from GET /api/v1/sync/status."""
    with node.client() as c:
        r = c.get("/api/v1/sync/status")
        assert r.status_code == 200, r.text
        result: list[dict[str, Any]] = r.json()["services"]["indicator"]["links"]
        return result


def system_of(node: LiveNode, code: str) -> dict[str, Any] | None:
    """The node's copy of a system by code (id and checksum), None while not there."""
    from sqlalchemy import select

    from services.indicator.systems.models import IndicatorSystem

    db = node.indicator_db()
    try:
        with db.session() as session:
            row = session.execute(
                select(
                    IndicatorSystem.id,
                    IndicatorSystem.checksum,
                    IndicatorSystem.year,
                    IndicatorSystem.version,
                ).where(IndicatorSystem.code == code)
            ).first()
            if row is None:
                return None
            return {
                "id": row.id,
                "checksum": row.checksum,
                "key": f"{code}@{row.year}@{row.version}",
            }
    finally:
        db.dispose()


def release_starter_at_province(tiers: Tiers) -> dict[str, Any]:
    """Release the starter system at the province and wait for it at the county."""
    from services.indicator.systems.service import load_starter_system
    from tests.federation.waiting import wait_for

    db = tiers.province.indicator_db()
    try:
        with db.session(write=True) as session:
            code = load_starter_system(session, "360000", "省级管理员").code
    finally:
        db.dispose()
    got: dict[str, Any] = wait_for(lambda: system_of(tiers.county, code), what="release")
    got["code"] = code
    return got


def checksum(node: LiveNode, system: str, period: str, region: str) -> dict[str, Any]:
    with node.client() as c:
        r = c.get(
            "/api/v1/values/checksum",
            params={"system": system, "period": period, "region_code": region},
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result
