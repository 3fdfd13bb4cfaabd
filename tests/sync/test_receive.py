"""Receiving batches: exactly once, in order, relayed with the original origin, or not at all."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from msgspec.structs import replace as struct_replace
from sqlalchemy import select

from shared.dbtypes import utcnow
from shared.errors import ProblemError
from shared.sync import (
    Batch,
    Change,
    ReceiveResult,
    build_batch,
    receive_batch,
    sync_status,
)
from shared.sync.links import PUSH, note_success
from shared.sync.outbox import prune, read_stream, read_wire
from shared.sync.receiver import apply_pulled
from shared.sync.wire import (
    PullResponse,
    build_pull,
    canonical_changes,
    down_batch_id,
    encode_signed,
    parse_batch,
    parse_batch_header,
)
from tests.sync.tiny import SERVICE, TinyNode, outbox_batch

SECRET = "county-secret-0123456789abcdef0123"


def receive(
    parent: TinyNode,
    batch: Batch | dict[str, Any],
    *,
    region: str = "360121",
    secret: str | tuple[str, ...] | None = SECRET,
    relay: bool = False,
    **kw: Any,
) -> ReceiveResult:
    with parent.db.session() as session:
        return receive_batch(
            session,
            parent.tables,
            batch,
            node=parent.node,
            credential_secret=secret,
            allowed_region=region,
            appliers=parent.appliers,
            relay=relay,
            **kw,
        )


def subset(batch: Batch, seqs: list[int], secret: str = SECRET) -> Batch:
    """A batch carrying some of the changes of ``batch`` in the given order."""
    by_seq = {c.seq: c for c in batch.changes}
    return build_batch(
        sender=batch.sender,
        service=batch.service,
        origins=batch.origins,
        changes=[by_seq[s] for s in seqs],
        secret=secret,
    )


def test_each_change_applies_once_and_in_order_whatever_the_delivery(
    city: TinyNode, county: TinyNode
) -> None:
    # Ten changes, several of them edits of the same value: the last one must win.
    entries = [(("360121", f"v{i % 4}"), float(i)) for i in range(1, 11)]
    for key, value in entries:
        county.enter({key: value})
    full = outbox_batch(county, SECRET)
    assert [c.seq for c in full.changes] == list(range(1, 11))

    r = receive(city, subset(full, [1, 2, 3, 4]))
    assert (r.acks, r.applied, r.duplicates, r.held) == ({"node-360121": 4}, 4, 0, 0)
    # Duplicated and overlapping delivery: 3 and 4 are skipped.
    r = receive(city, subset(full, [3, 4, 5, 6]))
    assert (r.acks["node-360121"], r.applied, r.duplicates) == (6, 2, 2)
    # A gap: 9 and 10 arrive before 7 and 8, in reverse order; they wait.
    r = receive(city, subset(full, [10, 9]))
    assert (r.acks["node-360121"], r.applied, r.held) == (6, 0, 2)
    assert city.count(city.tables.held) == 2
    # The gap is filled (out of order again): 7..10 apply in seq order, the holding area empties.
    r = receive(city, subset(full, [8, 7, 9]))
    assert (r.acks["node-360121"], r.applied) == (10, 4)
    assert city.count(city.tables.held) == 0
    # Everything once more, shuffled: nothing new.
    seqs = list(range(1, 11))
    random.Random(7).shuffle(seqs)
    r = receive(city, subset(full, seqs))
    assert (r.acks["node-360121"], r.applied, r.duplicates) == (10, 0, 10)

    assert city.applied_changes() == [("node-360121", s) for s in range(1, 11)]
    assert (
        city.snapshot()
        == county.snapshot()
        == {
            ("360121", "v0"): 8.0,
            ("360121", "v1"): 9.0,
            ("360121", "v2"): 10.0,
            ("360121", "v3"): 7.0,
        }
    )


def test_the_same_batch_again_is_a_retransmission_not_a_double(
    city: TinyNode, county: TinyNode
) -> None:
    county.enter({("360121", "a"): 1.0, ("360121", "b"): 2.0})
    batch = outbox_batch(county, SECRET)
    first = receive(city, batch)
    again = receive(city, batch)
    assert (first.applied, first.retransmission) == (2, False)
    assert (again.applied, again.duplicates, again.retransmission) == (0, 2, True)
    assert again.acks == {"node-360121": 2}
    assert len(city.applied_changes()) == 2


def test_a_duplicate_within_one_batch_applies_once(city: TinyNode, county: TinyNode) -> None:
    county.enter({("360121", "a"): 1.0, ("360121", "b"): 2.0})
    r = receive(city, subset(outbox_batch(county, SECRET), [1, 2, 2, 1]))
    assert (r.applied, r.duplicates) == (2, 2)
    assert city.applied_changes() == [("node-360121", 1), ("node-360121", 2)]


def test_relay_keeps_the_origin_and_its_seqs_so_the_province_dedupes_any_path(
    province: TinyNode, city: TinyNode, county: TinyNode
) -> None:
    city.enter({("360100", "own"): 5.0})
    county.enter({("360121", "a"): 1.0, ("360121", "b"): 2.0})
    county.enter({("360121", "a"): 3.0})
    receive(city, outbox_batch(county, SECRET), relay=True)

    # The city now sends two streams up: its own and the county's, with the county's seqs.
    relayed = outbox_batch(city, "city-secret", origin="node-360121", region="360121")
    assert [(c.origin, c.seq) for c in relayed.changes] == [
        ("node-360121", 1),
        ("node-360121", 2),
        ("node-360121", 3),
    ]
    assert relayed.changes == outbox_batch(county, SECRET).changes
    own = outbox_batch(city, "city-secret")
    assert [(c.origin, c.seq) for c in own.changes] == [("node-360100", 1)]

    r = receive(province, relayed, region="360100", secret="city-secret")
    assert r.acks == {"node-360121": 3}
    receive(province, own, region="360100", secret="city-secret")
    # The same county changes reaching the province by another path are duplicates.
    direct = receive(province, outbox_batch(county, SECRET), region="360121")
    assert (direct.applied, direct.duplicates) == (0, 3)

    assert sorted(province.applied_changes()) == [
        ("node-360100", 1),
        ("node-360121", 1),
        ("node-360121", 2),
        ("node-360121", 3),
    ]
    assert province.snapshot() == {
        ("360100", "own"): 5.0,
        ("360121", "a"): 3.0,
        ("360121", "b"): 2.0,
    }
    # The city keeps the county's run as one relay row beside its own change.
    assert (city.count(city.tables.relay), city.count(city.tables.outbox)) == (1, 1)
    # Nothing is relayed where relay is off.
    assert province.count(province.tables.outbox) == 0
    assert province.count(province.tables.relay) == 0


def test_relayed_runs_go_up_as_stored_from_any_acknowledged_position(
    province: TinyNode, city: TinyNode, county: TinyNode
) -> None:
    for i in range(1, 13):  # seqs 1..12, one change each, three keys edited in turn
        county.enter({("360121", f"k{i % 3}"): float(i)})
    sent = outbox_batch(county, SECRET).changes
    for after in (0, 5, 10):  # the city applies three batches: runs 1-5, 6-10, 11-12
        r = receive(city, outbox_batch(county, SECRET, after=after, limit=5), relay=True)
        assert r.applied == min(5, 12 - after)
    stream = "node-360121"

    def wire(after: int, limit: int) -> tuple[bytes, int, int] | None:
        with city.db.session() as session:
            return read_wire(session, city.tables, stream, after, limit)

    # Whole runs are joined as stored; the bytes are the canonical JSON of the changes.
    assert wire(0, 10) == (canonical_changes(sent[:10]), 1, 10)
    assert wire(0, 7) == (canonical_changes(sent[:5]), 1, 5)  # never more than the limit
    # Acknowledged part-way into a run: read change by change from there.
    assert wire(3, 4) == (canonical_changes(sent[3:7]), 4, 7)
    assert wire(12, 5) is None
    # A byte budget stops before the run that would exceed it (the first always goes), and
    # the changes read one by one are halved until they fit.
    with city.db.session() as session:
        five = len(canonical_changes(sent[:5]))
        assert read_wire(session, city.tables, stream, 0, 12, max_bytes=five + 10) == (
            canonical_changes(sent[:5]),
            1,
            5,
        )
        one_run = read_wire(session, city.tables, stream, 0, 12, max_bytes=1)
        assert one_run is not None and one_run[1:] == (1, 5)
    with county.db.session() as session:
        # The county's own changes: the canonical JSON of what it records, from any position.
        assert read_wire(session, county.tables, stream, 0, 12) == (canonical_changes(sent), 1, 12)
        assert read_wire(session, county.tables, stream, 9, 2) == (
            canonical_changes(sent[9:11]),
            10,
            11,
        )
        budget = len(canonical_changes(sent[:4])) + 5
        assert read_wire(session, county.tables, stream, 0, 12, max_bytes=budget) == (
            canonical_changes(sent[:3]),
            1,
            3,
        )
    with city.db.session() as session:
        assert read_stream(session, city.tables, "up", stream, 3, 100) == sent[3:]

    # The province takes the stored bytes as a signed batch, and the rest from seq 8 on.
    for after, limit in ((0, 7), (5, 2), (7, 100)):
        found = wire(after, limit)
        assert found is not None
        body, header = encode_signed(
            sender="node-360100",
            service=SERVICE,
            origins={stream: "360121"},
            changes_json=found[0],
            secret="city-secret",
        )
        assert parse_batch_header(header).digest == parse_batch(body).digest
        r = receive(province, body, region="360100", secret="city-secret")
        assert r.acks == {stream: found[2]}
    assert province.snapshot() == county.snapshot()
    assert sorted(province.applied_changes()) == [(stream, s) for s in range(1, 13)]

    # Pruning after an ack at 7 drops the run 1-5 only; 8.. are still there to send.
    with city.db.session() as session:
        note_success(session, city.tables, PUSH, "parent", stream, acked_seq=7)
    later = utcnow() + timedelta(seconds=5)
    with city.db.session() as session:
        assert prune(session, city.tables, older_than=later) == {
            "outbox": 0,
            "relay": 1,
            "batches": 3,  # the city's three received batch ids
        }
        link = next(x for x in sync_status(session, city.tables) if x.kind == PUSH)
    assert (link.pending, link.last_acked_seq) == (5, 7)
    assert link.oldest_pending_age_s is not None
    assert wire(7, 100) == (canonical_changes(sent[7:]), 8, 12)
    assert wire(0, 100) == (canonical_changes(sent[5:]), 6, 12)  # 1..5 are gone


def _tamper(batch: Batch, **changes: Any) -> Batch:
    return replace(batch, **changes)


def _bad_batches(county: TinyNode) -> dict[str, tuple[Batch | dict[str, Any], str, int]]:
    """Name → (batch, problem slug, status) for every way a batch must be refused whole."""
    good = outbox_batch(county, SECRET)
    c0 = good.changes[0]
    wire = good.as_wire()
    malformed = {**wire, "changes": [*wire["changes"][:-1], {**wire["changes"][-1], "seq": 0}]}
    foreign = Change(
        "node-360121",
        4,
        "value",
        "360122/x",
        "upsert",
        {"region": "360122", "name": "x", "value": 1.0},
    )
    bad_payload = Change(
        "node-360121",
        4,
        "value",
        "360121/x",
        "upsert",
        {"region": "360121", "name": "x", "value": "ten"},
    )
    unknown = Change("node-360121", 4, "gossip", "k", "upsert", {"region": "360121"})
    mimic = build_batch(
        sender="node-360121",
        service=SERVICE,
        origins={"node-360122": "360121"},
        changes=[struct_replace(c0, origin="node-360122")],
        secret=SECRET,
    )

    def signed(changes: list[Change], secret: str = SECRET, **kw: Any) -> Batch:
        return build_batch(
            sender=kw.pop("sender", "node-360121"),
            service=kw.pop("service", SERVICE),
            origins=kw.pop("origins", {"node-360121": "360121"}),
            changes=changes,
            secret=secret,
            **kw,
        )

    return {
        # Content changed after signing (the digest no longer matches).
        "tampered": (
            _tamper(
                good,
                changes=[
                    struct_replace(c0, payload={**c0.payload, "value": 99.0}),
                    *good.changes[1:],
                ],
            ),
            "sync-digest-mismatch",
            422,
        ),
        # Content and digest changed consistently, but without the secret the MAC fails.
        "bad-mac": (
            signed(good.changes, secret="not-the-county-secret"),
            "sync-bad-signature",
            401,
        ),
        "unsigned": (_tamper(good, mac=None), "sync-bad-signature", 401),
        "stale": (signed(good.changes, now=utcnow() - timedelta(hours=1)), "sync-clock-skew", 401),
        "out-of-scope": (signed([*good.changes, foreign]), "sync-out-of-scope", 403),
        "origin-out-of-scope": (
            signed(good.changes, origins={"node-360121": "360122"}),
            "sync-out-of-scope",
            403,
        ),
        "malformed-seq": (malformed, "sync-malformed", 422),
        "bad-payload": (signed([*good.changes, bad_payload]), "sync-malformed", 422),
        "unknown-entity": (signed([*good.changes, unknown]), "sync-malformed", 422),
        "wrong-service": (signed(good.changes, service="survey"), "sync-malformed", 422),
        "undeclared-origin": (signed(good.changes, origins={}), "sync-malformed", 422),
        # The county speaking for its neighbour: a county relays no one.
        "mimic-origin": (mimic, "sync-out-of-scope", 403),
    }


BAD = [
    "tampered",
    "bad-mac",
    "unsigned",
    "stale",
    "out-of-scope",
    "origin-out-of-scope",
    "malformed-seq",
    "bad-payload",
    "unknown-entity",
    "wrong-service",
    "undeclared-origin",
    "mimic-origin",
]


@pytest.mark.parametrize("case", BAD)
def test_a_bad_batch_is_rejected_whole_with_its_reason_and_nothing_applied(
    case: str, city: TinyNode, county: TinyNode, county2: TinyNode
) -> None:
    county.enter({("360121", "a"): 1.0, ("360121", "b"): 2.0, ("360121", "c"): 3.0})
    county2.enter({("360122", "z"): 9.0})
    # The neighbour's origin is known to the city before the bad batch arrives.
    receive(city, outbox_batch(county2, "other"), region="360122", secret="other")
    before = city.dump()
    batch, slug, status = _bad_batches(county)[case]

    with pytest.raises(ProblemError) as caught:
        receive(city, batch)

    problem = caught.value.to_problem()
    assert problem["type"].endswith("/" + slug), problem
    assert problem["status"] == status
    assert problem["detail"]
    assert city.dump() == before


def test_rejections_name_the_rows(city: TinyNode, county: TinyNode) -> None:
    county.enter({("360121", "a"): 1.0})
    good = outbox_batch(county, SECRET)
    bad = Change("node-360121", 2, "value", "k", "upsert", {"region": "360121", "name": "x"})
    batch = build_batch(
        sender="node-360121",
        service=SERVICE,
        origins=good.origins,
        changes=[*good.changes, bad],
        secret=SECRET,
    )
    with pytest.raises(ProblemError) as caught:
        receive(city, batch)
    errors = caught.value.errors or []
    assert {"row": 1, "field": "payload.value"}.items() <= errors[0].items()


def test_a_batch_id_replayed_with_other_content_is_refused(
    city: TinyNode, county: TinyNode
) -> None:
    county.enter({("360121", "a"): 1.0, ("360121", "b"): 2.0})
    first = outbox_batch(county, SECRET)
    receive(city, subset(first, [1]))
    accepted_id = city.dump()["sync_batches"][0][0]
    before = city.dump()
    replayed = build_batch(
        sender="node-360121",
        service=SERVICE,
        origins=first.origins,
        changes=first.changes,
        secret=SECRET,
        batch_id=accepted_id,
    )
    with pytest.raises(ProblemError) as caught:
        receive(city, replayed)
    assert caught.value.slug == "sync-replayed-batch"
    assert city.dump() == before


def test_rotation_accepts_either_secret_while_both_are_valid(
    city: TinyNode, county: TinyNode
) -> None:
    county.enter({("360121", "a"): 1.0})
    r = receive(city, outbox_batch(county, "new-secret"), secret=("old-secret", "new-secret"))
    assert r.acks == {"node-360121": 1}


def test_concurrent_deliveries_of_the_same_changes_apply_once(
    city: TinyNode, county: TinyNode
) -> None:
    county.enter(values := {("360121", f"v{i}"): float(i) for i in range(50)})
    full = outbox_batch(county, SECRET)
    # A duplicating proxy: the same changes in different batches, delivered all at once.
    batches = [subset(full, list(range(1, 51))) for _ in range(4)] + [
        subset(full, list(range(20, 51)))
    ]
    barrier = threading.Barrier(len(batches))
    results: list[ReceiveResult] = []
    errors: list[BaseException] = []

    def deliver(batch: Batch) -> None:
        barrier.wait()
        try:
            results.append(receive(city, batch))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.applied for r in results) == 50
    # A delivery that came first with only the tail held it: its ack stayed at 0.
    assert {r.acks["node-360121"] for r in results} <= {0, 50}
    assert city.count(city.tables.held) == 0
    assert city.applied_changes() == [("node-360121", s) for s in range(1, 51)]
    assert city.snapshot() == values


def test_one_node_id_in_two_places_is_refused_not_merged(
    province: TinyNode, make_node: Callable[[str, str], TinyNode]
) -> None:
    # Two counties under two cities configured with the same node id (a cloned machine):
    # without the origin binding, the second would have its changes dropped as duplicates.
    first = make_node("node-dup", "360121")
    second = make_node("node-dup", "360702")
    first.enter({("360121", "a"): 1.0})
    second.enter({("360702", "b"): 2.0})

    def relayed(county: TinyNode, city: str) -> Batch:
        batch = outbox_batch(county, None)
        return build_batch(
            sender=f"node-{city}",
            service=SERVICE,
            origins=batch.origins,
            changes=batch.changes,
            secret="city",
        )

    receive(province, relayed(first, "360100"), region="360100", secret="city")
    before = province.dump()
    with pytest.raises(ProblemError) as caught:
        receive(province, relayed(second, "360700"), region="360700", secret="city")
    assert caught.value.slug == "sync-origin-conflict"
    assert province.dump() == before


def test_a_city_declares_only_origins_it_sends(province: TinyNode, city: TinyNode) -> None:
    city.enter({("360100", "a"): 1.0})
    own = outbox_batch(city, None)
    batch = build_batch(
        sender="node-360100",
        service=SERVICE,
        origins={**own.origins, "node-360121": "360121"},
        changes=own.changes,
        secret="city",
    )
    with pytest.raises(ProblemError) as caught:
        receive(province, batch, region="360100", secret="city")
    assert caught.value.slug == "sync-malformed"
    assert caught.value.errors == [
        {
            "field": "origins.node-360121",
            "message": "声明的来源没有任何变更 (origin without changes)",
        }
    ]


def test_an_empty_batch_is_acknowledged_and_changes_nothing(
    city: TinyNode, county: TinyNode
) -> None:
    """A well-formed batch without changes (a keep-alive) is accepted as a no-op."""
    empty = build_batch(
        sender=county.node.node_id, service=SERVICE, origins={}, changes=[], secret=SECRET
    )
    before = city.dump()
    r = receive(city, empty)
    assert (r.acks, r.applied, r.duplicates, r.held) == ({}, 0, 0, 0)
    after = city.dump()
    for table in ("tiny_values", "tiny_history", "sync_inbox", "sync_held"):
        assert after.get(table) == before.get(table), table


def _pushed_body(batch: Batch, changes_json: bytes, secret: str = SECRET) -> bytes:
    """``batch``'s changes as a pusher sends them, with ``changes_json`` as their bytes."""
    body, _header = encode_signed(
        sender=batch.sender,
        service=batch.service,
        origins=batch.origins,
        changes_json=changes_json,
        secret=secret,
    )
    return body


