"""Pushing and pulling over real HTTP on loopback: batches, backoff, lost acks, dead letter."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from shared.dbtypes import utcnow
from shared.errors import install_error_handlers
from shared.identity import Identity, IdentityMiddleware, sign_identity
from shared.sync import (
    DEAD_LETTER,
    PULL_PATH,
    RETRY_PATH,
    STATUS_PATH,
    Backoff,
    LinkStatus,
    SyncPuller,
    SyncPusher,
    build_pull,
    prune,
    revive,
    sync_router,
    sync_status,
    wake_on_commit,
)
from shared.sync.links import cursor, note_failure
from tests.sync.tiny import SERVICE, LiveServer, Registry, TinyNode, outbox_batch, parent_app

COUNTY_SECRET = "county-secret-0123456789abcdef0123"
COUNTY2_SECRET = "county2-secret-0123456789abcdef012"
CITY_SECRET = "city-secret-0123456789abcdef012345"
FAST = Backoff(base_s=0.05, cap_s=0.2)


@pytest.fixture
def servers() -> Iterator[list[LiveServer]]:
    started: list[LiveServer] = []
    yield started
    for server in started:
        server.stop()


def serve(
    servers: list[LiveServer],
    parent: TinyNode,
    registry: Registry,
    *,
    relay: bool,
    start: bool = True,
) -> LiveServer:
    server = LiveServer(parent_app(parent, registry, relay=relay))
    servers.append(server)
    return server.start() if start else server


def status(node: TinyNode, kind: str, stream: str) -> LinkStatus:
    with node.db.session() as session:
        links = sync_status(session, node.tables)
    return next(link for link in links if link.kind == kind and link.stream == stream)


def batch_sizes(node: TinyNode) -> list[int]:
    """Sizes of the batches ``node`` accepted, largest first (with two batches of a stream
    in flight, the later one may reach the receiver first)."""
    with node.db.session() as session:
        b = node.tables.batches.c
        sizes = session.execute(select(b.changes)).scalars()
        return sorted((int(n) for n in sizes), reverse=True)


def pusher(node: TinyNode, url: str, secret: str, **kw: Any) -> SyncPusher:
    kw.setdefault("backoff", FAST)
    kw.setdefault("rng", lambda: 1.0)
    return SyncPusher(node.db, node.tables, node.node, parent_url=url, credential=secret, **kw)


def values(prefix: str, n: int, start: int = 0) -> dict[tuple[str, str], float]:
    return {(prefix, f"v{i}"): float(i) for i in range(start, start + n)}


def county_to_city(
    servers: list[LiveServer], city: TinyNode, county: TinyNode, n: int
) -> LiveServer:
    """The county holds ``n`` values; the city, registered as its parent, is serving."""
    county.enter(values("360121", n))
    registry = Registry()
    registry.register("node-360121", "360121", COUNTY_SECRET)
    return serve(servers, city, registry, relay=False)


def test_parent_down_then_up_backs_off_then_delivers_everything_once(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    county.enter(values("360121", 25))
    registry = Registry()
    registry.register("node-360121", "360121", COUNTY_SECRET)
    server = serve(servers, city, registry, relay=False, start=False)
    push = pusher(county, server.url, COUNTY_SECRET, batch_size=10)

    async def scenario() -> list[float]:
        delays = []
        for _ in range(4):
            assert await push.run_once() == 0
            with county.db.session() as session:
                row = cursor(session, county.tables, "push", "parent", "node-360121")
            assert row is not None
            delays.append((row.next_attempt_at - row.last_error_at).total_seconds())
            # Not due yet: a pass right away does not even try.
            assert await push.run_once() == 0
            await asyncio.sleep(0.25)
        link = status(county, "push", "node-360121")
        assert (link.pending, link.last_acked_seq, link.attempts, link.state) == (
            25,
            0,
            4,
            "active",
        )
        assert "transport error" in (link.last_error or "")
        assert link.oldest_pending_age_s is not None and link.oldest_pending_age_s > 0.5
        server.start()
        moved = await push.run_once()
        await push.stop()
        return [moved, *delays]

    moved, *delays = asyncio.run(scenario())
    assert moved == 25
    # Exponential, capped (full jitter drawn at its ceiling here).
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.2])
    assert batch_sizes(city) == [10, 10, 5]
    assert city.snapshot() == county.snapshot()
    assert len(city.applied_changes()) == 25
    link = status(county, "push", "node-360121")
    assert (link.pending, link.last_acked_seq, link.attempts, link.state) == (0, 25, 0, "active")

    # A restarted node (a new pusher) resumes from the last ack, not from the beginning.
    county.enter(values("360121", 5, start=100))
    again = pusher(county, server.url, COUNTY_SECRET, batch_size=10)

    async def resume() -> int:
        try:
            return await again.run_once()
        finally:
            await again.stop()

    assert asyncio.run(resume()) == 5
    assert batch_sizes(city) == [10, 10, 5, 5]
    assert sorted(city.applied_changes()) == [("node-360121", s) for s in range(1, 31)]


class Middleman(httpx.AsyncBaseTransport):
    """Sits between a node and its parent; passes everything on unless a subclass meddles."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class LoseAnswers(Middleman):
    """Delivers requests but loses the first answers, as a connection reset would."""

    def __init__(self, lose: int) -> None:
        super().__init__()
        self.lose = lose
        self.delivered = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.delivered += 1
        if self.lose > 0:
            self.lose -= 1
            raise httpx.ReadError("connection reset after delivery", request=request)
        return response


