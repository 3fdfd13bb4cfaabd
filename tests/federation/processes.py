"""A province, a city and two counties as separate processes, and a fault-injecting proxy.

Every node is ``python -m checkup.node all`` (checkup.cluster.NodeProcess) with its own
storage cloned from the migrated template; the tests talk to them only over HTTP and read
their storage only for reconciliation.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response

from checkup.cluster import NodeProcess, free_port, link_child
from checkup.sample_data import sample_values, to_csv
from gateway import accounts
from shared.db import Database
from shared.sync import Change, read_stream
from tests.dbs import Template
from tests.federation import waiting
from tests.gateway.conftest import PASSWORD

PROVINCE, CITY, COUNTY_A, COUNTY_B = "360000", "360100", "360121", "360124"
PERIOD = "2025"
# Small enough that a few thousand changes take several batches on every link.
BATCH_SIZE = 200


class Node(NodeProcess):
    """A node process with the test's conveniences: admin token, registry, storage."""

    headers: dict[str, str]

    def login_admin(self) -> None:
        db = self.database("gateway")
        try:
            # The running node writes to the same storage (audit): take the write lock up
            # front, or SQLite refuses a read-then-write transaction ("database is locked").
            with db.session(write=True) as session:
                accounts.create_user(
                    session,
                    "admin",
                    PASSWORD,
                    ["admin", "reviewer", "data_entry"],
                    self.region_code,
                    settings=self.settings,
                )
        finally:
            db.dispose()
        with httpx.Client(base_url=self.url, timeout=30.0) as c:
            r = c.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
            assert r.status_code == 200, r.text
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def api(self) -> httpx.Client:
        return self.client(self.headers)

    def database(self, service: str) -> Database:
        url, schema = self.settings.database_for(service)  # type: ignore[arg-type]
        return Database(url, schema=schema, spatial=service == "indicator")


@dataclass
class ProcessTiers:
    province: Node
    city: Node
    counties: dict[str, Node]
    system: dict[str, Any] = field(default_factory=dict)  # region → {"id", "key"}

    @property
    def all(self) -> list[Node]:
        return [self.province, self.city, *self.counties.values()]


def wait_for(check: Any, timeout: float = 60.0, what: str = "", every: float = 0.2) -> Any:
    """``waiting.wait_for`` with the slower pace of node processes."""
    return waiting.wait_for(check, timeout, what, every)


def _start_all(nodes_: list[Node]) -> None:
    """Start several nodes at once (imports dominate start-up) and log their admins in."""
    errors: list[BaseException] = []

    def start(n: Node) -> None:
        try:
            n.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in nodes_]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.fixture
def process_tiers(template: Template, tmp_path: Path) -> Iterator[ProcessTiers]:
    """Province, city, two counties running as processes, registered, admins logged in,
    the starter system released at the province and received by both counties.

    ``tiers.counties[...].parent_override`` may be set before use by tests that put a proxy
    in between: see ``restart_via``.
    """
    ports = {code: free_port() for code in (PROVINCE, CITY, COUNTY_A, COUNTY_B)}
    parents = {PROVINCE: None, CITY: PROVINCE, COUNTY_A: CITY, COUNTY_B: CITY}
    cleanups = []
    made: dict[str, Node] = {}
    for code, parent in parents.items():
        settings, cleanup = template.clone(
            tmp_path / code,
            region_code=code,
            node_id=f"node-{code}",
            parent_url=f"http://127.0.0.1:{ports[parent]}" if parent else None,
            sync_poll_interval_s=0.2,
            sync_dead_letter_after=3,
            sync_backoff_cap_s=1.0,
            sync_batch_size=BATCH_SIZE,
            rate_limit_per_minute=1_000_000,
            rate_limit_burst=100_000,
        )
        cleanups.append(cleanup)
        made[code] = Node(settings, ports[code])
    tiers = ProcessTiers(made[PROVINCE], made[CITY], {c: made[c] for c in (COUNTY_A, COUNTY_B)})
    try:
        for code, parent in parents.items():
            if parent:
                link_child(made[parent].settings, made[code].settings, by="test")
        _start_all(tiers.all)
        for n in tiers.all:
            n.login_admin()
        release_starter(tiers)
        yield tiers
    finally:
        for n in reversed(tiers.all):
            n.stop()
        for cleanup in cleanups:
            cleanup()  # type: ignore[operator]


