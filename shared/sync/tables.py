"""The sync tables, added to each service's own MetaData and created by its own migration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from shared.dbtypes import JsonType, UtcDateTime

__all__ = [
    "SyncTables",
    "compress_relay_runs",
    "create_relay_table",
    "create_sync_tables",
    "define_sync_tables",
    "drop_relay_table",
    "drop_sync_tables",
    "uncompress_relay_runs",
]

# Column sizes shared with the wire format checks in shared.sync.wire.
NODE_LEN = 64
ENTITY_LEN = 64
KEY_LEN = 200
OP_LEN = 16
REGION_LEN = 12


def _change_columns() -> list[Column[Any]]:
    return [
        Column("entity", String(ENTITY_LEN), nullable=False),
        Column("entity_key", String(KEY_LEN), nullable=False),
        Column("op", String(OP_LEN), nullable=False),
        Column("payload", JsonType, nullable=False),
    ]


def _spec() -> dict[str, list[Any]]:
    """Table name → columns and constraints; fresh objects on every call (metadata or op)."""
    return {
        # Head of every stream this node sends: its own origin (up), each origin it relays
        # (up), each child's downward stream (down). The row is also the seq allocator: the
        # UPDATE that bumps last_seq holds the row lock until commit, so seqs are gapless and
        # commit in seq order.
        "sync_streams": [
            Column("direction", String(4), nullable=False),
            Column("stream", String(NODE_LEN), nullable=False),
            Column("last_seq", BigInteger, nullable=False),
            Column("region", String(REGION_LEN), nullable=True),
            Column("updated_at", UtcDateTime, nullable=False),
            PrimaryKeyConstraint("direction", "stream", name="pk_sync_streams"),
        ],
        # Every change to send, in the same transaction as the change itself. Up: stream =
        # origin node id (own or relayed, with the origin's own seq). Down: stream = the
        # child region the message is for, or "*" for every child.
        "sync_outbox": [
            Column("direction", String(4), nullable=False),
            Column("stream", String(NODE_LEN), nullable=False),
            Column("seq", BigInteger, nullable=False),
            *_change_columns(),
            Column("created_at", UtcDateTime, nullable=False),
            PrimaryKeyConstraint("direction", "stream", "seq", name="pk_sync_outbox"),
        ],
        # State of each link per stream: push (up, this node sends), serve (down, a child
        # pulls from this node), pull (down, this node pulls from its parent), receive
        # (up, one row per sending child: its last accepted / rejected batch).
        "sync_cursors": [
            Column("kind", String(8), nullable=False),
            Column("peer", String(NODE_LEN), nullable=False),
            Column("stream", String(NODE_LEN), nullable=False),
            Column("acked_seq", BigInteger, nullable=False),
            Column("peer_head", BigInteger, nullable=True),
            Column("attempts", Integer, nullable=False),
            Column("permanent_failures", Integer, nullable=False),
            Column("next_attempt_at", UtcDateTime, nullable=True),
            Column("state", String(12), nullable=False),
            Column("last_error", Text, nullable=True),
            Column("last_error_at", UtcDateTime, nullable=True),
            Column("last_ok_at", UtcDateTime, nullable=True),
            Column("updated_at", UtcDateTime, nullable=False),
            PrimaryKeyConstraint("kind", "peer", "stream", name="pk_sync_cursors"),
        ],
        # Receiver: highest contiguous applied seq per incoming stream, and (up) the region
        # the origin is bound to, so that no node can write into another origin's stream.
        "sync_inbox": [
            Column("direction", String(4), nullable=False),
            Column("stream", String(NODE_LEN), nullable=False),
            Column("applied_seq", BigInteger, nullable=False),
            Column("region", String(REGION_LEN), nullable=True),
            Column("last_sender", String(NODE_LEN), nullable=True),
            Column("updated_at", UtcDateTime, nullable=False),
            PrimaryKeyConstraint("direction", "stream", name="pk_sync_inbox"),
        ],
        # Changes received ahead of a gap, applied once the gap is filled.
        "sync_held": [
            Column("direction", String(4), nullable=False),
            Column("stream", String(NODE_LEN), nullable=False),
            Column("seq", BigInteger, nullable=False),
            Column("origin", String(NODE_LEN), nullable=False),
            *_change_columns(),
            Column("sender", String(NODE_LEN), nullable=False),
            Column("received_at", UtcDateTime, nullable=False),
            PrimaryKeyConstraint("direction", "stream", "seq", name="pk_sync_held"),
        ],
        # Accepted batches by id: the same id again with another digest is a replay.
        "sync_batches": [
            Column("batch_id", String(NODE_LEN), nullable=False),
            Column("sender", String(NODE_LEN), nullable=False),
            Column("digest", String(64), nullable=False),
            Column("changes", Integer, nullable=False),
            Column("received_at", UtcDateTime, nullable=False),
            PrimaryKeyConstraint("batch_id", name="pk_sync_batches"),
        ],
    }


def _relay_spec() -> dict[str, list[Any]]:
    """Tables added after the first sync revision (each created by a revision of its own)."""
    return {
        # Changes a node relays up for the origins below it, one row per run applied from a
        # child's batch: the run's changes as canonical JSON, the very bytes a batch to the
        # parent carries. Relaying thus costs a row per batch, not one per change, and the
        # pusher sends the text without parsing it. Stream = the origin node id.
        "sync_relay": [
            Column("stream", String(NODE_LEN), nullable=False),
            Column("first_seq", BigInteger, nullable=False),
            Column("last_seq", BigInteger, nullable=False),
            Column("changes", Text, nullable=False),
            Column("created_at", UtcDateTime, nullable=False),
            PrimaryKeyConstraint("stream", "first_seq", name="pk_sync_relay"),
        ],
    }


# Table name → (index name, columns); pruning reads accepted batches by age.
_INDEXES: dict[str, list[tuple[str, list[str]]]] = {
    "sync_batches": [("ix_sync_batches_received_at", ["received_at"])],
}


@dataclass(frozen=True)
class SyncTables:
    """The sync tables of one service, bound to that service's MetaData."""

    streams: Table
    outbox: Table
    cursors: Table
    inbox: Table
    held: Table
    batches: Table
    relay: Table