def _relay_rows(node: TinyNode) -> list[str]:
    with node.db.session() as session:
        return list(session.scalars(select(node.tables.relay.c.changes)))


def test_a_pushed_body_is_digested_and_relayed_in_the_bytes_it_came_in(
    province: TinyNode, city: TinyNode, county: TinyNode
) -> None:
    county.enter({("360121", f"k{i}"): float(i) for i in range(6)})
    county.enter({("360121", "k1"): 10.5, ("360121", "说明"): None})
    batch = outbox_batch(county, SECRET)
    sent = canonical_changes(batch.changes)
    body = _pushed_body(batch, sent)
    parsed = parse_batch(body)
    assert parsed.changes == batch.changes and parsed.changes_json == sent
    r = receive(city, body, relay=True)
    assert (r.acks, r.applied) == ({"node-360121": 8}, 8)
    # The relay keeps the very bytes the county digested, and they go up as they are.
    assert _relay_rows(city) == [sent.decode()]
    with city.db.session() as session:
        found = read_wire(session, city.tables, "node-360121", 0, 100)
    assert found == (sent, 1, 8)
    up = _pushed_body(replace(batch, sender="node-360100"), found[0], secret="city-secret")
    r = receive(province, up, region="360100", secret="city-secret")
    assert r.acks == {"node-360121": 8}
    assert province.snapshot() == city.snapshot() == county.snapshot()


