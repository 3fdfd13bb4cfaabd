"""The parent's sync endpoints for one service: receive batches, serve pulls, show status."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from starlette.concurrency import run_in_threadpool

from shared.db import Database
from shared.errors import Forbidden, ProblemError
from shared.identity import Role, get_identity
from shared.sync.errors import BadSignature, UnknownNode
from shared.sync.links import RECEIVE, note_failure, revive
from shared.sync.node import SyncNode
from shared.sync.receiver import Appliers, receive_batch, serve_pull
from shared.sync.status import sync_status
from shared.sync.tables import SyncTables
from shared.sync.wire import BATCH_HEADER, Batch, parse_batch, parse_batch_header, parse_pull

__all__ = [
    "INTERNAL_BASE",
    "PUBLIC_BASE",
    "RETRY_PATH",
    "STATUS_PATH",
    "Authenticate",
    "PeerCredential",
    "from_gateway_identity",
    "sync_router",
]

# What children call at the parent's gateway (PUSH_PATH, PULL_PATH live with the pusher).
PUBLIC_BASE = "/api/v1/sync/{service}"
STATUS_PATH = PUBLIC_BASE + "/status"
RETRY_PATH = PUBLIC_BASE + "/retry"
# Where a service mounts its router behind the gateway: outside /api/v1/, so the gateway's
# resource routing leaves it alone and only the gateway's own sync routes forward to it.
INTERNAL_BASE = "/internal/sync"


@dataclass(frozen=True)
class PeerCredential:
    """A registered child node: its region and its credential secrets (two while rotating)."""

    node_id: str
    region: str
    secrets: tuple[str, ...] = ()
    # True when the gateway has verified the MAC with the secret it keeps; the service
    # then checks everything else (digest, replay, scope, content).
    verified_upstream: bool = False
    # What the gateway verified the MAC over (batch id, digest, timestamp; BATCH_HEADER):
    # the body must be that batch.
    signed: tuple[str, str, str] | None = None

    def secret_for_check(self) -> tuple[str, ...] | None:
        if self.verified_upstream:
            return None
        if not self.secrets:
            raise BadSignature(f"节点 {self.node_id} 没有可用的凭据 (no credential to verify)")
        return self.secrets

    def check_signed(self, batch: Batch) -> None:
        """Refuse a batch other than the one whose MAC the gateway verified."""
        if self.verified_upstream and self.signed != batch.signed_fields():
            raise BadSignature(
                f"批次 {batch.batch_id} 与网关验证签名的批次头不符 "
                "(the body is not the batch whose MAC the gateway verified)"
            )


# (request, claimed node id) → the node's credential; raises UnknownNode / CredentialRevoked.
Authenticate = Callable[[Request, str], PeerCredential]


def from_gateway_identity(request: Request, claimed: str) -> PeerCredential:
    """The sending child as the gateway vouched for it (it checked the credential and MAC)."""
    identity = get_identity(request)
    if identity.kind != "node" or identity.node != claimed:
        raise UnknownNode(
            f"同步请求须经网关以节点身份转发 (sync requests come through the gateway as node "
            f"{claimed})"
        )
    header = request.headers.get(BATCH_HEADER)
    signed = None if header is None else parse_batch_header(header).signed_fields()
    return PeerCredential(identity.node, identity.region, verified_upstream=True, signed=signed)


def _app_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _note_rejection(db: Database, tables: SyncTables, sender: str, exc: ProblemError) -> None:
    # The failed transaction is gone; the rejection is kept in a fresh one for status.
    with db.session(write=True) as session:
        note_failure(
            session, tables, RECEIVE, sender, "", error=f"{exc.slug}: {exc.detail}", permanent=True
        )


def sync_router(
    *,
    node: SyncNode,
    tables: SyncTables,
    appliers: Appliers,
    authenticate: Authenticate,
    relay: bool,
    database: Callable[[Request], Database] = _app_database,
    status_dependencies: Sequence[Any] = (),
    base_path: str = PUBLIC_BASE,
) -> APIRouter:
    """Endpoints children call (push, pull), the status of every link of this service, and
    ``POST …/retry`` (this node's admin) to revive its dead-lettered links.

    ``base_path``: PUBLIC_BASE where the app faces children itself, INTERNAL_BASE for a
    service behind the gateway.
    """
    router = APIRouter(tags=["sync"])
    base = base_path.format(service=node.service).rstrip("/")

    def _credential(request: Request, claimed: str) -> PeerCredential:
        credential = authenticate(request, claimed)
        if credential.node_id != claimed:
            raise BadSignature(
                f"凭据属于 {credential.node_id}，不是 {claimed} (credential mismatch)"
            )
        return credential

    def _receive(request: Request, body: bytes) -> dict[str, Any]:
        batch = parse_batch(body)
        db = database(request)
        try:
            credential = _credential(request, batch.sender)
            credential.check_signed(batch)
            with db.session(write=True) as session:
                result = receive_batch(
                    session,
                    tables,
                    batch,
                    node=node,
                    credential_secret=credential.secret_for_check(),
                    allowed_region=credential.region,
                    appliers=appliers,
                    relay=relay,
                )
        except UnknownNode:
            raise
        except ProblemError as exc:
            _note_rejection(db, tables, batch.sender, exc)
            raise
        return result.as_wire()

    # The body is read as bytes and parsed once, by the wire parser; the work runs in the
    # thread pool. The transaction is committed *before* the answer goes out, so an ack
    # never covers changes that could still roll back.
    @router.post(
        base + "/batches",
        summary="接收下级节点的变更批次 (receive a child's batch)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def receive(request: Request) -> dict[str, Any]:
        """Receive a child's batch; answers with the highest contiguous applied seq per origin."""
        body = await request.body()
        return await run_in_threadpool(_receive, request, body)

    @router.post(
        base + "/pull",
        summary="下级节点拉取下行消息 (a child pulls its downward stream)",
    )
    def pull(request: Request, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        """Record the child's ack and return its next downward messages and the stream head."""
        asked = parse_pull(body)
        credential = _credential(request, asked.node)
        with database(request).session(write=True) as session:
            response = serve_pull(
                session,
                tables,
                asked,
                node=node,
                credential_secret=credential.secret_for_check(),
                child_region=credential.region,
            )
        return response.as_wire()

    @router.get(
        base + "/status",
        summary="同步链路状态 (sync status of every link)",
        dependencies=list(status_dependencies),
    )
    def status(request: Request) -> dict[str, Any]:
        """Pending count, oldest pending age, last ack, state and last error of every link."""
        with database(request).session() as session:
            links = sync_status(session, tables)
        return {
            "node": node.node_id,
            "service": node.service,
            "links": [link.as_dict() for link in links],
        }

    @router.post(
        base + "/retry",
        summary="重试死信链路 (revive dead-lettered links)",
    )
    def retry(request: Request) -> dict[str, Any]:
        """Put this node's dead-lettered links back to work, once their cause is fixed."""
        identity = get_identity(request)
        if not identity.has(Role.admin):
            raise Forbidden("需要管理员角色 (admin role required)", slug="role-required")
        identity.check_write(node.region, Role.admin)
        with database(request).session(write=True) as session:
            revived = revive(session, tables)
        for loop in ("sync_pusher", "sync_puller"):
            running = getattr(request.app.state, loop, None)
            if running is not None:
                running.wake()  # no need to wait for the next poll
        return {"node": node.node_id, "service": node.service, "revived": revived}

    return router
