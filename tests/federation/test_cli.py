"""`checkup nodes …` and `checkup sync status|retry` on a city node's own storage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from checkup.cli import main
from gateway.models import AuditEntry
from gateway.node_cli import federated_tables, status_of
from shared.db import Database
from shared.settings import NodeSettings, ServiceName
from shared.sync.links import note_failure
from tests.dbs import Template


@pytest.fixture
def city(template: Template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NodeSettings:
    settings, cleanup = template.clone(tmp_path / "city", region_code="360100")
    monkeypatch.setenv("CHECKUP_NODE_ID", "node-360100")
    if settings.database_url:
        monkeypatch.setenv("CHECKUP_DATABASE_URL", settings.database_url)
    yield settings  # type: ignore[misc]
    cleanup()  # type: ignore[operator]


def _run(settings: NodeSettings, *argv: str) -> int:
    return main(["--data-dir", str(settings.data_dir), "--region", "360100", *argv])


def test_nodes_commands_and_status(city: NodeSettings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(city, "nodes", "add-child", "--node-id", "node-360121", "--region", "360121") == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["node_id"] == "node-360121" and len(issued["secret"]) >= 40

    # Another city's county is not this city's to register; the field is named.
    assert _run(city, "nodes", "add-child", "--node-id", "x", "--region", "360203") == 2
    assert "region_code" in capsys.readouterr().err

    assert _run(city, "nodes", "rotate", "node-360121") == 0
    rotated = json.loads(capsys.readouterr().out)
    assert rotated["secret"] != issued["secret"]
    assert _run(city, "nodes", "revoke", "node-360121", "--reason", "停用") == 0
    capsys.readouterr()
    assert _run(city, "nodes", "list") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(n["node_id"], n["state"], n["revoke_reason"]) for n in listed] == [
        ("node-360121", "revoked", "停用")
    ]
    # Rotating a revoked node is refused; re-admitting it issues a new secret.
    assert _run(city, "nodes", "rotate", "node-360121") == 2
    assert _run(city, "nodes", "reinstate", "node-360121") == 0
    readmitted = json.loads(capsys.readouterr().out)
    assert readmitted["secret"] not in (issued["secret"], rotated["secret"])
    assert _run(city, "nodes", "list") == 0
    assert [(n["node_id"], n["state"]) for n in json.loads(capsys.readouterr().out)] == [
        ("node-360121", "approved")
    ]
    assert _run(city, "nodes", "reinstate", "node-360121") == 2  # not revoked
    capsys.readouterr()

    assert _run(city, "sync", "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["node"] == "node-360100"
    assert set(status["services"]) == set(federated_tables())
    assert {"indicator", "report"} <= set(status["services"])
    assert _run(city, "sync", "status") == 0
    assert "pending" in capsys.readouterr().out


def _dead_letter(settings: NodeSettings, service: ServiceName) -> None:
    url, schema = settings.database_for(service)
    db = Database(url, schema=schema)
    try:
        with db.session(write=True) as session:
            note_failure(
                session,
                federated_tables()[service],
                "push",
                "parent",
                "node-360100",
                error="HTTP 401 sync-credential-revoked: 设备丢失",
                permanent=True,
                dead_letter_after=0,
            )
    finally:
        db.dispose()


def _states(settings: NodeSettings) -> dict[str, list[str]]:
    return {
        name: [link["state"] for link in doc["links"] if link["kind"] == "push"]
        for name, doc in status_of(settings)["services"].items()
    }


def test_sync_retry_revives_dead_links_of_every_service(
    city: NodeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    for service in ("indicator", "report"):
        _dead_letter(city, service)
    assert _states(city)["indicator"] == ["dead_letter"]
    assert _run(city, "sync", "status") == 0
    assert "sync-credential-revoked" in capsys.readouterr().out

    # One service only.
    assert _run(city, "sync", "retry", "--service", "report") == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"node": "node-360100", "revived": {"report": 1}}
    assert _states(city)["report"] == ["active"]
    assert _states(city)["indicator"] == ["dead_letter"]

    # Every service; already active links are left as they are.
    assert _run(city, "sync", "retry") == 0
    revived = json.loads(capsys.readouterr().out)["revived"]
    assert revived["indicator"] == 1 and revived["report"] == 0
    assert set(revived) == set(federated_tables())
    assert _states(city)["indicator"] == ["active"]

    # Audited like the other commands.
    url, schema = city.database_for("gateway")
    db = Database(url, schema=schema)
    try:
        with db.session() as session:
            rows = session.scalars(
                select(AuditEntry).where(AuditEntry.path == "sync retry").order_by(AuditEntry.id)
            ).all()
            assert [(r.detail or {})["revived"]["report"] for r in rows] == [1, 0]
            assert rows[0].actor.startswith("cli:")
    finally:
        db.dispose()
