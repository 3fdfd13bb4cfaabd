"""Fixtures of the report service: the app in-process, with the indicator service as its peer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.conftest import identity_headers


def today() -> date:
    return datetime.now(UTC).date()


def days(n: int) -> str:
    """An ISO date ``n`` days from today."""
    return (today() + timedelta(days=n)).isoformat()


@pytest.fixture
def report_client(node_settings: NodeSettings) -> Iterator[TestClient]:
    """The report service (worker running) with the real indicator service as its peer."""
    from services.indicator.app import create_app as indicator_app
    from services.report.app import create_app

    indicator = indicator_app(node_settings)
    app = create_app(node_settings)
    with TestClient(indicator), TestClient(app, raise_server_exceptions=False) as client:
        app.state.peers.register_app("indicator", indicator)
        client.headers.update(identity_headers(node_settings, node_settings.region_code, "admin"))
        yield client


def as_(
    settings: NodeSettings, region: str, *roles: str, subject: str = "tester"
) -> dict[str, str]:
    return identity_headers(settings, region, *roles, subject=subject)


def make_problem(client: TestClient, region: str = "360121001", title: str = "燃气管道老化") -> int:
    r = client.post(
        "/api/v1/problems",
        json={
            "region_code": region,
            "period": "2025",
            "title": title,
            "severity": "high",
            "evidence": [{"kind": "inspection", "note": "现场检查发现立管锈蚀"}],
        },
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def make_unit(client: TestClient, code: str = "NCX-ZJJ", name: str = "南昌县住建局") -> int:
    r = client.post(
        "/api/v1/tasks/responsible-units",
        json={"code": code, "name": name, "region_code": "360121"},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


EVIDENCE = [{"kind": "photo", "title": "整改前后照片", "file_name": "after.jpg"}]


def wait_job(client: TestClient, job_id: int, timeout: float = 120.0) -> dict[str, Any]:
    """Poll a report job until it ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/report-jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


CSV = "text/csv"


@pytest.fixture
def province_node(template: Any, tmp_path: Any) -> Iterator[NodeSettings]:
    """A fresh province node (Jiangxi) on the test's backend: it holds every city's data."""
    settings, cleanup = template.clone(tmp_path / "node", region_code="360000")
    yield settings
    cleanup()


@pytest.fixture
def node(province_node: NodeSettings) -> Iterator[tuple[TestClient, TestClient, NodeSettings]]:
    """(indicator client, report client, settings) of the province node; clients act as the
    province admin unless headers say otherwise."""
    from services.indicator.app import create_app as indicator_app
    from services.report.app import create_app

    indicator = indicator_app(province_node)
    app = create_app(province_node)
    admin = identity_headers(province_node, "360000", "admin")
    with (
        TestClient(indicator, raise_server_exceptions=False) as ic,
        TestClient(app, raise_server_exceptions=False) as rc,
    ):
        app.state.peers.register_app("indicator", indicator)
        ic.headers.update(admin)
        rc.headers.update(admin)
        yield ic, rc, province_node


def seed_indicator(ic: TestClient) -> int:
    """Starter system, 2025 values for Nanchang County, its siblings and other cities, graded.

    Only the starter's indicators with a standard are graded: D-06 (sewage collection ≥ 70 %),
    D-07 (green buildings ≥ 100 %), D-08 (cluster size ≤ 50 km²).
    """
    r = ic.post("/api/v1/systems/starter", params={"region_code": "360000"})
    assert r.status_code == 200, r.text
    system_id = int(r.json()["id"])
    rows = [
        ("D-06", "360121", 62),
        ("D-07", "360121", 100),
        ("D-08", "360121", 35),
        ("D-06", "360123", 85),
        ("D-06", "360124", 65),
        ("D-06", "360100", 75),
        ("D-07", "360100", 100),
        ("D-06", "360200", 90),
        ("D-07", "360200", 80),
        ("D-06", "360300", 50),
        ("H-08", "360121100", 25),  # 25 buildings with unsafe water in one town: a cluster
    ]
    body = "indicator_code,region_code,value\n" + "".join(f"{c},{g},{v}\n" for c, g, v in rows)
    params = {"system_id": system_id, "period": "2025", "source": "self_checkup"}
    r = ic.post(
        "/api/v1/values/import", params=params, content=body.encode(), headers={"content-type": CSV}
    )
    assert r.status_code == 200, r.text
    survey = "indicator_code,region_code,value\nD-06,360121,90\n"
    r = ic.post(
        "/api/v1/values/import",
        params={**params, "source": "survey"},
        content=survey.encode(),
        headers={"content-type": CSV},
    )
    assert r.status_code == 200, r.text
    r = ic.post(
        "/api/v1/evaluations/run",
        json={"system_id": system_id, "period": "2025", "region_code": "360000"},
    )
    assert r.status_code == 200, r.text
    return system_id