def release_starter(tiers: ProcessTiers) -> None:
    """Import and release the starter system at the province; wait for it at every node."""
    from services.indicator.systems.service import STARTER_FILE

    with tiers.province.api() as c:
        r = c.post(
            "/api/v1/systems/import",
            content=STARTER_FILE.read_bytes(),
            headers={"content-type": "application/json"},
        )
        assert r.status_code in (200, 201), r.text
        r = c.post(f"/api/v1/systems/{r.json()['id']}/release")
        assert r.status_code == 200, r.text
        code = r.json()["code"]
        key = f"{code}@{r.json()['year']}@{r.json()['version']}"

    def found(node: Node) -> dict[str, Any] | None:
        with node.api() as c:
            items = c.get("/api/v1/systems", params={"code": code}).json()["items"]
        return {"id": items[0]["id"], "key": key} if items else None

    for node in tiers.all:
        tiers.system[node.region_code] = wait_for(lambda n=node: found(n), what="release")


# ----------------------------------------------------------------------------- county work


def indicators(node: Node, tiers: ProcessTiers) -> list[dict[str, Any]]:
    with node.api() as c:
        r = c.get(f"/api/v1/systems/{tiers.system[node.region_code]['id']}")
        assert r.status_code == 200, r.text
        result: list[dict[str, Any]] = r.json()["indicators"]
        return result


