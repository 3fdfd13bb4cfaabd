"""Single values: PUT, GET, list, history, DELETE, flags; on both databases."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from services.indicator.evaluation.models import Evaluation
from services.indicator.values.models import IndicatorValue
from shared.settings import NodeSettings
from tests.conftest import identity_headers
from tests.indicator.values_builders import (
    COMMUNITIES,
    create_system,
    node_session,
    system_id,
    values_of,
)

__all__ = ["system_id"]


def put(client: TestClient, system_id: int, **fields: Any) -> Any:
    headers = fields.pop("headers", None)
    body = {
        "system_id": system_id,
        "indicator_code": "C01",
        "region_code": COMMUNITIES[0],
        "period": "2025",
        "value": 10,
        **fields,
    }
    return client.put("/api/v1/values", json=body, headers=headers)


def test_put_creates_then_changes_with_optimistic_revision(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    r = put(indicator_client, system_id, expected_revision=0, note="首次")
    assert r.status_code == 201
    created = r.json()
    assert (created["value"], created["revision"], created["note"]) == (10, 1, "首次")
    r = put(indicator_client, system_id, value=12, expected_revision=1, reason="复核更正")
    assert r.status_code == 200 and r.json()["revision"] == 2
    # A stale revision is a conflict and changes nothing.
    r = put(indicator_client, system_id, value=99, expected_revision=1)
    assert r.status_code == 409 and r.json()["current_revision"] == 2
    # The same value again is not a change.
    r = put(indicator_client, system_id, value=12)
    assert r.status_code == 200 and r.json()["revision"] == 2
    vid = created["id"]
    detail = indicator_client.get(f"/api/v1/values/{vid}").json()
    assert (detail["value"], detail["locked_by_submission"]) == (12, None)
    hist = indicator_client.get(f"/api/v1/values/{vid}/history").json()
    assert [(h["action"], h["old_value"], h["new_value"], h["revision"]) for h in hist] == [
        ("create", None, 10, 1),
        ("update", 10, 12, 2),
    ]
    assert hist[1]["reason"] == "复核更正"


def test_put_validation_names_the_field(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    r = put(indicator_client, system_id, value=3.5)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "value", "code": "not_integer", "message": r.json()["errors"][0]["message"]}
    ]
    r = put(indicator_client, system_id, indicator_code="ZZ9")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "indicator_code"
    r = put(indicator_client, system_id, unit="米")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "unit"
    r = put(indicator_client, system_id, period="last year")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "period"
    r = put(indicator_client, system_id, region_code="36012100100")
    assert r.status_code == 422
    r = indicator_client.put(
        "/api/v1/values",
        content=b'{"system_id": 1, "value": NaN',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert values_of(node_settings, system_id) == {}


def test_scope_roles_and_on_behalf(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    other = identity_headers(node_settings, "360123", "data_entry")
    r = put(indicator_client, system_id, headers=other)
    assert r.status_code == 403 and r.json()["type"].endswith("/out-of-scope")
    reviewer = identity_headers(node_settings, "360121", "reviewer")
    r = put(indicator_client, system_id, headers=reviewer)
    assert r.status_code == 403 and r.json()["type"].endswith("/role-required")
    province = identity_headers(node_settings, "360000", "data_entry", subject="province")
    r = put(indicator_client, system_id, headers=province)
    assert r.status_code == 201 and r.json()["on_behalf"] is True
    vid = r.json()["id"]
    # Reads follow scope too: another county cannot see it, the city can.
    viewer = identity_headers(node_settings, "360123", "viewer")
    assert indicator_client.get(f"/api/v1/values/{vid}", headers=viewer).status_code == 403
    city = identity_headers(node_settings, "360100", "viewer")
    assert indicator_client.get(f"/api/v1/values/{vid}", headers=city).status_code == 200
    assert indicator_client.get(f"/api/v1/values/{vid}/history", headers=viewer).status_code == 403
    page = indicator_client.get("/api/v1/values", headers=viewer).json()
    assert page["items"] == []
    r = indicator_client.get("/api/v1/values", params={"region_code": "360121"}, headers=viewer)
    assert r.status_code == 403


def test_list_filters_and_cursor(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    body = "indicator_code,region_code,value\n" + "".join(
        f"C01,{c},{i}\nC02,{c},{i}\n" for i, c in enumerate(COMMUNITIES, 1)
    )
    r = indicator_client.post(
        "/api/v1/values/import",
        params={"system_id": system_id, "period": "2025"},
        content=body.encode(),
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 200
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"system_id": system_id, "indicator_code": "C01", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = indicator_client.get("/api/v1/values", params=params).json()
        seen += [(v["region_code"], v["value"]) for v in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [(c, float(i)) for i, c in enumerate(COMMUNITIES, 1)]
    exact = indicator_client.get(
        "/api/v1/values", params={"region_code": COMMUNITIES[1], "exact_region": True}
    ).json()
    assert {v["indicator_code"] for v in exact["items"]} == {"C01", "C02", "F01"}
    assert indicator_client.get("/api/v1/values", params={"cursor": "x"}).status_code == 422


def test_delete_keeps_history_and_refreshes_derived_values(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    c01 = put(indicator_client, system_id, value=6).json()
    put(indicator_client, system_id, indicator_code="C02", value=2)
    assert values_of(node_settings, system_id)[("F01", COMMUNITIES[0], "self_checkup")] == 3
    with node_session(node_settings) as s:
        s.add(
            Evaluation(
                value_id=c01["id"],
                system_id=system_id,
                indicator_code="C01",
                region_code=COMMUNITIES[0],
                period="2025",
                source="self_checkup",
                value=6,
                grade="red",
                points=0,
                rule="test",
            )
        )
    f01 = next(
        v
        for v in indicator_client.get("/api/v1/values", params={"indicator_code": "F01"}).json()[
            "items"
        ]
    )
    assert indicator_client.delete(f"/api/v1/values/{f01['id']}").status_code == 409
    r = indicator_client.delete(
        f"/api/v1/values/{c01['id']}", params={"expected_revision": 7, "reason": "x"}
    )
    assert r.status_code == 409
    r = indicator_client.delete(f"/api/v1/values/{c01['id']}", params={"reason": "重复填报"})
    assert r.status_code == 204
    stored = values_of(node_settings, system_id)
    assert ("C01", COMMUNITIES[0], "self_checkup") not in stored
    # The derived value follows its input: no input, no number.
    assert stored[("F01", COMMUNITIES[0], "self_checkup")] is None
    assert indicator_client.get(f"/api/v1/values/{c01['id']}").status_code == 404
    hist = indicator_client.get(f"/api/v1/values/{c01['id']}/history").json()
    assert [(h["action"], h["old_value"], h["new_value"]) for h in hist] == [
        ("create", None, 6),
        ("delete", 6, None),
    ]
    assert hist[1]["reason"] == "重复填报" and hist[1]["region_code"] == COMMUNITIES[0]
    with node_session(node_settings) as s:
        assert s.get(Evaluation, c01["id"]) is None


def test_source_disagreement_flags_both_values_and_clears_when_resolved(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    a = put(indicator_client, system_id, value=100).json()
    b = put(indicator_client, system_id, value=120, source="third_party").json()
    assert b["flags"]["source_disagreement"][0]["source"] == "self_checkup"
    assert b["flags"]["source_disagreement"][0]["relative_difference"] == round(20 / 120, 4)
    a_now = indicator_client.get(f"/api/v1/values/{a['id']}").json()
    assert a_now["flags"]["source_disagreement"][0]["value_id"] == b["id"]
    flagged = indicator_client.get("/api/v1/values", params={"flagged": True}).json()["items"]
    assert {v["id"] for v in flagged} == {a["id"], b["id"]}
    # Within 10 %: both flags go away, both values stay.
    put(indicator_client, system_id, value=105, source="third_party")
    for vid in (a["id"], b["id"]):
        assert indicator_client.get(f"/api/v1/values/{vid}").json()["flags"] is None
    assert indicator_client.get("/api/v1/values", params={"flagged": True}).json()["items"] == []
    # Deleting one side of a disagreement clears the other side's flag.
    put(indicator_client, system_id, value=200, source="third_party")
    assert indicator_client.get(f"/api/v1/values/{a['id']}").json()["flags"] is not None
    indicator_client.delete(f"/api/v1/values/{b['id']}")
    assert indicator_client.get(f"/api/v1/values/{a['id']}").json()["flags"] is None


def test_outliers_against_the_regions_history(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    for period, value in (("2021", 10), ("2022", 11), ("2023", 12), ("2024", 11)):
        assert put(indicator_client, system_id, value=value, period=period).status_code == 201
    normal = put(indicator_client, system_id, value=13, period="2025").json()
    assert normal["flags"] is None
    body = f"indicator_code,region_code,value\nC01,{COMMUNITIES[0]},60\n"
    r = indicator_client.post(
        "/api/v1/values/import",
        params={"system_id": system_id, "period": "2025"},
        content=body.encode(),
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 200 and r.json()["flags"]["outliers"] == 1
    flags = indicator_client.get(f"/api/v1/values/{normal['id']}").json()["flags"]
    # median 11, MAD 0.5: z = 0.6745 · 49 / 0.5
    assert flags["outlier"]["median"] == 11 and flags["outlier"]["n"] == 4
    assert flags["outlier"]["z"] == round(0.6745 * 49 / 0.5, 3)
    # Too little history: no verdict.
    fresh = put(indicator_client, system_id, region_code=COMMUNITIES[1], value=1000).json()
    assert fresh["flags"] is None
    with node_session(node_settings) as s:
        assert s.query(IndicatorValue).filter(IndicatorValue.period == "2025").count() == 2


def test_history_counts_every_system_version_of_an_earlier_period(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    # Two earlier periods, but 2024 was entered under two versions of the system: the key
    # has three earlier values, enough for a verdict (min_history 3).
    with node_session(node_settings) as s:
        v2 = create_system(s, version=2)
    for sid, period, value in ((system_id, "2023", 10), (system_id, "2024", 11), (v2, "2024", 12)):
        assert put(indicator_client, sid, value=value, period=period).status_code == 201
    r = put(indicator_client, v2, value=60, period="2025")
    assert r.status_code == 201
    outlier = r.json()["flags"]["outlier"]
    assert (outlier["n"], outlier["median"], outlier["mad"]) == (3, 11, 1)
    # A region with two earlier values only gets no verdict, however far off it is.
    for period, value in (("2023", 10), ("2024", 11)):
        put(indicator_client, system_id, value=value, period=period, region_code=COMMUNITIES[1])
    r = put(indicator_client, v2, value=600, period="2025", region_code=COMMUNITIES[1])
    assert r.status_code == 201 and r.json()["flags"] is None
