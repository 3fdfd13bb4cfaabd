"""Receiving: validate a whole batch, then apply each (origin, seq) once and in order."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from itertools import groupby
from typing import Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.dbtypes import utcnow
from shared.regions import contains, is_valid_code, related
from shared.sync.dialect import dialect_of
from shared.sync.errors import AckAhead, MalformedBatch, OriginConflict, OutOfScope, ReplayedBatch
from shared.sync.links import RECEIVE, SERVE, note_success
from shared.sync.node import SyncNode, applying_received
from shared.sync.outbox import (
    DOWN,
    UP,
    allocate_seqs,
    insert_changes,
    read_stream,
    record_relayed,
)
from shared.sync.tables import SyncTables
from shared.sync.wire import (
    BROADCAST,
    DEFAULT_MAX_SKEW_S,
    MAX_BATCH_CHANGES,
    Batch,
    Change,
    PullRequest,
    PullResponse,
    build_batch,
    change_kind,
    down_batch_id,
    down_batch_prefix,
    parse_batch,
    parse_pull,
    verify_batch_mac,
    verify_digest,
    verify_pull_mac,
)

__all__ = [
    "Applier",
    "ReceiveResult",
    "apply_pulled",
    "receive_batch",
    "serve_pull",
]

MAX_ERRORS = 100


@dataclass(frozen=True)
class Applier:
    """How one entity's changes are checked and applied on the receiving node.

    ``apply`` gets consecutive changes of the entity in seq order (the same key may occur
    several times: later wins) and should write them set-based. ``region_of`` names the
    region a payload describes (None only for downward messages not bound to a region,
    such as catalog releases). ``schema`` (a pydantic model, or a TypedDict where thousands
    of payloads a batch must be checked quickly) validates each payload before anything
    applies.
    """

    apply: Callable[[Session, list[Change]], None]
    region_of: Callable[[Mapping[str, Any]], str | None]
    schema: type | None = None
    ops: frozenset[str] | None = None


Appliers = Mapping[str, Applier]
RelayDown = Callable[[Change], str | None]


@dataclass
class ReceiveResult:
    """What a receive did: acks per origin and how many changes were applied, skipped, held."""

    batch_id: str
    acks: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    duplicates: int = 0
    held: int = 0
    retransmission: bool = False

    def as_wire(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "acks": self.acks,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "held": self.held,
            "retransmission": self.retransmission,
        }


# --- validation (reads nothing, writes nothing) ------------------------------------------------


def _op_errors(row: int, applier: Applier, change: Change) -> list[dict[str, Any]]:
    if applier.ops is not None and change.op not in applier.ops:
        allowed = ", ".join(sorted(applier.ops))
        return [
            {
                "row": row,
                "field": "op",
                "message": f"{change.entity} 不支持操作 {change.op} (allowed: {allowed})",
            }
        ]
    return []


@cache
def _list_of(schema: type) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[schema])  # type: ignore[valid-type]


def _payload_errors(batch: Batch, appliers: Appliers) -> dict[int, list[dict[str, Any]]]:
    """Schema errors of every payload by row: one validation call per entity."""
    rows: dict[str, list[int]] = {}
    for row, change in enumerate(batch.changes):
        applier = appliers.get(change.entity)
        if applier is not None and applier.schema is not None:
            rows.setdefault(change.entity, []).append(row)
    errors: dict[int, list[dict[str, Any]]] = {}
    for entity, numbers in rows.items():
        schema = appliers[entity].schema
        assert schema is not None
        try:
            _list_of(schema).validate_python([batch.changes[r].payload for r in numbers])
        except PydanticValidationError as exc:
            for e in exc.errors():
                index, *loc = e.get("loc", ()) or (0,)
                row = numbers[int(index)]
                found = errors.setdefault(row, [])
                if len(found) < 5:
                    found.append(
                        {
                            "row": row,
                            "field": "payload." + ".".join(str(p) for p in loc),
                            "message": e.get("msg", ""),
                        }
                    )
    return errors


def _region(applier: Applier, change: Change) -> tuple[str | None, str | None]:
    """(region, problem) of a change as its applier reads it."""
    try:
        region = applier.region_of(change.payload)
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"无法读取区划 (cannot read the region): {exc!r}"
    if region is not None and not is_valid_code(region):
        return None, f"区划代码无效 (invalid region code): {region!r}"
    return region, None


def _region_error(
    region: str | None,
    *,
    direction: str,
    scope: str,
    origin: str,
    origin_region: str | None,
) -> tuple[bool, str] | None:
    """Why a change about ``region`` (a valid code, or None) may not be applied here:
    (out of scope, message), or None if it may."""
    if direction == DOWN:
        # From above: about this node's region, a region inside it, or one above it.
        if region is not None and not related(scope, region):
            return True, f"区划 {region} 与本节点 {scope} 无隶属关系 (unrelated region)"
        return None
    if region is None:
        return False, "上行数据须指明区划 (region required)"
    if not contains(scope, region):
        return True, (
            f"区划 {region} 不在下级节点区划 {scope} 内 "
            f"(region outside the sending node's region {scope})"
        )
    if origin_region is not None and not contains(origin_region, region):
        return True, (
            f"区划 {region} 不在来源 {origin} 的区划 {origin_region} 内 "
            "(region outside its origin's region)"
        )
    return None


def _origin_errors(batch: Batch, scope: str, node: SyncNode) -> list[dict[str, Any]]:
    """A sender speaks for itself (its own region) and relays only nodes below it."""
    errors = []
    for origin, declared in batch.origins.items():
        if origin == node.node_id:
            raise OriginConflict(f"来源 {origin} 是接收节点自身 (origin is the receiving node)")
        if origin == batch.sender:
            ok = declared == scope
            why = f"发送节点自身的区划应为 {scope} (the sender's own origin must be {scope})"
        else:
            # Nodes serve 6-digit regions; one below a county does not exist, so a county
            # can only ever send its own origin.
            ok = len(declared) == 6 and declared != scope and contains(scope, declared)
            why = (
                f"转发的来源区划 {declared} 须为 {scope} 以下的节点区划 "
                f"(a relayed origin must be a node region below {scope})"
            )
        if not ok:
            errors.append({"field": f"origins.{origin}", "message": why})
    return errors


def _plainly_valid(batch: Batch, appliers: Appliers, *, direction: str, scope: str) -> bool:
    """Whether the per-change checks of ``_validate`` would find nothing, decided once per
    distinct value instead of once per row (a batch of 10,000 changes names a few origins,
    entities and ops and a few hundred regions). False means only: look row by row."""
    changes = batch.changes
    if len({(c.origin, c.seq) for c in changes}) != len(changes):
        return False  # an origin and seq twice: the rows tell whether the two differ
    origins = batch.origins
    for origin, entity, op in set(map(change_kind, changes)):
        applier = appliers.get(entity)
        if applier is None or origin not in origins:
            return False
        if applier.ops is not None and op not in applier.ops:
            return False
        if direction == DOWN and origin != batch.sender:
            return False
    try:
        regions = {(c.origin, appliers[c.entity].region_of(c.payload)) for c in changes}
    except (KeyError, TypeError, ValueError):
        return False
    return not any(
        (region is not None and not is_valid_code(region))
        or _region_error(
            region,
            direction=direction,
            scope=scope,
            origin=origin,
            origin_region=origins[origin],
        )
        for origin, region in regions
    )


def _validate(
    batch: Batch,
    appliers: Appliers,
    *,
    direction: str,
    scope: str,
    node: SyncNode,
) -> None:
    """Raise (403 or 422, naming rows) unless every change may be applied here."""
    malformed: list[dict[str, Any]] = []
    scoped: list[dict[str, Any]] = []
    if batch.service != node.service:
        malformed.append(
            {
                "field": "service",
                "message": f"本接口只接收 {node.service} 服务的批次 "
                f"(wrong service {batch.service})",
            }
        )
    if direction == UP:
        scoped += _origin_errors(batch, scope, node)
    unused = sorted(set(batch.origins) - {c.origin for c in batch.changes})
    malformed += [
        {"field": f"origins.{o}", "message": "声明的来源没有任何变更 (origin without changes)"}
        for o in unused
    ]
    schema_errors = _payload_errors(batch, appliers)
    if not (malformed or scoped or schema_errors) and _plainly_valid(
        batch, appliers, direction=direction, scope=scope
    ):
        return
    seen: dict[tuple[str, int], Change] = {}
    for row, change in enumerate(batch.changes):
        if len(malformed) + len(scoped) >= MAX_ERRORS:
            break
        previous = seen.setdefault((change.origin, change.seq), change)
        if previous is not change and previous != change:
            malformed.append(
                {
                    "row": row,
                    "field": "seq",
                    "message": f"同一批次中 {change.origin}#{change.seq} 出现两次且内容不同 "
                    "(same origin and seq twice with different content)",
                }
            )
        origin_region = batch.origins.get(change.origin)
        if origin_region is None:
            malformed.append(
                {
                    "row": row,
                    "field": "origin",
                    "message": f"来源 {change.origin} 未在 origins 中声明 (origin not declared)",
                }
            )
        if direction == DOWN and change.origin != batch.sender:
            malformed.append(
                {
                    "row": row,
                    "field": "origin",
                    "message": "下行消息须来自上级节点本身 (must originate at the parent)",
                }
            )
        applier = appliers.get(change.entity)
        if applier is None:
            malformed.append(
                {
                    "row": row,
                    "field": "entity",
                    "message": f"本服务不接收实体 {change.entity} (unknown entity)",
                }
            )
            continue
        malformed += _op_errors(row, applier, change) + schema_errors.get(row, [])
        region, problem = _region(applier, change)
        if problem:
            malformed.append({"row": row, "field": "payload", "message": problem})
            continue
        found = _region_error(
            region,
            direction=direction,
            scope=scope,
            origin=change.origin,
            origin_region=origin_region,
        )
        if found is not None:
            out_of_scope, message = found
            (scoped if out_of_scope else malformed).append(
                {"row": row, "field": "payload", "message": message}
            )
    if scoped:
        raise OutOfScope(
            f"批次 {batch.batch_id} 含 {len(scoped)} 处超出区划范围的数据，整批拒收 "
            "(batch rejected whole: changes outside the permitted region)",
            errors=(scoped + malformed)[:MAX_ERRORS],
        )
    if malformed:
        raise MalformedBatch(
            f"批次 {batch.batch_id} 含 {len(malformed)} 处无效数据，整批拒收 "
            "(batch rejected whole: invalid changes)",
            errors=malformed[:MAX_ERRORS],
        )


# --- apply ------------------------------------------------------------------------------------


def _lock_inbox(
    session: Session,
    t: SyncTables,
    direction: str,
    streams: Mapping[str, str | None],
    sender: str,
    now: datetime,
) -> dict[str, int]:
    """Applied seq per stream, with the inbox rows locked; binds each origin to its region."""
    if not streams:
        return {}  # an empty batch touches no stream (and an empty executemany is no INSERT)
    i = t.inbox
    session.execute(
        dialect_of(session).insert_ignore(i, ["direction", "stream"]),
        [
            {
                "direction": direction,
                "stream": stream,
                "applied_seq": 0,
                "region": region,
                "last_sender": sender,
                "updated_at": now,
            }
            for stream, region in sorted(streams.items())
        ],
    )
    rows = session.execute(
        select(i.c.stream, i.c.applied_seq, i.c.region)
        .where((i.c.direction == direction) & i.c.stream.in_(list(streams)))
        .order_by(i.c.stream)
        .with_for_update()
    ).all()
    conflicts = [
        {
            "field": f"origins.{r.stream}",
            "message": f"来源 {r.stream} 已登记为区划 {r.region}，本批次声明为 {streams[r.stream]}",
        }
        for r in rows
        if streams[r.stream] is not None and r.region is not None and r.region != streams[r.stream]
    ]
    if conflicts:
        raise OriginConflict(
            "来源节点编号已被其他区划的节点使用，整批拒收；请检查节点编号是否重复 "
            "(origin id already bound to another region: duplicate node id?)",
            errors=conflicts,
        )
    return {r.stream: int(r.applied_seq) for r in rows}


@dataclass
class _StreamOutcome:
    applied_seq: int
    applied: int = 0
    duplicates: int = 0
    held: int = 0


def _held_changes(
    session: Session, t: SyncTables, direction: str, stream: str, after: int
) -> list[Change]:
    h = t.held.c
    rows = session.execute(
        select(h.origin, h.seq, h.entity, h.entity_key, h.op, h.payload)
        .where((h.direction == direction) & (h.stream == stream) & (h.seq > after))
        .order_by(h.seq)
    ).all()
    return [Change(r.origin, int(r.seq), r.entity, r.entity_key, r.op, r.payload) for r in rows]


def _apply_run(session: Session, run: Sequence[Change], appliers: Appliers) -> None:
    # Consecutive changes of one entity go to its applier together (set-based); order across
    # entities is kept, since a later change may depend on an earlier one.
    for entity, group in groupby(run, key=lambda c: c.entity):
        appliers[entity].apply(session, list(group))


def _relay_down(
    session: Session, t: SyncTables, run: Sequence[Change], relay_down: RelayDown
) -> None:
    targets: dict[str, list[Change]] = {}
    for change in run:
        target = relay_down(change)
        if target is not None:
            targets.setdefault(target, []).append(change)
    for target, changes in sorted(targets.items()):
        region = None if target == BROADCAST else target
        first = allocate_seqs(session, t, DOWN, target, len(changes), region)
        insert_changes(session, t, DOWN, target, first, changes)


def _same_changes(a: Sequence[Change], b: Sequence[Change]) -> bool:
    """Whether ``a`` holds the very objects of ``b``, in the same order."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _apply_stream(
    session: Session,
    t: SyncTables,
    *,
    direction: str,
    stream: str,
    incoming: Sequence[Change],
    applied_seq: int,
    appliers: Appliers,
    sender: str,
    now: datetime,
    relay_region: str | None = None,
    relay_up: bool = False,
    relay_down: RelayDown | None = None,
    as_sent: tuple[Sequence[Change], bytes] | None = None,
) -> _StreamOutcome:
    """Apply the contiguous run after ``applied_seq`` (incoming + held), hold the rest.

    ``as_sent``: the batch's changes in the order they came and the bytes the sender
    digested them in, if known: a run that is exactly those changes is relayed in them."""
    fresh = {c.seq: c for c in incoming if c.seq > applied_seq}
    out = _StreamOutcome(applied_seq, duplicates=len(incoming) - len(fresh))
    if not fresh:
        return out
    held: dict[int, Change] = {}
    if applied_seq + 1 in fresh:
        held = {c.seq: c for c in _held_changes(session, t, direction, stream, applied_seq)}
    run: list[Change] = []
    nxt = applied_seq + 1
    while nxt in fresh or nxt in held:
        run.append(fresh.get(nxt) or held[nxt])
        nxt += 1
    out.applied_seq = nxt - 1
    out.applied = len(run)
    to_hold = [c for s, c in sorted(fresh.items()) if s > out.applied_seq and s not in held]
    out.held = len(to_hold)
    if run:
        _apply_run(session, run, appliers)
        if any(s <= out.applied_seq for s in held):
            h = t.held.c
            session.execute(
                delete(t.held).where(
                    (h.direction == direction) & (h.stream == stream) & (h.seq <= out.applied_seq)
                )
            )
        i = t.inbox.c
        session.execute(
            update(t.inbox)
            .where((i.direction == direction) & (i.stream == stream))
            .values(applied_seq=out.applied_seq, last_sender=sender, updated_at=now)
        )
        if relay_up:
            # A run that is the whole batch, as it came, is kept in the bytes it came in.
            run_json = None
            if as_sent is not None and _same_changes(run, as_sent[0]):
                run_json = as_sent[1]
            record_relayed(session, t, stream, run, relay_region, now, run_json)
        if relay_down is not None:
            _relay_down(session, t, run, relay_down)
    if to_hold:
        session.execute(
            dialect_of(session).insert_ignore(t.held, ["direction", "stream", "seq"]),
            [
                {
                    "direction": direction,
                    "stream": stream,
                    "seq": c.seq,
                    "origin": c.origin,
                    "entity": c.entity,
                    "entity_key": c.key,
                    "op": c.op,
                    "payload": c.payload,
                    "sender": sender,
                    "received_at": now,
                }
                for c in to_hold
            ],
        )
    return out


