"""Questionnaires: validation, versions, locking, JSON and XLSForm round trips."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from openpyxl import load_workbook

from shared.settings import NodeSettings
from tests.conftest import identity_headers
from tests.survey.helpers import example_definition, released_questionnaire, with_changes

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_create_release_lock_and_version(survey_client: TestClient) -> None:
    r = survey_client.post("/api/v1/questionnaires", json=example_definition())
    assert r.status_code == 201, r.text
    q = r.json()
    assert (q["version"], q["state"]) == (1, "draft")
    # A draft can change.
    changed = with_changes(example_definition(), ["title"], "修订后的标题")
    r = survey_client.put(f"/api/v1/questionnaires/{q['id']}", json=changed)
    assert r.status_code == 200 and r.json()["title"] == "修订后的标题"
    r = survey_client.post(f"/api/v1/questionnaires/{q['id']}/release")
    assert r.status_code == 200
    assert r.json()["state"] == "released" and len(r.json()["checksum"]) == 64
    # Released: locked.
    r = survey_client.put(f"/api/v1/questionnaires/{q['id']}", json=example_definition())
    assert r.status_code == 409
    assert r.json()["type"].endswith("/locked")
    assert survey_client.get(f"/api/v1/questionnaires/{q['id']}").json()["title"] == "修订后的标题"
    # A new version is a draft copy.
    r = survey_client.post(f"/api/v1/questionnaires/{q['id']}/versions")
    assert r.status_code == 201
    assert (r.json()["version"], r.json()["state"]) == (2, "draft")
    # Targets: overall, 13 scored questions (the attention check is not one), 4 dimensions.
    targets = survey_client.get(f"/api/v1/questionnaires/{q['id']}/targets").json()
    kinds = [t["kind"] for t in targets]
    assert kinds.count("overall") == 1 and kinds.count("question") == 13
    assert {t["code"] for t in targets if t["kind"] == "dimension"} == {
        "住房",
        "小区社区",
        "街区",
        "城区",
    }
    park = next(t for t in targets if t["code"] == "M1")
    assert park["indicator_code"] == "SAT-C-PARK" and park["objective_indicators"] == ["C-PARK-GAP"]
    events = survey_client.get(f"/api/v1/questionnaires/{q['id']}/events").json()
    assert [e["action"] for e in events] == ["create", "update", "release"]
    assert all(e["actor"] == "tester" for e in events)


def test_bad_definitions_name_the_field(survey_client: TestClient) -> None:
    d = example_definition()
    cases = [
        (with_changes(d, ["sections", 1, "questions", 0, "type"], "slider"), "type"),
        (with_changes(d, ["sections", 1, "questions", 1, "code"], "H1"), "duplicate"),
        (
            with_changes(
                d,
                ["sections", 2, "questions", 5, "show_if"],
                {"question": "ZZ", "op": "eq", "value": "x"},
            ),
            "earlier question",
        ),
        (
            with_changes(d, ["sections", 2, "questions", 3, "attention"], {"expected": 9}),
            "expected",
        ),
        (with_changes(d, ["sections", 5, "questions", 0, "options"], []), "options"),
        (with_changes(d, ["region_code"], "36x"), "region_code"),
    ]
    before = survey_client.get("/api/v1/questionnaires").json()["items"]
    for bad, needle in cases:
        r = survey_client.post("/api/v1/questionnaires", json=bad)
        assert r.status_code == 422, (needle, r.text)
        body = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert body["errors"] and all(e["field"].startswith("definition") for e in body["errors"])
        assert any(needle in (e["field"] + e["message"]) for e in body["errors"]), body
    assert survey_client.get("/api/v1/questionnaires").json()["items"] == before


def test_scope_and_roles(survey_client: TestClient, node_settings: NodeSettings) -> None:
    q = released_questionnaire(survey_client, example_definition())
    other_city = identity_headers(node_settings, "360200", "admin")
    assert (
        survey_client.get(f"/api/v1/questionnaires/{q['id']}", headers=other_city).status_code
        == 403
    )
    viewer = identity_headers(node_settings, "360100", "viewer")
    r = survey_client.post("/api/v1/questionnaires", json=example_definition(), headers=viewer)
    assert r.status_code == 403
    county = identity_headers(node_settings, "360121", "admin")
    r = survey_client.post("/api/v1/questionnaires", json=example_definition(), headers=county)
    assert r.status_code == 403 and r.json()["type"].endswith("/out-of-scope")


def test_json_export_import_round_trip(survey_client: TestClient) -> None:
    q = released_questionnaire(survey_client, example_definition())
    r = survey_client.get(f"/api/v1/questionnaires/{q['id']}/export", params={"format": "json"})
    assert r.status_code == 200
    r2 = survey_client.post(
        "/api/v1/questionnaires/import",
        content=r.content,
        headers={"content-type": "application/json"},
    )
    assert r2.status_code == 201, r2.text
    assert r2.json()["definition"] == q["definition"]
    assert r2.json()["version"] == 2


def test_xlsform_export_converts_with_pyxform_and_reimports(
    survey_client: TestClient, tmp_path: object
) -> None:
    from pathlib import Path

    from pyxform import xls2xform

    q = released_questionnaire(survey_client, example_definition())
    r = survey_client.get(f"/api/v1/questionnaires/{q['id']}/export", params={"format": "xlsform"})
    assert r.status_code == 200
    assert r.headers["content-type"] == XLSX
    wb = load_workbook(io.BytesIO(r.content))
    assert {"survey", "choices", "settings"} <= set(wb.sheetnames)
    path = Path(str(tmp_path)) / "form.xlsx"
    path.write_bytes(r.content)
    # The independent ODK converter accepts the form and keeps its logic.
    result = xls2xform.convert(xlsform=str(path))
    xml = result.xform
    assert "<h:title>南昌市城市体检居民满意度调查问卷（示例）</h:title>" in xml
    assert "relevant=\" /data/S2/M4  = 'yes'\"" in xml
    assert 'nodeset="/data/S0/C1" type="string" required="true()"' in xml
    assert "count-selected(.) &lt;= 3" in xml
    assert "360124100002" in xml
    # And our own import reads it back to the same definition.
    r2 = survey_client.post(
        "/api/v1/questionnaires/import", content=r.content, headers={"content-type": XLSX}
    )
    assert r2.status_code == 201, r2.text
    assert r2.json()["definition"] == q["definition"]


def test_foreign_xlsform_is_read_and_bad_rows_are_named(survey_client: TestClient) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "survey"
    ws.append(["type", "name", "label", "required", "relevant"])
    ws.append(["select_one comm", "C1", "社区", "yes", ""])
    ws.append(["select_one age_band", "AGE", "年龄", "yes", ""])
    ws.append(["select_one sat5", "Q1", "满意吗", "yes", ""])
    ws.append(["select_one sat5", "Q2", "还满意吗", "", "${Q1} >= 3"])
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", "label"])
    choices.append(["comm", "360121001001", "象南社区"])
    for code, label in [("18-29", "18-29"), ("30-39", "30-39")]:
        choices.append(["age_band", code, label])
    for i in range(1, 6):
        choices.append(["sat5", str(i), str(i)])
    buf = io.BytesIO()
    wb.save(buf)
    r = survey_client.post(
        "/api/v1/questionnaires/import",
        params={"region_code": "360100", "year": 2026, "code": "KOBO-1"},
        content=buf.getvalue(),
        headers={"content-type": XLSX},
    )
    # Without a checkup_type column, select_one over region codes is a plain single choice.
    assert r.status_code == 201, r.text
    d = r.json()["definition"]
    qs = {q["code"]: q for s in d["sections"] for q in s["questions"]}
    assert qs["C1"]["type"] == "single"
    assert qs["Q1"]["type"] == "likert5" and qs["AGE"]["type"] == "demographic"
    assert qs["Q2"]["show_if"] == {"question": "Q1", "op": "ge", "value": 3}
    # An unsupported expression and an unknown type name their rows.
    ws.append(["select_one sat5", "Q3", "再问", "", "${Q1} + ${Q2} > 6"])
    ws.append(["geopoint", "G1", "位置", "", ""])
    buf = io.BytesIO()
    wb.save(buf)
    r = survey_client.post(
        "/api/v1/questionnaires/import",
        params={"region_code": "360100", "year": 2026, "code": "KOBO-2"},
        content=buf.getvalue(),
        headers={"content-type": XLSX},
    )
    assert r.status_code == 422
    rows = {(e["row"], e["field"]) for e in r.json()["errors"]}
    assert rows == {(6, "relevant"), (7, "type")}
    r = survey_client.post(
        "/api/v1/questionnaires/import", content=b"not a workbook", headers={"content-type": XLSX}
    )
    assert r.status_code == 422
