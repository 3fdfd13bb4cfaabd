"""Only a node with a parent records its value writes for pushing up."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.indicator.app import create_app
from services.indicator.sync.tables import SYNC
from services.indicator.sync.values import VALUE_ENTITY
from shared.db import Database
from shared.settings import NodeSettings
from tests.conftest import identity_headers


def _import_and_count(settings: NodeSettings) -> int:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(identity_headers(settings, settings.region_code, "admin"))
        sid = client.post("/api/v1/systems/starter").json()["id"]
        r = client.post(
            "/api/v1/values/import",
            params={"system_id": sid, "period": "2025", "source": "self_checkup"},
            content=b"indicator_code,region_code,value\nD-06,360121,80\nH-01,360121,3\n",
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["rows_applied"] == 2
    db = Database(*settings.database_for("indicator"))
    try:
        with db.session() as session:
            counted = select(func.count()).where(SYNC.outbox.c.entity == VALUE_ENTITY)
            return int(session.scalar(counted) or 0)
    finally:
        db.dispose()


def test_a_top_node_keeps_no_outbox(node_settings: NodeSettings) -> None:
    # Nothing would ever drain (or prune) value changes without a parent (the catalog
    # stream for children is another matter: children pull it).
    assert _import_and_count(node_settings) == 0


def test_a_node_with_a_parent_records_each_write(node_settings: NodeSettings) -> None:
    # The parent is unreachable here: the writes wait in the outbox.
    settings = node_settings.model_copy(update={"parent_url": "http://127.0.0.1:9"})
    assert _import_and_count(settings) == 2