_ATTRS = {
    "sync_streams": "streams",
    "sync_outbox": "outbox",
    "sync_cursors": "cursors",
    "sync_inbox": "inbox",
    "sync_held": "held",
    "sync_batches": "batches",
    "sync_relay": "relay",
}


def define_sync_tables(metadata: MetaData) -> SyncTables:
    """Add the sync tables to a service's MetaData (idempotent) and return them."""
    tables: dict[str, Table] = {}
    for name, items in {**_spec(), **_relay_spec()}.items():
        table = metadata.tables.get(name)
        if table is None:
            table = Table(name, metadata, *items)
            for index_name, columns in _INDEXES.get(name, []):
                Index(index_name, *(table.c[c] for c in columns))
        tables[_ATTRS[name]] = table
    return SyncTables(**tables)


def create_sync_tables(op: Any) -> None:
    """Create the sync tables from a service's Alembic revision (``op`` is alembic.op)."""
    for name, items in _spec().items():
        op.create_table(name, *items)
        for index_name, columns in _INDEXES.get(name, []):
            op.create_index(index_name, name, columns, unique=False)


def drop_sync_tables(op: Any) -> None:
    """Drop the sync tables (the downgrade of ``create_sync_tables``)."""
    for name in reversed(list(_spec())):
        for index_name, _columns in _INDEXES.get(name, []):
            op.drop_index(index_name, table_name=name)
        op.drop_table(name)


def create_relay_table(op: Any) -> None:
    """Create ``sync_relay`` (a later revision than ``create_sync_tables``'s)."""
    for name, items in _relay_spec().items():
        op.create_table(name, *items)
    if op.get_bind().dialect.name == "postgresql":
        # A run is ~250 bytes a change: stored out of line, uncompressed (pglz costs more
        # CPU than it saves; ``compress_relay_runs``, a later revision, moves to lz4).
        op.execute("ALTER TABLE sync_relay ALTER COLUMN changes SET STORAGE EXTERNAL")


def _lz4_supported(bind: Any) -> bool:
    """Whether this PostgreSQL server can compress a column with lz4 (14+, built with it)."""
    return bool(
        bind.exec_driver_sql(
            "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
            "AND 'lz4' = ANY(enumvals)"
        ).scalar()
    )


def compress_relay_runs(op: Any) -> None:
    """On PostgreSQL with lz4, keep ``sync_relay``'s runs lz4-compressed.

    A 10,000-change run is ~3.5 MB of JSON. Stored uncompressed it fills ~1,800 TOAST
    chunks and as much WAL: ~20 ms of the server's CPU to insert one; lz4 stores it in an
    eighth of the space for two thirds of the CPU, and reading it back costs the same.
    pglz (the default) costs more than storing it uncompressed. Rows already stored keep
    the form they were written in.
    """
    _relay_runs_storage(op, "EXTENDED", "lz4")


def uncompress_relay_runs(op: Any) -> None:
    """The downgrade of ``compress_relay_runs``: out of line, uncompressed, as before."""
    _relay_runs_storage(op, "EXTERNAL", "DEFAULT")


def _relay_runs_storage(op: Any, storage: str, compression: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _lz4_supported(bind):
        op.execute(
            f"ALTER TABLE sync_relay ALTER COLUMN changes SET STORAGE {storage}, "
            f"ALTER COLUMN changes SET COMPRESSION {compression}"
        )


def drop_relay_table(op: Any) -> None:
    """Drop ``sync_relay`` (the downgrade of ``create_relay_table``)."""
    for name in reversed(list(_relay_spec())):
        op.drop_table(name)
