"""Logins, sessions and the level-3 controls: complexity, lockout, idle timeout — both databases."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway import accounts
from shared.db import Database
from shared.dbtypes import utcnow
from shared.errors import ValidationFailed
from shared.settings import NodeSettings
from tests.gateway.conftest import PASSWORD, Clock, add_user, assert_problem, login, node_client


def test_login_me_logout(gw: TestClient) -> None:
    r = gw.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["idle_timeout_s"] == 30 * 60
    assert body["user"]["roles"] == ["admin"]
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = gw.get("/api/v1/auth/me", headers=headers).json()
    assert me == {
        "subject": "root",
        "kind": "user",
        "roles": ["admin"],
        "region": "360121",
        "name": "",
        "node": "node-360121",
    }
    # The token reaches the services as the signed identity they check.
    tree = gw.get("/api/v1/regions/360121/tree", params={"depth": 1}, headers=headers)
    assert tree.status_code == 200
    assert tree.json()["name"] == "南昌县"
    assert gw.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert_problem(gw.get("/api/v1/auth/me", headers=headers), 401, "session-revoked")
    assert_problem(gw.get("/api/v1/regions/360121", headers=headers), 401, "session-revoked")


def test_bad_credentials_and_tokens_are_problems(gw: TestClient) -> None:
    r = gw.post("/api/v1/auth/login", json={"username": "root", "password": "Wrong#Pass123"})
    assert_problem(r, 401, "invalid-credentials")
    r = gw.post("/api/v1/auth/login", json={"username": "nobody", "password": "Wrong#Pass123"})
    assert_problem(r, 401, "invalid-credentials")
    assert_problem(gw.get("/api/v1/regions/360121"), 401, "unauthorized")
    bad = {"Authorization": "Bearer not.a.token"}
    assert_problem(gw.get("/api/v1/regions/360121", headers=bad), 401, "invalid-token")
    assert_problem(gw.get("/api/v1/auth/me", headers={"Authorization": "Basic eDp5"}), 401)
    body = assert_problem(gw.post("/api/v1/auth/login", json={"username": "root"}), 422)
    assert body["errors"][0]["field"] == "body.password"


def test_password_complexity_on_create_and_change(
    gw: TestClient, node_settings: NodeSettings
) -> None:
    admin = login(gw, "root")
    for weak, expected in (
        ("short1A!", "至少 10 位"),
        ("alllowercaseletters", "至少三类"),
        ("Carol#2025carol", "用户名"),
    ):
        r = gw.post(
            "/api/v1/users",
            headers=admin,
            json={
                "username": "carol",
                "password": weak,
                "roles": ["viewer"],
                "region_code": "360121",
            },
        )
        body = assert_problem(r, 422, "validation-failed")
        assert all(e["field"] == "password" for e in body["errors"])
        assert any(expected in e["message"] for e in body["errors"]), body
    assert gw.get("/api/v1/users", headers=admin).json()["items"][0]["username"] == "root"
    assert len(gw.get("/api/v1/users", headers=admin).json()["items"]) == 1  # nothing stored

    # The command-line path applies the same rule.
    db = Database(*node_settings.database_for("gateway"))
    with pytest.raises(ValidationFailed), db.session() as session:
        accounts.create_user(
            session, "dave", "password", ["admin"], "360121", settings=node_settings
        )
    db.dispose()

    r = gw.post(
        "/api/v1/auth/password",
        headers=admin,
        json={"current_password": PASSWORD, "new_password": "weakweakweak"},
    )
    assert assert_problem(r, 422)["errors"][0]["field"] == "new_password"
    r = gw.post(
        "/api/v1/auth/password",
        headers=admin,
        json={"current_password": PASSWORD, "new_password": "Another#Pass2026"},
    )
    assert r.status_code == 204
    # Old password is gone, new one works, the current session goes on.
    r = gw.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD})
    assert_problem(r, 401, "invalid-credentials")
    assert gw.get("/api/v1/auth/me", headers=admin).status_code == 200
    login(gw, "root", "Another#Pass2026")


def test_lockout_after_repeated_failures(gw: TestClient, clock: Clock) -> None:
    add_user(gw.app.state.settings, "erin", ("data_entry",))  # type: ignore[attr-defined]
    for _ in range(4):
        r = gw.post("/api/v1/auth/login", json={"username": "erin", "password": "Bad#guess123"})
        assert_problem(r, 401, "invalid-credentials")
    r = gw.post("/api/v1/auth/login", json={"username": "erin", "password": "Bad#guess123"})
    body = assert_problem(r, 423, "account-locked")
    assert "locked_until" in body
    # Locked: even the right password is refused, with a Retry-After.
    r = gw.post("/api/v1/auth/login", json={"username": "erin", "password": PASSWORD})
    assert_problem(r, 423, "account-locked")
    assert 29 * 60 <= int(r.headers["retry-after"]) <= 30 * 60
    clock.advance(29 * 60)
    assert_problem(
        gw.post("/api/v1/auth/login", json={"username": "erin", "password": PASSWORD}), 423
    )
    clock.advance(61)
    headers = login(gw, "erin")
    assert gw.get("/api/v1/auth/me", headers=headers).json()["roles"] == ["data_entry"]
    # A success resets the count: four new failures do not lock.
    for _ in range(4):
        gw.post("/api/v1/auth/login", json={"username": "erin", "password": "Bad#guess123"})
    login(gw, "erin")


def test_admin_unlocks_and_lockout_suspends_sessions(gw: TestClient) -> None:
    settings = gw.app.state.settings  # type: ignore[attr-defined]
    uid = add_user(settings, "frank", ("viewer",))
    frank = login(gw, "frank")
    for _ in range(5):
        gw.post("/api/v1/auth/login", json={"username": "frank", "password": "Bad#guess123"})
    # The open session of a locked account stops at once on this gateway.
    assert_problem(gw.get("/api/v1/auth/me", headers=frank), 423, "account-locked")
    admin = login(gw, "root")
    r = gw.post(f"/api/v1/users/{uid}/unlock", headers=admin)
    assert r.status_code == 200 and r.json()["locked_until"] is None
    login(gw, "frank")


def test_idle_timeout_and_write_behind(gw: TestClient, clock: Clock) -> None:
    headers = login(gw, "root")
    # Activity every 20 minutes keeps the session alive well past 30 minutes.
    for _ in range(4):
        clock.advance(20 * 60)
        assert gw.get("/api/v1/auth/me", headers=headers).status_code == 200
    clock.advance(31 * 60)
    assert_problem(gw.get("/api/v1/auth/me", headers=headers), 401, "session-idle")
    # Ended for good, also after a fresh start of the cache.
    gw.app.state.gateway.auth._sessions.clear()  # type: ignore[attr-defined]
    assert_problem(gw.get("/api/v1/auth/me", headers=headers), 401, "session-idle")


def test_last_seen_is_shared_between_gateway_processes(
    node_settings: NodeSettings, clock: Clock
) -> None:
    """A second gateway (another replica) honours activity the first one wrote behind."""
    add_user(node_settings, "root")
    with node_client(node_settings, clock) as first:
        headers = login(first, "root")
        clock.advance(25 * 60)
        assert first.get("/api/v1/auth/me", headers=headers).status_code == 200
    with node_client(node_settings, clock) as second:
        clock.advance(25 * 60)  # 50 min after login, 25 min after the last activity
        assert second.get("/api/v1/auth/me", headers=headers).status_code == 200
        clock.advance(31 * 60)
        assert_problem(second.get("/api/v1/auth/me", headers=headers), 401, "session-idle")


def test_session_maximum_age(gw: TestClient, clock: Clock) -> None:
    headers = login(gw, "root")
    for _ in range(12 * 3):
        clock.advance(20 * 60)
        gw.get("/api/v1/auth/me", headers=headers)
    assert_problem(gw.get("/api/v1/auth/me", headers=headers), 401, "session-expired")


def test_revocation_elsewhere_is_seen_within_the_revalidation_bound(
    gw: TestClient, clock: Clock
) -> None:
    settings = gw.app.state.settings  # type: ignore[attr-defined]
    uid = add_user(settings, "gina", ("viewer",))
    headers = login(gw, "gina")
    assert gw.get("/api/v1/auth/me", headers=headers).status_code == 200
    # Another replica (here: straight in the database) deactivates the user.
    db = Database(*settings.database_for("gateway"))
    with db.session() as session:
        accounts.revoke_user_sessions(session, uid, "deactivated", utcnow())
    db.dispose()
    assert gw.get("/api/v1/auth/me", headers=headers).status_code == 200  # cached
    clock.advance(settings.session_revalidate_s)
    assert_problem(gw.get("/api/v1/auth/me", headers=headers), 401, "session-revoked")


def test_admin_password_reset_ends_sessions(gw: TestClient) -> None:
    settings = gw.app.state.settings  # type: ignore[attr-defined]
    uid = add_user(settings, "hank", ("viewer",))
    hank = login(gw, "hank")
    admin = login(gw, "root")
    r = gw.post(
        f"/api/v1/users/{uid}/password", headers=admin, json={"new_password": "Fresh#Pass2026"}
    )
    assert r.status_code == 200
    assert_problem(gw.get("/api/v1/auth/me", headers=hank), 401, "session-revoked")
    login(gw, "hank", "Fresh#Pass2026")
