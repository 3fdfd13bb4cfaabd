"""Inspections going up: recorded with each write at the county, kept as copies at the city."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.indicator.sync.tables import SYNC
from services.indicator.sync.wiring import UP_APPLIERS, sync_node
from shared.db import Database
from shared.settings import NodeSettings
from shared.sync import Change, ReceiveResult, build_batch, read_stream, receive_batch
from shared.sync.node import mark_upward
from tests.conftest import identity_headers
from tests.dbs import Template
from tests.spatial.conftest import (
    COMMUNITY,
    COMMUNITY_2,
    CSV,
    create_system,
    csv_bytes,
    seed_objects,
)

SECRET = "county-secret-0123456789abcdef0123"
SHA_A = hashlib.sha256(b"a").hexdigest()
SHA_B = hashlib.sha256(b"b").hexdigest()
HEADER = ["对象编码", "子项编码", "检查结果", "备注", "检查人", "检查时间", "照片", "照片校验值"]
SYSTEM = "T-SPATIAL@2025@1"


@pytest.fixture
def city(template: Template, tmp_path: Any) -> Iterator[tuple[NodeSettings, TestClient]]:
    """The county's parent (Nanchang) with its indicator service running."""
    from services.indicator.app import create_app

    settings, cleanup = template.clone(tmp_path / "city", region_code="360100")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(identity_headers(settings, "360100", "admin"))
        yield settings, client
    cleanup()  # type: ignore[operator]


