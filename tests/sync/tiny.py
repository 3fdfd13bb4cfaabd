"""A tiny 'values' service using shared.sync with its own tables, and a live HTTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from checkup.cluster import free_port
from shared.db import NAMING_CONVENTION, Database
from shared.errors import install_error_handlers
from shared.regions import parent_of, prefix_of
from shared.sync import (
    BROADCAST,
    Applier,
    Batch,
    Change,
    CredentialRevoked,
    PeerCredential,
    SyncNode,
    UnknownNode,
    bind_node,
    build_batch,
    bulk_insert,
    define_sync_tables,
    publish_down,
    read_stream,
    record_change,
    sync_router,
)

SERVICE = "values"


class ValuePayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    region: str = Field(min_length=6, max_length=12)
    name: str = Field(min_length=1, max_length=40)
    value: float | None


class ReviewPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    region: str
    decision: str = Field(pattern="^(approve|reject|accept)$")
    reason: str = ""
    by: str


class CatalogPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    code: str
    version: int
    indicators: list[str]


class TinyNode:
    """One node of the tiny service: values, their history, reviews received, catalog."""

    def __init__(self, db: Database, node_id: str, region: str) -> None:
        self.db = db
        self.node = SyncNode(node_id, region, SERVICE)
        self.metadata = MetaData(naming_convention=NAMING_CONVENTION)
        self.tables = define_sync_tables(self.metadata)
        self.values = Table(
            "tiny_values",
            self.metadata,
            Column("region", String(12), nullable=False),
            Column("name", String(40), nullable=False),
            Column("value", Float, nullable=True),
            Column("origin", String(64), nullable=False),
            Column("seq", BigInteger, nullable=False),
            PrimaryKeyConstraint("region", "name"),
        )
        # One row per applied change: the exactly-once check counts these.
        self.history = Table(
            "tiny_history",
            self.metadata,
            Column("id", Integer, primary_key=True),
            Column("origin", String(64), nullable=False),
            Column("seq", BigInteger, nullable=False),
            Column("region", String(12), nullable=False),
            Column("name", String(40), nullable=False),
            Column("value", Float, nullable=True),
            Column("op", String(16), nullable=False),
        )
        self.reviews = Table(
            "tiny_reviews",
            self.metadata,
            Column("id", Integer, primary_key=True),
            Column("region", String(12), nullable=False),
            Column("decision", String(12), nullable=False),
            Column("reason", Text, nullable=False),
            Column("by", String(64), nullable=False),
        )
        self.catalog = Table(
            "tiny_catalog",
            self.metadata,
            Column("code", String(40), primary_key=True),
            Column("version", Integer, nullable=False),
            Column("indicators", Text, nullable=False),
        )
        db.ensure_schema()
        self.metadata.create_all(db.engine)
        bind_node(db.sessionmaker, self.node)
        self.appliers = {
            "value": Applier(
                self._apply_values,
                region_of=lambda p: p["region"],
                schema=ValuePayload,
                ops=frozenset({"upsert", "delete"}),
            ),
            "review": Applier(
                self._apply_reviews, region_of=lambda p: p["region"], schema=ReviewPayload
            ),
            "catalog": Applier(
                self._apply_catalog, region_of=lambda p: None, schema=CatalogPayload
            ),
        }

    # --- writes a user of this node makes (change + outbox in one transaction) --------------

    def set_value(self, session: Session, region: str, name: str, value: float | None) -> int:
        """Enter a value here; returns its seq."""
        payload = {"region": region, "name": name, "value": value}
        seq = record_change(
            session,
            self.tables,
            entity="value",
            key=f"{region}/{name}",
            op="upsert",
            payload=payload,
        )
        change = Change(self.node.node_id, seq, "value", f"{region}/{name}", "upsert", payload)
        self._apply_values(session, [change])
        return seq

    def enter(self, values: Mapping[tuple[str, str], float | None]) -> list[int]:
        """Enter several values, each in its own transaction."""
        seqs = []
        for (region, name), value in values.items():
            with self.db.session() as session:
                seqs.append(self.set_value(session, region, name, value))
        return seqs

    def review(self, region: str, decision: str, reason: str = "") -> int:
        """An upper-tier decision about a region below, sent down towards its owner."""
        with self.db.session() as session:
            return publish_down(
                session,
                self.tables,
                stream=child_stream(self.node.region, region),
                entity="review",
                key=region,
                op="decide",
                payload={
                    "region": region,
                    "decision": decision,
                    "reason": reason,
                    "by": self.node.node_id,
                },
            )

    def release_catalog(self, code: str, version: int, indicators: list[str]) -> int:
        with self.db.session() as session:
            return publish_down(
                session,
                self.tables,
                stream=BROADCAST,
                entity="catalog",
                key=f"{code}@{version}",
                op="release",
                payload={"code": code, "version": version, "indicators": indicators},
            )

    # --- appliers (set-based, in seq order, later wins) --------------------------------------

    def _apply_values(self, session: Session, changes: list[Change]) -> None:
        bulk_insert(
            session,
            self.history,
            [
                {
                    "origin": c.origin,
                    "seq": c.seq,
                    "region": c.payload["region"],
                    "name": c.payload["name"],
                    "value": c.payload["value"],
                    "op": c.op,
                }
                for c in changes
            ],
        )
        latest = {(c.payload["region"], c.payload["name"]): c for c in changes}
        keys = tuple_(self.values.c.region, self.values.c.name)
        session.execute(delete(self.values).where(keys.in_(list(latest))))
        rows = [
            {
                **{k: c.payload[k] for k in ("region", "name", "value")},
                "origin": c.origin,
                "seq": c.seq,
            }
            for c in latest.values()
            if c.op == "upsert"
        ]
        bulk_insert(session, self.values, rows)

    def _apply_reviews(self, session: Session, changes: list[Change]) -> None:
        session.execute(
            insert(self.reviews),
            [{k: c.payload[k] for k in ("region", "decision", "reason", "by")} for c in changes],
        )

    def _apply_catalog(self, session: Session, changes: list[Change]) -> None:
        session.execute(
            insert(self.catalog),
            [
                {
                    "code": c.payload["code"],
                    "version": c.payload["version"],
                    "indicators": ",".join(c.payload["indicators"]),
                }
                for c in changes
            ],
        )

    def relay_down(self, change: Change) -> str | None:
        """Pass catalog releases on to every child and reviews to the child they concern."""
        if change.entity == "catalog":
            return BROADCAST
        region = change.payload["region"]
        return None if region == self.node.region else child_stream(self.node.region, region)

    # --- what tests look at ------------------------------------------------------------------

    def snapshot(self) -> dict[tuple[str, str], float | None]:
        with self.db.session() as session:
            rows = session.execute(
                select(self.values.c.region, self.values.c.name, self.values.c.value)
            )
            return {(r.region, r.name): r.value for r in rows}

    def applied_changes(self) -> list[tuple[str, int]]:
        """(origin, seq) of every applied change, in application order."""
        with self.db.session() as session:
            rows = session.execute(
                select(self.history.c.origin, self.history.c.seq).order_by(self.history.c.id)
            )
            return [(r.origin, int(r.seq)) for r in rows]

    def count(self, table: Table) -> int:
        with self.db.session() as session:
            return int(session.execute(select(func.count()).select_from(table)).scalar_one())

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, to prove that a rejected batch changed nothing."""
        out = {}
        with self.db.session() as session:
            for name, table in sorted(self.metadata.tables.items()):
                cols = list(table.primary_key.columns) or list(table.columns)
                out[name] = [tuple(r) for r in session.execute(select(table).order_by(*cols))]
        return out


