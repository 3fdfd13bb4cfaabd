"""Recording changes in the outbox, in the caller's transaction, with gapless per-stream seqs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    CursorResult,
    Select,
    Text,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from shared.dbtypes import UtcDateTime, utcnow
from shared.sync.dialect import dialect_of
from shared.sync.links import PUSH, SERVE
from shared.sync.node import SyncNode, mark_recorded, node_of
from shared.sync.tables import SyncTables
from shared.sync.wire import (
    BROADCAST,
    MAX_BATCH_BYTES,
    Change,
    canonical_changes,
    canonical_json,
    wire_change,
)

__all__ = [
    "DOWN",
    "UP",
    "NewChange",
    "prune",
    "publish_down",
    "read_stream",
    "read_wire",
    "record_change",
    "record_changes",
    "record_changes_from_select",
    "record_relayed",
]

UP = "up"
DOWN = "down"


@dataclass(frozen=True, slots=True)
class NewChange:
    """A change to record; its origin and seq are assigned when it is recorded."""

    entity: str
    key: str
    op: str
    payload: Mapping[str, Any]


def _is_stream(t: SyncTables, direction: str, stream: str) -> ColumnElement[bool]:
    return (t.streams.c.direction == direction) & (t.streams.c.stream == stream)


def _ensure_head(
    session: Session, t: SyncTables, direction: str, stream: str, region: str | None
) -> None:
    session.execute(
        dialect_of(session)
        .insert_ignore(t.streams, ["direction", "stream"])
        .values(direction=direction, stream=stream, last_seq=0, region=region, updated_at=utcnow())
    )


def _bump_head(
    session: Session, t: SyncTables, direction: str, stream: str, n: int, region: str | None
) -> int:
    """Add ``n`` to a stream's head and return the new head; the row stays locked to commit."""
    s = t.streams
    bump = (
        update(s)
        .where(_is_stream(t, direction, stream))
        .values(last_seq=s.c.last_seq + n, updated_at=utcnow())
        .returning(s.c.last_seq)
    )
    last = session.execute(bump).scalar()
    if last is None:
        _ensure_head(session, t, direction, stream, region)
        last = session.execute(bump).scalar_one()
    return int(last)


def allocate_seqs(
    session: Session, t: SyncTables, direction: str, stream: str, n: int, region: str | None
) -> int:
    """Reserve ``n`` seqs of a stream and return the first of them."""
    return _bump_head(session, t, direction, stream, n, region) - n + 1


def insert_changes(
    session: Session, t: SyncTables, direction: str, stream: str, first: int, changes: Sequence[Any]
) -> None:
    """Insert changes (anything with entity, key, op, payload) as seqs first, first + 1, …"""
    now = utcnow()
    dialect_of(session).bulk_insert(
        session,
        t.outbox,
        [
            {
                "direction": direction,
                "stream": stream,
                "seq": first + i,
                "entity": c.entity,
                "entity_key": c.key,
                "op": c.op,
                "payload": dict(c.payload),
                "created_at": now,
            }
            for i, c in enumerate(changes)
        ],
    )
    mark_recorded(session)


def record_change(
    session: Session,
    tables: SyncTables,
    *,
    entity: str,
    key: str,
    op: str,
    payload: Mapping[str, Any],
    node: SyncNode | None = None,
) -> int:
    """Record one change of this node in its outbox (caller's transaction); returns its seq."""
    first, _ = record_changes(session, tables, [NewChange(entity, key, op, payload)], node=node)
    return first


def record_changes(
    session: Session,
    tables: SyncTables,
    changes: Iterable[NewChange],
    *,
    node: SyncNode | None = None,
) -> tuple[int, int]:
    """Record many changes with one multi-row insert; returns the (first, last) seq, or (0, 0)."""
    rows = list(changes)
    if not rows:
        return 0, 0
    me = node_of(session, node)
    first = allocate_seqs(session, tables, UP, me.node_id, len(rows), me.region)
    insert_changes(session, tables, UP, me.node_id, first, rows)
    return first, first + len(rows) - 1


