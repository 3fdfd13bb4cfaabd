"""Inspections (single, sheets, re-inspection history) and the bottom-up roll-up."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook
from sqlalchemy import text

from shared.db import Database
from shared.settings import NodeSettings
from tests.conftest import identity_headers
from tests.spatial.conftest import (
    COMMUNITY,
    COMMUNITY_2,
    CSV,
    GJ,
    create_system,
    csv_bytes,
    feature,
    geojson,
    seed_objects,
    square,
)

SHA = hashlib.sha256(b"photo").hexdigest()


def values(db: Database, indicator: str, period: str = "2025") -> dict[str, float | None]:
    with db.session() as s:
        rows = s.execute(
            text(
                "SELECT region_code, value FROM indicator_values WHERE indicator_code = :i "
                "AND period = :p AND source = 'self_checkup'"
            ),
            {"i": indicator, "p": period},
        ).all()
    return {r[0]: r[1] for r in rows}


def inspect(
    client: TestClient, system_id: int, unit: str, when: str, **outcomes: str
) -> dict[str, Any]:
    body = {
        "system_id": system_id,
        "period": "2025",
        "unit_code": unit,
        "inspector": "李工",
        "inspected_at": when,
        "lon": 115.94,
        "lat": 28.55,
        "results": [
            {"sub_item_code": code.replace("_", "-"), "outcome": o} for code, o in outcomes.items()
        ],
        "evidence": [{"file_ref": f"photos/{unit}.jpg", "sha256": SHA}],
    }
    r = client.post("/api/v1/inspections", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_inspection_rolls_up_to_community_street_and_county(
    indicator_client: TestClient, indicator_db: Database
) -> None:
    system_id = create_system(indicator_db)
    seed_objects(indicator_client)
    inspect(
        indicator_client,
        system_id,
        "B1",
        "2025-05-01T09:00:00+08:00",
        GAS_1="fail",
        CO_1="pass",
        CO_2="pass",
    )
    inspect(
        indicator_client,
        system_id,
        "B2",
        "2025-05-01T10:00:00+08:00",
        GAS_1="fail",
        CO_1="fail",
        CO_2="na",
    )
    inspect(
        indicator_client,
        system_id,
        "B3",
        "2025-05-02T10:00:00+08:00",
        GAS_1="pass",
        CO_1="pass",
        CO_2="pass",
    )
    street = COMMUNITY[:9]
    assert values(indicator_db, "GAS") == {COMMUNITY: 2, COMMUNITY_2: 0, street: 2, "360121": 2}
    assert values(indicator_db, "CORR") == {COMMUNITY: 1, COMMUNITY_2: 0, street: 1, "360121": 1}
    # The objects behind the county's gas value are the two failing buildings.
    doc = indicator_client.get(
        f"/api/v1/layers/values/{system_id}/GAS/360121/2025/objects",
        params={"outcome": "deficient"},
    ).json()
    assert sorted(f["properties"]["code"] for f in doc["features"]) == ["B1", "B2"]
    assert doc["counts"] == {"deficient": 2}
    with indicator_db.session() as s:
        dirty = s.execute(text("SELECT COUNT(*) FROM spatial_rollup_dirty")).scalar()
        assert dirty == 0
        evidence = s.execute(text("SELECT file_ref, sha256 FROM inspection_evidence")).all()
        assert ("photos/B1.jpg", SHA) in [tuple(e) for e in evidence]


def test_reinspection_keeps_history_and_latest_outcome_counts(
    indicator_client: TestClient, indicator_db: Database
) -> None:
    system_id = create_system(indicator_db)
    seed_objects(indicator_client)
    inspect(indicator_client, system_id, "B1", "2025-05-01T09:00:00+08:00", GAS_1="fail")
    assert values(indicator_db, "GAS")[COMMUNITY] == 1
    # Rectified and re-checked: the count drops; the failing visit stays in history.
    inspect(indicator_client, system_id, "B1", "2025-08-01T09:00:00+08:00", GAS_1="pass")
    assert values(indicator_db, "GAS")[COMMUNITY] == 0
    # A paper sheet from before both visits arrives late: it is history, not current.
    inspect(indicator_client, system_id, "B1", "2025-04-01T09:00:00+08:00", GAS_1="fail")
    assert values(indicator_db, "GAS")[COMMUNITY] == 0
    unit_id = indicator_client.get("/api/v1/layers/buildings", params={"code": "B1"}).json()[
        "features"
    ][0]["id"]
    history = indicator_client.get(f"/api/v1/units/{unit_id}/inspections").json()
    assert [h["inspected_at"][:10] for h in history] == ["2025-08-01", "2025-05-01", "2025-04-01"]
    assert [h["results"][0]["outcome"] for h in history] == ["pass", "fail", "fail"]
    assert [h["results"][0]["current"] for h in history] == [True, False, False]
    assert history[0]["evidence"] == [
        {"sub_item_code": None, "file_ref": "photos/B1.jpg", "sha256": SHA}
    ]


def test_field_sheet_rows_are_checked_one_by_one(
    indicator_client: TestClient, indicator_db: Database, node_settings: NodeSettings
) -> None:
    system_id = create_system(indicator_db)
    seed_objects(indicator_client)
    # A compound and building in another county, imported by the city.
    city = identity_headers(node_settings, "360100", "admin")
    r = indicator_client.post(
        "/api/v1/units/import",
        params={"kind": "compound"},
        content=geojson(feature(square(115.92, 28.68), code="XC", region_code="360102002001")),
        headers={**GJ, **city},
    )
    assert r.status_code == 200, r.text
    header = ["对象编码", "子项编码", "检查结果", "检查人", "检查时间", "照片", "照片校验值"]
    rows = [
        ["B1", "GAS-1", "不合格", "王工", "2025-06-01 09:00", "a.jpg", SHA],  # 1 ok
        ["B2", "GAS-1", "合格", "王工", "2025-06-01 09:30", "", ""],  # 2 ok
        ["NOPE", "GAS-1", "合格", "王工", "2025-06-01 09:30", "", ""],  # 3 unknown object
        ["B2", "XX-9", "合格", "王工", "2025-06-01 09:30", "", ""],  # 4 unknown sub-item
        ["B2", "CO-1", "也许", "王工", "2025-06-01 09:30", "", ""],  # 5 bad outcome
        ["B2", "CO-2", "合格", "王工", "昨天", "", ""],  # 6 bad time
        ["B3", "CO-1", "合格", "王工", "2025-06-01 09:30", "a.jpg;b.jpg", SHA],  # 7 photo sums
        ["XC", "GAS-1", "合格", "王工", "2025-06-01 09:30", "", ""],  # 8 outside county
        ["B3", "CO-2", "fail", "", "2025-06-01 09:30", "", ""],  # 9 no inspector
    ]
    r = indicator_client.post(
        "/api/v1/inspections/import",
        params={"system_id": system_id, "period": "2025"},
        content=csv_bytes(header, rows),
        headers=CSV,
    )
    assert r.status_code == 207, r.text
    report = r.json()
    assert (report["rows_applied"], report["rows_rejected"]) == (2, 7)
    fields = {e["row"]: e["field"] for e in report["errors"]}
    assert fields == {
        3: "unit_code",
        4: "sub_item_code",
        5: "outcome",
        6: "inspected_at",
        7: "photo_sha256",
        8: "unit_code",
        9: "inspector",
    }
    assert "文件第 9 行" in next(e for e in report["errors"] if e["row"] == 8)["message"]
    assert values(indicator_db, "GAS") == {COMMUNITY: 1, COMMUNITY[:9]: 1, "360121": 1}
    # A draft system and an unknown system are refused before reading the sheet.
    draft = create_system(indicator_db, state="draft", code="T-DRAFT")
    r = indicator_client.post(
        "/api/v1/inspections/import",
        params={"system_id": draft, "period": "2025"},
        content=csv_bytes(header, rows[:1]),
        headers=CSV,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "system_id"
    r = indicator_client.post(
        "/api/v1/inspections/import",
        params={"system_id": 9999, "period": "2025"},
        content=csv_bytes(header, rows[:1]),
        headers=CSV,
    )
    assert r.status_code == 404


def test_xlsx_template_round_trip(indicator_client: TestClient, indicator_db: Database) -> None:
    system_id = create_system(indicator_db)
    seed_objects(indicator_client)
    r = indicator_client.get("/api/v1/inspections/template", params={"system_id": system_id})
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.content))
    checklist = [row for row in wb["子项清单"].iter_rows(min_row=2, values_only=True)]
    assert ("GAS", "存在燃气安全隐患的住宅数量", "GAS-1", "立管锈蚀") in checklist
    ws = wb["检查记录"]
    header = [c.value for c in ws[1]]
    col = {h: i for i, h in enumerate(header)}
    for unit, sub, outcome in (("B3", "CO-1", "不合格"), ("B3", "CO-2", "合格")):
        row: list[Any] = [None] * len(header)
        row[col["对象编码"]] = unit
        row[col["子项编码"]] = sub
        row[col["检查结果"]] = outcome
        row[col["检查人"]] = "赵工"
        row[col["检查时间"]] = "2025-07-01 10:00"
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    r = indicator_client.post(
        "/api/v1/inspections/import",
        params={"system_id": system_id, "period": "2025"},
        content=buf.getvalue(),
        headers={
            "content-type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["rows_applied"] == 2
    assert values(indicator_db, "CORR")[COMMUNITY_2] == 1
    broken = Workbook()
    r = indicator_client.post(
        "/api/v1/inspections/import",
        params={"system_id": system_id, "period": "2025"},
        content=b"PK\x03\x04 not really",
        headers={
            "content-type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        },
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "file"
    del broken


def test_rollup_is_incremental_and_follows_moved_buildings(
    indicator_client: TestClient, indicator_db: Database
) -> None:
    system_id = create_system(indicator_db)
    seed_objects(indicator_client)
    for unit in ("B1", "B2", "B3"):
        inspect(indicator_client, system_id, unit, "2025-05-01T09:00:00+08:00", GAS_1="fail")
    assert values(indicator_db, "GAS")[COMMUNITY_2] == 1
    with indicator_db.session() as s:
        runs = s.execute(text("SELECT communities FROM spatial_runs ORDER BY id")).scalars().all()
    assert runs == [1, 1, 1]  # each inspection recomputed only its own community
    # Building B3 is re-surveyed as part of compound C1 (another community).
    r = indicator_client.post(
        "/api/v1/units/import",
        params={"kind": "building"},
        content=geojson(
            feature(
                {"type": "Point", "coordinates": [115.9405, 28.5505]}, code="B3", compound_code="C1"
            )
        ),
        headers=GJ,
    )
    assert r.json()["updated"] == 1
    r = indicator_client.post(
        "/api/v1/inspections/rollup", json={"system_id": system_id, "period": "2025"}
    )
    assert r.status_code == 200
    assert r.json()["communities"] == 2
    gas = values(indicator_db, "GAS")
    assert gas[COMMUNITY] == 3 and gas[COMMUNITY_2] is None and gas["360121"] == 3
    # Nothing changed since: an incremental roll-up has nothing to do; a full one agrees.
    again = indicator_client.post(
        "/api/v1/inspections/rollup", json={"system_id": system_id, "period": "2025"}
    ).json()
    assert again["communities"] == 0 and again["values_written"] == 0
    full = indicator_client.post(
        "/api/v1/inspections/rollup",
        json={"system_id": system_id, "period": "2025", "full": True},
    ).json()
    assert full["values_unchanged"] == full["values_written"] > 0
    assert values(indicator_db, "GAS") == gas


def test_single_inspection_with_a_bad_outcome_is_rejected_whole(
    indicator_client: TestClient, indicator_db: Database
) -> None:
    system_id = create_system(indicator_db)
    seed_objects(indicator_client)
    body = {
        "system_id": system_id,
        "period": "2025",
        "unit_code": "B1",
        "inspector": "李工",
        "inspected_at": "2025-05-01T09:00:00+08:00",
        "results": [
            {"sub_item_code": "GAS-1", "outcome": "fail"},
            {"sub_item_code": "CO-9", "outcome": "pass"},
        ],
    }
    r = indicator_client.post("/api/v1/inspections", json=body)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {
            "row": 2,
            "field": "sub_item_code",
            "message": "results[1]: 未知子项: CO-9 (unknown sub-item)",
        }
    ]
    with indicator_db.session() as s:
        assert s.execute(text("SELECT COUNT(*) FROM inspection_results")).scalar() == 0
        assert s.execute(text("SELECT COUNT(*) FROM indicator_values")).scalar() == 0
