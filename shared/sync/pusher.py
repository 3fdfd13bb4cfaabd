"""The child's side of a link: push the outbox up, pull the downward stream, retry, dead-letter."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db import Database
from shared.dbtypes import utcnow
from shared.errors import ProblemError
from shared.sync.links import (
    DEAD_LETTER,
    PULL,
    PUSH,
    Backoff,
    cursor,
    ensure_cursor,
    note_failure,
    note_success,
)
from shared.sync.node import SyncNode
from shared.sync.outbox import DOWN, UP, read_wire
from shared.sync.receiver import Appliers, RelayDown, apply_pulled
from shared.sync.tables import SyncTables
from shared.sync.wire import (
    BATCH_HEADER,
    BROADCAST,
    PullRequest,
    build_pull,
    encode_signed,
    parse_pull_response,
)

__all__ = ["PULL_PATH", "PUSH_PATH", "SyncPuller", "SyncPusher"]

log = logging.getLogger("checkup.sync")

# At the parent's gateway (shared.sync.http.PUBLIC_BASE).
PUSH_PATH = "/api/v1/sync/{service}/batches"
PULL_PATH = "/api/v1/sync/{service}/pull"
# Worth retrying as they are; every other 4xx needs a person (credential, scope, content).
TRANSIENT_STATUS = frozenset({408, 425, 429})
JSON_HEADERS = {"content-type": "application/json"}

Credential = str | Callable[[], str]


@dataclass(frozen=True)
class _Failure:
    error: str
    permanent: bool


def _failure_of(response: httpx.Response) -> _Failure:
    """Describe a non-200 answer (problem+json if it is one) and whether to retry it."""
    detail = response.text[:500]
    with suppress(ValueError):
        body = response.json()
        if isinstance(body, dict) and "type" in body:
            slug = str(body["type"]).rsplit("/", 1)[-1]
            detail = f"{slug}: {body.get('detail', body.get('title', ''))}"
    transient = response.status_code >= 500 or response.status_code in TRANSIENT_STATUS
    return _Failure(f"HTTP {response.status_code} {detail}", permanent=not transient)


class _Loop:
    """A background loop that runs a pass, then sleeps until woken or the poll interval ends.

    ``credential`` is the secret (or a function returning it, for rotation), ``link`` the
    name of the parent link in status, ``poll_interval_s`` the longest sleep between passes.
    """

    def __init__(
        self,
        db: Database,
        tables: SyncTables,
        node: SyncNode,
        *,
        parent_url: str,
        credential: Credential,
        link: str = "parent",
        batch_size: int = 1000,
        poll_interval_s: float = 0.5,
        backoff: Backoff = Backoff(),
        dead_letter_after: int = 5,
        timeout_s: float = 30.0,
        client: httpx.AsyncClient | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.db = db
        self.tables = tables
        self.node = node
        self.parent_url = parent_url.rstrip("/")
        self.credential = credential
        self.link = link
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.backoff = backoff
        self.dead_letter_after = dead_letter_after
        self.timeout_s = timeout_s
        self.rng = rng
        self._client = client
        self._owns_client = client is None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        # Passes completed since start (the first one tells the loop is up and idle).
        self.passes = 0

    def secret(self) -> str:
        return self.credential() if callable(self.credential) else self.credential

    def wake(self) -> None:
        """Run a pass now (thread-safe: call it from a commit hook in any thread)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run_once(self) -> int:
        """One pass over every due stream; returns how many changes moved."""
        raise NotImplementedError

    async def run(self) -> None:
        """Pass after pass until cancelled; a failing pass is logged, never fatal."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            try:
                moved = await self.run_once()
            except Exception:  # the database may be down for a while: keep the loop alive
                log.exception("%s pass failed", type(self).__name__)
                moved = 0
            self.passes += 1
            if moved:
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            self._wake.clear()

    async def start(self) -> None:
        """Start the loop as a task of the running event loop (e.g. in a lifespan)."""
        self._http()
        self._task = asyncio.create_task(self.run(), name=type(self).__name__)

    async def stop(self) -> None:
        """Stop the loop; an unacknowledged batch is simply sent again next time."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_client and self._client is not None:
            if self._client_loop is asyncio.get_running_loop():
                await self._client.aclose()
            self._client = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[_Loop]:
        """``async with pusher.running():`` inside a service lifespan."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._owns_client and self._client is not None and self._client_loop is not loop:
            # Its connections belong to an event loop that is gone (asyncio.run per call).
            self._client = None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s, connect=5.0))
            self._client_loop = loop
        return self._client

    async def _post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> Any | _Failure:
        client = self._http()
        url = self.parent_url + path.format(service=self.node.service)
        headers = {**JSON_HEADERS, "x-checkup-node": self.node.node_id, **(headers or {})}
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return _Failure(f"上级节点响应超时 (timeout): {type(exc).__name__}", permanent=False)
        except httpx.HTTPError as exc:
            return _Failure(
                f"无法连接上级节点 (transport error): {type(exc).__name__}: {exc}", permanent=False
            )
        if response.status_code != 200:
            return _failure_of(response)
        try:
            return response.json()
        except ValueError:
            return _Failure("上级节点应答不是 JSON (answer is not JSON)", permanent=False)

    def _fail(self, kind: str, stream: str, failure: _Failure, *, at_once: bool = False) -> None:
        with self.db.session(write=True) as session:
            state = note_failure(
                session,
                self.tables,
                kind,
                self.link,
                stream,
                error=failure.error,
                permanent=failure.permanent,
                backoff=self.backoff,
                dead_letter_after=0 if at_once else self.dead_letter_after,
                rng=self.rng,
            )
        log.warning("%s %s/%s failed (%s): %s", kind, self.link, stream, state, failure.error)

    def _due(self, kind: str, stream: str) -> Any | None:
        """The link's cursor if it may be tried now (not dead-lettered, not backing off)."""
        with self.db.session(write=True) as session:
            ensure_cursor(session, self.tables, kind, self.link, stream)
            row = cursor(session, self.tables, kind, self.link, stream)
        if row is None or row.state == DEAD_LETTER:
            return None
        if row.next_attempt_at is not None and row.next_attempt_at > utcnow():
            return None
        return row


