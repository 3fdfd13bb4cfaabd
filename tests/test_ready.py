"""Readiness (``/ready``) of a service and of the gateway: 200 at the migration head, 503
with the revisions when a migration is pending."""

from __future__ import annotations

from fastapi.testclient import TestClient

from checkup.node import package_dirs
from gateway.app import create_app as create_gateway
from services.survey.app import create_app as create_survey
from shared.db import Database
from shared.migrate import downgrade, head_revision, upgrade
from shared.settings import NodeSettings


def _storage(settings: NodeSettings, service: str) -> Database:
    url, schema = settings.database_for(service)  # type: ignore[arg-type]
    return Database(url, schema=schema)


def test_a_service_is_ready_at_its_head_and_not_with_a_migration_pending(
    node_settings: NodeSettings,
) -> None:
    pkg, _spatial = package_dirs()["survey"]
    db = _storage(node_settings, "survey")
    try:
        head = head_revision(pkg, db)
        with TestClient(create_survey(node_settings)) as client:
            r = client.get("/ready")
            assert r.status_code == 200
            assert r.json() == {"status": "ok", "revision": head, "head": head}

            downgrade(pkg, db, "-1")
            r = client.get("/ready")
            assert r.status_code == 503
            body = r.json()
            assert body["status"] == "migrations-pending"
            assert body["head"] == head and body["revision"] not in (None, head)

            upgrade(pkg, db)
            assert client.get("/ready").status_code == 200
    finally:
        db.dispose()


def test_the_gateway_names_a_pending_migration_and_an_undiscovered_service(
    node_settings: NodeSettings,
) -> None:
    pkg, _spatial = package_dirs()["gateway"]
    db = _storage(node_settings, "gateway")
    # The survey service in-process; the report service configured at an address where
    # nothing answers (given up on after 0.5 s at start-up); the indicator not configured.
    settings = node_settings.model_copy(
        update={"report_url": "http://127.0.0.1:9", "discovery_timeout_s": 0.5}
    )
    try:
        head = head_revision(pkg, db)
        services = {"survey": create_survey(settings)}
        with TestClient(create_gateway(settings, services)) as client:
            r = client.get("/ready")
            assert r.status_code == 503
            assert r.json() == {
                "status": "degraded",
                "revision": head,
                "services": ["survey"],
                "problems": ["service report not discovered"],
            }

            downgrade(pkg, db, "-1")
            body = client.get("/ready").json()
            assert body["problems"][0].startswith("migrations pending (")
            assert body["problems"][0].endswith(f" → {head})")
            assert body["problems"][1:] == ["service report not discovered"]
            upgrade(pkg, db)
    finally:
        db.dispose()
