"""Link state per stream: acknowledged seq, retries with backoff, dead letter, last error."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Row, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from shared.dbtypes import utcnow
from shared.sync.dialect import dialect_of
from shared.sync.tables import SyncTables

__all__ = [
    "ACTIVE",
    "DEAD_LETTER",
    "PULL",
    "PUSH",
    "RECEIVE",
    "SERVE",
    "Backoff",
    "note_failure",
    "note_success",
    "revive",
]

# Cursor kinds: this node pushes up / a child pulls from it / it pulls from its parent /
# a child pushes to it (one row per sending node, stream "").
PUSH = "push"
SERVE = "serve"
PULL = "pull"
RECEIVE = "receive"

ACTIVE = "active"
DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: a random delay in [0, min(cap, base·2^(n-1)))."""

    base_s: float = 0.5
    cap_s: float = 300.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, min(attempt - 1, 62)))
        return rng() * ceiling


def _is(t: SyncTables, kind: str, peer: str, stream: str) -> ColumnElement[bool]:
    c = t.cursors.c
    return (c.kind == kind) & (c.peer == peer) & (c.stream == stream)


def ensure_cursor(session: Session, t: SyncTables, kind: str, peer: str, stream: str) -> None:
    """Create the link's cursor row if it does not exist yet."""
    session.execute(
        dialect_of(session)
        .insert_ignore(t.cursors, ["kind", "peer", "stream"])
        .values(
            kind=kind,
            peer=peer,
            stream=stream,
            acked_seq=0,
            attempts=0,
            permanent_failures=0,
            state=ACTIVE,
            updated_at=utcnow(),
        )
    )


def cursor(session: Session, t: SyncTables, kind: str, peer: str, stream: str) -> Row[Any] | None:
    """The link's cursor row, or None."""
    return session.execute(select(t.cursors).where(_is(t, kind, peer, stream))).first()


def note_success(
    session: Session,
    t: SyncTables,
    kind: str,
    peer: str,
    stream: str,
    *,
    acked_seq: int | None = None,
    peer_head: int | None = None,
    now: datetime | None = None,
) -> None:
    """The link worked: record the ack (authoritative from the receiver), clear retries."""
    now = now or utcnow()
    ensure_cursor(session, t, kind, peer, stream)
    values: dict[str, Any] = {
        "attempts": 0,
        "permanent_failures": 0,
        "next_attempt_at": None,
        "state": ACTIVE,
        "last_ok_at": now,
        "updated_at": now,
    }
    if acked_seq is not None:
        values["acked_seq"] = acked_seq
    if peer_head is not None:
        values["peer_head"] = peer_head
    session.execute(update(t.cursors).where(_is(t, kind, peer, stream)).values(values))


def note_failure(
    session: Session,
    t: SyncTables,
    kind: str,
    peer: str,
    stream: str,
    *,
    error: str,
    permanent: bool,
    backoff: Backoff | None = None,
    dead_letter_after: int | None = None,
    now: datetime | None = None,
    rng: Callable[[], float] = random.random,
) -> str:
    """Record a failed attempt, schedule the retry; returns the link's state afterwards.

    Transient failures back off for ever (capped); ``dead_letter_after`` consecutive
    permanent failures (0: at once) park the link in ``dead_letter`` until revived.
    """
    now = now or utcnow()
    ensure_cursor(session, t, kind, peer, stream)
    c = t.cursors.c
    counts = session.execute(
        update(t.cursors)
        .where(_is(t, kind, peer, stream))
        .values(
            attempts=c.attempts + 1,
            permanent_failures=c.permanent_failures + (1 if permanent else 0),
            last_error=error[:2000],
            last_error_at=now,
            updated_at=now,
        )
        .returning(c.attempts, c.permanent_failures)
    ).one()
    dead = permanent and dead_letter_after is not None and counts[1] >= dead_letter_after
    next_at = None
    if backoff is not None and not dead:
        next_at = now + timedelta(seconds=backoff.delay(counts[0], rng))
    state = DEAD_LETTER if dead else ACTIVE
    session.execute(
        update(t.cursors)
        .where(_is(t, kind, peer, stream))
        .values(state=state, next_attempt_at=next_at)
    )
    return state


def revive(
    session: Session,
    t: SyncTables,
    *,
    kind: str | None = None,
    peer: str | None = None,
    stream: str | None = None,
) -> int:
    """Put dead-lettered links back to work (after the cause is fixed); returns how many."""
    c = t.cursors.c
    where = c.state == DEAD_LETTER
    for col, value in ((c.kind, kind), (c.peer, peer), (c.stream, stream)):
        if value is not None:
            where = where & (col == value)
    result = session.execute(
        update(t.cursors)
        .where(where)
        .values(
            state=ACTIVE,
            attempts=0,
            permanent_failures=0,
            next_attempt_at=None,
            updated_at=utcnow(),
        )
    )
    return int(cast(CursorResult[Any], result).rowcount or 0)