def test_changes_written_otherwise_are_checked_over_their_canonical_json(
    city: TinyNode, county: TinyNode
) -> None:
    county.enter({("360121", "a"): 1.0, ("360121", "b"): 2.0, ("360121", "c"): 3.0})
    batch = outbox_batch(county, SECRET)
    # Pretty-printed, or keys in another order: the digest (over the canonical JSON) holds.
    pretty = json.dumps(batch.as_wire(), indent=2, ensure_ascii=False).encode()
    assert parse_batch(pretty).changes_json is None
    reordered = b"[" + b",".join(json.dumps(c.as_wire()).encode() for c in batch.changes) + b"]"
    # Laid out as a pusher lays it out, header (canonical digest, MAC) first.
    body = json.dumps(batch.header(), separators=(",", ":")).encode()[:-1]
    body += b',"changes":' + reordered + b"}"
    assert parse_batch(body).changes_json == reordered
    r = receive(city, body, relay=True)
    assert (r.applied, r.acks) == (3, {"node-360121": 3})
    # Relayed as the canonical JSON of the run, not as the bytes that came.
    assert _relay_rows(city) == [canonical_changes(batch.changes).decode()]
    r = receive(city, pretty)
    assert (r.applied, r.duplicates, r.retransmission) == (0, 3, True)


