"""Import and export of indicator systems: JSON and Excel, lossless round trips, bad files."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from services.indicator.systems.excel import XLSX_MEDIA_TYPE

API = "/api/v1/systems"
XLSX = {"content-type": XLSX_MEDIA_TYPE}

# A document that exercises every field and the awkward values a spreadsheet can mangle.
TRICKY: dict[str, Any] = {
    "format": "checkup.indicator-system",
    "format_version": 1,
    "code": "RT-2025",
    "name": "往返测试体系",
    "year": 2025,
    "version": 1,
    "region_code": "360121",
    "description": "多行\n说明；=SUM(A1:A2) 不是公式",
    "index_method": {
        "normalisation": "grade_points",
        "grade_points": {"green": 100, "yellow": 55.5, "red": 0},
        "dimension_weights": {"安全耐久": 2, "城区": 0.30000000000000004},
    },
    "indicators": [
        {
            "code": "H-01",
            "name_zh": "存在结构安全隐患的住宅数量",
            "name_en": "Buildings with structural hazards",
            "level": "housing",
            "dimension": "安全耐久",
            "unit": "栋",
            "direction": "lower",
            "standard_value": 0.0,
            "warning_value": 3.0,
            "band_low": None,
            "band_high": None,
            "warning_low": None,
            "warning_high": None,
            "standard_source": "=来源以等号开头",
            "min_value": 0.0,
            "max_value": None,
            "value_type": "integer",
            "data_source": "自体检",
            "category": "national",
            "compute": "sub_items",
            "formula": None,
            "weight": 1.5,
            "sort_order": 1,
            "inherited": True,
            "description": "  前后空格  ",
            "sub_items": [
                {"code": "H-01-1", "name": "贯通性裂缝", "sort_order": 1},
                {"code": "H-01-2", "name": "违规拆改承重构件", "sort_order": 2},
            ],
        },
        {
            "code": "H-11",
            "name_zh": "住宅总栋数",
            "name_en": "",
            "level": "housing",
            "dimension": "安全耐久",
            "unit": "栋",
            "direction": "band",
            "standard_value": None,
            "warning_value": None,
            "band_low": 0.1,
            "band_high": 1e20,
            "warning_low": -2.5e-7,
            "warning_high": None,
            "standard_source": "测试",
            "min_value": None,
            "max_value": None,
            "value_type": "number",
            "data_source": "",
            "category": "local",
            "compute": "entered",
            "formula": None,
            "weight": 0.0,
            "sort_order": 2,
            "inherited": False,
            "description": "",
            "sub_items": [],
        },
        {
            "code": "D-01",
            "name_zh": "占比",
            "name_en": "Share",
            "level": "district",
            "dimension": "城区",
            "unit": "%",
            "direction": "higher",
            "standard_value": 0.30000000000000004,
            "warning_value": None,
            "band_low": None,
            "band_high": None,
            "warning_low": None,
            "warning_high": None,
            "standard_source": "GB 50180-2018",
            "min_value": 0.0,
            "max_value": 100.0,
            "value_type": "percent",
            "data_source": "平台计算",
            "category": "provincial",
            "compute": "formula",
            "formula": "[H-01] / H-11 * 100",
            "weight": 1.0,
            "sort_order": 3,
            "inherited": False,
            "description": "",
            "sub_items": [],
        },
    ],
}


def content(doc: dict[str, Any]) -> dict[str, Any]:
    """A document without its informational status and version number."""
    return {k: v for k, v in doc.items() if k not in ("status", "version")}


def export(client: TestClient, sid: int, fmt: str = "json") -> Any:
    r = client.get(f"{API}/{sid}/export", params={"format": fmt})
    assert r.status_code == 200, r.text
    return r.json() if fmt == "json" else r.content


def count_systems(client: TestClient) -> int:
    return len(client.get(API, params={"limit": 500}).json()["items"])


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()  # type: ignore[no-any-return]


def test_json_to_system_to_xlsx_to_system_is_lossless(indicator_client: TestClient) -> None:
    r = indicator_client.post(f"{API}/import", json=TRICKY)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["state"] == "draft" and first["version"] == 1
    exported = export(indicator_client, first["id"])
    assert content(exported) == content(TRICKY)
    workbook = export(indicator_client, first["id"], "xlsx")
    r = indicator_client.post(
        f"{API}/import", content=workbook, headers=XLSX, params={"next_version": "true"}
    )
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["version"] == 2
    assert content(export(indicator_client, second["id"])) == content(TRICKY)
    # and once more through a multipart upload of the second system's workbook
    files = {
        "file": ("system.xlsx", export(indicator_client, second["id"], "xlsx"), XLSX_MEDIA_TYPE)
    }
    r = indicator_client.post(f"{API}/import", files=files, params={"next_version": "true"})
    assert r.status_code == 201, r.text
    assert content(export(indicator_client, r.json()["id"])) == content(TRICKY)


def test_workbook_layout_is_chinese_and_safe(indicator_client: TestClient) -> None:
    sid = indicator_client.post(f"{API}/import", json=TRICKY).json()["id"]
    wb = load_workbook(io.BytesIO(export(indicator_client, sid, "xlsx")))
    assert wb.sheetnames == ["说明", "指标", "分项"]
    headers = [c.value for c in wb["指标"][1]]
    assert headers[:7] == ["指标编码", "指标名称", "英文名称", "层级", "维度", "单位", "评价方向"]
    row = {h: c.value for h, c in zip(headers, wb["指标"][2], strict=True)}
    assert (
        row["层级"] == "住房"
        and row["评价方向"] == "越低越好"
        and row["计算方式"] == "分项检查汇总"
    )
    # text that starts with "=" is stored as text, never as an Excel formula
    cell = wb["指标"].cell(2, headers.index("标准来源") + 1)
    assert cell.value == "=来源以等号开头" and cell.data_type == "s"
    subs = [[c.value for c in r] for r in wb["分项"].iter_rows(min_row=2)]
    assert subs == [["H-01", "H-01-1", "贯通性裂缝", 1], ["H-01", "H-01-2", "违规拆改承重构件", 2]]
    meta = {r[0].value: r[1].value for r in wb["说明"].iter_rows(min_row=2) if r[0].value}
    assert meta["体系编码"] == "RT-2025" and meta["年度"] == 2025


def _edited(workbook: bytes, sheet: str, cells: dict[str, Any]) -> bytes:
    wb = load_workbook(io.BytesIO(workbook))
    for ref, value in cells.items():
        wb[sheet][ref] = value
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("sheet", "cells", "where"),
    [
        ("指标", {"D3": "银河"}, ("指标", 3, "层级")),
        ("指标", {"H2": "很多"}, ("指标", 2, "标准值")),
        ("指标", {"W3": 1.5}, ("指标", 3, "排序")),
        ("指标", {"U4": "[H-01] / NOPE"}, ("指标", 4, "计算公式")),
        ("指标", {"U4": "__import__('os')"}, ("指标", 4, "计算公式")),
        ("指标", {"A3": "H-01"}, ("指标", 3, "指标编码")),
        ("指标", {"B2": None}, ("指标", 2, "指标名称")),
        ("指标", {"Z1": "备注"}, ("指标", 1, "备注")),
        ("分项", {"A3": "NOPE"}, ("分项", 3, "指标编码")),
        ("分项", {"B3": "H-01-1"}, ("分项", 3, "分项编码")),
        ("说明", {"B6": "二〇二五"}, ("说明", 6, "年度")),
        ("说明", {"B10": "{not json"}, ("说明", 10, "健康指数方法（JSON）")),
        (
            "说明",
            {"B10": '{"dimension_weights": {"安全耐久": 1}}'},
            ("说明", 10, "健康指数方法（JSON）"),
        ),
    ],
)
def test_bad_workbook_cells_are_named_and_nothing_is_stored(
    indicator_client: TestClient, sheet: str, cells: dict[str, Any], where: tuple[str, int, str]
) -> None:
    sid = indicator_client.post(f"{API}/import", json=TRICKY).json()["id"]
    workbook = _edited(export(indicator_client, sid, "xlsx"), sheet, cells)
    before = count_systems(indicator_client)
    r = indicator_client.post(
        f"{API}/import", content=workbook, headers=XLSX, params={"next_version": "true"}
    )
    body = problem(r, 422)
    located = [(e.get("sheet"), e.get("row"), e.get("column")) for e in body["errors"]]
    assert where in located, body
    assert count_systems(indicator_client) == before


def test_missing_sheet_and_garbage_files(indicator_client: TestClient) -> None:
    sid = indicator_client.post(f"{API}/import", json=TRICKY).json()["id"]
    wb = load_workbook(io.BytesIO(export(indicator_client, sid, "xlsx")))
    del wb["指标"]
    out = io.BytesIO()
    wb.save(out)
    body = problem(
        indicator_client.post(f"{API}/import", content=out.getvalue(), headers=XLSX), 422
    )
    assert body["errors"][0]["sheet"] == "指标"
    body = problem(
        indicator_client.post(f"{API}/import", content=b"PK\x03\x04junk", headers=XLSX), 422
    )
    assert body["errors"][0]["field"] == "file"
    r = indicator_client.post(
        f"{API}/import", content=b"a,b\n1,2", headers={"content-type": "text/csv"}
    )
    assert problem(r, 415)
    assert count_systems(indicator_client) == 1


def test_bad_json_is_named_and_nothing_is_stored(indicator_client: TestClient) -> None:
    def post(body: Any) -> dict[str, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = indicator_client.post(
            f"{API}/import", content=data, headers={"content-type": "application/json"}
        )
        return problem(r, 422)

    assert post(b'{"code": "X", ')["errors"][0]["field"] == "body"
    wrong_level = json.loads(json.dumps(TRICKY))
    wrong_level["indicators"][1]["level"] = "galaxy"
    assert post(wrong_level)["errors"][0]["field"] == "indicators[1].level"
    typo = json.loads(json.dumps(TRICKY))
    typo["indicators"][0]["standard_vaule"] = 3
    assert post(typo)["errors"][0]["field"] == "indicators[0].standard_vaule"
    unknown = json.loads(json.dumps(TRICKY))
    unknown["indicators"][2]["formula"] = "H-01 / H-99"
    err = post(unknown)["errors"][0]
    assert err["field"] == "indicators[2].formula" and "H-99" in err["message"]
    escape = json.loads(json.dumps(TRICKY))
    escape["indicators"][2]["formula"] = "().__class__.__bases__[0]"
    assert post(escape)["errors"][0]["field"] == "indicators[2].formula"
    dup = json.loads(json.dumps(TRICKY))
    dup["indicators"][1]["code"] = "H-01"
    assert "indicators[1].code" in [e["field"] for e in post(dup)["errors"]]
    assert count_systems(indicator_client) == 0


def test_version_conflicts_and_region_override(indicator_client: TestClient) -> None:
    assert indicator_client.post(f"{API}/import", json=TRICKY).status_code == 201
    body = problem(indicator_client.post(f"{API}/import", json=TRICKY), 409)
    assert body["errors"][0]["field"] == "version"
    r = indicator_client.post(f"{API}/import", json=TRICKY, params={"next_version": "true"})
    assert r.json()["version"] == 2
    other = dict(TRICKY, code="RT-OTHER", region_code="360100")
    assert problem(indicator_client.post(f"{API}/import", json=other), 403)
    r = indicator_client.post(f"{API}/import", json=other, params={"region_code": "360121"})
    assert r.status_code == 201 and r.json()["region_code"] == "360121"
    no_region = {k: v for k, v in TRICKY.items() if k != "region_code"} | {"code": "RT-3"}
    assert indicator_client.post(f"{API}/import", json=no_region).json()["region_code"] == "360121"


def test_exported_json_reimports_as_is(indicator_client: TestClient) -> None:
    sid = indicator_client.post(f"{API}/starter").json()["id"]
    doc = export(indicator_client, sid)
    assert doc["status"]["state"] == "released"
    r = indicator_client.post(f"{API}/import", json=doc, params={"next_version": "true"})
    assert r.status_code == 201, r.text
    again = export(indicator_client, r.json()["id"])
    assert content(again) == content(doc)
    assert again["status"]["state"] == "draft"
