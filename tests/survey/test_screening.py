"""Screening: each flag, exclusion from counts, review and reinstatement with an audit trail."""

from __future__ import annotations

import random

from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.conftest import identity_headers
from tests.survey.helpers import example_answers, make_campaign, submit


def _flags(client: TestClient, campaign_id: int, response_id: int) -> list[str]:
    r = client.get(f"/api/v1/campaigns/{campaign_id}/responses/{response_id}").json()
    return [f["code"] for f in r["flags"]]


def test_each_screen_flags_and_excludes(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    # A county campaign on the city's questionnaire: other counties' communities are outside.
    c = make_campaign(survey_client, region_code="360121")
    rng = random.Random(10)
    inside = "360121001001"
    ok = submit(survey_client, node_settings, c["token"], example_answers(rng, C1=inside))
    assert ok.status_code == 201
    speeder = submit(
        survey_client,
        node_settings,
        c["token"],
        example_answers(rng, C1=inside),
        meta={"duration_s": 20},
        addr="203.0.113.20",
    )
    flat = example_answers(rng, C1=inside, M4="no", T3=10)
    for code in ("H1", "H2", "H3", "M1", "M2", "M3", "M6", "B1", "B2", "T1", "T2"):
        flat[code] = 5
    straight = submit(survey_client, node_settings, c["token"], flat, addr="203.0.113.21")
    inattentive = submit(
        survey_client,
        node_settings,
        c["token"],
        example_answers(rng, C1=inside, A1=2),
        addr="203.0.113.22",
    )
    outside = submit(
        survey_client,
        node_settings,
        c["token"],
        example_answers(rng, C1="360102002001"),
        addr="203.0.113.23",
    )
    far = submit(
        survey_client,
        node_settings,
        c["token"],
        example_answers(rng, C1=inside),
        meta={"located_region": "440100"},
        addr="203.0.113.24",
    )
    # The same answers again from the same address: a duplicate of the first.
    twin_answers = example_answers(rng, C1=inside)
    first = submit(survey_client, node_settings, c["token"], twin_answers, addr="203.0.113.25")
    twin = submit(survey_client, node_settings, c["token"], twin_answers, addr="203.0.113.25")
    # Same answers from elsewhere is not a duplicate (two neighbours may agree).
    neighbour = submit(survey_client, node_settings, c["token"], twin_answers, addr="203.0.113.26")
    rid = {
        name: r.json()["response_id"]
        for name, r in {
            "ok": ok,
            "speeder": speeder,
            "straight": straight,
            "inattentive": inattentive,
            "outside": outside,
            "far": far,
            "first": first,
            "twin": twin,
            "neighbour": neighbour,
        }.items()
    }
    assert _flags(survey_client, c["id"], rid["ok"]) == []
    assert _flags(survey_client, c["id"], rid["speeder"]) == ["speeder"]
    assert _flags(survey_client, c["id"], rid["straight"]) == ["straightline"]
    assert _flags(survey_client, c["id"], rid["inattentive"]) == ["attention"]
    assert _flags(survey_client, c["id"], rid["outside"]) == ["out_of_region"]
    assert _flags(survey_client, c["id"], rid["far"]) == ["out_of_region"]
    assert _flags(survey_client, c["id"], rid["first"]) == []
    assert _flags(survey_client, c["id"], rid["twin"]) == ["duplicate"]
    assert _flags(survey_client, c["id"], rid["neighbour"]) == []
    twin_row = survey_client.get(f"/api/v1/campaigns/{c['id']}/responses/{rid['twin']}").json()
    assert twin_row["flags"][0]["detail"] == {"of": rid["first"]}
    speeder_row = survey_client.get(
        f"/api/v1/campaigns/{c['id']}/responses/{rid['speeder']}"
    ).json()
    assert speeder_row["flags"][0]["detail"]["min_s"] > 20

    progress = survey_client.get(f"/api/v1/campaigns/{c['id']}/progress").json()
    assert (progress["received"], progress["collected"], progress["excluded"]) == (9, 3, 6)
    summary = survey_client.get(f"/api/v1/campaigns/{c['id']}/screening").json()
    assert {f["code"]: f["responses"] for f in summary["flags"]} == {
        "speeder": 1,
        "straightline": 1,
        "attention": 1,
        "duplicate": 1,
        "out_of_region": 2,
    }
    flagged = survey_client.get(
        f"/api/v1/campaigns/{c['id']}/responses", params={"flag": "out_of_region"}
    ).json()["items"]
    assert {r["id"] for r in flagged} == {rid["outside"], rid["far"]}
    excluded = survey_client.get(
        f"/api/v1/campaigns/{c['id']}/responses", params={"status": "excluded", "limit": 2}
    ).json()
    assert len(excluded["items"]) == 2 and excluded["next_cursor"]


def test_reviewer_reinstates_and_excludes(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    c = make_campaign(survey_client)
    rng = random.Random(11)
    fast = submit(
        survey_client, node_settings, c["token"], example_answers(rng), meta={"duration_s": 10}
    ).json()["response_id"]
    good = submit(
        survey_client, node_settings, c["token"], example_answers(rng), addr="10.1.1.1"
    ).json()["response_id"]
    url = f"/api/v1/campaigns/{c['id']}/responses"
    viewer = identity_headers(node_settings, "360100", "viewer")
    r = survey_client.post(f"{url}/{fast}/reinstate", json={"note": "看过了"}, headers=viewer)
    assert r.status_code == 403
    reviewer = identity_headers(node_settings, "360100", "reviewer", subject="审核员甲")
    r = survey_client.post(f"{url}/{fast}/reinstate", json={"note": ""}, headers=reviewer)
    assert r.status_code == 422  # a reason is required
    r = survey_client.post(
        f"{url}/{fast}/reinstate", json={"note": "老人由家属代读，用时短属实"}, headers=reviewer
    )
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "included" and body["reviewed_by"] == "审核员甲"
    assert [f["code"] for f in body["flags"]] == ["speeder"]  # flags stay on record
    assert survey_client.get(f"/api/v1/campaigns/{c['id']}/progress").json()["collected"] == 2
    r = survey_client.post(f"{url}/{fast}/reinstate", json={"note": "again"}, headers=reviewer)
    assert r.status_code == 409
    r = survey_client.post(
        f"{url}/{good}/exclude", json={"note": "电话回访确认非本人"}, headers=reviewer
    )
    assert r.status_code == 200 and r.json()["status"] == "excluded"
    assert [f["code"] for f in r.json()["flags"]] == ["manual"]
    progress = survey_client.get(f"/api/v1/campaigns/{c['id']}/progress").json()
    assert (progress["collected"], progress["excluded"]) == (1, 1)
    events = survey_client.get(f"/api/v1/campaigns/{c['id']}/events").json()
    reviews = [
        (e["action"], e["actor"], e["detail"]["note"]) for e in events if "note" in e["detail"]
    ]
    assert reviews == [
        ("reinstate", "审核员甲", "老人由家属代读，用时短属实"),
        ("exclude", "审核员甲", "电话回访确认非本人"),
    ]
    other = identity_headers(node_settings, "360200", "reviewer")
    assert survey_client.get(f"{url}/{fast}", headers=other).status_code == 403
    assert survey_client.get(f"{url}/999999").status_code == 404
