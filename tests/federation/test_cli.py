"""`checkup nodes …` and `checkup sync status` on a city node's own storage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkup.cli import main
from shared.settings import NodeSettings
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
    # Rotating a revoked node is refused.
    assert _run(city, "nodes", "rotate", "node-360121") == 2

    assert _run(city, "sync", "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["node"] == "node-360100" and "indicator" in status["services"]
    assert _run(city, "sync", "status") == 0
    assert "pending" in capsys.readouterr().out
