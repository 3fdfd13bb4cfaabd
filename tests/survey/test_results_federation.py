"""Published satisfaction results going up: recorded with the publication, applied as copies."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from msgspec.structs import replace

from services.survey.sync.tables import SYNC
from services.survey.sync.wiring import UP_APPLIERS, sync_node
from shared.db import Database
from shared.errors import ProblemError
from shared.settings import NodeSettings
from shared.sync import Batch, ReceiveResult, build_batch, read_stream, receive_batch
from shared.sync.node import mark_upward
from tests.conftest import identity_headers
from tests.survey.helpers import make_campaign, population_rows, small_definition, submit

SECRET = "county-secret-0123456789abcdef0123"
COUNTY = "360121"
STREETS = ("360121001", "360121100")
COMMUNITIES = ["360121001001", "360121100001"]


class County:
    """The county node's survey service with its indicator service as the publishing peer."""

    def __init__(self, settings: NodeSettings, survey: TestClient, indicator: TestClient) -> None:
        self.settings = settings
        self.survey = survey
        self.indicator = indicator

    @property
    def db(self) -> Database:
        db: Database = self.survey.app.state.db  # type: ignore[attr-defined]
        return db

    def record_upward(self) -> None:
        """As the lifespan does when parent_url is set."""
        mark_upward(self.db.sessionmaker)

    def outbox(self, after: int = 0) -> Batch:
        """What the county's pusher would send: its own stream, signed with its credential."""
        with self.db.session() as session:
            changes = read_stream(session, SYNC, "up", self.settings.node_id, after, 1000)
        return build_batch(
            sender=self.settings.node_id,
            service="survey",
            origins={self.settings.node_id: COUNTY},
            changes=changes,
            secret=SECRET,
        )


@pytest.fixture
def county(node_settings: NodeSettings) -> Iterator[County]:
    from services.indicator.app import create_app as indicator_app
    from services.survey.app import create_app as survey_app

    ind = indicator_app(node_settings)
    sur = survey_app(node_settings)
    sur.state.peers.register_app("indicator", ind)
    headers = identity_headers(node_settings, COUNTY, "admin")
    with (
        TestClient(ind, raise_server_exceptions=False) as ic,
        TestClient(sur, raise_server_exceptions=False) as sc,
    ):
        ic.headers.update(headers)
        sc.headers.update(headers)
        yield County(node_settings, sc, ic)


@pytest.fixture
def city(template: Any, tmp_path: Any) -> Iterator[tuple[NodeSettings, TestClient]]:
    """A fresh city node (Nanchang) with its survey service running: the county's parent."""
    from services.survey.app import create_app

    settings, cleanup = template.clone(tmp_path / "city", region_code="360100")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(identity_headers(settings, "360100", "admin"))
        yield settings, client
    cleanup()


def _receive(city: tuple[NodeSettings, TestClient], batch: Batch) -> ReceiveResult:
    settings, client = city
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as session:
        return receive_batch(
            session,
            SYNC,
            batch,
            node=sync_node(settings),
            credential_secret=SECRET,
            allowed_region=COUNTY,
            appliers=UP_APPLIERS,
            relay=settings.tier != "province",
        )


def _campaign(county: County, indicator: str = "D-06") -> dict[str, Any]:
    """A county campaign whose Q1 feeds ``indicator`` of the starter system, margins by street."""
    r = county.indicator.post("/api/v1/systems/starter")
    assert r.status_code in (200, 201), r.text
    definition = small_definition(communities=COMMUNITIES, region_code=COUNTY, indicators=False)
    definition["sections"][1]["questions"][0]["indicator_code"] = indicator
    return make_campaign(
        county.survey,
        definition,
        region_code=COUNTY,
        population=population_rows({STREETS[0]: 60_000, STREETS[1]: 40_000}),
        settings={"weighting": {"margins": [["region"]], "min_n": 10}},
        system_id=int(r.json()["id"]),
    )


