"""Fixtures: one suite, two databases (SQLite + SpatiaLite, PostgreSQL + PostGIS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.identity import Identity, sign_identity
from shared.settings import NodeSettings
from tests.dbs import Template, pg_available


def _backends() -> list[str]:
    wanted = os.environ.get("CHECKUP_TEST_BACKENDS", "sqlite,postgres").split(",")
    return [b.strip() for b in wanted if b.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", _backends(), scope="session")


_templates: dict[str, Template] = {}


@pytest.fixture(scope="session")
def template(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    if backend == "postgres" and not pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL + PostGIS is required in CI but is not reachable")
        pytest.skip("PostgreSQL not reachable")
    if backend not in _templates:
        _templates[backend] = Template(backend, tmp_path_factory.mktemp(f"tpl-{backend}"))
    yield _templates[backend]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for tpl in _templates.values():
        tpl.drop()


@pytest.fixture
def node_settings(template: Template, tmp_path: Path) -> Iterator[NodeSettings]:
    """A fresh, migrated node (county 360121 by default) on the test's backend."""
    settings, cleanup = template.clone(tmp_path / "node", region_code="360121")
    yield settings
    cleanup()  # type: ignore[operator]


def identity_headers(
    settings: NodeSettings, region: str, *roles: str, subject: str = "tester", kind: str = "user"
) -> dict[str, str]:
    """Headers a service accepts as coming through the gateway."""
    identity = Identity(
        subject=subject, kind=kind, roles=frozenset(roles or ("admin",)), region=region
    )
    return {
        "x-checkup-identity": sign_identity(identity, settings.internal_secret.get_secret_value())
    }


@pytest.fixture
def indicator_client(node_settings: NodeSettings) -> Iterator[TestClient]:
    """The indicator service in-process, as the node's admin (region 360121)."""
    from services.indicator.app import create_app

    with TestClient(create_app(node_settings), raise_server_exceptions=False) as client:
        client.headers.update(identity_headers(node_settings, node_settings.region_code, "admin"))
        yield client
