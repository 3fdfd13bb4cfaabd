"""Renewal projects (项目清单) and problems/tasks/reports going up the tiers, both databases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from msgspec.structs import replace as struct_replace
from sqlalchemy import select

from services.report.models import ReceivedRecord, Report, ReportVersion
from services.report.sync.tables import SYNC
from services.report.sync.wiring import UP_APPLIERS, sync_node
from shared.db import Database
from shared.errors import ProblemError
from shared.settings import NodeSettings
from shared.sync import Batch, ReceiveResult, build_batch, read_stream, receive_batch
from shared.sync.node import mark_upward
from tests.report.conftest import days, make_problem, make_unit

SECRET = "county-secret-0123456789abcdef0123"

PROJECT = {
    "region_code": "360121",
    "code": "A01",
    "category": "设施提升工程",
    "sector": "补齐便民设施短板",
    "need_description": "合理选址，增设电动自行车集中停放场所",
    "need_level": "紧迫",
    "name": "澄湖小区电动自行车集中充电场所建设项目",
    "location": "澄湖小区3栋旁空地",
    "content": "新增电动自行车充电停放车位120个",
    "total_investment": 85,
    "fiscal_investment": 50,
    "social_investment": 35,
    "start_month": "2025-04",
    "end_month": "2025-10",
    "year_ratio": 100,
    "responsible_department": "莲塘镇人民政府",
}


def test_project_list_checks_funding_and_audits_changes(report_client: TestClient) -> None:
    bad = {**PROJECT, "social_investment": 30}
    r = report_client.post("/api/v1/projects", json=bad)
    assert r.status_code == 422
    assert "财政资金 50 + 社会资金 30 ≠ 项目总投资 85" in r.json()["errors"][0]["message"]
    r = report_client.post("/api/v1/projects", json={**PROJECT, "end_month": "2025-13"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.end_month"
    assert report_client.get("/api/v1/projects").json()["items"] == []

    project = report_client.post("/api/v1/projects", json=PROJECT).json()
    assert project["total_investment"] == 85.0 and project["need_level"] == "紧迫"
    r = report_client.patch(
        f"/api/v1/projects/{project['id']}", json={"total_investment": 90, "reason": "增加雨棚"}
    )
    assert r.status_code == 422  # 50 + 35 ≠ 90
    r = report_client.patch(
        f"/api/v1/projects/{project['id']}",
        json={"total_investment": 90, "social_investment": 40, "reason": "增加雨棚"},
    )
    assert r.status_code == 200 and r.json()["total_investment"] == 90.0

    task = report_client.post(
        "/api/v1/tasks",
        json={
            "problem_id": make_problem(report_client),
            "unit_id": make_unit(report_client),
            "deadline": days(90),
        },
    ).json()
    r = report_client.put(f"/api/v1/projects/{project['id']}/tasks/{task['id']}")
    assert r.status_code == 200 and r.json()["task_ids"] == [task["id"]]
    assert (
        report_client.put(f"/api/v1/projects/{project['id']}/tasks/{task['id']}").status_code == 409
    )
    assert report_client.get(f"/api/v1/tasks/{task['id']}").json()["project_ids"] == [project["id"]]
    assert [
        p["id"]
        for p in report_client.get("/api/v1/projects", params={"year": 2025}).json()["items"]
    ] == [project["id"]]
    assert report_client.get("/api/v1/projects", params={"year": 2027}).json()["items"] == []


@pytest.fixture
def city(template: Any, tmp_path: Any) -> Iterator[tuple[NodeSettings, Database]]:
    """A fresh city node (Nanchang) with its report service running: the county's parent."""
    from services.report.app import create_app

    settings, cleanup = template.clone(tmp_path / "city", region_code="360100")
    app = create_app(settings, run_worker=False)
    with TestClient(app):
        yield settings, app.state.db
    cleanup()


def _upward(client: TestClient) -> Database:
    """Make the county node record for a parent, as its lifespan does when parent_url is set."""
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    mark_upward(db.sessionmaker)
    return db


def _outbox(db: Database, settings: NodeSettings) -> Batch:
    """What the county's pusher would send: its own stream, signed with its credential."""
    with db.session() as session:
        changes = read_stream(session, SYNC, "up", settings.node_id, 0, 1000)
    return build_batch(
        sender=settings.node_id,
        service="report",
        origins={settings.node_id: settings.region_code},
        changes=changes,
        secret=SECRET,
    )


def _receive(city: tuple[NodeSettings, Database], batch: Batch) -> ReceiveResult:
    settings, db = city
    with db.session() as session:
        return receive_batch(
            session,
            SYNC,
            batch,
            node=sync_node(settings),
            credential_secret=SECRET,
            allowed_region="360121",
            appliers=UP_APPLIERS,
            relay=settings.tier != "province",
        )


def _copies(db: Database) -> list[tuple[str, str, str, str]]:
    with db.session() as session:
        rows = session.scalars(select(ReceivedRecord).order_by(ReceivedRecord.entity_key))
        return [(r.origin_node, r.entity, r.entity_key, r.region_code) for r in rows]