def _answer(county: County, c: dict[str, Any], n: int, seed: int, happy: int) -> None:
    rng = random.Random(seed)
    for i in range(n):
        answers = {
            "C1": COMMUNITIES[i % 2],
            "AGE": rng.choice(["30-39", "50-59"]),
            "SEX": rng.choice(["M", "F"]),
            "Q1": rng.choice([happy, 5]),
            "Q2": rng.randint(1, 5),
        }
        r = submit(county.survey, county.settings, c["token"], answers, addr=f"10.9.{seed}.{i}")
        assert r.status_code == 201, r.text


def _publish(county: County, c: dict[str, Any]) -> dict[str, Any]:
    assert county.survey.post(f"/api/v1/campaigns/{c['id']}/results").status_code == 201
    r = county.survey.post(f"/api/v1/campaigns/{c['id']}/publish", json={})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _figures(county: County, c: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    """The county's own results: (breakdown, group, target) → (n, rate, rate CI, mean)."""
    items = county.survey.get(f"/api/v1/campaigns/{c['id']}/results").json()["items"]
    return {
        (i["breakdown"], i["group"], i["target"]["code"]): (
            i["n"],
            i["rate"],
            i["rate_ci"],
            i["mean"],
        )
        for i in items
        if i["breakdown"] in ("overall", "region")
    }


def _received(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/api/v1/surveys/received-results", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_published_results_reach_the_city_once_with_their_origin(
    county: County, city: tuple[NodeSettings, TestClient]
) -> None:
    county.record_upward()
    origin = county.settings.node_id
    c = _campaign(county)
    _answer(county, c, 40, seed=1, happy=4)
    pub = _publish(county, c)
    assert pub["status"] in ("applied", "partial")

    batch = county.outbox()
    key = f"{origin}:{c['id']}:{pub['id']}"
    assert [(ch.seq, ch.entity, ch.key) for ch in batch.changes] == [(1, "survey_result", key)]

    got = _receive(city, batch)
    assert (got.acks, got.applied, got.duplicates) == ({origin: 1}, 1, 0)
    _, cc = city
    [copy] = _received(cc)
    assert (copy["origin_node"], copy["key"], copy["region_code"]) == (origin, key, COUNTY)
    assert copy["campaign_name"] == c["name"] and copy["period"] == "2026"
    assert copy["publication_id"] == pub["id"] and copy["current"] is True
    assert copy["questionnaire"]["title"] == "测试问卷" and copy["questionnaire"]["year"] == 2026
    assert copy["sample"]["accepted"] == 40 and copy["weighting"]["method"] == "raking"
    assert copy["weighting"]["margins"] == [["region"]]
    # The figures are the county's own, to the last digit: overall, dimension, questions,
    # campaign-wide and per street.
    want = _figures(county, c)
    seen = {
        (
            f["breakdown"],
            "" if f["breakdown"] == "overall" else f["region_code"],
            f["target"]["code"],
        ): (f["n"], f["rate"], f["rate_ci"], f["mean"])
        for f in copy["figures"]
    }
    assert seen == want
    assert {k[1] for k in seen if k[0] == "region"} == set(STREETS)
    assert {k[2] for k in seen} == {"*", "社区", "Q1", "Q2"}
    assert copy["overall"]["target"]["code"] == "*"
    assert copy["overall"]["rate"] == want[("overall", "", "*")][1]

    with cc.app.state.db.session() as session:  # type: ignore[attr-defined]
        # The city relays it to the province with the county as its origin.
        relayed = read_stream(session, SYNC, "up", origin, 0, 10)
        assert [(ch.origin, ch.seq, ch.key) for ch in relayed] == [(origin, 1, key)]

    # A duplicate delivery is acknowledged and not applied twice.
    again = _receive(city, batch)
    assert (again.acks, again.applied, again.duplicates) == ({origin: 1}, 0, 1)
    assert [x["key"] for x in _received(cc)] == [key]

    # More (unhappier) answers, published again: the latest publication is what shows.
    _answer(county, c, 40, seed=2, happy=1)
    pub2 = _publish(county, c)
    newer = county.outbox(after=1)
    key2 = f"{origin}:{c['id']}:{pub2['id']}"
    assert [(ch.seq, ch.key) for ch in newer.changes] == [(2, key2)]
    assert _receive(city, newer).acks == {origin: 2}
    [latest] = _received(cc)
    assert latest["key"] == key2 and latest["sample"]["accepted"] == 80
    assert latest["overall"]["rate"] == _figures(county, c)[("overall", "", "*")][1]
    assert latest["overall"]["rate"] < copy["overall"]["rate"]
    history = _received(cc, history="true")
    assert [(x["key"], x["current"]) for x in history] == [(key, False), (key2, True)]


def test_region_scope_of_the_received_results(
    county: County, city: tuple[NodeSettings, TestClient]
) -> None:
    county.record_upward()
    c = _campaign(county)
    _answer(county, c, 30, seed=3, happy=4)
    _publish(county, c)
    assert _receive(city, county.outbox()).applied == 1
    settings, cc = city
    url = "/api/v1/surveys/received-results"

    def as_(region: str, **params: Any) -> Any:
        headers = identity_headers(settings, region, "viewer")
        return cc.get(url, params=params, headers=headers)

    # The county's own staff at the city, and the province, see it; another county's not.
    assert [x["region_code"] for x in as_(COUNTY).json()["items"]] == [COUNTY]
    assert len(as_("360000", region_code="360100", period="2026").json()["items"]) == 1
    assert as_("360000", period="2025").json()["items"] == []
    assert as_("360124").json()["items"] == []
    r = as_("360124", region_code=COUNTY)
    assert r.status_code == 403 and r.json()["type"].endswith("/out-of-scope")
    assert as_(COUNTY, region_code="36012").status_code == 422


def test_only_a_node_with_a_parent_records_and_only_what_was_published(
    county: County,
) -> None:
    c = _campaign(county)
    _answer(county, c, 20, seed=4, happy=4)
    _publish(county, c)
    assert county.outbox().changes == []  # no parent: nothing would drain the outbox

    county.record_upward()
    # An indicator the system does not have: the indicator service refuses every row, so
    # nothing was published and nothing goes up.
    refused = _campaign(county, indicator="NO-SUCH")
    _answer(county, refused, 20, seed=5, happy=4)
    assert _publish(county, refused)["status"] == "rejected"
    assert county.outbox().changes == []
    pub = _publish(county, c)
    assert [ch.key for ch in county.outbox().changes] == [
        f"{county.settings.node_id}:{c['id']}:{pub['id']}"
    ]


def test_out_of_scope_or_malformed_results_are_refused_whole(
    county: County, city: tuple[NodeSettings, TestClient]
) -> None:
    county.record_upward()
    c = _campaign(county)
    _answer(county, c, 20, seed=6, happy=4)
    _publish(county, c)
    good = county.outbox()
    [change] = good.changes

    def signed(payload: dict[str, Any]) -> Batch:
        return build_batch(
            sender=good.sender,
            service="survey",
            origins=good.origins,
            changes=[replace(change, payload=payload)],
            secret=SECRET,
        )

    for payload, status in (
        ({**change.payload, "region_code": "360124"}, 403),  # another county's region
        ({k: v for k, v in change.payload.items() if k != "figures"}, 422),
        ({**change.payload, "campaign": {"id": 0, "name": ""}}, 422),
    ):
        with pytest.raises(ProblemError) as err:
            _receive(city, signed(payload))
        assert err.value.status == status
    _, cc = city
    assert _received(cc) == []
    # Nothing was acknowledged: the genuine change still applies from seq 1.
    assert _receive(city, good).applied == 1
    assert len(_received(cc)) == 1
