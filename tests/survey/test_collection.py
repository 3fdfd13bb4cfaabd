"""The public submission link: idempotency, dates, validation, size and flood limits."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.survey.helpers import (
    anon_headers,
    example_answers,
    make_campaign,
    submit,
)


def _received(client: TestClient, campaign_id: int) -> int:
    return int(client.get(f"/api/v1/campaigns/{campaign_id}/progress").json()["received"])


def test_submit_once_replay_and_conflict(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    c = make_campaign(survey_client)
    rng = random.Random(1)
    answers = example_answers(rng)
    cid = uuid.uuid4().hex
    r1 = submit(survey_client, node_settings, c["token"], answers, client_id=cid)
    assert r1.status_code == 201, r1.text
    assert r1.json()["status"] == "accepted" and r1.json()["client_id"] == cid
    # The phone retries (lost reply): same id, same content → the original receipt.
    r2 = submit(survey_client, node_settings, c["token"], answers, client_id=cid)
    assert r2.status_code == 200
    assert r2.json() == r1.json()
    assert r2.headers["idempotent-replayed"] == "true"
    # Same id, different content → 409, and the first answers stay.
    changed = {**answers, "H1": 1 if answers["H1"] != 1 else 2}
    r3 = submit(survey_client, node_settings, c["token"], changed, client_id=cid)
    assert r3.status_code == 409
    assert r3.json()["type"].endswith("/client-id-reused")
    assert _received(survey_client, c["id"]) == 1
    stored = survey_client.get(
        f"/api/v1/campaigns/{c['id']}/responses/{r1.json()['response_id']}"
    ).json()
    assert stored["answers"]["H1"] == answers["H1"]
    assert stored["client_id"] == cid


def test_closed_unknown_and_not_yet_open(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    rng = random.Random(2)
    draft = make_campaign(survey_client, open_now=False)
    r = submit(survey_client, node_settings, draft["token"], example_answers(rng))
    assert r.status_code == 409 and r.json()["type"].endswith("/campaign-closed")
    r = submit(survey_client, node_settings, "no-such-token", example_answers(rng))
    assert r.status_code == 404 and r.json()["type"].endswith("/unknown-campaign")

    c = make_campaign(survey_client)
    assert submit(survey_client, node_settings, c["token"], example_answers(rng)).status_code == 201
    r = survey_client.post(f"/api/v1/campaigns/{c['id']}/close")
    assert r.status_code == 200 and r.json()["accepting"] is False
    r = submit(survey_client, node_settings, c["token"], example_answers(rng))
    assert r.status_code == 409 and r.json()["type"].endswith("/campaign-closed")
    # Closing kept what was received.
    assert _received(survey_client, c["id"]) == 1

    later = datetime.now(UTC) + timedelta(days=3)
    r = survey_client.patch(
        f"/api/v1/campaigns/{c['id']}",
        json={"opens_at": later.isoformat(), "closes_at": (later + timedelta(days=5)).isoformat()},
    )
    assert r.status_code == 200
    survey_client.post(f"/api/v1/campaigns/{c['id']}/open")
    r = submit(survey_client, node_settings, c["token"], example_answers(rng))
    assert r.status_code == 409 and r.json()["type"].endswith("/campaign-not-open")
    # The end date passed: submissions are refused though the state says open.
    past = datetime.now(UTC) - timedelta(days=1)
    survey_client.patch(
        f"/api/v1/campaigns/{c['id']}",
        json={"opens_at": (past - timedelta(days=9)).isoformat(), "closes_at": past.isoformat()},
    )
    r = submit(survey_client, node_settings, c["token"], example_answers(rng))
    assert r.status_code == 409
    events = [e["action"] for e in survey_client.get(f"/api/v1/campaigns/{c['id']}/events").json()]
    assert events == ["create", "open", "close", "update", "open", "update"]


def test_answers_that_violate_the_questionnaire(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    c = make_campaign(survey_client)
    rng = random.Random(3)
    bad = example_answers(rng, M4="no")
    bad["H1"] = "5"  # wrong type
    bad["H2"] = 7  # out of range
    del bad["H3"]  # required
    bad["C1"] = "360121999999"  # not an option
    bad["M5"] = 3  # hidden by skip logic (M4 = no)
    bad["ZZ"] = 1  # no such question
    bad["P1"] = ["parking", "waste", "green", "elderly"]  # more than 3
    bad["P2"] = "很" * 501  # too long
    r = submit(survey_client, node_settings, c["token"], bad)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {
        "answers.H1",
        "answers.H2",
        "answers.H3",
        "answers.C1",
        "answers.M5",
        "answers.ZZ",
        "answers.P1",
        "answers.P2",
    }
    # Envelope errors.
    h = anon_headers(node_settings)
    url = f"/api/v1/public/campaigns/{c['token']}/responses"
    r = survey_client.post(url, content=b'{"client_id": "abc', headers=h)
    assert r.status_code == 400 and r.json()["type"].endswith("/malformed-body")
    r = survey_client.post(url, json={"answers": {}}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "client_id"
    r = survey_client.post(url, json={"client_id": "x", "answers": {}}, headers=h)
    assert r.status_code == 422
    r = survey_client.post(
        url, json={"client_id": uuid.uuid4().hex, "answers": [], "meta": {"evil": 1}}, headers=h
    )
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"answers", "meta.evil"}
    assert _received(survey_client, c["id"]) == 0
    # And the campaign keeps working.
    assert submit(survey_client, node_settings, c["token"], example_answers(rng)).status_code == 201


def test_oversize_bodies_are_refused(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    c = make_campaign(survey_client)
    rng = random.Random(4)
    url = f"/api/v1/public/campaigns/{c['token']}/responses"
    big = example_answers(rng)
    big["P2"] = "长" * 12000  # ~36 KB of UTF-8, over the campaign's 32 KB
    r = submit(survey_client, node_settings, c["token"], big)
    assert r.status_code == 413 and r.json()["type"].endswith("/payload-too-large")
    r = survey_client.post(
        url, content=b"{" + b" " * (300 * 1024) + b"}", headers=anon_headers(node_settings)
    )
    assert r.status_code == 413
    assert _received(survey_client, c["id"]) == 0


def test_flooding_is_limited_per_address_and_device(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    c = make_campaign(
        survey_client,
        settings={"limits": {"attempts_per_minute": 6, "per_address_per_hour": 3, "per_device": 2}},
    )
    rng = random.Random(5)
    codes = [
        submit(
            survey_client, node_settings, c["token"], example_answers(rng), addr="198.51.100.1"
        ).status_code
        for _ in range(4)
    ]
    assert codes == [201, 201, 201, 429]
    # Further attempts, even malformed ones, hit the per-minute limit.
    url = f"/api/v1/public/campaigns/{c['token']}/responses"
    hdr = anon_headers(node_settings, "198.51.100.1")
    codes = [survey_client.post(url, content=b"junk", headers=hdr).status_code for _ in range(4)]
    assert codes == [400, 400, 429, 429]
    r = survey_client.post(url, content=b"junk", headers=hdr)
    assert r.headers["retry-after"] == "60"
    # Everyone else is unaffected.
    r = submit(survey_client, node_settings, c["token"], example_answers(rng), addr="198.51.100.2")
    assert r.status_code == 201
    # One device from many addresses.
    dev = {"device": "fp-123"}
    codes = [
        submit(
            survey_client,
            node_settings,
            c["token"],
            example_answers(rng),
            addr=f"192.0.2.{i}",
            meta=dev,
        ).status_code
        for i in range(3)
    ]
    assert codes == [201, 201, 429]
    assert _received(survey_client, c["id"]) == 6


def test_public_form_timing_and_identity(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    c = make_campaign(survey_client)
    h = anon_headers(node_settings)
    form = survey_client.get(f"/api/v1/public/campaigns/{c['token']}", headers=h)
    assert form.status_code == 200
    assert form.json()["questionnaire"]["code"] == "NC-SAT"
    session = form.json()["form_session"]
    rng = random.Random(6)
    r = submit(
        survey_client,
        node_settings,
        c["token"],
        example_answers(rng),
        meta={"form_session": session},
    )
    assert r.status_code == 201
    stored = survey_client.get(
        f"/api/v1/campaigns/{c['id']}/responses/{r.json()['response_id']}"
    ).json()
    # Server-measured: a response right after the form was fetched is a speeder.
    assert stored["timing"] == "server" and stored["duration_s"] < 5
    assert [f["code"] for f in stored["flags"]] == ["speeder"]
    forged = session.split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAA"
    r = submit(
        survey_client,
        node_settings,
        c["token"],
        example_answers(rng),
        meta={"form_session": forged},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "meta.form_session"
    # Only the gateway may call: no identity, no entry.
    url = f"/api/v1/public/campaigns/{c['token']}/responses"
    r = survey_client.post(url, json={}, headers={"x-checkup-identity": ""})
    assert r.status_code == 401