def _final_report(client: TestClient, db: Database) -> int:
    """A generated annual report of the county (version 1), made final through the API."""
    with db.session() as session:
        report = Report(
            kind="annual",
            region_code="360121",
            period="2025",
            system_id=7,
            title="南昌县2025年度城市体检报告",
            latest_version=1,
            created_by="tester",
        )
        session.add(report)
        session.flush()
        session.add(
            ReportVersion(
                report_id=report.id,
                version=1,
                document={"title": report.title},
                sha256="a" * 64,
                created_by="tester",
            )
        )
        report_id = report.id
    r = client.post(f"/api/v1/reports/{report_id}/finalize", json={"version": 1})
    assert r.status_code == 200, r.text
    return report_id


def test_nothing_is_recorded_without_a_parent(
    report_client: TestClient, node_settings: NodeSettings
) -> None:
    make_problem(report_client)
    db: Database = report_client.app.state.db  # type: ignore[attr-defined]
    with db.session() as session:
        assert read_stream(session, SYNC, "up", node_settings.node_id, 0, 10) == []


def test_final_report_and_problem_reach_the_city_once_with_their_origin(
    report_client: TestClient, node_settings: NodeSettings, city: tuple[NodeSettings, Database]
) -> None:
    county_db = _upward(report_client)
    origin = node_settings.node_id
    problem_id = make_problem(report_client)
    _final_report(report_client, county_db)
    batch = _outbox(county_db, node_settings)
    assert [(c.seq, c.entity, c.key) for c in batch.changes] == [
        (1, "problem", f"{origin}:problem:{problem_id}"),
        (2, "report", f"{origin}:report:annual:360121:2025:7"),
    ]

    r = _receive(city, batch)
    assert (r.acks, r.applied, r.duplicates) == ({origin: 2}, 2, 0)
    expected = [
        (origin, "problem", f"{origin}:problem:{problem_id}", "360121001"),
        (origin, "report", f"{origin}:report:annual:360121:2025:7", "360121"),
    ]
    assert _copies(city[1]) == expected
    with city[1].session() as session:
        final = session.scalars(
            select(ReceivedRecord).where(ReceivedRecord.entity == "report")
        ).one()
        assert final.payload["version"] == 1 and final.payload["sha256"] == "a" * 64
        # The city relays both to the province with the county as their origin.
        relayed = read_stream(session, SYNC, "up", origin, 0, 10)
        assert [(c.origin, c.seq, c.entity) for c in relayed] == [
            (origin, 1, "problem"),
            (origin, 2, "report"),
        ]

    # A duplicate delivery is acknowledged and not applied twice.
    again = _receive(city, batch)
    assert (again.acks, again.applied, again.duplicates) == ({origin: 2}, 0, 2)
    assert _copies(city[1]) == expected

    # A later edit of the problem replaces the copy rather than adding one.
    r2 = report_client.post(
        f"/api/v1/problems/{problem_id}/dismiss", json={"reason": "已纳入年度计划"}
    )
    assert r2.status_code == 200, r2.text
    with county_db.session() as session:
        changes = read_stream(session, SYNC, "up", origin, 2, 10)
    assert [c.entity for c in changes] == ["problem"]
    update = build_batch(
        sender=origin,
        service="report",
        origins={origin: "360121"},
        changes=changes,
        secret=SECRET,
    )
    assert _receive(city, update).acks == {origin: 3}
    assert _copies(city[1]) == expected
    with city[1].session() as session:
        copy = session.scalars(
            select(ReceivedRecord).where(ReceivedRecord.entity == "problem")
        ).one()
        assert copy.payload["status"] == "dismissed" and copy.seq == 3


def test_tampered_or_out_of_scope_batch_is_rejected_whole(
    report_client: TestClient, node_settings: NodeSettings, city: tuple[NodeSettings, Database]
) -> None:
    county_db = _upward(report_client)
    make_problem(report_client)
    make_problem(report_client, title="排水管网破损")
    good = _outbox(county_db, node_settings)
    first, second = good.changes
    tampered = replace(
        good, changes=[first, struct_replace(second, payload={**second.payload, "title": "改"})]
    )
    with pytest.raises(ProblemError) as err:
        _receive(city, tampered)
    assert err.value.status in (401, 422)
    # Signed correctly but describing a region outside the sender's: refused whole too.
    outside = build_batch(
        sender=good.sender,
        service="report",
        origins=good.origins,
        changes=[
            first,
            struct_replace(second, payload={**second.payload, "region_code": "360122"}),
        ],
        secret=SECRET,
    )
    with pytest.raises(ProblemError) as err:
        _receive(city, outside)
    assert err.value.status in (403, 422)
    assert _copies(city[1]) == []
    # Nothing was acknowledged: the genuine batch still applies from seq 1.
    assert _receive(city, good).applied == 2
    assert len(_copies(city[1])) == 2
