"""API keys, roles and region scope, limits, request ids, audit, OpenAPI — both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.testclient import TestClient

from gateway.app import create_app as gateway_app
from services.indicator.app import create_app as indicator_app
from services.report.app import create_app as report_app
from services.survey.app import create_app as survey_app
from shared.app import create_service_app
from shared.identity import CurrentIdentity
from shared.settings import NodeSettings
from tests.gateway.conftest import Clock, add_user, assert_problem, login, node_client


def _key(gw: TestClient, admin: dict[str, str], **over: object) -> dict[str, object]:
    body = {
        "name": "12345 热线系统",
        "roles": ["system"],
        "region_code": "360121",
        "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        **over,
    }
    r = gw.post("/api/v1/api-keys", headers=admin, json=body)
    assert r.status_code == 201, r.text
    out: dict[str, object] = r.json()
    return out


def test_api_keys_work_expire_and_revoke(gw: TestClient, clock: Clock) -> None:
    admin = login(gw, "root")
    issued = _key(gw, admin)
    key = str(issued["key"])
    assert key.startswith("ck_") and str(issued["key_id"]) in key
    listed = gw.get("/api/v1/api-keys", headers=admin).json()
    assert [k["key_id"] for k in listed] == [issued["key_id"]]
    assert "key" not in listed[0]  # never shown again
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        me = gw.get("/api/v1/auth/me", headers=headers).json()
        assert me["kind"] == "api_key" and me["roles"] == ["system"]
        assert gw.get("/api/v1/regions/360121", headers=headers).status_code == 200
    wrong = key[:-3] + ("aaa" if not key.endswith("aaa") else "bbb")
    assert_problem(gw.get("/api/v1/auth/me", headers={"X-API-Key": wrong}), 401, "invalid-api-key")

    r = gw.post(f"/api/v1/api-keys/{issued['key_id']}/revoke", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert_problem(gw.get("/api/v1/auth/me", headers={"X-API-Key": key}), 401, "api-key-revoked")

    in_an_hour = datetime.fromtimestamp(clock.now + 3600, UTC)  # on the gateway's clock
    short = _key(gw, admin, expires_at=in_an_hour.isoformat())
    skey = {"X-API-Key": str(short["key"])}
    assert gw.get("/api/v1/auth/me", headers=skey).status_code == 200
    clock.advance(3601)
    assert_problem(gw.get("/api/v1/auth/me", headers=skey), 401, "api-key-expired")
    admin = login(gw, "root")  # the hour also ended the admin's idle session

    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = gw.post(
        "/api/v1/api-keys",
        headers=admin,
        json={"name": "x", "roles": ["system"], "region_code": "360121", "expires_at": past},
    )
    assert assert_problem(r, 422)["errors"][0]["field"] == "expires_at"
    r = gw.post(
        "/api/v1/api-keys",
        headers=admin,
        json={"name": "x", "roles": ["admin"], "region_code": "360121", "expires_at": past},
    )
    assert assert_problem(r, 422)["errors"][0]["field"] == "roles"


def test_roles_and_region_scope_on_users(gw: TestClient, node_settings: NodeSettings) -> None:
    admin = login(gw, "root")

    def create(headers: dict[str, str], name: str, region: str, roles: list[str]) -> object:
        return gw.post(
            "/api/v1/users",
            headers=headers,
            json={
                "username": name,
                "password": "Scope#Test2025",
                "roles": roles,
                "region_code": region,
            },
        )

    # Outside the node (another county, the city above) is refused and nothing is stored.
    assert assert_problem(create(admin, "x1", "360122", ["viewer"]), 422)["errors"][0]["field"] == (
        "region_code"
    )
    assert_problem(create(admin, "x2", "360100", ["viewer"]), 422)
    assert_problem(create(admin, "x3", "36012", ["viewer"]), 422)
    assert_problem(create(admin, "x4", "360121", ["superuser"]), 422)
    # A street admin inside the node creates users only in the street.
    r = create(admin, "street_admin", "360121001", ["admin"])
    assert r.status_code == 201  # type: ignore[attr-defined]
    street = login(gw, "street_admin", "Scope#Test2025")
    body = assert_problem(create(street, "x5", "360121002", ["viewer"]), 403, "out-of-scope")
    assert "360121002" in body["detail"]
    assert create(street, "community_clerk", "360121001001", ["data_entry"]).status_code == 201  # type: ignore[attr-defined]
    # Each admin lists only their own scope; other users' records are out of reach.
    names = {u["username"] for u in gw.get("/api/v1/users", headers=admin).json()["items"]}
    assert names == {"root", "street_admin", "community_clerk"}
    names = {u["username"] for u in gw.get("/api/v1/users", headers=street).json()["items"]}
    assert names == {"street_admin", "community_clerk"}
    root_id = next(
        u["id"]
        for u in gw.get("/api/v1/users", headers=admin).json()["items"]
        if u["username"] == "root"
    )
    assert_problem(gw.get(f"/api/v1/users/{root_id}", headers=street), 403, "out-of-scope")
    assert_problem(
        gw.patch(f"/api/v1/users/{root_id}", headers=street, json={"is_active": False}), 403
    )
    # Non-admin roles cannot manage users, keys or read the audit.
    clerk = login(gw, "community_clerk", "Scope#Test2025")
    assert_problem(gw.get("/api/v1/users", headers=clerk), 403, "role-required")
    assert_problem(create(clerk, "x6", "360121001001", ["viewer"]), 403, "role-required")
    assert_problem(gw.get("/api/v1/api-keys", headers=clerk), 403, "role-required")
    assert_problem(gw.get("/api/v1/audit", headers=clerk), 403, "role-required")


def test_deactivated_user_is_out_at_once(gw: TestClient) -> None:
    settings = gw.app.state.settings  # type: ignore[attr-defined]
    uid = add_user(settings, "ivan", ("viewer",))
    ivan = login(gw, "ivan")
    admin = login(gw, "root")
    r = gw.patch(f"/api/v1/users/{uid}", headers=admin, json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert_problem(gw.get("/api/v1/auth/me", headers=ivan), 401)
    r = gw.post("/api/v1/auth/login", json={"username": "ivan", "password": "Checkup#2025ok"})
    assert_problem(r, 401, "account-disabled")


def test_services_refuse_calls_without_the_gateway(node_settings: NodeSettings) -> None:
    for factory in (indicator_app, survey_app, report_app):
        with TestClient(factory(node_settings), raise_server_exceptions=False) as client:
            assert_problem(client.get("/api/v1/regions/360121"), 401, "unauthorized")
            forged = {"x-checkup-identity": "eyJzdWIiOiJ4In0.AAAA"}
            assert_problem(client.get("/api/v1/anything", headers=forged), 401)


def test_body_limit(node_settings: NodeSettings) -> None:
    settings = node_settings.model_copy(update={"max_body_bytes": 1000})
    add_user(settings, "root")
    with node_client(settings) as gw:
        admin = login(gw, "root")
        big = {
            "username": "x" * 2000,
            "password": "a",
            "roles": ["viewer"],
            "region_code": "360121",
        }
        body = assert_problem(
            gw.post("/api/v1/users", headers=admin, json=big), 413, "payload-too-large"
        )
        assert body["max_bytes"] == 1000

        # Bodies without a declared length are counted as they stream in.
        def chunks() -> Iterator[bytes]:
            for _ in range(5):
                yield b"x" * 300

        r = gw.post(
            "/api/v1/users", headers={**admin, "content-type": "application/json"}, content=chunks()
        )
        assert_problem(r, 413, "payload-too-large")
        names = [u["username"] for u in gw.get("/api/v1/users", headers=admin).json()["items"]]
        assert names == ["root"]


def test_rate_limit_per_identity(node_settings: NodeSettings, clock: Clock) -> None:
    settings = node_settings.model_copy(update={"rate_limit_per_minute": 60, "rate_limit_burst": 3})
    add_user(settings, "root")
    add_user(settings, "other")
    with node_client(settings, clock) as gw:
        admin = login(gw, "root")
        other = login(gw, "other")
        for _ in range(3):
            assert gw.get("/api/v1/auth/me", headers=admin).status_code == 200
        r = gw.get("/api/v1/regions/360121", headers=admin)
        assert_problem(r, 429, "rate-limited")
        assert r.headers["retry-after"] == "1"
        # Another identity has its own bucket.
        assert gw.get("/api/v1/auth/me", headers=other).status_code == 200
        clock.advance(1.0)
        assert gw.get("/api/v1/auth/me", headers=admin).status_code == 200


def test_request_id_is_echoed_or_made(gw: TestClient) -> None:
    admin = login(gw, "root")
    r = gw.get("/api/v1/regions/360121", headers={**admin, "x-request-id": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    r = gw.get("/api/v1/regions/360121", headers=admin)
    assert len(r.headers["x-request-id"]) == 32
    r = gw.get("/api/v1/regions/360121", headers={**admin, "x-request-id": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"
    assert gw.get("/api/v1/regions/369999", headers=admin).headers["x-request-id"]
    r = gw.get("/api/v1/nowhere", headers={**admin, "x-request-id": "trace-43"})
    assert_problem(r, 404, "not-found")
    assert r.headers["x-request-id"] == "trace-43"


def test_every_write_is_audited_and_only_admins_read_it(gw: TestClient) -> None:
    r = gw.post("/api/v1/auth/login", json={"username": "root", "password": "Wrong#Pass123"})
    assert r.status_code == 401
    admin = login(gw, "root")
    r = gw.post(
        "/api/v1/users",
        headers={**admin, "x-request-id": "create-judy"},
        json={
            "username": "judy",
            "password": "Review#Pass2025",
            "roles": ["reviewer"],
            "region_code": "360121001",
        },
    )
    assert r.status_code == 201
    gw.post("/api/v1/users", json={"username": "anon"})  # no credentials: refused, still audited
    gw.get("/api/v1/regions/360121", headers=admin)  # reads are not audited

    page = gw.get("/api/v1/audit", headers=admin).json()
    rows = page["items"]
    assert [(x["method"], x["path"], x["status"]) for x in rows] == [
        ("POST", "/api/v1/users", 401),
        ("POST", "/api/v1/users", 201),
        ("POST", "/api/v1/auth/login", 200),
        ("POST", "/api/v1/auth/login", 401),
    ]
    failed = rows[3]
    assert (failed["actor"], failed["actor_kind"], failed["region_code"]) == ("root", "user", None)
    created = rows[1]
    assert created["actor"] == "root" and created["request_id"] == "create-judy"
    assert created["region_code"] == "360121001"
    assert created["node_id"] == "node-360121" and created["client_addr"] == "testclient"
    assert rows[0]["actor"] == "anonymous"

    def only(**params: object) -> list[tuple[str, int]]:
        items = gw.get("/api/v1/audit", headers=admin, params=params).json()["items"]
        return [(x["path"], x["status"]) for x in items]

    assert only(status=401) == [("/api/v1/users", 401), ("/api/v1/auth/login", 401)]
    assert only(actor="root", path="/api/v1/users") == [("/api/v1/users", 201)]
    assert only(region_code="360121001") == [("/api/v1/users", 201)]
    assert only(since=datetime.now(UTC) + timedelta(hours=1)) == []
    first = gw.get("/api/v1/audit", headers=admin, params={"limit": 3}).json()
    second = gw.get(
        "/api/v1/audit", headers=admin, params={"limit": 3, "cursor": first["next_cursor"]}
    ).json()
    ids = [x["id"] for x in first["items"] + second["items"]]
    assert ids == [x["id"] for x in rows] and second["next_cursor"] is None
    judy = login(gw, "judy", "Review#Pass2025")
    assert_problem(gw.get("/api/v1/audit", headers=judy), 403, "role-required")


def test_merged_openapi_and_docs(gw: TestClient) -> None:
    doc = gw.get("/openapi.json").json()
    paths = doc["paths"]
    for path in (
        "/api/v1/regions/{code}/tree",
        "/api/v1/auth/login",
        "/api/v1/users",
        "/api/v1/audit",
    ):
        assert path in paths, path
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert paths["/api/v1/auth/login"]["post"]["security"] == []
    assert "RegionTree" in doc["components"]["schemas"]
    docs = gw.get("/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text


def test_public_paths_are_anonymous_signed_and_limited_per_address(
    node_settings: NodeSettings,
) -> None:
    """A stand-in survey service with a public route checks what the gateway forwards."""
    router = APIRouter(prefix="/api/v1/public/echo")

    @router.post("")
    def echo(request: Request, identity: CurrentIdentity) -> dict[str, object]:
        return {
            "kind": identity.kind,
            "roles": sorted(identity.roles),
            "region": identity.region,
            "xff": request.headers.get("x-forwarded-for"),
            "auth": request.headers.get("authorization"),
        }

    settings = node_settings.model_copy(update={"rate_limit_per_minute": 60, "rate_limit_burst": 2})
    service = create_service_app(
        "survey", settings, package_dir=node_settings.data_dir, routers=[router], title="echo"
    )
    with TestClient(
        gateway_app(settings, {"survey": service}), raise_server_exceptions=False
    ) as gw:
        r = gw.post("/api/v1/public/echo", headers={"Authorization": "Bearer whatever"}, json={})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "kind": "anonymous",
            "roles": [],
            "region": "",
            "xff": "testclient",
            "auth": None,
        }
        assert gw.post("/api/v1/public/echo", json={}).status_code == 200
        assert_problem(gw.post("/api/v1/public/echo", json={}), 429, "rate-limited")
