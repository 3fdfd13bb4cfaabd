"""What each link has pending, how old, what was last acknowledged, and the last error."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.dbtypes import utcnow
from shared.sync.links import PULL, PUSH, RECEIVE, SERVE
from shared.sync.outbox import DOWN, UP
from shared.sync.tables import SyncTables
from shared.sync.wire import BROADCAST

__all__ = ["UNLINKED", "LinkStatus", "sync_status"]

UNLINKED = "unlinked"  # a stream nobody has sent or pulled yet


@dataclass(frozen=True)
class LinkStatus:
    """One stream on one link, as ``checkup sync status`` shows it."""

    direction: str  # up | down
    kind: str  # push | receive (up); serve | pull (down)
    peer: str  # parent link name, or the child (node id up, region down)
    stream: str  # origin node id (up), child region or "*" (down)
    pending: int
    oldest_pending_age_s: float | None
    last_acked_seq: int
    head_seq: int | None
    state: str
    attempts: int
    last_error: str | None
    last_error_at: datetime | None
    next_attempt_at: datetime | None
    last_ok_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v)
            for k, v in asdict(self).items()
        }


def _age(now: datetime, at: datetime | None) -> float | None:
    return None if at is None else max(0.0, (now - at).total_seconds())


def _oldest_unacked(
    session: Session, t: SyncTables, direction: str, stream: str, acked: int
) -> datetime | None:
    o, r = t.outbox.c, t.relay.c
    at: datetime | None = session.execute(
        select(o.created_at).where(
            (o.direction == direction) & (o.stream == stream) & (o.seq == acked + 1)
        )
    ).scalar()
    if at is None and direction == UP:
        at = session.execute(
            select(r.created_at).where(
                (r.stream == stream) & (r.first_seq <= acked + 1) & (r.last_seq > acked)
            )
        ).scalar()
    return at


def sync_status(
    session: Session, tables: SyncTables, *, now: datetime | None = None
) -> list[LinkStatus]:
    """Every link of this service: pushes up, pulls down, children's pulls and pushes."""
    now = now or utcnow()
    t = tables
    s, c, h = t.streams.c, t.cursors.c, t.held.c
    heads = {
        (r.direction, r.stream): int(r.last_seq)
        for r in session.execute(select(s.direction, s.stream, s.last_seq))
    }
    cursors = session.execute(select(t.cursors).order_by(c.kind, c.peer, c.stream)).all()
    out: list[LinkStatus] = []

    def link(
        direction: str,
        kind: str,
        peer: str,
        stream: str,
        acked: int,
        head: int | None,
        row: Any,
        pending: int,
        oldest: datetime | None,
    ) -> None:
        out.append(
            LinkStatus(
                direction=direction,
                kind=kind,
                peer=peer,
                stream=stream,
                pending=max(0, pending),
                oldest_pending_age_s=_age(now, oldest) if pending > 0 else None,
                last_acked_seq=acked,
                head_seq=head,
                state=row.state if row is not None else UNLINKED,
                attempts=row.attempts if row is not None else 0,
                last_error=row.last_error if row is not None else None,
                last_error_at=row.last_error_at if row is not None else None,
                next_attempt_at=row.next_attempt_at if row is not None else None,
                last_ok_at=row.last_ok_at if row is not None else None,
            )
        )

    def sending(direction: str, kind: str, peer: str, stream: str, row: Any) -> None:
        head = heads.get((direction, stream), 0)
        acked = int(row.acked_seq) if row is not None else 0
        oldest = _oldest_unacked(session, t, direction, stream, acked) if head > acked else None
        link(direction, kind, peer, stream, acked, head, row, head - acked, oldest)

    # Sending sides: this node's up streams per push link, each child's down stream.
    covered: set[tuple[str, str]] = set()
    for row in cursors:
        if row.kind == PUSH:
            sending(UP, PUSH, row.peer, row.stream, row)
            covered.add((UP, row.stream))
        elif row.kind == SERVE:
            sending(DOWN, SERVE, row.peer, row.stream, row)
            covered.add((DOWN, row.stream))
    for direction, stream in sorted(heads):
        if (direction, stream) not in covered and stream != BROADCAST:
            sending(direction, PUSH if direction == UP else SERVE, "", stream, None)

    # Receiving sides: the parent's streams this node pulls, each origin children push.
    applied = {(r.direction, r.stream): r for r in session.execute(select(t.inbox))}
    held = {
        r.stream: (int(r.n), r.oldest)
        for r in session.execute(
            select(h.stream, func.count().label("n"), func.min(h.received_at).label("oldest"))
            .where(h.direction == UP)
            .group_by(h.stream)
        )
    }
    receipts = {r.peer: r for r in cursors if r.kind == RECEIVE}
    for row in cursors:
        if row.kind == PULL:
            inbox = applied.get((DOWN, row.stream))
            acked = int(inbox.applied_seq) if inbox is not None else 0
            head = int(row.peer_head) if row.peer_head is not None else None
            link(DOWN, PULL, row.peer, row.stream, acked, head, row, (head or 0) - acked, None)
    for (direction, stream), inbox in sorted(applied.items()):
        if direction != UP:
            continue
        n, oldest = held.get(stream, (0, None))
        sender = inbox.last_sender or ""
        link(
            UP,
            RECEIVE,
            sender,
            stream,
            int(inbox.applied_seq),
            None,
            receipts.get(sender),
            n,
            oldest,
        )
    return out