def record_changes_from_select(
    session: Session,
    tables: SyncTables,
    source: Select[Any],
    *,
    entity: str,
    op: str,
    order_by: Sequence[str] = ("key",),
    node: SyncNode | None = None,
) -> tuple[int, int]:
    """Record one change per row of ``source`` (columns ``key`` and ``payload``) set-based.

    Build ``payload`` with ``shared.sync.json_object(...)``. Returns the (first, last) seq.
    """
    me = node_of(session, node)
    src = source.subquery("src")
    # Lock the stream head first (a zero bump) so that no other writer takes seqs meanwhile.
    base = _bump_head(session, tables, UP, me.node_id, 0, me.region)
    seq = literal(base) + func.row_number().over(order_by=[src.c[c] for c in order_by])
    rows = select(
        literal(UP),
        literal(me.node_id),
        seq,
        literal(entity),
        src.c.key,
        literal(op),
        src.c.payload,
        literal(utcnow(), UtcDateTime()),
    )
    o = tables.outbox.c
    result = session.execute(
        insert(tables.outbox)
        .from_select(
            [o.direction, o.stream, o.seq, o.entity, o.entity_key, o.op, o.payload, o.created_at],
            rows,
        )
        .execution_options(preserve_rowcount=True)  # INSERT rowcounts are not kept otherwise
    )
    n = int(cast(CursorResult[Any], result).rowcount)
    if n < 0:
        raise RuntimeError("the database driver did not report how many changes were recorded")
    if n == 0:
        return 0, 0
    _bump_head(session, tables, UP, me.node_id, n, me.region)
    mark_recorded(session)
    return base + 1, base + n


def publish_down(
    session: Session,
    tables: SyncTables,
    *,
    stream: str,
    entity: str,
    key: str,
    op: str,
    payload: Mapping[str, Any],
) -> int:
    """Queue a message for a child (its region code as ``stream``, or BROADCAST); its seq."""
    region = None if stream == BROADCAST else stream
    first = allocate_seqs(session, tables, DOWN, stream, 1, region)
    insert_changes(session, tables, DOWN, stream, first, [NewChange(entity, key, op, payload)])
    return first


def record_relayed(
    session: Session,
    tables: SyncTables,
    stream: str,
    changes: Sequence[Change],
    region: str | None,
    now: datetime | None = None,
    changes_json: bytes | None = None,
) -> None:
    """Keep a run of a child's changes (contiguous seqs after the head) for this node's
    parent, with their original origin and seqs: one ``sync_relay`` row.

    ``changes_json``: the run's JSON as the child sent it (its digest checked over these
    bytes), kept as it is rather than encoded again."""
    if not changes:
        return
    now = now or utcnow()
    _ensure_head(session, tables, UP, stream, region)
    session.execute(
        update(tables.streams)
        .where(_is_stream(tables, UP, stream))
        .values(last_seq=changes[-1].seq, region=region, updated_at=now)
    )
    session.execute(
        insert(tables.relay).values(
            stream=stream,
            first_seq=changes[0].seq,
            last_seq=changes[-1].seq,
            changes=(changes_json or canonical_changes(changes)).decode(),
            created_at=now,
        )
    )
    mark_recorded(session)


def read_stream(
    session: Session,
    tables: SyncTables,
    direction: str,
    stream: str,
    after: int,
    limit: int,
    origin: str | None = None,
) -> list[Change]:
    """The next ``limit`` changes of a stream after seq ``after``, in seq order.

    Up streams are named by their origin; a down stream's changes carry ``origin`` (the
    sending node). A relayed stream's changes come from its ``sync_relay`` runs.
    """
    changes = _outbox_changes(session, tables, direction, stream, after, limit, origin)
    if direction == UP:
        changes = _with_relayed(
            changes, _relay_runs(session, tables, stream, after, limit), after, limit
        )
    return changes


def _outbox_changes(
    session: Session,
    tables: SyncTables,
    direction: str,
    stream: str,
    after: int,
    limit: int,
    origin: str | None = None,
) -> list[Change]:
    """The next ``limit`` ``sync_outbox`` rows of a stream after seq ``after`` as changes."""
    rows = _outbox_rows(session, tables, direction, stream, after, limit)
    who = origin or stream
    loads = orjson.loads
    return [Change(who, int(seq), e, k, op, loads(p)) for seq, e, k, op, p in rows]


def _outbox_rows(
    session: Session, tables: SyncTables, direction: str, stream: str, after: int, limit: int
) -> Sequence[Any]:
    """(seq, entity, key, op, payload JSON text) of the next ``limit`` rows after ``after``."""
    o = tables.outbox.c
    # The payload as text, parsed by the caller with orjson: a third faster than the
    # driver's JSON loading per row, for a batch of thousands.
    return session.execute(
        select(o.seq, o.entity, o.entity_key, o.op, o.payload.cast(Text))
        .where((o.direction == direction) & (o.stream == stream) & (o.seq > after))
        .order_by(o.seq)
        .limit(limit)
    ).all()


def _own_wire_items(
    session: Session, tables: SyncTables, stream: str, after: int, limit: int
) -> list[dict[str, Any]]:
    """The stream's own next changes as their wire objects, without ``Change`` objects in
    between (a county's push reads 10,000 a batch: a third less of its CPU)."""
    loads = orjson.loads
    return [
        wire_change(stream, int(seq), e, k, op, loads(p))
        for seq, e, k, op, p in _outbox_rows(session, tables, UP, stream, after, limit)
    ]