@pytest.mark.parametrize("how", ["byte", "second_changes", "header_inside"])
def test_a_body_tampered_around_its_changes_bytes_is_refused_whole(
    city: TinyNode, county: TinyNode, how: str
) -> None:
    county.enter({("360121", "a"): 1.0, ("360121", "b"): 2.0})
    batch = outbox_batch(county, SECRET)
    body = _pushed_body(batch, canonical_changes(batch.changes))
    before = city.dump()
    if how == "byte":  # a value changed in transit
        tampered = body.replace(b'"value":2.0', b'"value":3.0')
    elif how == "second_changes":  # JSON takes the last of two keys: not the digested list
        tampered = body[:-1] + b',"changes":[]}'
    else:  # a "changes" key nested in a field before them: the header is not the batch's
        tampered = body.replace(b'{"batch_id"', b'{"x":{"changes":[]},"batch_id"', 1)
    assert tampered != body
    with pytest.raises(ProblemError) as err:
        receive(city, tampered, relay=True)
    assert (err.value.status, err.value.slug) == (
        (422, "sync-malformed") if how == "header_inside" else (422, "sync-digest-mismatch")
    )
    assert city.dump() == before


def _laid_out(batch: Batch, changes: list[dict[str, Any]]) -> bytes:
    """A body as a pusher lays it out (header first, ``changes`` last), carrying ``changes``."""
    header = json.dumps(batch.header(), separators=(",", ":")).encode()
    return header[:-1] + b',"changes":' + json.dumps(changes).encode() + b"}"


