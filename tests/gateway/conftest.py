"""Gateway fixtures: the all-in-one node behind its gateway, users, logins, a movable clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from checkup.node import build_all_in_one
from gateway import accounts
from gateway.runtime import GatewayRuntime
from shared.db import Database
from shared.settings import NodeSettings

PASSWORD = "Checkup#2025ok"


class Clock:
    """The gateway's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def add_user(
    settings: NodeSettings,
    username: str,
    roles: tuple[str, ...] = ("admin",),
    region: str | None = None,
    password: str = PASSWORD,
) -> int:
    """Create a user straight in the gateway's storage (as the command line does)."""
    db = Database(*settings.database_for("gateway"))
    try:
        with db.session() as session:
            user = accounts.create_user(
                session,
                username,
                password,
                list(roles),
                region or settings.region_code,
                settings=settings,
            )
            return user.id
    finally:
        db.dispose()


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def runtime(client: TestClient) -> GatewayRuntime:
    rt: GatewayRuntime = client.app.state.gateway  # type: ignore[attr-defined]
    return rt


def assert_problem(response: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"].endswith("/" + slug), body
    return body


@contextmanager
def node_client(settings: NodeSettings, clock: Clock | None = None) -> Iterator[TestClient]:
    """The all-in-one node (gateway + in-process services) under a TestClient."""
    with TestClient(build_all_in_one(settings), raise_server_exceptions=False) as client:
        if clock is not None:
            runtime(client).clock = clock
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gw(node_settings: NodeSettings, clock: Clock) -> Iterator[TestClient]:
    """The node behind its gateway with an admin 'root' of the node's region (360121)."""
    add_user(node_settings, "root")
    with node_client(node_settings, clock) as client:
        yield client
