"""Bulk import through POST /api/v1/values/import, on both databases."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from services.indicator.values.models import ImportBatch, IndicatorValue, ValueHistory
from shared.settings import NodeSettings
from tests.conftest import identity_headers
from tests.indicator.values_builders import (
    COMMUNITIES,
    create_system,
    history_count,
    node_session,
    system_id,
    values_of,
)

__all__ = ["system_id"]

URL = "/api/v1/values/import"
CSV = {"content-type": "text/csv"}
NDJSON = {"content-type": "application/x-ndjson"}


def post_csv(
    client: TestClient, system_id: int, text: str, mode: str = "per_row", **params: str
) -> tuple[int, dict]:
    r = client.post(
        URL,
        params={"system_id": system_id, "period": "2025", "mode": mode, **params},
        content=text.encode(),
        headers=CSV,
    )
    return r.status_code, r.json()


def test_csv_import_applies_every_row_and_reimport_is_unchanged(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    body = (
        "indicator_code,region_code,value,unit,note\n"
        f"C01,{COMMUNITIES[0]},12,个,现场核查\n"
        f"C02,{COMMUNITIES[0]},3.5,,\n"
        f"C01,{COMMUNITIES[1]},7,,\n"
    )
    status, out = post_csv(indicator_client, system_id, body)
    assert status == 200
    assert out["status"] == "applied"
    assert (out["rows_total"], out["rows_applied"], out["rows_unchanged"]) == (3, 3, 0)
    assert out["errors"] == []
    stored = values_of(node_settings, system_id)
    assert stored[("C01", COMMUNITIES[0], "self_checkup")] == 12
    assert stored[("C02", COMMUNITIES[0], "self_checkup")] == 3.5
    # Derived: F01 = C01 / C02 where both exist.
    assert stored[("F01", COMMUNITIES[0], "self_checkup")] == 12 / 3.5
    assert ("F01", COMMUNITIES[1], "self_checkup") not in stored
    assert out["derived"] == 1

    status, again = post_csv(indicator_client, system_id, body)
    assert status == 200
    assert (again["rows_applied"], again["rows_unchanged"]) == (0, 3)
    batch = indicator_client.get(f"/api/v1/imports/{again['batch_id']}").json()
    assert batch["rows_unchanged"] == 3 and batch["created_by"] == "tester"


def test_per_row_mode_applies_the_good_rows_and_names_each_bad_one(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    body = (
        "indicator_code,region_code,value,unit\n"
        f"C01,{COMMUNITIES[0]},5,\n"  # data row 1: fine
        f"NOPE,{COMMUNITIES[0]},5,\n"  # 2: unknown indicator
        "C01,360121999999,5,\n"  # 3: unknown region
        "C01,360103001001,5,\n"  # 4: a Nanchang district community, outside 360121
        f"C02,{COMMUNITIES[0]},abc,\n"  # 5: not a number
        f"C02,{COMMUNITIES[1]},500,\n"  # 6: above max 100
        f"C01,{COMMUNITIES[2]},2.5,\n"  # 7: integer indicator
        f"C02,{COMMUNITIES[2]},1,米\n"  # 8: wrong unit
        f"C03,{COMMUNITIES[0]},101,\n"  # 9: percent above 100
        f"F01,{COMMUNITIES[0]},1,\n"  # 10: formula indicator
        f"C03,{COMMUNITIES[1]},50,\n"  # 11: fine
        f"C03,{COMMUNITIES[2]},40,\n"  # 12: duplicate key with 13
        f"C03,{COMMUNITIES[2]},41,\n"  # 13
        f"D01,{COMMUNITIES[0]},95,\n"  # 14: district indicator below its level
        "C01,360121,3,\n"  # 15: a county total of a community indicator is fine
    )
    status, out = post_csv(indicator_client, system_id, body)
    assert status == 207
    assert out["status"] == "partial"
    assert (out["rows_total"], out["rows_applied"], out["rows_rejected"]) == (15, 3, 12)
    by_row = {e["row"]: e for e in out["errors"]}
    expected = {
        2: "indicator_code",
        3: "region_code",
        4: "region_code",
        5: "value",
        6: "value",
        7: "value",
        8: "unit",
        9: "value",
        10: "indicator_code",
        12: "region_code",
        13: "region_code",
        14: "region_code",
    }
    assert {r: e["field"] for r, e in by_row.items()} == expected
    assert by_row[4]["code"] == "out_of_scope"
    assert by_row[13]["code"] == "duplicate"
    # The message says which row the user should look at, in file terms too.
    assert by_row[2]["line"] == 3
    assert "第 2 行数据（文件第 3 行）" in by_row[2]["message"]
    assert "data row 2, file line 3" in by_row[2]["message"]
    assert "[0, 100]" in by_row[6]["message"]
    stored = values_of(node_settings, system_id)
    assert set(stored) == {
        ("C01", COMMUNITIES[0], "self_checkup"),
        ("C03", COMMUNITIES[1], "self_checkup"),
        ("C01", "360121", "self_checkup"),
    }
    with node_session(node_settings) as s:
        batch = s.get(ImportBatch, out["batch_id"])
        assert batch is not None
        assert (batch.status, batch.rows_rejected, len(batch.errors)) == ("partial", 12, 12)


def test_all_or_nothing_applies_nothing_and_keeps_what_was_stored(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    status, _ = post_csv(
        indicator_client,
        system_id,
        f"indicator_code,region_code,value\nC01,{COMMUNITIES[0]},4\n",
    )
    assert status == 200
    before = values_of(node_settings, system_id)
    n_history = history_count(node_settings)
    r = indicator_client.post(
        URL,
        params={"system_id": system_id, "period": "2025", "mode": "all_or_nothing"},
        content=(
            f"indicator_code,region_code,value\nC01,{COMMUNITIES[0]},9\nC01,{COMMUNITIES[1]},-1\n"
        ).encode(),
        headers=CSV,
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    out = r.json()
    assert out["import_status"] == "rejected"
    assert out["rows_applied"] == 0 and out["rows_rejected"] == 1
    assert out["errors"][0]["row"] == 2 and out["errors"][0]["field"] == "value"
    assert values_of(node_settings, system_id) == before
    assert history_count(node_settings) == n_history
    # The refused batch is kept with its errors for the record.
    batch = indicator_client.get(f"/api/v1/imports/{out['batch_id']}").json()
    assert batch["status"] == "rejected" and batch["errors"][0]["row"] == 2


def test_updates_keep_history_and_notes(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    post_csv(
        indicator_client,
        system_id,
        f"indicator_code,region_code,value,note\nC02,{COMMUNITIES[0]},2,初报\n",
    )
    status, out = post_csv(
        indicator_client,
        system_id,
        f"indicator_code,region_code,value,note\nC02,{COMMUNITIES[0]},2.5,\n",
    )
    assert status == 200 and out["rows_updated"] == 1
    with node_session(node_settings) as s:
        value = s.query(IndicatorValue).filter_by(indicator_code="C02").one()
        assert (value.value, value.note, value.revision) == (2.5, "初报", 2)
        vid = value.id
    hist = indicator_client.get(f"/api/v1/values/{vid}/history").json()
    assert [(h["action"], h["old_value"], h["new_value"]) for h in hist] == [
        ("create", None, 2.0),
        ("update", 2.0, 2.5),
    ]
    assert hist[0]["changed_by"] == "tester" and hist[0]["batch_id"] != hist[1]["batch_id"]


def test_jsonl_import_with_source_override_and_bad_lines(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    lines = [
        json.dumps({"indicator_code": "C01", "region_code": COMMUNITIES[0], "value": 8}),
        json.dumps(
            {
                "indicator_code": "C01",
                "region_code": COMMUNITIES[0],
                "value": "8",
                "source": "third_party",
            }
        ),
        "",
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"indicator_code": "C01", "region_code": COMMUNITIES[1], "value": True}),
        json.dumps({"indicator_code": "C01", "region_code": COMMUNITIES[2], "source": "gossip"}),
    ]
    r = indicator_client.post(
        URL,
        params={"system_id": system_id, "period": "2025"},
        content="\n".join(lines).encode(),
        headers=NDJSON,
    )
    assert r.status_code == 207
    out = r.json()
    assert (out["rows_total"], out["rows_applied"], out["rows_rejected"]) == (6, 2, 4)
    errs = {e["row"]: (e["line"], e["field"]) for e in out["errors"]}
    assert errs == {3: (4, "row"), 4: (5, "row"), 5: (6, "value"), 6: (7, "source")}
    stored = values_of(node_settings, system_id)
    assert stored[("C01", COMMUNITIES[0], "self_checkup")] == 8
    assert stored[("C01", COMMUNITIES[0], "third_party")] == 8


def test_malformed_bodies_are_refused_whole(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    post_csv(
        indicator_client, system_id, f"indicator_code,region_code,value\nC01,{COMMUNITIES[0]},1\n"
    )
    before = values_of(node_settings, system_id)
    # Broken quoting: nothing after it can be trusted.
    status, out = post_csv(
        indicator_client,
        system_id,
        f'indicator_code,region_code,value,note\nC01,{COMMUNITIES[0]},2,ok\nC01,{COMMUNITIES[1]},3,"x"y\n',
    )
    assert status == 422 and out["type"].endswith("/malformed-body")
    assert out["errors"][0]["line"] == 3
    # A header without the required columns.
    status, out = post_csv(indicator_client, system_id, "code,region,val\nC01,x,1\n")
    assert status == 422 and out["errors"][0]["field"] == "header"
    assert "indicator_code" in out["detail"]
    # Undecodable bytes.
    r = indicator_client.post(
        URL,
        params={"system_id": system_id, "period": "2025"},
        content=b"indicator_code,region_code,value\nC01,\xff\xfe\xfa\xfb,1\n",
        headers=CSV,
    )
    assert r.status_code == 422
    # Header only.
    status, out = post_csv(indicator_client, system_id, "indicator_code,region_code,value\n")
    assert status == 422 and out["errors"][0]["field"] == "body"
    # Unsupported content type.
    r = indicator_client.post(
        URL,
        params={"system_id": system_id, "period": "2025"},
        content=b"<xml/>",
        headers={"content-type": "application/xml"},
    )
    assert r.status_code == 415
    # Not an xlsx at all.
    r = indicator_client.post(
        URL,
        params={"system_id": system_id, "period": "2025"},
        content=b"PK\x03\x04 definitely not a workbook",
        headers={
            "content-type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        },
    )
    assert r.status_code == 422 and r.json()["type"].endswith("/malformed-body")
    assert values_of(node_settings, system_id) == before


def test_gbk_csv_from_excel_is_read(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    body = f"指标代码,区划代码,数值,备注\nC01,{COMMUNITIES[0]},6,南昌县自查\n".encode("gb18030")
    r = indicator_client.post(
        URL, params={"system_id": system_id, "period": "2025"}, content=body, headers=CSV
    )
    assert r.status_code == 200, r.json()
    with node_session(node_settings) as s:
        assert s.query(IndicatorValue).one().note == "南昌县自查"


def test_oversized_body_is_refused_before_parsing(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int, monkeypatch
) -> None:
    from services.indicator.values.config import values_settings

    monkeypatch.setattr(values_settings(), "max_import_bytes", 100)
    body = "indicator_code,region_code,value\n" + f"C01,{COMMUNITIES[0]},1\n" * 20
    status, out = post_csv(indicator_client, system_id, body)
    assert status == 413 and out["type"].endswith("/payload-too-large")
    # Chunked (no content-length) bodies are counted as they arrive.
    r = indicator_client.post(
        URL,
        params={"system_id": system_id, "period": "2025"},
        content=iter([body.encode()[:80], body.encode()[80:]]),
        headers=CSV,
    )
    assert r.status_code == 413
    assert values_of(node_settings, system_id) == {}


def test_only_released_systems_take_values(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    with node_session(node_settings) as s:
        draft = create_system(s, state="draft")
        retired = create_system(s, state="retired", version=2)
    for sid in (draft, retired):
        status, out = post_csv(
            indicator_client, sid, f"indicator_code,region_code,value\nC01,{COMMUNITIES[0]},1\n"
        )
        assert status == 409 and out["type"].endswith("/system-not-released")
    status, out = post_csv(indicator_client, 99999, "indicator_code,region_code,value\n")
    assert status == 404
    with node_session(node_settings) as s:
        released = create_system(s, version=3)
    status, out = post_csv(
        indicator_client,
        released,
        f"indicator_code,region_code,value\nC01,{COMMUNITIES[0]},1\n",
        period="25",
    )
    assert status == 422 and out["errors"][0]["field"] == "period"
    assert values_of(node_settings, released) == {}


def test_roles_and_scope_of_importers(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    body = f"indicator_code,region_code,value\nC01,{COMMUNITIES[0]},1\n".encode()
    viewer = identity_headers(node_settings, "360121", "viewer")
    r = indicator_client.post(
        URL,
        params={"system_id": system_id, "period": "2025"},
        content=body,
        headers={**CSV, **viewer},
    )
    assert r.status_code == 403
    # Another county's data entry sees every row of 360121 as out of scope.
    other = identity_headers(node_settings, "360123", "data_entry")
    r = indicator_client.post(
        URL,
        params={"system_id": system_id, "period": "2025"},
        content=body,
        headers={**CSV, **other},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "out_of_scope"
    # The city enters on the county's behalf (代填报).
    city = identity_headers(node_settings, "360100", "data_entry", subject="city-clerk")
    r = indicator_client.post(
        URL,
        params={"system_id": system_id, "period": "2025"},
        content=body,
        headers={**CSV, **city},
    )
    assert r.status_code == 200
    with node_session(node_settings) as s:
        value = s.query(IndicatorValue).one()
        assert value.on_behalf is True and value.updated_by == "city-clerk"
    assert history_count(node_settings) == 0  # creation is recorded by the value row itself
    with node_session(node_settings) as s:
        assert s.query(ValueHistory).count() == 0


def test_concurrent_imports_of_the_same_keys_do_not_collide(
    node_settings: NodeSettings, system_id: int
) -> None:
    """Two service instances (as two processes would) import the same file at once."""
    from concurrent.futures import ThreadPoolExecutor

    from services.indicator.app import create_app

    body = "indicator_code,region_code,value\n" + "".join(
        f"C0{i},{c},{i}\n" for i in (1, 2) for c in COMMUNITIES
    )
    headers = {**CSV, **identity_headers(node_settings, "360121", "data_entry")}

    def run() -> tuple[int, dict]:
        with TestClient(create_app(node_settings), raise_server_exceptions=False) as client:
            r = client.post(
                URL,
                params={"system_id": system_id, "period": "2025"},
                content=body.encode(),
                headers=headers,
            )
            return r.status_code, r.json()

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run(), range(2)))
    assert [status for status, _ in results] == [200, 200]
    created = sorted(out["rows_created"] for _, out in results)
    unchanged = sorted(out["rows_unchanged"] for _, out in results)
    assert (created, unchanged) == ([0, 6], [0, 6])
    assert len(values_of(node_settings, system_id)) == 6 + 3  # and F01 for each community