def _parse_outcome(body: bytes | dict[str, Any]) -> Any:
    try:
        return parse_batch(body).changes
    except ProblemError as exc:
        return exc.status, exc.errors


@pytest.mark.parametrize(
    "field,value",
    [
        (None, None),  # well-formed: the same changes either way
        ("seq", 0),
        ("seq", 1.0),
        ("seq", True),
        ("seq", "3"),
        ("seq", 2**63),  # beyond what a BIGINT holds: refused here, not by the database
        ("origin", "node-360121\n"),
        ("origin", "n" * 65),
        ("entity", "Value"),
        ("op", "upsert\n"),
        ("op", ""),
        ("key", ""),
        ("key", "键" * 201),
        ("payload", []),
        ("extra", 1),
    ],
)
def test_a_body_is_checked_change_by_change_whichever_way_it_is_read(
    county: TinyNode, field: str | None, value: Any
) -> None:
    """The bytes of a pushed body decode straight into changes; anything unusual is read
    the thorough way, so a body and the same batch as JSON objects get the same answer."""
    county.enter({("360121", "a"): 1.0, ("360121", "b"): 2.0, ("360121", "c"): 3.0})
    batch = outbox_batch(county, SECRET)
    changes = [c.as_wire() for c in batch.changes]
    if field is not None:
        changes[1] = {**changes[1], field: value}
    as_bytes = _parse_outcome(_laid_out(batch, changes))
    assert as_bytes == _parse_outcome({**batch.as_wire(), "changes": changes})
    if field is None:
        assert as_bytes == batch.changes
    else:
        status, errors = as_bytes
        assert status == 422
        assert errors and {e.get("row") for e in errors} == {1}, errors
        assert errors[0]["field"].startswith("changes.1"), errors