def enter_values(
    node: Node, tiers: ProcessTiers, regions: list[str] | None = None, seed: int = 2025
) -> int:
    """Import a year of synthetic values for the county (and given regions); rows applied."""
    rows = sample_values(indicators(node, tiers), regions or [node.region_code], PERIOD, seed=seed)
    with node.api() as c:
        r = c.post(
            "/api/v1/values/import",
            params={
                "system_id": tiers.system[node.region_code]["id"],
                "period": PERIOD,
                "source": "self_checkup",
            },
            content=to_csv(rows).encode(),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        applied: int = r.json()["rows_applied"]
        return applied


def streets(node: Node) -> list[str]:
    with node.api() as c:
        r = c.get(f"/api/v1/regions/{node.region_code}/children")
        assert r.status_code == 200, r.text
        return [s["code"] for s in r.json()]


def edit_value(node: Node, tiers: ProcessTiers, code: str, region: str, value: float) -> None:
    with node.api() as c:
        r = c.put(
            "/api/v1/values",
            json={
                "system_id": tiers.system[node.region_code]["id"],
                "indicator_code": code,
                "region_code": region,
                "period": PERIOD,
                "source": "self_checkup",
                "value": value,
                "reason": "更正",
            },
        )
        assert r.status_code in (200, 201), r.text


def submit_and_approve(node: Node, tiers: ProcessTiers) -> None:
    sub = f"/api/v1/submissions/{tiers.system[node.region_code]['id']}/{node.region_code}/{PERIOD}"
    with node.api() as c:
        for action in ("submit", "approve"):
            r = c.post(f"{sub}/{action}", json={})
            assert r.status_code == 200, r.text


# ----------------------------------------------------------------------------- reconciliation


def checksum(node: Node, tiers: ProcessTiers, region: str) -> tuple[int, str]:
    key = tiers.system[PROVINCE]["key"]
    with node.api() as c:
        r = c.get(
            "/api/v1/values/checksum",
            params={"system": key, "period": PERIOD, "region_code": region},
        )
        assert r.status_code == 200, r.text
        return int(r.json()["count"]), str(r.json()["checksum"])


def reconciled(tiers: ProcessTiers) -> dict[str, tuple[int, str]] | None:
    """Each county's values identical at the city and the province, and the province's
    city-wide count exactly their sum (zero lost, zero doubled); None while not yet."""
    want = {code: checksum(node, tiers, code) for code, node in tiers.counties.items()}
    for upper in (tiers.city, tiers.province):
        for code in tiers.counties:
            if checksum(upper, tiers, code) != want[code]:
                return None
    own_city = checksum(tiers.city, tiers, CITY)[0] - sum(n for n, _ in want.values())
    if checksum(tiers.province, tiers, CITY)[0] != own_city + sum(n for n, _ in want.values()):
        return None
    return want


def assert_reconciled(tiers: ProcessTiers, timeout: float = 120.0) -> dict[str, tuple[int, str]]:
    got: dict[str, tuple[int, str]] = wait_for(
        lambda: reconciled(tiers), timeout=timeout, what="reconciliation", every=0.5
    )
    return got


def links(node: Node, kind: str | None = None) -> list[dict[str, Any]]:
    """The indicator service's links at ``node`` (``kind``: push, receive, pull, serve)."""
    with node.api() as c:
        r = c.get("/api/v1/sync/status")
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["services"]["indicator"]["links"]
        return [link for link in found if kind is None or link["kind"] == kind]


def push_links(node: Node) -> list[dict[str, Any]]:
    return links(node, "push")


def link_of(node: Node, kind: str, stream: str) -> dict[str, Any]:
    found = [link for link in links(node, kind) if link["stream"] == stream]
    assert len(found) == 1, f"{kind} link {stream} at {node.node_id}: {found}"
    return found[0]


def values_at(
    node: Node, tiers: ProcessTiers, region: str, indicator_code: str | None = None
) -> list[dict[str, Any]]:
    """The values of exactly ``region`` at ``node`` (GET /api/v1/values, every page)."""
    params: dict[str, Any] = {
        "system_id": tiers.system[node.region_code]["id"],
        "period": PERIOD,
        "region_code": region,
        "exact_region": "true",
        "limit": 1000,
    }
    if indicator_code:
        params["indicator_code"] = indicator_code
    items: list[dict[str, Any]] = []
    with node.api() as c:
        while True:
            r = c.get("/api/v1/values", params=params)
            assert r.status_code == 200, r.text
            items += r.json()["items"]
            if not r.json()["next_cursor"]:
                return items
            params["cursor"] = r.json()["next_cursor"]


def outbox(node: Node, origin: str | None = None, after: int = 0) -> list[Change]:
    """The indicator changes of an origin stream recorded at ``node`` after ``after``."""
    db = node.database("indicator")
    try:
        with db.session() as session:
            return read_stream(
                session, _indicator_sync(), "up", origin or node.node_id, after, 100_000
            )
    finally:
        db.dispose()


def _indicator_sync() -> Any:
    from services.indicator.sync.tables import SYNC

    return SYNC


def audit(node: Node, **params: Any) -> list[dict[str, Any]]:
    """Audit rows at ``node`` matching the filters, newest first (every page)."""
    query: dict[str, Any] = {"limit": 1000, **params}
    rows: list[dict[str, Any]] = []
    with node.api() as c:
        while True:
            r = c.get("/api/v1/audit", params=query)
            assert r.status_code == 200, r.text
            rows += r.json()["items"]
            if not r.json()["next_cursor"]:
                return rows
            query["cursor"] = r.json()["next_cursor"]


# ----------------------------------------------------------------------------- fault proxy


@dataclass
class Faults:
    """What the proxy does to sync batches (POST …/batches) passing through."""

    duplicate: float = 0.0  # probability: forward twice
    drop_answer: float = 0.0  # probability: forward, then answer 502 (the sender retries)
    delay_s: tuple[float, float] = (0.0, 0.0)  # random delay before forwarding
    replay_stale: float = 0.0  # probability: re-send an older batch after this one
    seen: list[bytes] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


class FaultProxy:
    """An HTTP proxy between a child and its parent that duplicates, delays, drops answers
    and replays old batches out of order; everything else passes through untouched."""

    def __init__(self, target: str, faults: Faults, seed: int = 7) -> None:
        self.target = target.rstrip("/")
        self.faults = faults
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._rng = random.Random(seed)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._batches = 0  # sync batches seen so far, this one included

    def _fires(self, what: str, probability: float) -> bool:
        """At random with ``probability``; and surely from the third batch on, once, if it
        has not fired yet (a link carrying few batches still sees every fault asked for)."""
        if self._rng.random() < probability:
            return True
        return probability > 0 and what not in self.faults.counts and self._batches >= 3

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        try:
            response = await self._pass(request, body, path, headers)
        except httpx.TransportError as exc:  # the parent is down: a gateway's answer
            response = Response(f"proxy: parent unreachable: {exc}".encode(), status_code=502)
        await response(scope, receive, send)

    async def _pass(
        self, request: Request, body: bytes, path: str, headers: dict[str, str]
    ) -> Response:
        """The answer to one request, after the faults asked for."""
        f = self.faults
        is_batch = request.method == "POST" and request.url.path.endswith("/batches")
        async with httpx.AsyncClient(base_url=self.target, timeout=60.0) as client:

            async def forward(content: bytes) -> httpx.Response:
                return await client.request(request.method, path, content=content, headers=headers)

            if is_batch:
                self._batches += 1
                low, high = f.delay_s
                if high > 0:
                    await asyncio.sleep(self._rng.uniform(low, high))
                answer = await forward(body)
                if self._fires("duplicated", f.duplicate):
                    f.count("duplicated")
                    answer = await forward(body)
                if f.seen and self._fires("replayed", f.replay_stale):
                    f.count("replayed")
                    await forward(self._rng.choice(f.seen))
                f.seen.append(body)
                if self._fires("answer_dropped", f.drop_answer):
                    f.count("answer_dropped")
                    return Response(b"proxy: answer lost", status_code=502)
                f.count("forwarded")
            else:
                answer = await forward(body)
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
        )

    def start(self) -> FaultProxy:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_for(lambda: self._server is not None and self._server.started, what="proxy")
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)


def restart_via(node: Node, parent_url: str, *more: tuple[Node, str]) -> None:
    """Restart ``node`` with another parent URL (e.g. a proxy in front of the real one);
    ``more``: further (node, parent URL) pairs, restarted at the same time."""
    moves = [(node, parent_url), *more]
    for n, url in moves:
        n.stop()
        n.settings = n.settings.model_copy(update={"parent_url": url})
    _start_all([n for n, _ in moves])
