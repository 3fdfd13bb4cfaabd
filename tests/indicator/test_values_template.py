"""The xlsx entry template: generated, filled in with openpyxl, uploaded back."""

from __future__ import annotations

import io

import openpyxl
from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.conftest import identity_headers
from tests.indicator.values_builders import (
    COMMUNITIES,
    STREET,
    create_system,
    node_session,
    system_id,
    values_of,
)

__all__ = ["system_id"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def template(client: TestClient, system_id: int, **params: str) -> openpyxl.Workbook:
    r = client.get(
        "/api/v1/values/template",
        params={"system_id": system_id, "period": "2025", **params},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX
    assert "attachment" in r.headers["content-disposition"]
    return openpyxl.load_workbook(io.BytesIO(r.content))


def upload(client: TestClient, system_id: int, wb: openpyxl.Workbook, **params: str) -> dict:
    buf = io.BytesIO()
    wb.save(buf)
    r = client.post(
        "/api/v1/values/import",
        params={"system_id": system_id, "period": "2025", **params},
        content=buf.getvalue(),
        headers={"content-type": XLSX},
    )
    return {"status_code": r.status_code, **r.json()}


def test_template_rows_protection_and_round_trip(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    # A value already stored shows up pre-filled.
    indicator_client.put(
        "/api/v1/values",
        json={
            "system_id": system_id,
            "indicator_code": "C02",
            "region_code": COMMUNITIES[0],
            "period": "2025",
            "value": 1.25,
            "note": "已报",
        },
    )
    wb = template(indicator_client, system_id, region_code=STREET, level="community")
    ws = wb["填报"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == (
        "指标代码",
        "指标名称",
        "层级",
        "维度",
        "单位",
        "区划代码",
        "区划名称",
        "数值",
        "备注",
    )
    with node_session(node_settings) as s:
        from services.indicator.regions.models import Region

        n_comm = s.query(Region).filter(Region.parent_code == STREET).count()
    data = rows[1:]
    # Entered community indicators × the street's communities; the formula indicator and
    # the district-level one (not measured at street level) have no rows.
    assert {r[0] for r in data} == {"C01", "C02", "C03"}
    assert len(data) == 3 * n_comm
    prefilled = next(r for r in data if r[0] == "C02" and r[5] == COMMUNITIES[0])
    assert prefilled[7:] == (1.25, "已报")
    assert prefilled[6] == "象南社区居委会" and prefilled[2] == "社区"
    # Codes are locked, value and note cells are not; the sheet is protected.
    assert ws.protection.sheet is True
    assert ws.cell(row=2, column=1).protection.locked is True
    assert ws.cell(row=2, column=6).protection.locked is True
    assert ws.cell(row=2, column=8).protection.locked is False
    assert ws.cell(row=2, column=9).protection.locked is False
    meta = wb["_meta"]
    assert meta.sheet_state == "hidden"
    assert {r[0]: r[1] for r in meta.iter_rows(values_only=True)}["system_id"] == system_id

    # Fill two rows in, leave the rest blank, correct the pre-filled one.
    by_key = {(r[0].value, r[5].value): r for r in ws.iter_rows(min_row=2)}
    by_key[("C01", COMMUNITIES[1])][7].value = 4
    by_key[("C03", COMMUNITIES[2])][7].value = "87.5"
    by_key[("C03", COMMUNITIES[2])][8].value = "抽样核实"
    by_key[("C02", COMMUNITIES[0])][7].value = 1.5
    out = upload(indicator_client, system_id, wb)
    assert out["status_code"] == 200, out
    assert (out["rows_total"], out["rows_created"], out["rows_updated"]) == (3, 2, 1)
    assert out["rows_skipped"] == 3 * n_comm - 3
    stored = values_of(node_settings, system_id)
    assert stored[("C01", COMMUNITIES[1], "self_checkup")] == 4
    assert stored[("C03", COMMUNITIES[2], "self_checkup")] == 87.5
    assert stored[("C02", COMMUNITIES[0], "self_checkup")] == 1.5

    # A bad cell is reported with its sheet row.
    sheet_row = by_key[("C01", COMMUNITIES[2])][7].row
    assert sheet_row is not None
    by_key[("C01", COMMUNITIES[2])][7].value = "很多"
    out = upload(indicator_client, system_id, wb)
    assert out["status_code"] == 207
    err = out["errors"][0]
    assert (err["row"], err["line"], err["field"]) == (sheet_row - 1, sheet_row, "value")
    assert f"工作表第 {sheet_row} 行" in err["message"]


def test_a_template_of_another_system_or_period_is_refused(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    with node_session(node_settings) as s:
        other = create_system(s, version=2)
    wb = template(indicator_client, system_id, region_code="360121")
    ws = wb["填报"]
    ws.cell(row=2, column=8).value = 1
    out = upload(indicator_client, other, wb)
    assert out["status_code"] == 422 and out["errors"][0]["field"] == "system_id"
    out = upload(indicator_client, system_id, wb, period="2024")
    assert out["status_code"] == 422 and out["errors"][0]["field"] == "period"
    # A workbook that is not the platform's template.
    plain = openpyxl.Workbook()
    sheet = plain.create_sheet("数据")
    sheet.append(["指标代码", "区划代码", "数值"])
    sheet.append(["C01", COMMUNITIES[0], 1])
    out = upload(indicator_client, system_id, plain)
    assert out["status_code"] == 422 and "模板" in out["detail"]
    assert values_of(node_settings, system_id) == {}
    assert values_of(node_settings, other) == {}


def test_template_scope_and_unknown_inputs(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    viewer = identity_headers(node_settings, "360123", "viewer")
    r = indicator_client.get(
        "/api/v1/values/template",
        params={"system_id": system_id, "period": "2025", "region_code": "360121"},
        headers=viewer,
    )
    assert r.status_code == 403
    r = indicator_client.get(
        "/api/v1/values/template",
        params={"system_id": system_id, "period": "2025", "region_code": "369999"},
    )
    assert r.status_code == 404
    # County level: only indicators measured at county level or above... and the
    # community ones as county totals.
    wb = template(indicator_client, system_id, region_code="360121")
    codes = [r[0] for r in wb["填报"].iter_rows(min_row=2, values_only=True)]
    assert codes == ["C01", "C02", "C03", "D01"]