def _check_replay(session: Session, t: SyncTables, batch: Batch) -> bool:
    """True if this exact batch was accepted before; 409 if its id came with other content."""
    b = t.batches.c
    seen = session.execute(select(b.digest).where(b.batch_id == batch.batch_id)).scalar()
    if seen is None:
        return False
    if seen != batch.digest:
        raise ReplayedBatch(
            f"批次编号 {batch.batch_id} 已接收过且内容不同，整批拒收 "
            "(batch id already received with a different digest)"
        )
    return True


def receive_batch(
    session: Session,
    tables: SyncTables,
    batch: Batch | Mapping[str, Any] | bytes,
    *,
    node: SyncNode,
    credential_secret: str | Sequence[str] | None,
    allowed_region: str,
    appliers: Appliers,
    relay: bool,
    now: datetime | None = None,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> ReceiveResult:
    """Validate a child's batch whole, then apply it exactly once in order; returns the acks.

    ``credential_secret`` is the sending node's secret (several while rotating); None only
    when the caller (the gateway) has verified the MAC already. ``allowed_region`` is the
    sending node's region: every change must describe it or a region inside it. With
    ``relay`` the applied changes are re-recorded with their original origin and seq for
    this node's parent. Raises a ProblemError (nothing applied) if anything is wrong.
    """
    now = now or utcnow()
    if not isinstance(batch, Batch):
        batch = parse_batch(batch)
    if credential_secret is not None:
        verify_batch_mac(batch, credential_secret, now=now, max_skew_s=max_skew_s)
    digested_json = verify_digest(batch)
    _validate(batch, appliers, direction=UP, scope=allowed_region, node=node)
    dialect_of(session).claim_write_lock(session, tables.inbox)
    result = ReceiveResult(batch.batch_id, retransmission=_check_replay(session, tables, batch))
    applied = _lock_inbox(session, tables, UP, batch.origins, batch.sender, now)
    by_origin: dict[str, list[Change]] = {o: [] for o in batch.origins}
    for change in sorted(batch.changes, key=lambda c: (c.origin, c.seq)):
        by_origin[change.origin].append(change)
    with applying_received(session):
        for origin, changes in sorted(by_origin.items()):
            out = _apply_stream(
                session,
                tables,
                direction=UP,
                stream=origin,
                incoming=changes,
                applied_seq=applied[origin],
                appliers=appliers,
                sender=batch.sender,
                now=now,
                relay_region=batch.origins[origin],
                relay_up=relay,
                as_sent=None if digested_json is None else (batch.changes, digested_json),
            )
            result.acks[origin] = out.applied_seq
            result.applied += out.applied
            result.duplicates += out.duplicates
            result.held += out.held
    if not result.retransmission:
        session.execute(
            dialect_of(session).insert_ignore(tables.batches, ["batch_id"]),
            [
                {
                    "batch_id": batch.batch_id,
                    "sender": batch.sender,
                    "digest": batch.digest,
                    "changes": len(batch.changes),
                    "received_at": now,
                }
            ],
        )
    note_success(session, tables, RECEIVE, batch.sender, "", now=now)
    return result


def apply_pulled(
    session: Session,
    tables: SyncTables,
    pull: PullRequest,
    response: PullResponse,
    *,
    node: SyncNode,
    credential_secret: str | Sequence[str] | None,
    appliers: Appliers,
    relay_down: RelayDown | None = None,
    now: datetime | None = None,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> tuple[int, int]:
    """Apply the parent's answer to ``pull`` exactly once; returns (applied seq, applied count).

    ``relay_down`` names the child stream a change is passed on to (None: keep it here).
    """
    now = now or utcnow()
    batch = response.batch
    if credential_secret is not None:
        verify_batch_mac(batch, credential_secret, now=now, max_skew_s=max_skew_s)
    verify_digest(batch)
    # The id binds the answer to the stream and position asked for, so that a captured
    # answer cannot be passed off for another stream.
    if not batch.batch_id.startswith(down_batch_prefix(pull.stream, pull.after)):
        raise MalformedBatch(
            f"下行批次 {batch.batch_id} 不是对本次拉取 ({pull.stream} 自 {pull.after}) 的应答 "
            "(answer does not belong to this pull)"
        )
    _validate(batch, appliers, direction=DOWN, scope=node.region, node=node)
    dialect_of(session).claim_write_lock(session, tables.inbox)
    applied = _lock_inbox(session, tables, DOWN, {pull.stream: None}, batch.sender, now)
    out = _apply_stream(
        session,
        tables,
        direction=DOWN,
        stream=pull.stream,
        incoming=sorted(batch.changes, key=lambda c: c.seq),
        applied_seq=applied[pull.stream],
        appliers=appliers,
        sender=batch.sender,
        now=now,
        relay_down=relay_down,
    )
    return out.applied_seq, out.applied


def serve_pull(
    session: Session,
    tables: SyncTables,
    pull: PullRequest | Mapping[str, Any] | bytes,
    *,
    node: SyncNode,
    credential_secret: str | Sequence[str] | None,
    child_region: str,
    limit: int = MAX_BATCH_CHANGES,
    now: datetime | None = None,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> PullResponse:
    """Answer a child's pull: record its ack (``after``) and return the next messages."""
    now = now or utcnow()
    if not isinstance(pull, PullRequest):
        pull = parse_pull(pull)
    secret = None
    if credential_secret is not None:
        secret = verify_pull_mac(pull, credential_secret, now=now, max_skew_s=max_skew_s)
    if pull.service != node.service:
        raise MalformedBatch(f"本接口只服务 {node.service} (wrong service {pull.service})")
    if pull.stream not in (child_region, BROADCAST):
        raise OutOfScope(
            f"节点 {pull.node} 只能拉取自身 ({child_region}) 或公共数据流 "
            f"(may pull only its own stream or {BROADCAST!r}, not {pull.stream})"
        )
    s = tables.streams.c
    head = session.execute(
        select(s.last_seq).where((s.direction == DOWN) & (s.stream == pull.stream))
    ).scalar()
    head = int(head or 0)
    if pull.after > head:
        raise AckAhead(
            f"节点 {pull.node} 声称已应用到 {pull.after}，本节点该数据流只到 {head} "
            "(child acknowledges beyond this stream's head: was this node restored?)"
        )
    note_success(
        session,
        tables,
        SERVE,
        child_region,
        pull.stream,
        acked_seq=pull.after,
        peer_head=head,
        now=now,
    )
    changes = read_stream(
        session, tables, DOWN, pull.stream, pull.after, min(pull.limit, limit), node.node_id
    )
    batch = build_batch(
        sender=node.node_id,
        service=node.service,
        # An empty answer declares no origin: the child refuses an origin without changes.
        origins={node.node_id: node.region} if changes else {},
        changes=changes,
        secret=secret,
        batch_id=down_batch_id(pull.stream, pull.after),
        now=now,
    )
    return PullResponse(head=head, batch=batch)