def _with_relayed(
    changes: list[Change], runs: list[tuple[int, int, str]], after: int, limit: int
) -> list[Change]:
    """``changes`` merged with the changes after ``after`` of relayed runs, in seq order."""
    relayed = [
        Change(d["origin"], d["seq"], d["entity"], d["key"], d["op"], d["payload"])
        for _first, _last, text in runs
        for d in orjson.loads(text)
        if d["seq"] > after
    ]
    return sorted(changes + relayed, key=lambda c: c.seq)[:limit] if relayed else changes


def _relay_runs(
    session: Session, tables: SyncTables, stream: str, after: int, limit: int
) -> list[tuple[int, int, str]]:
    """The relayed runs (first_seq, last_seq, changes) of a stream holding seqs after
    ``after`` up to ``after + limit``, in seq order."""
    r = tables.relay.c
    rows = session.execute(
        select(r.first_seq, r.last_seq, r.changes)
        .where((r.stream == stream) & (r.last_seq > after) & (r.first_seq <= after + limit))
        .order_by(r.first_seq)
    )
    return [(int(first), int(last), text) for first, last, text in rows]


def read_wire(
    session: Session,
    tables: SyncTables,
    stream: str,
    after: int,
    limit: int,
    max_bytes: int = MAX_BATCH_BYTES,
) -> tuple[bytes, int, int] | None:
    """The next at most ``limit`` changes of an up stream after ``after`` as canonical JSON,
    with their first and last seq (None: nothing after ``after``); beyond the first change
    or run, no more than ``max_bytes`` of it (a parent refuses a body above its limit).

    Whole relayed runs that follow ``after`` are joined as stored, without parsing them;
    anything else (this node's own changes, a run the parent acknowledged part of) is read
    change by change.
    """
    runs = _relay_runs(session, tables, stream, after, limit)
    parts: list[bytes] = []
    last = after
    size = 0
    for first, run_last, text in runs:
        if first != last + 1 or run_last - after > limit:
            break
        part = text.encode()
        if parts and size + len(part) > max_bytes:
            break
        parts.append(part)
        size += len(part)
        last = run_last
    if parts:
        # Canonical JSON arrays of changes joined are the canonical JSON of the whole list.
        joined = parts[0] if len(parts) == 1 else b"[" + b",".join(p[1:-1] for p in parts) + b"]"
        return joined, after + 1, last
    if runs:
        outbox = _outbox_changes(session, tables, UP, stream, after, limit)
        items = [c.as_wire() for c in _with_relayed(outbox, runs, after, limit)]
    else:
        items = _own_wire_items(session, tables, stream, after, limit)
    if not items:
        return None
    encoded = canonical_json(items)
    while len(encoded) > max_bytes and len(items) > 1:
        items = items[: len(items) // 2]
        encoded = canonical_json(items)
    return encoded, items[0]["seq"], items[-1]["seq"]


def prune(session: Session, tables: SyncTables, *, older_than: datetime) -> dict[str, int]:
    """Delete what is no longer needed and older than ``older_than``; counts per table.

    Outbox rows go once their receiver acknowledged them (the broadcast stream stays: a
    child that joins later pulls it from the start); accepted batch ids go once they are
    far older than the clock-skew window, since a batch that old is refused anyway.
    """
    c = tables.cursors.c
    o = tables.outbox.c
    r = tables.relay.c
    deleted = {"outbox": 0, "relay": 0, "batches": 0}
    acked = session.execute(
        select(c.kind, c.stream, func.min(c.acked_seq))
        .where(c.kind.in_([PUSH, SERVE]) & (c.stream != BROADCAST))
        .group_by(c.kind, c.stream)
    ).all()
    for kind, stream, seq in acked:
        result = session.execute(
            delete(tables.outbox).where(
                (o.direction == (UP if kind == PUSH else DOWN))
                & (o.stream == stream)
                & (o.seq <= seq)
                & (o.created_at < older_than)
            )
        )
        deleted["outbox"] += int(cast(CursorResult[Any], result).rowcount)
        if kind == PUSH:
            result = session.execute(
                delete(tables.relay).where(
                    (r.stream == stream) & (r.last_seq <= seq) & (r.created_at < older_than)
                )
            )
            deleted["relay"] += int(cast(CursorResult[Any], result).rowcount)
    result = session.execute(
        delete(tables.batches).where(tables.batches.c.received_at < older_than)
    )
    deleted["batches"] = int(cast(CursorResult[Any], result).rowcount)
    return deleted
