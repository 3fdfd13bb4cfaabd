"""Approval within a node: draft → submitted → approved / rejected, locks, unlock."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from services.indicator.values.service import upsert_values
from shared.errors import Locked
from shared.settings import NodeSettings
from tests.conftest import identity_headers
from tests.indicator.values_builders import (
    COMMUNITIES,
    node_session,
    system_id,
    values_of,
)

__all__ = ["system_id"]


def sub_url(system_id: int, region: str = "360121", period: str = "2025") -> str:
    return f"/api/v1/submissions/{system_id}/{region}/{period}"


def enter(client: TestClient, system_id: int, value: float, **extra: Any) -> Any:
    return client.put(
        "/api/v1/values",
        json={
            "system_id": system_id,
            "indicator_code": "C01",
            "region_code": COMMUNITIES[0],
            "period": "2025",
            "value": value,
        },
        **extra,
    )


def test_full_cycle_with_locks_and_audited_events(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    clerk = identity_headers(node_settings, "360121", "data_entry", subject="clerk")
    reviewer = identity_headers(node_settings, "360121", "reviewer", subject="county-reviewer")
    state = indicator_client.get(sub_url(system_id)).json()
    assert (state["state"], state["id"], state["events"]) == ("draft", None, [])
    # Nothing entered yet: nothing to submit.
    r = indicator_client.post(sub_url(system_id) + "/submit", headers=clerk)
    assert r.status_code == 409 and r.json()["type"].endswith("/empty-submission")
    assert enter(indicator_client, system_id, 5, headers=clerk).status_code == 201

    r = indicator_client.post(sub_url(system_id) + "/submit", headers=clerk)
    assert r.status_code == 200
    sub = r.json()
    assert (sub["state"], sub["locked"], sub["values"]) == ("submitted", True, 1)

    # Submitted values are frozen for every door: single entry, import, delete, roll-ups.
    r = enter(indicator_client, system_id, 6, headers=clerk)
    assert r.status_code == 409 and r.json()["type"].endswith("/locked")
    assert str(sub["id"]) in r.json()["detail"]
    r = indicator_client.post(
        "/api/v1/values/import",
        params={"system_id": system_id, "period": "2025"},
        content=f"indicator_code,region_code,value\nC02,{COMMUNITIES[1]},1\n".encode(),
        headers={"content-type": "text/csv", **clerk},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "locked"
    vid = indicator_client.get("/api/v1/values").json()["items"][0]["id"]
    assert indicator_client.get(f"/api/v1/values/{vid}").json()["locked_by_submission"] == sub["id"]
    assert indicator_client.delete(f"/api/v1/values/{vid}", headers=clerk).status_code == 409
    with node_session(node_settings) as s:
        try:
            upsert_values(
                s,
                system_id=system_id,
                period="2025",
                source="self_checkup",
                rows=[("C02", COMMUNITIES[2], 1.0, None)],
                actor="rollup",
            )
        except Locked as exc:
            assert exc.extra["submission_ids"] == [sub["id"]]
        else:  # pragma: no cover - the assertion below explains
            raise AssertionError("a roll-up wrote into a submitted region")
    # Other periods are not affected.
    r = indicator_client.put(
        "/api/v1/values",
        json={
            "system_id": system_id,
            "indicator_code": "C01",
            "region_code": COMMUNITIES[0],
            "period": "2024",
            "value": 4,
        },
        headers=clerk,
    )
    assert r.status_code == 201

    # Reject needs a reason; the clerk cannot review.
    r = indicator_client.post(sub_url(system_id) + "/reject", headers=reviewer)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    r = indicator_client.post(sub_url(system_id) + "/approve", headers=clerk)
    assert r.status_code == 403
    r = indicator_client.post(
        sub_url(system_id) + "/reject", json={"reason": "C01 与台账不符"}, headers=reviewer
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    assert r.json()["locked"] is False
    # Rejected data is editable again, then resubmitted and approved.
    assert enter(indicator_client, system_id, 7, headers=clerk).status_code == 200
    assert indicator_client.post(sub_url(system_id) + "/submit", headers=clerk).status_code == 200
    r = indicator_client.post(sub_url(system_id) + "/approve", headers=reviewer)
    assert r.status_code == 200 and r.json()["state"] == "approved"
    assert enter(indicator_client, system_id, 8, headers=clerk).status_code == 409
    # Approving twice is not a transition.
    r = indicator_client.post(sub_url(system_id) + "/approve", headers=reviewer)
    assert r.status_code == 409 and r.json()["state"] == "approved"

    # Unlock: reviewer only, with a reason; back to draft.
    r = indicator_client.post(sub_url(system_id) + "/unlock", json={"reason": "x"}, headers=clerk)
    assert r.status_code == 403
    r = indicator_client.post(sub_url(system_id) + "/unlock", headers=reviewer)
    assert r.status_code == 422
    r = indicator_client.post(
        sub_url(system_id) + "/unlock", json={"reason": "省级抽查发现错误"}, headers=reviewer
    )
    assert r.status_code == 200 and r.json()["state"] == "draft"
    assert enter(indicator_client, system_id, 8, headers=clerk).status_code == 200
    assert values_of(node_settings, system_id)[("C01", COMMUNITIES[0], "self_checkup")] == 8

    events = indicator_client.get(sub_url(system_id)).json()["events"]
    assert [(e["action"], e["from_state"], e["to_state"]) for e in events] == [
        ("submit", "draft", "submitted"),
        ("reject", "submitted", "rejected"),
        ("submit", "rejected", "submitted"),
        ("approve", "submitted", "approved"),
        ("unlock", "approved", "draft"),
    ]
    assert events[1]["reason"] == "C01 与台账不符" and events[1]["actor"] == "county-reviewer"
    assert events[4]["reason"] == "省级抽查发现错误" and events[4]["actor_region"] == "360121"
    assert all(e["at"] for e in events)


def test_review_scope_follows_the_region_tree(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    clerk = identity_headers(node_settings, "360121", "data_entry")
    enter(indicator_client, system_id, 5, headers=clerk)
    indicator_client.post(sub_url(system_id) + "/submit", headers=clerk)
    neighbour = identity_headers(node_settings, "360123", "reviewer")
    r = indicator_client.post(sub_url(system_id) + "/approve", headers=neighbour)
    assert r.status_code == 403
    assert indicator_client.get(sub_url(system_id), headers=neighbour).status_code == 403
    city = identity_headers(node_settings, "360100", "reviewer", subject="city-reviewer")
    queue = indicator_client.get(
        "/api/v1/submissions", params={"state": "submitted"}, headers=city
    ).json()["items"]
    assert [(s["region_code"], s["state"]) for s in queue] == [("360121", "submitted")]
    r = indicator_client.post(sub_url(system_id) + "/approve", headers=city)
    assert r.status_code == 200
    events = r.json()["events"]
    assert (events[-1]["actor"], events[-1]["actor_region"]) == ("city-reviewer", "360100")


def test_bad_keys_are_problems(
    indicator_client: TestClient, node_settings: NodeSettings, system_id: int
) -> None:
    assert indicator_client.get(sub_url(99999)).status_code == 404
    assert indicator_client.get(sub_url(system_id, region="369999")).status_code == 404
    assert indicator_client.get(sub_url(system_id, region="36x")).status_code == 422
    assert indicator_client.get(sub_url(system_id, period="someday")).status_code == 422
    assert indicator_client.post(sub_url(system_id) + "/publish").status_code == 422