def _import(client: TestClient, system_id: int, rows: list[list[str]]) -> dict[str, Any]:
    r = client.post(
        "/api/v1/inspections/import",
        params={"system_id": system_id, "period": "2025", "rollup": "false"},
        content=csv_bytes(HEADER, rows),
        headers=CSV,
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def _outbox(db: Database, node_id: str, after: int = 0) -> list[Change]:
    with db.session() as session:
        return read_stream(session, SYNC, "up", node_id, after, 10_000)


def _ship(
    county: NodeSettings, changes: list[Change], city: tuple[NodeSettings, TestClient]
) -> ReceiveResult:
    """What the county's pusher does: its stream as a signed batch, received by the city."""
    batch = build_batch(
        sender=county.node_id,
        service="indicator",
        origins={county.node_id: county.region_code},
        changes=changes,
        secret=SECRET,
    )
    settings, client = city
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as session:
        return receive_batch(
            session,
            SYNC,
            batch,
            node=sync_node(settings),
            credential_secret=SECRET,
            allowed_region=county.region_code,
            appliers=UP_APPLIERS,
            relay=settings.tier != "province",
        )


def _copies(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/api/v1/spatial/received-inspections", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_visits_are_recorded_once_and_kept_above_latest_wins(
    indicator_client: TestClient,
    indicator_db: Database,
    node_settings: NodeSettings,
    city: tuple[NodeSettings, TestClient],
) -> None:
    system_id = create_system(indicator_db)
    seed_objects(indicator_client)
    county_db: Database = indicator_client.app.state.db  # type: ignore[attr-defined]
    node = node_settings.node_id

    # Without a parent nothing is recorded (nothing would ever drain it).
    _import(indicator_client, system_id, [["B3", "GAS-1", "合格", "", "赵工", "2025-04-01 08:00"]])
    assert _outbox(county_db, node) == []

    mark_upward(county_db.sessionmaker)  # as the lifespan does when parent_url is set
    _import(
        indicator_client,
        system_id,
        [
            ["B1", "GAS-1", "不合格", "立管锈蚀", "王工", "2025-06-01 09:00", "a.jpg", SHA_A],
            ["B1", "CO-1", "合格", "", "王工", "2025-06-01 09:00", "b.jpg", SHA_B],
            ["B1", "CO-2", "不合格", "", "王工", "2025-06-01 09:00", "", ""],
            ["C2", "GAS-1", "合格", "", "王工", "2025-06-01 10:00", "", ""],
        ],
    )
    changes = _outbox(county_db, node)
    # One change per visit (B1 with three sub-items, C2 with one), keyed without local ids.
    assert [(c.entity, c.op, c.key) for c in changes] == [
        ("inspection", "upsert", f"B1/2025-06-01T01:00:00Z/{SYSTEM}/2025/王工"),
        ("inspection", "upsert", f"C2/2025-06-01T02:00:00Z/{SYSTEM}/2025/王工"),
    ]
    b1 = changes[0].payload
    assert {k: b1[k] for k in ("unit_code", "unit_kind", "region_code", "system", "period")} == {
        "unit_code": "B1",
        "unit_kind": "building",
        "region_code": COMMUNITY,
        "system": SYSTEM,
        "period": "2025",
    }
    assert (b1["inspector"], b1["inspected_at"]) == ("王工", "2025-06-01T01:00:00Z")
    assert b1["lon"] == pytest.approx(115.939) and b1["lat"] == pytest.approx(28.55)
    assert sorted((x["sub_item_code"], x["outcome"], x["note"]) for x in b1["results"]) == [
        ("CO-1", "pass", None),
        ("CO-2", "fail", None),
        ("GAS-1", "fail", "立管锈蚀"),
    ]
    assert (b1["failed"], b1["evidence_count"], sorted(b1["evidence"])) == (
        2,
        2,
        ["a.jpg", "b.jpg"],
    )
    c2 = changes[1].payload
    assert (c2["unit_kind"], c2["region_code"], c2["failed"], c2["evidence_count"]) == (
        "compound",
        COMMUNITY_2,
        0,
        0,
    )

    result = _ship(node_settings, changes, city)
    assert (result.applied, result.acks) == (2, {node: 2})
    _, city_client = city
    copies = _copies(city_client)
    assert [(c["origin_node"], c["unit_code"], c["failed"], c["latest"]) for c in copies] == [
        (node, "B1", 2, True),
        (node, "C2", 0, True),
    ]
    assert [x["sub_item_code"] for x in copies[0]["results"]] == ["CO-1", "CO-2", "GAS-1"]
    assert copies[0]["evidence"] == ["a.jpg", "b.jpg"] and copies[0]["evidence_count"] == 2
    # The city relays them for the province with the county's origin and seqs.
    city_db: Database = city_client.app.state.db  # type: ignore[attr-defined]
    assert [(c.seq, c.key) for c in _outbox(city_db, node)] == [(c.seq, c.key) for c in changes]

    # The same sheet again with one correction: the visit is the same, so its change
    # replaces the copy above (the later record of a sub-item wins); nothing doubles.
    _import(
        indicator_client,
        system_id,
        [
            ["B1", "GAS-1", "合格", "已整改", "王工", "2025-06-01 09:00", "a.jpg", SHA_A],
            ["B1", "CO-1", "合格", "", "王工", "2025-06-01 09:00", "b.jpg", SHA_B],
            ["B1", "CO-2", "不合格", "", "王工", "2025-06-01 09:00", "", ""],
        ],
    )
    # A re-inspection of B1 later is another visit.
    _import(indicator_client, system_id, [["B1", "CO-2", "合格", "", "李工", "2025-09-01 09:00"]])
    more = _outbox(county_db, node, after=2)
    assert [c.key for c in more] == [
        f"B1/2025-06-01T01:00:00Z/{SYSTEM}/2025/王工",
        f"B1/2025-09-01T01:00:00Z/{SYSTEM}/2025/李工",
    ]
    # Delivered again from the start (a retry after a lost ack): applied once only.
    result = _ship(node_settings, changes + more, city)
    assert (result.applied, result.duplicates) == (2, 2)
    copies = _copies(city_client, unit_code="B1")
    assert [(c["inspector"], c["failed"], c["latest"]) for c in copies] == [
        ("王工", 1, False),
        ("李工", 0, True),
    ]
    assert {x["sub_item_code"]: (x["outcome"], x["note"]) for x in copies[0]["results"]} == {
        "CO-1": ("pass", None),
        "CO-2": ("fail", None),
        "GAS-1": ("pass", "已整改"),
    }
    assert copies[0]["evidence_count"] == 2  # the same two photos, not four
    latest = _copies(city_client, latest="true")
    assert sorted((c["unit_code"], c["inspector"]) for c in latest) == [
        ("B1", "李工"),
        ("C2", "王工"),
    ]

    r = city_client.get("/api/v1/spatial/received-inspections/summary", params={"period": "2025"})
    assert r.status_code == 200, r.text
    assert [
        (s["region_code"], s["inspections"], s["items"], s["failed"], s["units"]) for s in r.json()
    ] == [("360121", 3, 5, 1, 2)]
    r = city_client.get(
        "/api/v1/spatial/received-inspections/summary",
        params={"level": "community", "latest": "true"},
    )
    assert [(s["region_code"], s["inspections"], s["failed"]) for s in r.json()] == [
        (COMMUNITY, 1, 0),
        (COMMUNITY_2, 1, 0),
    ]


def test_received_copies_keep_to_the_callers_region(
    indicator_client: TestClient,
    indicator_db: Database,
    node_settings: NodeSettings,
    city: tuple[NodeSettings, TestClient],
) -> None:
    system_id = create_system(indicator_db)
    seed_objects(indicator_client)
    county_db: Database = indicator_client.app.state.db  # type: ignore[attr-defined]
    mark_upward(county_db.sessionmaker)
    _import(indicator_client, system_id, [["B2", "GAS-1", "不合格", "", "王工", "2025-06-01"]])
    _ship(node_settings, _outbox(county_db, node_settings.node_id), city)
    settings, client = city

    def as_user(region: str, **params: Any) -> Any:
        return client.get(
            "/api/v1/spatial/received-inspections",
            params=params,
            headers=identity_headers(settings, region, "viewer"),
        )

    r = as_user("360121")
    assert r.status_code == 200 and [c["unit_code"] for c in r.json()["items"]] == ["B2"]
    r = as_user("360121001")  # the street of B2's community
    assert [c["unit_code"] for c in r.json()["items"]] == ["B2"]
    r = as_user("360102")  # another county of the city sees none of them
    assert r.status_code == 200 and r.json()["items"] == []
    r = as_user("360102", region_code="360121")
    assert r.status_code == 403
    r = as_user("360121", region_code="36012")
    assert r.status_code == 422
    # Paging: one per page, then the end.
    r = client.get("/api/v1/spatial/received-inspections", params={"limit": 1})
    page = r.json()
    assert len(page["items"]) == 1 and page["next_cursor"] == page["items"][0]["id"]
    r = client.get(
        "/api/v1/spatial/received-inspections",
        params={"limit": 1, "cursor": page["next_cursor"]},
    )
    assert r.json() == {"items": [], "next_cursor": None}
