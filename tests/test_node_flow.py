"""The indicator work of one node end to end, through the gateway, on both databases."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from services.indicator.systems.service import STARTER_FILE
from shared.settings import NodeSettings
from tests.gateway.conftest import add_user, assert_problem, login, node_client

COUNTY = "360121"


def _csv(rows: list[tuple[str, str, object]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["indicator_code", "region_code", "value"])
    w.writerows(rows)
    return buf.getvalue().encode()


def _import(client: TestClient, headers: dict[str, str], sid: int, body: bytes, **params: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/values/import",
        params={"system_id": sid, "period": "2025", "source": "self_checkup", **params},
        content=body,
        headers={**headers, "content-type": "text/csv"},
    )


def test_county_year_from_catalog_to_dashboard(node_settings: NodeSettings) -> None:
    add_user(node_settings, "admin", ("admin",), COUNTY)
    add_user(node_settings, "clerk", ("data_entry",), COUNTY)
    add_user(node_settings, "reviewer", ("reviewer",), COUNTY)
    add_user(node_settings, "neighbour", ("data_entry",), "360121001")  # a street's clerk
    with node_client(node_settings) as client:
        admin, clerk, reviewer = (login(client, u) for u in ("admin", "clerk", "reviewer"))
        street_clerk = login(client, "neighbour")

        r = client.post(
            "/api/v1/systems/import",
            content=STARTER_FILE.read_bytes(),
            headers={**admin, "content-type": "application/json"},
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        # Values are refused against a draft system.
        assert_problem(_import(client, clerk, sid, _csv([("D-06", COUNTY, 80)])), 409)
        assert client.post(f"/api/v1/systems/{sid}/release", headers=admin).status_code == 200
        # A released system is locked.
        assert_problem(
            client.patch(f"/api/v1/systems/{sid}", json={"name": "改名"}, headers=admin), 409
        )

        # D-06 城市生活污水集中收集率 ≥ 70 %; D-07 新建建筑中绿色建筑占比 ≥ 100 %.
        good = _csv([("D-06", COUNTY, 82.5), ("D-07", COUNTY, 64), ("H-01", COUNTY, 37)])
        bad = _csv([("D-06", COUNTY, 82.5), ("NOPE", COUNTY, 1), ("D-07", "360122", 5)])
        r = _import(client, clerk, sid, bad, mode="all_or_nothing")
        body = assert_problem(r, 422)
        assert {e["row"] for e in body["errors"]} == {2, 3}
        assert (
            client.get(
                "/api/v1/values", params={"system_id": sid, "period": "2025"}, headers=clerk
            ).json()["items"]
            == []
        )  # nothing half-applied

        # A street clerk cannot write the county's values.
        r = _import(client, street_clerk, sid, good, mode="all_or_nothing")
        assert r.status_code in (403, 422), r.text

        r = _import(client, clerk, sid, good)
        assert r.status_code == 200, r.text
        assert r.json()["rows_applied"] == 3

        sub = f"/api/v1/submissions/{sid}/{COUNTY}/2025"
        assert client.post(f"{sub}/submit", json={}, headers=clerk).status_code == 200
        # A clerk cannot approve; a reviewer can.
        assert_problem(client.post(f"{sub}/approve", json={}, headers=clerk), 403)
        assert client.post(f"{sub}/approve", json={}, headers=reviewer).status_code == 200
        # Approved data is locked.
        locked = assert_problem(_import(client, clerk, sid, _csv([("D-06", COUNTY, 10)])), 422)
        assert locked["errors"][0]["code"] == "locked"

        run = client.post(
            "/api/v1/evaluations/run",
            json={"system_id": sid, "period": "2025", "region_code": COUNTY},
            headers=reviewer,
        )
        assert run.status_code == 200, run.text
        assert run.json()["grades"] == {"green": 1, "yellow": 0, "red": 1, "grey": 1}

        s = client.get(
            "/api/v1/dashboard/summary",
            params={"region_code": COUNTY, "period": "2025", "system_id": sid},
            headers=reviewer,
        )
        assert s.status_code == 200, s.text
        summary = s.json()
        assert summary["region_name"] == "南昌县"
        assert [r["indicator_code"] for r in summary["top_red"]] == ["D-07"]
        assert "≥ 100" in summary["top_red"][0]["rule"]
        assert summary["index"] == 50.0

        # The writes are in the gateway's audit log, with who and the result.
        audit = client.get(
            "/api/v1/audit", params={"path": "/api/v1/values/import"}, headers=admin
        ).json()["items"]
        assert {(a["actor"], a["status"]) for a in audit} >= {("clerk", 200), ("clerk", 422)}
    assert all(a["region_code"] in (None, COUNTY) for a in audit)