def test_a_lost_ack_means_a_resend_that_is_applied_once(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    county.enter(values("360121", 12))
    county.enter({("360121", "v3"): 33.0})  # an edit of an earlier value
    registry = Registry()
    registry.register("node-360121", "360121", COUNTY_SECRET)
    server = serve(servers, city, registry, relay=False)
    transport = LoseAnswers(lose=2)

    async def scenario() -> int:
        async with httpx.AsyncClient(transport=transport) as client:
            push = pusher(county, server.url, COUNTY_SECRET, batch_size=5, client=client)
            moved = await push.run_once()
            for _ in range(3):
                await asyncio.sleep(0.25)
                moved += await push.run_once()
            return moved

    assert asyncio.run(scenario()) == 13
    # The first batch went twice at least (its answers were lost): three batches would do.
    assert transport.delivered >= 4
    # The city got it more than once but applied each change once.
    assert city.applied_changes() == [("node-360121", s) for s in range(1, 14)]
    assert city.snapshot() == county.snapshot()
    assert city.snapshot()[("360121", "v3")] == 33.0


def batch_span(request: httpx.Request) -> tuple[int, int]:
    """The first and last seq of the batch a push request carries."""
    seqs = [c["seq"] for c in json.loads(request.content)["changes"]]
    return seqs[0], seqs[-1]


class RewriteAnswers(Middleman):
    """Rewrites the parent's JSON answers."""

    def rewrite(self, request: httpx.Request, body: dict[str, Any]) -> None:
        raise NotImplementedError

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = json.loads(await response.aread())
        self.rewrite(request, body)
        return httpx.Response(response.status_code, json=body)


class ShortAcks(RewriteAnswers):
    """The answer to the first batch (from seq 1) acknowledges less than the batch held (as
    a parent that lost part of it would). Records the seqs each batch starts and ends with,
    in the order they are sent, and delivers them one at a time in that order (a batch
    that overtook the first would be held, and the first answer would then acknowledge
    both)."""

    def __init__(self, short_by: int) -> None:
        super().__init__()
        self.short_by = short_by
        self.sent: list[tuple[int, int]] = []
        self.in_order: asyncio.Lock | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(batch_span(request))
        self.in_order = self.in_order or asyncio.Lock()
        async with self.in_order:
            return await super().handle_async_request(request)

    def rewrite(self, request: httpx.Request, body: dict[str, Any]) -> None:
        if self.short_by and batch_span(request)[0] == 1:
            body["acks"] = {k: v - self.short_by for k, v in body["acks"].items()}
            self.short_by = 0


def push_once(
    servers: list[LiveServer],
    city: TinyNode,
    county: TinyNode,
    transport: httpx.AsyncBaseTransport,
    n: int,
    **kw: Any,
) -> int:
    """One push pass of ``n`` county values in batches of 5 through ``transport``."""
    server = county_to_city(servers, city, county, n)

    async def scenario() -> int:
        async with httpx.AsyncClient(transport=transport) as client:
            push = pusher(county, server.url, COUNTY_SECRET, batch_size=5, client=client, **kw)
            return await push.run_once()

    return asyncio.run(scenario())


def assert_twelve_applied_once(city: TinyNode, county: TinyNode) -> None:
    assert city.applied_changes() == [("node-360121", s) for s in range(1, 13)]
    assert city.snapshot() == county.snapshot()
    assert status(county, "push", "node-360121").last_acked_seq == 12


def test_the_batch_read_ahead_is_dropped_when_the_ack_falls_short(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    transport = ShortAcks(short_by=2)
    moved = push_once(servers, city, county, transport, 12, window=1)

    # 1..5 acknowledged up to 3 only: the batch read ahead (6..10) is not sent; the stream
    # goes on from 4, and the city applies each change once.
    assert moved == 12
    assert transport.sent == [(1, 5), (4, 8), (9, 12)]
    assert_twelve_applied_once(city, county)


def test_a_short_ack_drops_the_batch_in_flight_after_it(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    transport = ShortAcks(short_by=2)
    moved = push_once(servers, city, county, transport, 12)

    # 6..10 went out with 1..5; whether or not the city got it before it was dropped, the
    # stream goes on from the acknowledgement (4) and every change is applied once.
    assert moved == 12
    assert transport.sent[0] == (1, 5)
    assert (4, 8) in transport.sent
    assert_twelve_applied_once(city, county)


class Staggered(Middleman):
    """Records the seqs each batch spans and how many are in flight at once; holds the
    first request back for ``hold_first`` seconds so that the next one overtakes it."""

    def __init__(self, hold_first: float = 0.0, delay: float = 0.0) -> None:
        super().__init__()
        self.hold_first = hold_first
        self.delay = delay
        self.sent: list[tuple[int, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.answers: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        first = not self.sent
        self.sent.append(batch_span(request))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.hold_first if first else self.delay)
            response = await self.inner.handle_async_request(request)
            body = await response.aread()
            self.answers.append(json.loads(body))
            return httpx.Response(response.status_code, content=body, headers=response.headers)
        finally:
            self.in_flight -= 1


def test_two_batches_in_flight_are_applied_once_in_order(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    transport = Staggered(delay=0.2)
    moved = push_once(servers, city, county, transport, 12)

    assert moved == 12
    # The next batch went out before the answer to the one before it came back.
    assert transport.most_in_flight == 2
    assert transport.sent == [(1, 5), (6, 10), (11, 12)]
    assert [a["acks"] for a in transport.answers] == [{"node-360121": n} for n in (5, 10, 12)]
    assert_twelve_applied_once(city, county)


class RecordsMeanwhile(Staggered):
    """Staggered; while the first batch is on its way the county records ``more`` values."""

    def __init__(self, county: TinyNode, more: int, delay: float) -> None:
        super().__init__(delay=delay)
        self.county = county
        self.more = more

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.sent:
            await asyncio.to_thread(self.county.enter, values("360121", self.more, start=100))
        return await super().handle_async_request(request)


def test_changes_recorded_while_batches_are_in_flight_go_out_in_the_same_pass(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    # The stream ended at 5 when the pass read it; 6..12 are recorded while 1..5 is on its
    # way. They follow it in the same pass, two batches in flight again, not in a later one.
    transport = RecordsMeanwhile(county, more=7, delay=0.3)
    assert push_once(servers, city, county, transport, 5) == 12
    assert transport.sent == [(1, 5), (6, 10), (11, 12)]
    assert transport.most_in_flight == 2
    assert_twelve_applied_once(city, county)


class LaterBatchFirst(Middleman):
    """On the first push, the county records two more values and their batch (6..7) reaches
    the city before 1..5 does (it overtook it): the city holds 6..7, applies both with 1..5
    and acknowledges 7, beyond the head the county had when it read 1..5."""

    def __init__(self, county: TinyNode) -> None:
        super().__init__()
        self.county = county
        self.acks: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.acks:
            await asyncio.to_thread(self.county.enter, values("360121", 2, start=100))
            later = outbox_batch(self.county, COUNTY_SECRET, after=5)
            early = httpx.Request("POST", request.url, content=json.dumps(later.as_wire()).encode())
            held = await self.inner.handle_async_request(early)
            assert json.loads(await held.aread())["held"] == 2
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.acks.append(json.loads(body)["acks"]["node-360121"])
        return httpx.Response(response.status_code, content=body, headers=response.headers)


def test_an_ack_beyond_the_batch_but_within_the_stream_is_taken(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    # Not a parent restored from a backup: it applied a later batch with this one.
    transport = LaterBatchFirst(county)
    assert push_once(servers, city, county, transport, 5) == 7
    assert transport.acks == [7]
    link = status(county, "push", "node-360121")
    assert (link.state, link.last_acked_seq, link.last_error) == ("active", 7, None)
    assert city.applied_changes() == [("node-360121", s) for s in range(1, 8)]
    assert city.snapshot() == county.snapshot()


class AcksAhead(Middleman):
    """Answers as a parent restored from another node's data would: acks beyond the head."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = json.loads(await response.aread())
        body["acks"] = {k: v + 3 for k, v in body["acks"].items()}
        return httpx.Response(response.status_code, json=body)


def test_an_ack_beyond_everything_recorded_dead_letters_the_link(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    assert push_once(servers, city, county, AcksAhead(), 5) == 0
    link = status(county, "push", "node-360121")
    assert link.state == "dead_letter" and link.last_acked_seq == 0
    assert "parent acknowledged 8 beyond the local head 5" in (link.last_error or "")


def test_a_batch_overtaking_the_one_before_it_is_held_until_that_one_arrives(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    transport = Staggered(hold_first=0.5)
    moved = push_once(servers, city, county, transport, 12)

    assert moved == 12
    # 6..10 reached the city first and was held (nothing acknowledged); 1..5 then applied
    # both, and the county went on after 10 rather than sending 6..10 again.
    assert transport.answers[0]["acks"] == {"node-360121": 0}
    assert transport.answers[0]["held"] == 5
    assert transport.answers[1]["acks"] == {"node-360121": 10}
    assert transport.sent == [(1, 5), (6, 10), (11, 12)]
    assert_twelve_applied_once(city, county)


class SlowAnswers(Middleman):
    """Holds every request for a long time before passing it on."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.set()
        await asyncio.sleep(30)
        return await super().handle_async_request(request)


def test_a_pusher_stops_at_once_with_a_batch_in_flight(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    server = county_to_city(servers, city, county, 12)

    async def scenario() -> float:
        transport = SlowAnswers()
        async with httpx.AsyncClient(transport=transport) as client:
            push = pusher(county, server.url, COUNTY_SECRET, batch_size=5, client=client)
            async with push.running():
                await asyncio.wait_for(transport.sent.wait(), 10)
                await asyncio.sleep(0.2)  # the next batch is being read meanwhile
                start = time.monotonic()
            return time.monotonic() - start

    assert asyncio.run(scenario()) < 2.0
    # Nothing was acknowledged: the next pusher starts from the beginning.
    assert status(county, "push", "node-360121").last_acked_seq == 0
    assert city.applied_changes() == []


def test_a_revoked_credential_dead_letters_the_link_and_drops_nothing(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    county.enter(values("360121", 10))
    registry = Registry()
    registry.register("node-360121", "360121", COUNTY_SECRET)
    registry.revoked.add("node-360121")
    server = serve(servers, city, registry, relay=False)
    push = pusher(county, server.url, COUNTY_SECRET, dead_letter_after=3)

    async def attempts(n: int) -> None:
        for _ in range(n):
            assert await push.run_once() == 0
            await asyncio.sleep(0.25)
        await push.stop()

    asyncio.run(attempts(5))
    link = status(county, "push", "node-360121")
    assert link.state == DEAD_LETTER
    assert (link.pending, link.last_acked_seq, link.attempts) == (10, 0, 3)
    assert link.next_attempt_at is None
    assert "sync-credential-revoked" in (link.last_error or "")
    # The parent saw exactly three attempts (a dead link is not retried) and shows why.
    with city.db.session() as session:
        seen = cursor(session, city.tables, "receive", "node-360121", "")
    assert seen is not None and seen.attempts == 3
    assert "sync-credential-revoked" in seen.last_error
    assert city.snapshot() == {}
    assert county.count(county.tables.outbox) == 10

    # The administrator restores the credential and revives the link: everything arrives.
    registry.revoked.clear()
    with county.db.session() as session:
        assert revive(session, county.tables) == 1

    async def resume() -> int:
        try:
            return await push.run_once()
        finally:
            await push.stop()

    assert asyncio.run(resume()) == 10
    assert city.snapshot() == county.snapshot()
    assert status(county, "push", "node-360121").state == "active"


def test_the_retry_endpoint_revives_dead_links_for_this_nodes_admin_only(
    county: TinyNode,
) -> None:
    secret = "internal-secret-for-the-retry-test-0123"
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(
        sync_router(
            node=county.node,
            tables=county.tables,
            appliers=county.appliers,
            authenticate=Registry().authenticate,
            relay=False,
            database=lambda request: county.db,
        )
    )
    woken: list[str] = []
    app.state.sync_pusher = type("Stub", (), {"wake": lambda self: woken.append("push")})()
    county.enter(values("360121", 2))
    with county.db.session() as session:
        for stream, kind in (("node-360121", "push"), ("*", "pull")):
            note_failure(
                session,
                county.tables,
                kind,
                "parent",
                stream,
                error="HTTP 401 sync-credential-revoked: 设备丢失",
                permanent=True,
                dead_letter_after=0,
            )
    path = RETRY_PATH.format(service=SERVICE)

    def as_(region: str, *roles: str) -> dict[str, str]:
        who = Identity(subject="op", kind="user", roles=frozenset(roles), region=region)
        return {"x-checkup-identity": sign_identity(who, secret)}

    with TestClient(IdentityMiddleware(app, secret)) as client:
        assert client.post(path).status_code == 401
        r = client.post(path, headers=as_("360121", "data_entry", "reviewer"))
        assert r.status_code == 403 and r.json()["type"].endswith("role-required")
        # Another county's admin is not this node's.
        r = client.post(path, headers=as_("360124", "admin"))
        assert r.status_code == 403 and r.json()["type"].endswith("out-of-scope")
        assert status(county, "push", "node-360121").state == DEAD_LETTER
        assert woken == []

        r = client.post(path, headers=as_("360121", "admin"))
        assert r.status_code == 200, r.text
        assert r.json() == {"node": "node-360121", "service": SERVICE, "revived": 2}
        assert woken == ["push"]
        link = status(county, "push", "node-360121")
        assert (link.state, link.attempts, link.pending) == ("active", 0, 2)
        assert link.last_error is not None  # the reason stays visible until a success
        # Nothing dead any more: a second retry revives nothing.
        r = client.post(path, headers=as_("360121", "admin"))
        assert r.json()["revived"] == 0


def test_three_tiers_over_http_province_holds_exactly_the_union(
    servers: list[LiveServer],
    province: TinyNode,
    city: TinyNode,
    county: TinyNode,
    county2: TinyNode,
) -> None:
    to_province = Registry()
    to_province.register("node-360100", "360100", CITY_SECRET)
    to_city = Registry()
    to_city.register("node-360121", "360121", COUNTY_SECRET)
    to_city.register("node-360122", "360122", COUNTY2_SECRET)
    province_server = serve(servers, province, to_province, relay=False)
    city_server = serve(servers, city, to_city, relay=True)

    county.enter(values("360121", 40))
    county.enter({("360121", "v1"): -1.0, ("360121", "v2"): -2.0})
    county2.enter(values("360122", 30))
    city.enter({("360100", "city-own"): 7.0})

    async def scenario() -> None:
        pushers = [
            pusher(county, city_server.url, COUNTY_SECRET, batch_size=16),
            pusher(county2, city_server.url, COUNTY2_SECRET, batch_size=16),
            pusher(city, province_server.url, CITY_SECRET, batch_size=16),
        ]
        for p in pushers:
            await p.run_once()
        # A second round moves nothing: everything was acknowledged once.
        assert [await p.run_once() for p in pushers] == [0, 0, 0]
        for p in pushers:
            await p.stop()

    asyncio.run(scenario())
    union = {**county.snapshot(), **county2.snapshot(), **city.snapshot()}
    assert province.snapshot() == union
    applied = province.applied_changes()
    assert len(applied) == len(set(applied)) == 42 + 30 + 1
    assert {o for o, _ in applied} == {"node-360121", "node-360122", "node-360100"}
    assert sorted(s for o, s in applied if o == "node-360121") == list(range(1, 43))
    # Status at the city: two receiving origins, three streams pushed up, none pending.
    with city.db.session() as session:
        links = sync_status(session, city.tables)
    pushed = {
        (link.stream, link.pending, link.last_acked_seq) for link in links if link.kind == "push"
    }
    assert pushed == {("node-360100", 0, 1), ("node-360121", 0, 42), ("node-360122", 0, 30)}
    received = {
        (link.stream, link.peer, link.last_acked_seq) for link in links if link.kind == "receive"
    }
    assert received == {("node-360121", "node-360121", 42), ("node-360122", "node-360122", 30)}


def test_reviews_and_catalog_come_down_by_pull_and_reach_the_county(
    servers: list[LiveServer], province: TinyNode, city: TinyNode, county: TinyNode
) -> None:
    to_province = Registry()
    to_province.register("node-360100", "360100", CITY_SECRET)
    to_city = Registry()
    to_city.register("node-360121", "360121", COUNTY_SECRET)
    to_city.register("node-360122", "360122", COUNTY2_SECRET)
    province_server = serve(servers, province, to_province, relay=False)
    city_server = serve(servers, city, to_city, relay=True)

    province.release_catalog("JX-2025", 1, ["A01", "A02"])
    province.review("360121", "reject", "A01 数据缺失，请补充")
    province.review("360100", "approve")
    city_pull = SyncPuller(
        city.db,
        city.tables,
        city.node,
        parent_url=province_server.url,
        credential=CITY_SECRET,
        appliers=city.appliers,
        relay_down=city.relay_down,
        batch_size=2,
    )
    county_pull = SyncPuller(
        county.db,
        county.tables,
        county.node,
        parent_url=city_server.url,
        credential=COUNTY_SECRET,
        appliers=county.appliers,
    )

    async def scenario() -> tuple[int, int, int]:
        moved = (
            await city_pull.run_once(),
            await county_pull.run_once(),
            await city_pull.run_once(),
        )
        await city_pull.stop()
        await county_pull.stop()
        return moved

    assert asyncio.run(scenario()) == (3, 2, 0)

    def reviews(node: TinyNode) -> list[tuple[str, str, str, str]]:
        with node.db.session() as session:
            r = node.reviews.c
            return [
                tuple(x)
                for x in session.execute(
                    select(r.region, r.decision, r.reason, r.by).order_by(r.id)
                )
            ]

    assert reviews(city) == [
        ("360121", "reject", "A01 数据缺失，请补充", "node-360000"),
        ("360100", "approve", "", "node-360000"),
    ]
    # The county receives the decision about its own data (with who made it) and the catalog.
    assert reviews(county) == [("360121", "reject", "A01 数据缺失，请补充", "node-360000")]
    assert county.count(county.catalog) == city.count(city.catalog) == 1
    # The province knows the city has everything (its acks came with the last pull).
    served = status(province, "serve", "360100")
    assert (served.pending, served.last_acked_seq, served.head_seq) == (0, 2, 2)
    pulled = status(city, "pull", "360100")
    assert (pulled.pending, pulled.last_acked_seq) == (0, 2)

    # A county cannot pull its neighbour's stream.
    neighbour = build_pull(
        node="node-360122",
        service=SERVICE,
        stream="360121",
        after=0,
        limit=10,
        secret=COUNTY2_SECRET,
    )
    answer = httpx.post(
        city_server.url + PULL_PATH.format(service=SERVICE), json=neighbour.as_wire()
    )
    assert answer.status_code == 403
    assert answer.json()["type"].endswith("/sync-out-of-scope")


def test_a_commit_wakes_the_pushers_so_a_change_crosses_two_tiers_fast(
    servers: list[LiveServer], province: TinyNode, city: TinyNode, county: TinyNode
) -> None:
    to_province = Registry()
    to_province.register("node-360100", "360100", CITY_SECRET)
    to_city = Registry()
    to_city.register("node-360121", "360121", COUNTY_SECRET)
    province_server = serve(servers, province, to_province, relay=False)
    city_server = serve(servers, city, to_city, relay=True)

    async def scenario() -> list[float]:
        # Poll intervals far longer than the test: only the commit hooks can move the change.
        up = pusher(county, city_server.url, COUNTY_SECRET, poll_interval_s=60)
        relay = pusher(city, province_server.url, CITY_SECRET, poll_interval_s=60)
        undo = [
            wake_on_commit(county.db.sessionmaker, up.wake),
            wake_on_commit(city.db.sessionmaker, relay.wake),
        ]
        lags = []
        try:
            async with up.running(), relay.running():
                # Each loop's first pass (connections, an empty outbox) is not the lag measured.
                start = time.monotonic()
                while up.passes == 0 or relay.passes == 0:
                    assert time.monotonic() - start < 30, "the loops did not start"
                    await asyncio.sleep(0.02)
                for i in range(3):
                    start = time.monotonic()
                    await asyncio.to_thread(county.enter, {("360121", f"t{i}"): float(i)})
                    while len(province.applied_changes()) < i + 1:
                        assert time.monotonic() - start < 10, "change did not reach the province"
                        await asyncio.sleep(0.02)
                    lags.append(time.monotonic() - start)
        finally:
            for u in undo:
                u()
        return lags

    lags = asyncio.run(scenario())
    assert max(lags) < 3.0, lags
    assert province.snapshot() == county.snapshot()


class TamperAnswers(RewriteAnswers):
    """Rewrites the catalog in the parent's answers."""

    def rewrite(self, request: httpx.Request, body: dict[str, Any]) -> None:
        for change in body.get("batch", {}).get("changes", []):
            if change["entity"] == "catalog":
                change["payload"]["indicators"] = ["FORGED"]


def test_a_tampered_catalog_is_refused_and_the_pull_dead_letters(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    to_city = Registry()
    to_city.register("node-360121", "360121", COUNTY_SECRET)
    city_server = serve(servers, city, to_city, relay=True)
    city.release_catalog("JX-2025", 1, ["A01", "A02"])

    def puller(client: httpx.AsyncClient) -> SyncPuller:
        return SyncPuller(
            county.db,
            county.tables,
            county.node,
            parent_url=city_server.url,
            credential=COUNTY_SECRET,
            appliers=county.appliers,
            dead_letter_after=2,
            backoff=FAST,
            rng=lambda: 1.0,
            client=client,
        )

    async def tampered() -> None:
        async with httpx.AsyncClient(transport=TamperAnswers()) as client:
            pull = puller(client)
            for _ in range(3):
                assert await pull.run_once() == 0
                await asyncio.sleep(0.25)

    asyncio.run(tampered())
    assert county.count(county.catalog) == 0
    link = status(county, "pull", "*")
    assert link.state == DEAD_LETTER
    assert "sync-digest-mismatch" in (link.last_error or "")
    assert (link.last_acked_seq, link.attempts) == (0, 2)

    with county.db.session() as session:
        revive(session, county.tables, kind="pull")

    async def clean() -> int:
        async with httpx.AsyncClient() as client:
            return await puller(client).run_once()

    assert asyncio.run(clean()) == 1
    with county.db.session() as session:
        row = session.execute(select(county.catalog.c.indicators)).scalar_one()
    assert row == "A01,A02"


def test_the_status_endpoint_lists_every_link(
    servers: list[LiveServer], city: TinyNode, county: TinyNode
) -> None:
    to_city = Registry()
    to_city.register("node-360121", "360121", COUNTY_SECRET)
    city_server = serve(servers, city, to_city, relay=True)
    county.enter(values("360121", 3))
    city.review("360121", "approve")

    async def scenario() -> None:
        push = pusher(county, city_server.url, COUNTY_SECRET)
        await push.run_once()
        await push.stop()

    asyncio.run(scenario())
    body = httpx.get(city_server.url + STATUS_PATH.format(service=SERVICE)).json()
    assert body["node"] == "node-360100"
    links = {(link["kind"], link["stream"]): link for link in body["links"]}
    assert links["receive", "node-360121"]["last_acked_seq"] == 3
    # Relayed up but no parent link yet: pending, and said so.
    assert links["push", "node-360121"]["pending"] == 3
    assert links["push", "node-360121"]["state"] == "unlinked"
    # The county has not pulled its review yet.
    assert links["serve", "360121"]["pending"] == 1
    assert links["serve", "360121"]["oldest_pending_age_s"] >= 0


def test_pruning_keeps_what_is_unacknowledged_and_a_lost_parent_is_flagged_not_papered_over(
    servers: list[LiveServer], make_node: Callable[[str, str], TinyNode], county: TinyNode
) -> None:
    city = make_node("node-360100", "360100")
    to_city = Registry()
    to_city.register("node-360121", "360121", COUNTY_SECRET)
    city_server = serve(servers, city, to_city, relay=False)
    push = pusher(county, city_server.url, COUNTY_SECRET)

    async def run_once() -> int:
        return await push.run_once()

    county.enter(values("360121", 5))
    assert asyncio.run(run_once()) == 5
    county.enter(values("360121", 2, start=10))  # not yet pushed: must survive pruning
    later = utcnow() + timedelta(seconds=5)
    with county.db.session() as session:
        assert prune(session, county.tables, older_than=later) == {
            "outbox": 5,
            "relay": 0,
            "batches": 0,
        }
    with city.db.session() as session:
        assert prune(session, city.tables, older_than=later) == {
            "outbox": 0,
            "relay": 0,
            "batches": 1,
        }
    assert asyncio.run(run_once()) == 2
    assert city.snapshot() == county.snapshot()

    # The parent comes back from an old backup (it has nothing): the county cannot resend
    # what it pruned, so the link stops with the reason instead of leaving a silent hole.
    lost = make_node("node-360100-restored", "360100")
    restored = serve(servers, lost, to_city, relay=False)
    push.parent_url = restored.url
    county.enter({("360121", "after-restore"): 1.0})

    async def twice() -> None:
        await push.run_once()
        await push.run_once()
        await push.stop()

    asyncio.run(twice())
    link = status(county, "push", "node-360121")
    assert link.state == DEAD_LETTER
    assert "pruned" in (link.last_error or "")
    assert (link.last_acked_seq, link.pending) == (0, 8)
    assert lost.snapshot() == {}
