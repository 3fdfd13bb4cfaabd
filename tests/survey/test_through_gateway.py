"""The resident's path: an anonymous phone submits through the node's gateway, no login."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import NodeSettings
from tests.dbs import Template
from tests.gateway.conftest import add_user, assert_problem, login, node_client
from tests.survey.helpers import example_answers, make_campaign


@pytest.fixture
def city_settings(template: Template, tmp_path: Path) -> Iterator[NodeSettings]:
    settings, cleanup = template.clone(tmp_path / "city", region_code="360100")
    yield settings
    cleanup()  # type: ignore[operator]


def test_public_submission_through_the_gateway(city_settings: NodeSettings) -> None:
    add_user(city_settings, "surveyor", ("admin",), "360100")
    with node_client(city_settings) as client:
        staff = login(client, "surveyor")
        client.headers.update(staff)
        campaign = make_campaign(client)
        client.headers.pop("Authorization")

        url = f"/api/v1/public/campaigns/{campaign['token']}/responses"
        answers = example_answers(random.Random(7))
        body = {"client_id": uuid.uuid4().hex, "answers": answers, "meta": {"duration_s": 600}}
        first = client.post(url, json=body)  # no credentials at all
        assert first.status_code == 201, first.text
        again = client.post(url, json=body)
        assert again.status_code == 200 and again.json() == first.json()
        body["answers"] = {**answers, "H1": 1 if answers["H1"] != 1 else 2}
        assert_problem(client.post(url, json=body), 409, "client-id-reused")

        # Anonymous callers reach nothing but the public paths.
        assert_problem(client.get(f"/api/v1/campaigns/{campaign['id']}/progress"), 401)
        progress = client.get(f"/api/v1/campaigns/{campaign['id']}/progress", headers=staff)
        assert progress.json()["received"] == 1
        # The submission is in the audit log as an anonymous write.
        audit = client.get("/api/v1/audit", params={"path": url}, headers=staff).json()["items"]
        assert {(a["actor_kind"], a["status"]) for a in audit} >= {("anonymous", 201)}