def test_a_relayed_change_outside_its_origins_region_is_refused_whole(
    province: TinyNode, city: TinyNode, county: TinyNode
) -> None:
    """A city may relay a county's changes only about that county's own regions."""
    county.enter({("360121", "a"): 1.0, ("360121", "b"): 2.0})
    good = outbox_batch(county, SECRET)
    moved = struct_replace(
        good.changes[1], key="360122/b", payload={**good.changes[1].payload, "region": "360122"}
    )
    batch = build_batch(
        sender="node-360100",
        service=SERVICE,
        origins={"node-360121": "360121"},
        changes=[good.changes[0], moved],
        secret="city-secret",
    )
    before = province.dump()
    with pytest.raises(ProblemError) as caught:
        receive(province, batch, region="360100", secret="city-secret")
    assert (caught.value.status, caught.value.slug) == (403, "sync-out-of-scope")
    errors = caught.value.errors or []
    assert [e["row"] for e in errors] == [1] and "360122" in errors[0]["message"], errors
    assert province.dump() == before


def test_a_message_from_above_about_an_unrelated_region_is_refused_whole(
    city: TinyNode,
) -> None:
    """A pulled review about a region outside the child's line of the hierarchy."""
    pull = build_pull(
        node="node-360100", service=SERVICE, stream="360100", after=0, limit=100, secret="s"
    )
    reviews = [
        Change("node-360000", 1, "review", "360100", "upsert", _review("360100")),
        Change("node-360000", 2, "review", "360200", "upsert", _review("360200")),
    ]

    def apply(changes: list[Change]) -> tuple[int, int]:
        answer = build_batch(
            sender="node-360000",
            service=SERVICE,
            origins={"node-360000": "360000"},
            changes=changes,
            secret=None,
            batch_id=down_batch_id("360100", 0),
        )
        with city.db.session() as session:
            return apply_pulled(
                session,
                city.tables,
                pull,
                PullResponse(head=len(changes), batch=answer),
                node=city.node,
                credential_secret=None,
                appliers=city.appliers,
            )

    before = city.dump()
    with pytest.raises(ProblemError) as caught:
        apply(reviews)
    assert (caught.value.status, caught.value.slug) == (403, "sync-out-of-scope")
    assert [e["row"] for e in caught.value.errors or []] == [1]
    assert city.dump() == before
    # The same answer without the stray review applies.
    assert apply(reviews[:1]) == (1, 1)


def _review(region: str) -> dict[str, Any]:
    return {"region": region, "decision": "approve", "reason": "", "by": "node-360000"}


def test_a_number_beyond_64_bits_is_refused_not_a_server_error(
    city: TinyNode, county: TinyNode
) -> None:
    county.enter({("360121", "a"): 1.0})
    batch = outbox_batch(county, SECRET)
    changes = [c.as_wire() for c in batch.changes]
    changes[0]["payload"] = {**changes[0]["payload"], "value": 2**70}
    before = city.dump()
    with pytest.raises(ProblemError) as caught:
        receive(city, _laid_out(batch, changes))
    assert (caught.value.status, caught.value.slug) == (422, "sync-malformed")
    assert city.dump() == before
