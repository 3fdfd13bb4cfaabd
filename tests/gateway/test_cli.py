"""The command line creates the first admin (no default credentials) and manages API keys."""

from __future__ import annotations

import argparse
import io
import json

import pytest
from fastapi.testclient import TestClient

from gateway.cli import register
from shared.settings import NodeSettings
from tests.gateway.conftest import assert_problem, login, node_client


def _run(settings: NodeSettings, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True), lambda _args: settings)
    args = parser.parse_args(list(argv))
    result: int = args.func(args)
    return result


def test_first_admin_and_api_keys_from_the_command_line(
    node_settings: NodeSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with node_client(node_settings) as gw:
        # A fresh node has no account at all.
        r = gw.post("/api/v1/auth/login", json={"username": "admin", "password": "admin"})
        assert_problem(r, 401, "invalid-credentials")

    monkeypatch.setattr("sys.stdin", io.StringIO("too-simple\n"))
    assert _run(node_settings, "users", "create", "--username", "admin", "--password-stdin") == 2
    assert "复杂度" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("Chief#Start2025\n"))
    assert _run(node_settings, "users", "create", "--username", "admin", "--password-stdin") == 0
    capsys.readouterr()
    assert _run(node_settings, "api-keys", "create", "--name", "统计局", "--days", "10") == 0
    issued = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert _run(node_settings, "api-keys", "list") == 0
    listing = capsys.readouterr().out
    assert issued["key_id"] in listing and issued["key"] not in listing

    with node_client(node_settings) as gw:
        admin = login(gw, "admin", "Chief#Start2025")
        assert gw.get("/api/v1/auth/me", headers={"X-API-Key": issued["key"]}).status_code == 200
        assert _run(node_settings, "api-keys", "revoke", issued["key_id"]) == 0
        _wait_for_revalidation(gw)
        r = gw.get("/api/v1/auth/me", headers={"X-API-Key": issued["key"]})
        assert_problem(r, 401, "api-key-revoked")
        rows = gw.get("/api/v1/audit", headers=admin).json()["items"]
        cli_rows = {x["path"]: x for x in rows if x["actor_kind"] == "cli"}
        assert set(cli_rows) == {"users create", "api-keys create", "api-keys revoke"}
        assert cli_rows["api-keys revoke"]["detail"] == {"key_id": issued["key_id"]}


def _wait_for_revalidation(gw: TestClient) -> None:
    # The command line changed the database behind this gateway's back: the cache
    # notices within session_revalidate_s. Move the gateway's clock past it.
    rt = gw.app.state.gateway  # type: ignore[attr-defined]
    now = rt.clock()
    rt.clock = lambda: now + rt.settings.session_revalidate_s + 1