def child_stream(node_region: str, region: str) -> str:
    """The direct child region of ``node_region`` on the way to ``region``."""
    code = region
    while parent_of(code) not in (None, node_region):
        code = parent_of(code)  # type: ignore[assignment]
    if not code.startswith(prefix_of(node_region)) or code == node_region:
        raise ValueError(f"{region} is not below {node_region}")
    return code


# --- a parent's sync endpoints over real HTTP ----------------------------------------------


class Registry:
    """The parent's registered children (a stand-in for the gateway's node registry)."""

    def __init__(self) -> None:
        self.nodes: dict[str, PeerCredential] = {}
        self.revoked: set[str] = set()

    def register(self, node_id: str, region: str, secret: str) -> None:
        self.nodes[node_id] = PeerCredential(node_id, region, (secret,))

    def authenticate(self, request: Request, claimed: str) -> PeerCredential:
        credential = self.nodes.get(claimed)
        if credential is None:
            raise UnknownNode(f"节点 {claimed} 未登记 (unknown node)")
        if claimed in self.revoked:
            raise CredentialRevoked(f"节点 {claimed} 的凭据已吊销 (credential revoked)")
        return credential


def parent_app(node: TinyNode, registry: Registry, *, relay: bool) -> FastAPI:
    """A parent node's sync endpoints for the tiny service."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(
        sync_router(
            node=node.node,
            tables=node.tables,
            appliers=node.appliers,
            authenticate=registry.authenticate,
            relay=relay,
            database=lambda request: node.db,
        )
    )
    return app


class LiveServer:
    """A FastAPI app served by uvicorn on loopback in a thread; can be stopped and restarted."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LiveServer:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None


def outbox_batch(
    sender: TinyNode,
    secret: str | None,
    *,
    origin: str | None = None,
    after: int = 0,
    limit: int = 10_000,
    region: str | None = None,
) -> Batch:
    """What ``sender``'s pusher would send for one origin stream after ``after``."""
    origin = origin or sender.node.node_id
    with sender.db.session() as session:
        changes = read_stream(session, sender.tables, "up", origin, after, limit)
    return build_batch(
        sender=sender.node.node_id,
        service=SERVICE,
        origins={origin: region or sender.node.region},
        changes=changes,
        secret=secret,
    )