def _cancel(sent: deque[tuple[_Prepared, asyncio.Task[Any]]]) -> None:
    """Drop batches in flight: their answers are not waited for (the parent may still apply
    them; it applies each change once, so sending them again later costs only time)."""
    while sent:
        post = sent.popleft()[1]
        post.cancel()
        post.add_done_callback(_retrieve)


def _retrieve(post: asyncio.Task[Any]) -> None:
    if not post.cancelled() and (exc := post.exception()) is not None:
        log.warning("a dropped batch failed: %r", exc)


@dataclass(frozen=True)
class _Prepared:
    stream: str
    body: bytes
    header: str  # BATCH_HEADER
    head: int
    after: int  # the seq it follows: acknowledged, or the last of the batch sent before it
    last: int  # its last seq


class SyncPusher(_Loop):
    """Pushes the outbox (this node's origin and every origin it relays) to the parent.

    ``window``: how many batches of a stream may be in flight at once (1: each waits for
    the answer to the one before).
    """

    def __init__(self, *args: Any, window: int = 2, **link: Any) -> None:
        super().__init__(*args, **link)
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window

    def _pending_streams(self) -> list[str]:
        s = self.tables.streams.c
        c = self.tables.cursors.c
        now = utcnow()
        with self.db.session() as session:
            rows = session.execute(
                select(s.stream, s.last_seq, c.acked_seq, c.state, c.next_attempt_at)
                .select_from(
                    self.tables.streams.outerjoin(
                        self.tables.cursors,
                        (c.kind == PUSH) & (c.peer == self.link) & (c.stream == s.stream),
                    )
                )
                .where(s.direction == UP)
                .order_by(s.stream)
            ).all()
        return [
            r.stream
            for r in rows
            if r.last_seq > (r.acked_seq or 0)
            and r.state != DEAD_LETTER
            and (r.next_attempt_at is None or r.next_attempt_at <= now)
        ]

    def _prepare(self, stream: str) -> _Prepared | None:
        """The next batch after the link's acknowledgement, if the link is due."""
        row = self._due(PUSH, stream)
        if row is None:
            return None
        return self._read(stream, int(row.acked_seq))

    def _read(self, stream: str, after: int) -> _Prepared | None:
        """The batch of the next changes after seq ``after``, built and encoded."""
        with self.db.session() as session:
            head, region = self._stream_row(session, stream)
            found = read_wire(session, self.tables, stream, after, self.batch_size)
        if found is None:
            return None
        changes_json, first, last = found
        if first != after + 1:
            self._fail(
                PUSH,
                stream,
                _Failure(
                    f"本地发件箱缺少 {after + 1}..{first - 1}，已被清理 "
                    "(outbox rows after the parent's ack were pruned)",
                    permanent=True,
                ),
                at_once=True,
            )
            return None
        body, header = encode_signed(
            sender=self.node.node_id,
            service=self.node.service,
            origins={stream: region or self.node.region},
            changes_json=changes_json,
            secret=self.secret(),
        )
        # Under READ COMMITTED the rows may include changes committed after the head was
        # read (a relay appending meanwhile): the head is at least the last change sent.
        return _Prepared(stream, body, header, max(head, last), after, last)

    def _stream_row(self, session: Session, stream: str) -> tuple[int, str | None]:
        """(last seq recorded, region) of an up stream."""
        s = self.tables.streams.c
        head, region = session.execute(
            select(s.last_seq, s.region).where((s.direction == UP) & (s.stream == stream))
        ).one()
        return int(head), region

    def _head(self, stream: str) -> int:
        """The last seq this node has recorded in an up stream."""
        with self.db.session() as session:
            return self._stream_row(session, stream)[0]

    def _settle(self, prepared: _Prepared, answer: Any) -> int | None:
        """Record the parent's acknowledgement; returns it (None: the answer is a failure)."""
        stream = prepared.stream
        acks = answer.get("acks") if isinstance(answer, dict) else None
        ack = acks.get(stream) if isinstance(acks, dict) else None
        if not isinstance(ack, int) or isinstance(ack, bool) or ack < 0:
            self._fail(
                PUSH, stream, _Failure(f"应答缺少确认序号 (no ack in {answer!r:.200})", True)
            )
            return None
        if ack > prepared.head and ack > (head := self._head(stream)):
            # The parent holds seqs this node has not written: one of them was restored from
            # a backup. Sending on would reuse seqs the parent would drop as duplicates.
            # (Beyond the head as read with the batch is not enough: a later batch, read
            # after more changes were recorded, may have overtaken it and been applied
            # with it.)
            self._fail(
                PUSH,
                stream,
                _Failure(
                    f"上级确认到 {ack}，本地只记录到 {head}：是否从备份恢复？"
                    f"(parent acknowledged {ack} beyond the local head {head})",
                    permanent=True,
                ),
                at_once=True,
            )
            return None
        with self.db.session(write=True) as session:
            before = cursor(session, self.tables, PUSH, self.link, stream)
            note_success(session, self.tables, PUSH, self.link, stream, acked_seq=ack)
        if before is not None and ack < before.acked_seq:
            log.warning(
                "parent re-acknowledged %s at %s < %s: resending", stream, ack, before.acked_seq
            )
        return ack

    async def push_stream(self, stream: str) -> int:
        """Push one origin stream until it is caught up or a batch fails.

        Up to ``window`` batches are in flight: the next one is read, encoded and sent while
        the parent applies the one before (it applies a stream's changes in order and holds
        any that arrive early); changes recorded meanwhile are read after each answer, so
        a growing stream keeps the window full. Answers are taken in the order the batches
        went out; an acknowledgement other than the end of its batch, or a failure, drops
        the batches sent after it, and the stream is read again from the acknowledgement.
        """
        moved = 0
        sent: deque[tuple[_Prepared, asyncio.Task[Any]]] = deque()
        try:
            following = await asyncio.to_thread(self._prepare, stream)
            while following is not None or sent:
                if following is not None and len(sent) < self.window:
                    post = asyncio.ensure_future(
                        self._post(PUSH_PATH, following.body, {BATCH_HEADER: following.header})
                    )
                    sent.append((following, post))
                    following = await self._after(following)
                    continue
                prepared, post = sent.popleft()
                answer = await post
                if isinstance(answer, _Failure):
                    await asyncio.to_thread(self._fail, PUSH, stream, answer)
                    return moved
                ack = await asyncio.to_thread(self._settle, prepared, answer)
                if ack is None or ack <= prepared.after:
                    return moved
                moved += ack - prepared.after
                if ack != prepared.last:
                    _cancel(sent)
                    following = await asyncio.to_thread(self._prepare, stream)
                elif following is None:
                    # Changes recorded while the batches were on their way follow the last
                    # one sent: the window stays full while the stream grows (a relaying
                    # city commits a run every few hundred ms), and the parent always has
                    # the next batch in hand when it finishes one.
                    tail = sent[-1][0] if sent else prepared
                    following = await asyncio.to_thread(self._read, stream, tail.last)
            return moved
        finally:
            _cancel(sent)

    async def _after(self, prepared: _Prepared) -> _Prepared | None:
        """The batch after ``prepared`` (None: the stream ended with it when it was read; a
        change recorded since is taken by the next pass)."""
        if prepared.head <= prepared.last:
            return None
        return await asyncio.to_thread(self._read, prepared.stream, prepared.last)

    async def run_once(self) -> int:
        """Push every due stream; returns how many changes the parent acknowledged."""
        moved = 0
        for stream in await asyncio.to_thread(self._pending_streams):
            moved += await self.push_stream(stream)
        return moved


