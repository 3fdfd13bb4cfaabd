"""Recording: same transaction as the change, gapless seqs without races, set-based bulk."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import MetaData, func, insert, inspect, select

from shared.db import NAMING_CONVENTION, Database
from shared.dbtypes import utcnow
from shared.sync import (
    NewChange,
    SyncNode,
    create_relay_table,
    create_sync_tables,
    define_sync_tables,
    drop_relay_table,
    drop_sync_tables,
    json_object,
    read_stream,
    receive_batch,
    record_change,
    record_changes,
    record_changes_from_select,
    wake_on_commit,
)
from tests.sync.test_receive import SECRET, receive
from tests.sync.tiny import TinyNode, outbox_batch


def outbox_seqs(node: TinyNode, stream: str | None = None) -> list[int]:
    with node.db.session() as session:
        changes = read_stream(session, node.tables, "up", stream or node.node.node_id, 0, 10**9)
    return [c.seq for c in changes]


def test_change_and_outbox_row_commit_or_roll_back_together(county: TinyNode) -> None:
    county.enter({("360121", "a"): 1.0})
    with pytest.raises(RuntimeError), county.db.session() as session:
        county.set_value(session, "360121", "b", 2.0)
        raise RuntimeError("the request fails after the change")
    # The failed change left neither a value nor an outbox row, nor a hole in the seqs.
    assert county.snapshot() == {("360121", "a"): 1.0}
    assert county.enter({("360121", "c"): 3.0}) == [2]
    assert outbox_seqs(county) == [1, 2]


def test_concurrent_writers_get_gapless_unique_seqs(county: TinyNode) -> None:
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(25):
                county.enter({("360121", f"w{w}-{i}"): float(i)})
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert outbox_seqs(county) == list(range(1, 101))
    # Seq order is commit order: the payload of each seq is the value committed with it.
    with county.db.session() as session:
        stored = {
            (r.region, r.name): r.seq
            for r in session.execute(
                select(county.values.c.region, county.values.c.name, county.values.c.seq)
            )
        }
        changes = read_stream(session, county.tables, "up", "node-360121", 0, 1000)
    assert {(c.payload["region"], c.payload["name"]): c.seq for c in changes} == stored


def test_record_changes_writes_many_rows_at_once_and_they_relay_intact(
    city: TinyNode, county: TinyNode
) -> None:
    county.enter({("360121", "first"): 0.0})
    new = [
        NewChange(
            "value",
            f"360121/k{i}",
            "upsert",
            {"region": "360121", "name": f"指标{i}", "value": i * 1.5 if i % 7 else None},
        )
        for i in range(500)
    ]
    started = utcnow()
    with county.db.session() as session:
        first, last = record_changes(session, county.tables, new)
    assert (first, last) == (2, 501)
    with county.db.session() as session:
        changes = read_stream(session, county.tables, "up", "node-360121", 1, 1000)
        o = county.tables.outbox.c
        created = session.execute(select(func.min(o.created_at)).where(o.seq > 1)).scalar_one()
    assert [(c.seq, c.key, c.payload) for c in changes] == [
        (i + 2, n.key, n.payload) for i, n in enumerate(new)
    ]
    assert created.tzinfo is not None and created >= started - timedelta(seconds=1)

    # Relayed by the city (many rows at once again), the changes are the county's own.
    receive(city, outbox_batch(county, SECRET), relay=True)
    with city.db.session() as session:
        relayed = read_stream(session, city.tables, "up", "node-360121", 0, 1000)
    assert relayed == outbox_batch(county, SECRET).changes


def test_record_changes_from_select_assigns_seqs_set_based(
    city: TinyNode, county: TinyNode
) -> None:
    county.enter({("360121", "before"): 1.0})
    rows = [
        {"region": "360121", "name": f"n{i:04d}", "value": i / 4, "origin": "import", "seq": 0}
        for i in range(1000)
    ]
    rows[5]["value"] = None
    with county.db.session() as session:
        session.execute(insert(county.values), rows)
        v = county.values.c
        first, last = record_changes_from_select(
            session,
            county.tables,
            select(
                (v.region + "/" + v.name).label("key"),
                json_object(region=v.region, name=v.name, value=v.value).label("payload"),
            ).where(v.origin == "import"),
            entity="value",
            op="upsert",
        )
    assert (first, last) == (2, 1001)
    # The next single change continues the same stream.
    assert county.enter({("360121", "after"): 2.0}) == [1002]
    assert outbox_seqs(county) == list(range(1, 1003))

    batch = outbox_batch(county, SECRET)
    by_key = {c.key: c for c in batch.changes}
    assert by_key["360121/n0003"].payload == {"region": "360121", "name": "n0003", "value": 0.75}
    assert by_key["360121/n0005"].payload["value"] is None
    assert [c.key for c in batch.changes[1:1001]] == sorted(f"360121/n{i:04d}" for i in range(1000))

    # What was recorded in bulk applies at the parent like anything else.
    r = receive(city, batch)
    assert r.acks == {"node-360121": 1002}
    assert city.snapshot() == county.snapshot()
    assert len(city.snapshot()) == 1002


def test_an_empty_select_records_nothing(county: TinyNode) -> None:
    with county.db.session() as session:
        v = county.values.c
        assert record_changes_from_select(
            session,
            county.tables,
            select(v.name.label("key"), json_object(name=v.name).label("payload")),
            entity="value",
            op="upsert",
        ) == (0, 0)
    assert county.enter({("360121", "a"): 1.0}) == [1]


def test_the_pusher_is_woken_after_commit_only(county: TinyNode) -> None:
    woken: list[int] = []
    undo = wake_on_commit(county.db.sessionmaker, lambda: woken.append(1))
    try:
        county.enter({("360121", "a"): 1.0})
        assert woken == [1]
        with pytest.raises(RuntimeError), county.db.session() as session:
            county.set_value(session, "360121", "b", 2.0)
            raise RuntimeError
        with county.db.session() as session:
            session.execute(select(1))
        assert woken == [1]
    finally:
        undo()


def test_recording_needs_a_node(make_db: Callable[[str], Database]) -> None:
    db = make_db("unbound")
    db.ensure_schema()
    metadata = MetaData()
    tables = define_sync_tables(metadata)
    metadata.create_all(db.engine)
    with db.session() as session, pytest.raises(RuntimeError, match="bind_node"):
        record_change(session, tables, entity="value", key="k", op="upsert", payload={})


def test_migration_helpers_match_the_table_definitions(make_db: Callable[[str], Database]) -> None:
    db = make_db("migration")
    db.ensure_schema()
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    define_sync_tables(metadata)
    with db.engine.begin() as conn:
        ctx = MigrationContext.configure(conn, opts={"render_as_batch": not db.is_postgres})
        create_sync_tables(Operations(ctx))
        create_relay_table(Operations(ctx))
        assert compare_metadata(ctx, metadata) == []
    names = set(inspect(db.engine).get_table_names(schema=db.schema))
    assert names >= {
        "sync_streams",
        "sync_outbox",
        "sync_cursors",
        "sync_inbox",
        "sync_held",
        "sync_batches",
        "sync_relay",
    }
    with db.engine.begin() as conn:
        ops = Operations(MigrationContext.configure(conn))
        drop_relay_table(ops)
        drop_sync_tables(ops)
    assert not {
        n for n in inspect(db.engine).get_table_names(schema=db.schema) if n.startswith("sync_")
    }


def test_a_node_without_its_own_origin_cannot_receive_itself(city: TinyNode) -> None:
    city.enter({("360100", "own"): 1.0})
    with pytest.raises(Exception, match="origin"), city.db.session() as session:
        receive_batch(
            session,
            city.tables,
            outbox_batch(city, SECRET),
            node=SyncNode("node-360100", "360100", "values"),
            credential_secret=SECRET,
            allowed_region="360100",
            appliers=city.appliers,
            relay=False,
        )
