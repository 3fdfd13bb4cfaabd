"""Indicator systems through the API: drafts, validation, release/lock, versions, scope, audit."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.conftest import identity_headers

API = "/api/v1/systems"


def indicator(code: str, **overrides: Any) -> dict[str, Any]:
    """A minimal valid indicator body."""
    body: dict[str, Any] = {
        "code": code,
        "name_zh": f"指标{code}",
        "level": "compound",
        "dimension": "设施完善",
        "unit": "个",
        "direction": "lower",
        "value_type": "integer",
        "min_value": 0,
    }
    body.update(overrides)
    return body


def create_draft(client: TestClient, code: str = "T-SYS", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "name": "测试体系",
        "year": 2025,
        "indicators": [
            indicator("A", sub_items=[{"code": "A-1", "name": "检查一"}], compute="sub_items"),
            indicator("B"),
            indicator(
                "R",
                unit="%",
                value_type="percent",
                max_value=100,
                formula="A / B * 100",
                compute="formula",
            ),
        ],
    }
    body.update(overrides)
    r = client.post(API, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()  # type: ignore[no-any-return]


def fields(body: dict[str, Any]) -> list[str]:
    return [e.get("field") for e in body.get("errors", [])]


def test_create_read_and_list(indicator_client: TestClient) -> None:
    created = create_draft(indicator_client)
    assert created["state"] == "draft"
    assert created["version"] == 1
    assert created["region_code"] == "360121"  # the node's region by default
    assert created["created_by"] == "tester"
    assert [i["code"] for i in created["indicators"]] == ["A", "B", "R"]
    assert [i["sort_order"] for i in created["indicators"]] == [1, 2, 3]
    assert created["indicators"][0]["sub_items"] == [
        {"code": "A-1", "name": "检查一", "sort_order": 1}
    ]
    again = indicator_client.get(f"{API}/{created['id']}").json()
    assert again == created
    create_draft(indicator_client, code="OTHER", year=2024)
    page = indicator_client.get(API, params={"year": 2025}).json()
    assert [(s["code"], s["indicator_count"]) for s in page["items"]] == [("T-SYS", 3)]
    assert indicator_client.get(API, params={"code": "OTHER"}).json()["items"][0]["year"] == 2024
    assert indicator_client.get(API, params={"state": "released"}).json()["items"] == []
    first = indicator_client.get(API, params={"limit": 1}).json()
    second = indicator_client.get(API, params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert first["items"][0]["code"] == "T-SYS" and second["items"][0]["code"] == "OTHER"
    # a second draft of the same code and year takes the next version
    assert create_draft(indicator_client)["version"] == 2


def test_unknown_system_and_indicator_are_404(indicator_client: TestClient) -> None:
    assert problem(indicator_client.get(f"{API}/999"), 404)["type"].endswith("/unknown-system")
    sid = create_draft(indicator_client)["id"]
    r = indicator_client.get(f"{API}/{sid}/indicators/NOPE")
    assert problem(r, 404)["type"].endswith("/unknown-indicator")


def test_formula_problems_name_the_field_and_store_nothing(indicator_client: TestClient) -> None:
    sys_ = create_draft(indicator_client)
    sid = sys_["id"]
    bad = [
        (indicator("X", formula="A / ZZ * 100", compute="formula"), "formula", "ZZ"),
        (indicator("X", formula="__import__('os')", compute="formula"), "formula", "字符"),
        (indicator("X", formula="A.__class__", compute="formula"), "formula", "字符"),
        (indicator("X", formula="X * 2", compute="formula"), "formula", "循环"),
        (indicator("X", compute="formula"), "formula", "必须填写公式"),
        (indicator("X", formula="A + B"), "compute", "公式"),
        (indicator("X", compute="sub_items"), "sub_items", "分项"),
    ]
    for body, field, text in bad:
        body_ = problem(indicator_client.post(f"{API}/{sid}/indicators", json=body), 422)
        assert field in fields(body_), (body, body_)
        assert text in json.dumps(body_, ensure_ascii=False), (body, body_)
    r = indicator_client.post(
        f"{API}/{sid}/indicators", json=indicator("X", formula="A+(B", compute="formula")
    )
    err = problem(r, 422)["errors"][0]
    assert err["field"] == "formula" and err["position"] == 2
    # A cycle across two indicators: R reads A; making A read R closes the loop.
    r = indicator_client.patch(f"{API}/{sid}/indicators/A", json={"formula": "R / 2"})
    body = problem(r, 422)
    assert "循环" in body["detail"]
    assert indicator_client.get(f"{API}/{sid}").json() == sys_


def test_threshold_rules(indicator_client: TestClient) -> None:
    sid = create_draft(indicator_client)["id"]
    cases = [
        ({"direction": "higher", "standard_value": 90, "warning_value": 95}, "warning_value"),
        ({"direction": "lower", "standard_value": 5, "warning_value": 1}, "warning_value"),
        ({"standard_value": 5}, "standard_source"),
        ({"warning_value": 5}, "warning_value"),
        ({"direction": "lower", "band_low": 1}, "band_low"),
        ({"direction": "band", "standard_value": 3, "standard_source": "x"}, "standard_value"),
        ({"direction": "band", "band_low": 5, "band_high": 1, "standard_source": "x"}, "band_high"),
        (
            {
                "direction": "band",
                "band_low": 1,
                "band_high": 5,
                "warning_low": 2,
                "standard_source": "x",
            },
            "warning_low",
        ),
        ({"min_value": 10, "max_value": 1}, "max_value"),
        ({"level": "galaxy"}, "level"),
        ({"code": "has space"}, "code"),
        ({"name_zh": "控制\x07字符"}, "name_zh"),
    ]
    for change, field in cases:
        r = indicator_client.post(f"{API}/{sid}/indicators", json={**indicator("N"), **change})
        assert field in json.dumps(fields(problem(r, 422))), (change, r.text)
    ok = indicator(
        "N",
        direction="band",
        band_low=1,
        band_high=5,
        warning_low=0,
        warning_high=8,
        standard_source="GB 50180-2018",
    )
    assert indicator_client.post(f"{API}/{sid}/indicators", json=ok).status_code == 201
    # a duplicate code
    r = indicator_client.post(f"{API}/{sid}/indicators", json=indicator("N"))
    assert "重复" in problem(r, 422)["detail"]


def test_indicator_and_sub_item_crud(indicator_client: TestClient) -> None:
    sid = create_draft(indicator_client)["id"]
    url = f"{API}/{sid}/indicators"
    added = indicator_client.post(
        url, json=indicator("C", standard_value=0, standard_source="政策要求")
    )
    assert added.status_code == 201 and added.json()["sort_order"] == 4
    r = indicator_client.patch(f"{url}/C", json={"name_zh": "改名", "standard_value": None})
    assert r.status_code == 200, r.text
    assert r.json()["name_zh"] == "改名" and r.json()["standard_value"] is None
    # null on a required field is refused
    assert problem(indicator_client.patch(f"{url}/C", json={"name_zh": None}), 422)
    # sub-items: add, change, remove
    r = indicator_client.post(f"{url}/A/sub-items", json={"code": "A-2", "name": "检查二"})
    assert r.status_code == 201 and [s["code"] for s in r.json()["sub_items"]] == ["A-1", "A-2"]
    r = indicator_client.patch(f"{url}/A/sub-items/A-2", json={"name": "检查二（修订）"})
    assert r.json()["sub_items"][1] == {"code": "A-2", "name": "检查二（修订）", "sort_order": 2}
    r = indicator_client.post(f"{url}/A/sub-items", json={"code": "A-1", "name": "重复"})
    assert problem(r, 422)
    assert problem(indicator_client.delete(f"{url}/A/sub-items/NOPE"), 404)
    assert indicator_client.delete(f"{url}/A/sub-items/A-1").status_code == 200
    # the last sub-item of a sub_items indicator cannot go
    assert "分项" in problem(indicator_client.delete(f"{url}/A/sub-items/A-2"), 422)["detail"]
    # renaming or removing a code a formula reads is refused, naming the formula's owner
    body = problem(indicator_client.patch(f"{url}/B", json={"code": "B2"}), 422)
    assert "indicators[R].formula" in fields(body)
    body = problem(indicator_client.delete(f"{url}/B"), 422)
    assert "indicators[R].formula" in fields(body)
    assert indicator_client.delete(f"{url}/R").status_code == 204
    assert indicator_client.delete(f"{url}/B").status_code == 204
    codes = [i["code"] for i in indicator_client.get(url).json()]
    assert codes == ["A", "C"]
    # replace the whole checklist through PATCH
    r = indicator_client.patch(f"{url}/A", json={"sub_items": [{"code": "Z", "name": "唯一检查"}]})
    assert r.json()["sub_items"] == [{"code": "Z", "name": "唯一检查", "sort_order": 1}]


def test_release_locks_and_checksums(indicator_client: TestClient) -> None:
    sid = create_draft(indicator_client)["id"]
    released = indicator_client.post(f"{API}/{sid}/release").json()
    assert released["state"] == "released"
    assert released["released_by"] == "tester" and released["released_at"]
    exported = indicator_client.get(f"{API}/{sid}/export").json()
    assert exported["status"]["checksum"] == released["checksum"]
    content = {k: v for k, v in exported.items() if k != "status"}
    canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == released["checksum"]
    before = indicator_client.get(f"{API}/{sid}").json()
    writes = [
        indicator_client.patch(f"{API}/{sid}", json={"name": "改"}),
        indicator_client.post(f"{API}/{sid}/indicators", json=indicator("Q")),
        indicator_client.patch(f"{API}/{sid}/indicators/A", json={"unit": "处"}),
        indicator_client.delete(f"{API}/{sid}/indicators/B"),
        indicator_client.post(
            f"{API}/{sid}/indicators/A/sub-items", json={"code": "Y", "name": "y"}
        ),
        indicator_client.delete(f"{API}/{sid}"),
        indicator_client.post(f"{API}/{sid}/release"),
    ]
    for r in writes:
        assert problem(r, 409)["type"].endswith("/locked"), r.text
    assert indicator_client.get(f"{API}/{sid}").json() == before


def test_new_version_copies_and_retire(indicator_client: TestClient) -> None:
    sid = create_draft(indicator_client)["id"]
    assert problem(indicator_client.post(f"{API}/{sid}/versions"), 409)  # drafts just change
    assert problem(indicator_client.post(f"{API}/{sid}/retire"), 409)
    indicator_client.post(f"{API}/{sid}/release")
    r = indicator_client.post(f"{API}/{sid}/versions", json={"year": 2026})
    assert r.status_code == 201, r.text
    v2 = r.json()
    old = indicator_client.get(f"{API}/{sid}").json()
    assert (v2["state"], v2["year"], v2["version"], v2["based_on_id"]) == ("draft", 2026, 1, sid)
    assert v2["indicators"] == old["indicators"]
    assert v2["index_method"] == old["index_method"]
    same_year = indicator_client.post(f"{API}/{sid}/versions").json()
    assert (same_year["year"], same_year["version"]) == (2025, 2)
    # the copy changes, the original does not
    indicator_client.patch(f"{API}/{v2['id']}/indicators/A/sub-items/A-1", json={"name": "改过"})
    assert indicator_client.get(f"{API}/{sid}").json() == old
    retired = indicator_client.post(f"{API}/{sid}/retire").json()
    assert retired["state"] == "retired" and retired["retired_by"] == "tester"
    assert problem(indicator_client.post(f"{API}/{sid}/retire"), 409)
    # a retired version can still seed a new one
    assert indicator_client.post(f"{API}/{sid}/versions").status_code == 201


def test_metadata_patch_index_method_and_delete(indicator_client: TestClient) -> None:
    sid = create_draft(indicator_client)["id"]
    r = indicator_client.patch(f"{API}/{sid}", json={"name": "新名", "description": "说明"})
    assert r.json()["name"] == "新名" and r.json()["description"] == "说明"
    r = indicator_client.patch(
        f"{API}/{sid}", json={"index_method": {"dimension_weights": {"设施完善": 2}}}
    )
    assert r.status_code == 200 and r.json()["index_method"]["dimension_weights"] == {"设施完善": 2}
    r = indicator_client.patch(
        f"{API}/{sid}", json={"index_method": {"dimension_weights": {"不存在": 1}}}
    )
    assert "index_method.dimension_weights.设施完善" in fields(problem(r, 422))
    r = indicator_client.patch(f"{API}/{sid}", json={"index_method": {"normalisation": "magic"}})
    assert problem(r, 422)
    assert indicator_client.delete(f"{API}/{sid}").status_code == 204
    assert problem(indicator_client.get(f"{API}/{sid}"), 404)


def test_audit_trail_names_who_and_what(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    sid = create_draft(indicator_client)["id"]
    other = identity_headers(node_settings, "360121", "admin", subject="li.si")
    indicator_client.post(f"{API}/{sid}/indicators", json=indicator("Q"), headers=other)
    indicator_client.patch(f"{API}/{sid}/indicators/Q", json={"unit": "处"})
    indicator_client.post(f"{API}/{sid}/release", headers=other)
    events = indicator_client.get(f"{API}/{sid}/events").json()
    assert [(e["action"], e["actor"]) for e in events] == [
        ("created", "tester"),
        ("indicator_added", "li.si"),
        ("indicator_updated", "tester"),
        ("released", "li.si"),
    ]
    assert events[2]["detail"] == {"code": "Q", "fields": ["unit"]}
    assert all(e["at"] and e["node"] == node_settings.node_id for e in events)
    assert indicator_client.get(f"{API}/{sid}").json()["released_by"] == "li.si"


def test_region_scope_and_roles(indicator_client: TestClient, node_settings: NodeSettings) -> None:
    sid = create_draft(indicator_client)["id"]
    viewer = identity_headers(node_settings, "360121", "viewer")
    entry = identity_headers(node_settings, "360121", "data_entry")
    neighbour = identity_headers(node_settings, "360122", "admin")
    city = identity_headers(node_settings, "360100", "viewer")
    province_admin = identity_headers(node_settings, "360000", "admin")
    beijing = identity_headers(node_settings, "110000", "admin")
    # reading: the region itself and every level above it
    assert indicator_client.get(f"{API}/{sid}", headers=viewer).status_code == 200
    assert indicator_client.get(f"{API}/{sid}", headers=city).status_code == 200
    assert problem(indicator_client.get(f"{API}/{sid}", headers=neighbour), 403)
    assert problem(indicator_client.get(f"{API}/{sid}/export", headers=beijing), 403)
    assert indicator_client.get(API, headers=neighbour).json()["items"] == []
    # writing needs admin of the region
    for headers in (viewer, entry, neighbour):
        r = indicator_client.post(f"{API}/{sid}/indicators", json=indicator("Q"), headers=headers)
        assert problem(r, 403)
    # the province admin may write the county's system on this county node
    r = indicator_client.post(
        f"{API}/{sid}/indicators", json=indicator("Q"), headers=province_admin
    )
    assert r.status_code == 201
    # but no region outside this node's scope can publish here
    r = indicator_client.post(
        API,
        json={"code": "PROV", "name": "省体系", "year": 2025, "region_code": "360000"},
        headers=province_admin,
    )
    assert problem(r, 403)["type"].endswith("/out-of-scope")
    r = indicator_client.post(
        API, json={"code": "BAD", "name": "x", "year": 2025, "region_code": "369999"}
    )
    assert problem(r, 403)
    assert [s["code"] for s in indicator_client.get(API).json()["items"]] == ["T-SYS"]


def test_a_province_system_is_readable_below_it(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    from services.indicator.app import create_app

    province = node_settings.model_copy(update={"region_code": "360000"})
    with TestClient(create_app(province), raise_server_exceptions=False) as prov:
        prov.headers.update(identity_headers(province, "360000", "admin"))
        r = prov.post(API, json={"code": "JX", "name": "江西省体系", "year": 2025})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        r = prov.post(API, json={"code": "NC", "name": "x", "year": 2025, "region_code": "360100"})
        assert r.status_code == 201
    county_viewer = identity_headers(node_settings, "360121", "viewer")
    assert indicator_client.get(f"{API}/{sid}", headers=county_viewer).status_code == 200
    listed = indicator_client.get(API, headers=county_viewer).json()["items"]
    assert {s["code"] for s in listed} == {"JX", "NC"}
    other_city = identity_headers(node_settings, "360200", "viewer")
    assert {s["code"] for s in indicator_client.get(API, headers=other_city).json()["items"]} == {
        "JX"
    }
    # readable is not writable: the county admin cannot change the province's system
    r = indicator_client.patch(f"{API}/{sid}", json={"name": "改"})
    assert problem(r, 403)


def test_a_county_extends_the_province_system(
    indicator_client: TestClient, node_settings: NodeSettings
) -> None:
    from services.indicator.systems.service import load_starter_system
    from shared.db import Database

    url, schema = node_settings.database_for("indicator")
    db = Database(url, schema=schema, spatial=True)
    try:
        with db.session() as session:
            parent_id = load_starter_system(session, "360000", "province").id
    finally:
        db.dispose()
    draft_id = create_draft(indicator_client)["id"]
    r = indicator_client.post(f"{API}/{draft_id}/extend", json={"code": "X", "name": "x"})
    assert problem(r, 409)  # only released systems are extended
    r = indicator_client.post(
        f"{API}/{parent_id}/extend", json={"code": "NCX", "name": "南昌县城市体检指标体系"}
    )
    assert r.status_code == 201, r.text
    child = r.json()
    assert (child["region_code"], child["parent_system_id"], child["state"]) == (
        "360121",
        parent_id,
        "draft",
    )
    parent = indicator_client.get(f"{API}/{parent_id}").json()
    assert len(child["indicators"]) == len(parent["indicators"])
    assert all(i["inherited"] for i in child["indicators"])
    assert child["indicators"][0]["sub_items"] == parent["indicators"][0]["sub_items"]
    cid = child["id"]
    # inherited indicators are read-only in the child
    r = indicator_client.patch(f"{API}/{cid}/indicators/H-01", json={"standard_value": 1})
    assert problem(r, 409)["type"].endswith("/inherited-indicator")
    assert problem(indicator_client.delete(f"{API}/{cid}/indicators/H-01"), 409)
    # local characteristic indicators may read inherited ones
    local = indicator(
        "NCX-01",
        category="local",
        level="city",
        unit="%",
        value_type="percent",
        formula="C-11 / C-13 * 100",
        compute="formula",
    )
    r = indicator_client.post(f"{API}/{cid}/indicators", json=local)
    assert r.status_code == 201, r.text
    assert indicator_client.post(f"{API}/{cid}/release").json()["state"] == "released"
    assert indicator_client.get(f"{API}/{parent_id}").json() == parent