class SyncPuller(_Loop):
    """Pulls this node's downward stream and the broadcast stream from the parent."""

    def __init__(
        self,
        db: Database,
        tables: SyncTables,
        node: SyncNode,
        *,
        appliers: Appliers,
        relay_down: RelayDown | None = None,
        **link: Any,
    ) -> None:
        """``link``: parent_url, credential and the other settings of a SyncPusher."""
        # Downward messages are rare (reviews, releases): a slower poll spares the parent.
        link.setdefault("poll_interval_s", 2.0)
        super().__init__(db, tables, node, **link)
        self.appliers = appliers
        self.relay_down = relay_down
        # The catalog (broadcast) first: this node's own messages may refer to it.
        self.streams: Sequence[str] = (BROADCAST, node.region)

    def _position(self, stream: str) -> int | None:
        if self._due(PULL, stream) is None:
            return None
        i = self.tables.inbox.c
        with self.db.session() as session:
            applied = session.execute(
                select(i.applied_seq).where((i.direction == DOWN) & (i.stream == stream))
            ).scalar()
        return int(applied or 0)

    def _apply(self, pull: PullRequest, answer: Any) -> tuple[int, int, int]:
        """(applied seq, applied count, parent head); a refused answer counts as a failure."""
        try:
            response = parse_pull_response(answer)
            with self.db.session(write=True) as session:
                applied, count = apply_pulled(
                    session,
                    self.tables,
                    pull,
                    response,
                    node=self.node,
                    credential_secret=self.secret(),
                    appliers=self.appliers,
                    relay_down=self.relay_down,
                )
                note_success(
                    session,
                    self.tables,
                    PULL,
                    self.link,
                    pull.stream,
                    acked_seq=applied,
                    peer_head=response.head,
                )
        except ProblemError as exc:
            self._fail(PULL, pull.stream, _Failure(f"{exc.slug}: {exc.detail}", permanent=True))
            return pull.after, 0, pull.after
        return applied, count, response.head

    async def pull_stream(self, stream: str) -> int:
        """Pull one downward stream until caught up or a pull fails."""
        moved = 0
        while True:
            after = await asyncio.to_thread(self._position, stream)
            if after is None:
                return moved
            pull = build_pull(
                node=self.node.node_id,
                service=self.node.service,
                stream=stream,
                after=after,
                limit=self.batch_size,
                secret=self.secret(),
            )
            answer = await self._post(PULL_PATH, pull.encode())
            if isinstance(answer, _Failure):
                await asyncio.to_thread(self._fail, PULL, stream, answer)
                return moved
            applied, count, head = await asyncio.to_thread(self._apply, pull, answer)
            moved += count
            if count == 0 or applied >= head:
                return moved

    async def run_once(self) -> int:
        """Pull every stream; returns how many messages were applied."""
        moved = 0
        for stream in self.streams:
            moved += await self.pull_stream(stream)
        return moved
