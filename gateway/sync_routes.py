"""The gateway's federation API: the node registry and the sync endpoints children call.

Sync requests carry no user credential: the gateway authenticates the node credential
(HMAC over the batch or pull request), then forwards to the service's internal sync
router with a node identity bound to the child's id and region.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, cast

import httpx
from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from gateway import nodes
from gateway.router import Runtime
from gateway.runtime import SERVICE_NAMES, GatewayRuntime
from shared.db import DbSession
from shared.errors import Forbidden, NotFound
from shared.identity import CurrentIdentity, Identity, Role
from shared.settings import ServiceName
from shared.sync import (
    INTERNAL_BASE,
    parse_batch,
    parse_pull,
    sign_batch,
    verify_batch_mac,
    verify_pull_mac,
)
from shared.sync.wire import BATCH_HEADER, parse_batch_header, parse_pull_response

__all__ = ["nodes_router", "service_client", "sync_router"]

nodes_router = APIRouter(prefix="/api/v1/nodes", tags=["nodes 节点登记"])
sync_router = APIRouter(prefix="/api/v1/sync", tags=["sync 三级联动同步"])


class JoinOut(BaseModel):
    """The join request's id and the one-time token to pick the credential up with."""

    request_id: str
    pickup_token: str
    state: str


class NodeOut(BaseModel):
    """A registered child node."""

    node_id: str
    region_code: str
    tier: str
    name: str
    state: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    picked_up_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str | None

    model_config = {"from_attributes": True}


class CredentialOut(BaseModel):
    """A node credential, shown once."""

    node_id: str
    region_code: str
    key_id: str
    secret: str


class PickupPending(BaseModel):
    """The join request is still waiting for the parent's approval."""

    node_id: str
    state: str


class RevokeIn(BaseModel):
    """Why a node is revoked (shown to the child in its dead-letter reason)."""

    reason: str = ""


# ----------------------------------------------------------------------------- registry


@nodes_router.post("/join", response_model=JoinOut, status_code=202, summary="申请加入")
def join(body: nodes.JoinIn, request: Request, session: DbSession, rt: Runtime) -> JoinOut:
    """A child asks to join this node (anonymous); the parent's admin approves it."""
    request.state.audit_actor = body.node_id
    request.state.audit_actor_kind = "node"
    client = request.client.host if request.client else ""
    node, token = nodes.request_join(session, rt.settings, body, client=client)
    return JoinOut(request_id=node.request_id, pickup_token=token, state=node.state)


@nodes_router.get(
    "/join/{request_id}",
    response_model=CredentialOut | PickupPending,
    summary="领取节点凭据 (pick up the credential)",
)
def pick_up(
    request_id: str,
    session: DbSession,
    rt: Runtime,
    token: Annotated[str, Query(min_length=8)],
) -> CredentialOut | PickupPending:
    """The credential, once, after approval; before it, the request's state."""
    got = nodes.pickup(session, rt.settings, request_id, token)
    if isinstance(got, nodes.IssuedCredential):
        return CredentialOut(
            node_id=got.node_id, region_code=got.region_code, key_id=got.key_id, secret=got.secret
        )
    return PickupPending(node_id=got.node_id, state=got.state)


@nodes_router.get("", response_model=list[NodeOut], summary="子节点列表 (child nodes)")
def list_children(session: DbSession, rt: Runtime, identity: CurrentIdentity) -> list[NodeOut]:
    """Every child node registered here."""
    return [NodeOut.model_validate(n) for n in nodes.list_nodes(session, rt.settings, identity)]


@nodes_router.post("/{node_id}/approve", response_model=NodeOut, summary="批准加入 (approve)")
def approve(node_id: str, session: DbSession, rt: Runtime, identity: CurrentIdentity) -> NodeOut:
    """Approve a child's join request."""
    return NodeOut.model_validate(nodes.approve(session, rt.settings, identity, node_id))


@nodes_router.post("/{node_id}/revoke", response_model=NodeOut, summary="吊销节点 (revoke)")
def revoke(
    node_id: str, body: RevokeIn, session: DbSession, rt: Runtime, identity: CurrentIdentity
) -> NodeOut:
    """Revoke a child: its batches and pulls are refused from now on."""
    return NodeOut.model_validate(
        nodes.revoke(session, rt.settings, identity, node_id, body.reason)
    )


@nodes_router.post(
    "/{node_id}/reinstate",
    response_model=CredentialOut,
    summary="恢复已吊销的节点 (re-admit a revoked node)",
)
def reinstate(
    node_id: str, session: DbSession, rt: Runtime, identity: CurrentIdentity
) -> CredentialOut:
    """Re-admit a revoked child with a new secret (shown once); its old secrets stay revoked."""
    got = nodes.reinstate(session, rt.settings, identity, node_id)
    return CredentialOut(
        node_id=got.node_id, region_code=got.region_code, key_id=got.key_id, secret=got.secret
    )


@nodes_router.post(
    "/{node_id}/rotate", response_model=CredentialOut, summary="轮换凭据 (rotate the credential)"
)
def rotate(
    node_id: str, session: DbSession, rt: Runtime, identity: CurrentIdentity
) -> CredentialOut:
    """A new secret for the child; the old one stays valid for the grace period."""
    got = nodes.rotate(session, rt.settings, identity, node_id)
    return CredentialOut(
        node_id=got.node_id, region_code=got.region_code, key_id=got.key_id, secret=got.secret
    )


# ----------------------------------------------------------------------------- forwarding


def service_client(rt: GatewayRuntime, service: str, identity: Identity) -> httpx.AsyncClient:
    """A client for one of this node's services (in-process or over HTTP) acting as ``identity``."""
    if service not in SERVICE_NAMES:
        raise NotFound(f"没有此服务 (no such service): {service}", slug="unknown-service")
    return rt.peers.client(cast(ServiceName, service), identity)


def _node_identity(auth: nodes.NodeAuth) -> Identity:
    return Identity(
        subject=f"node:{auth.node_id}",
        kind="node",
        roles=frozenset({Role.node}),
        region=auth.region_code,
        name=auth.node_id,
        node=auth.node_id,
    )


def _authenticate(rt: GatewayRuntime, node_id: str) -> nodes.NodeAuth:
    with rt.database().session() as session:
        return nodes.authenticate_node(session, rt.settings, node_id)


def _relay(upstream: httpx.Response) -> Response:
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
    )


def _audit_node(request: Request, node_id: str, region: str, detail: dict[str, Any]) -> None:
    request.state.audit_actor = f"node:{node_id}"
    request.state.audit_actor_kind = "node"
    request.state.audit_region = region
    request.state.audit_detail = detail


@sync_router.post("/{service}/batches", summary="接收下级节点的变更批次 (a child's batch)")
async def receive_batch(service: str, request: Request, rt: Runtime) -> Response:
    """Authenticate the sending node's credential and MAC, then hand the batch to the service."""
    body = await request.body()
    # The header is enough for the credential and the MAC; the service checks the changes
    # and the digest over them, and that the body is the batch verified here. Senders
    # repeat the header in BATCH_HEADER, which spares parsing thousands of changes twice.
    sent_header = request.headers.get(BATCH_HEADER)
    if sent_header is not None:
        batch = parse_batch_header(sent_header)
    else:
        batch = parse_batch(body, header_only=True)
    request.state.audit_actor = f"node:{batch.sender}"
    request.state.audit_actor_kind = "node"
    auth = await to_thread.run_sync(_authenticate, rt, batch.sender)
    verify_batch_mac(batch, auth.secrets)
    async with service_client(rt, service, _node_identity(auth)) as client:
        upstream = await client.post(
            f"{INTERNAL_BASE}/batches",
            content=body,
            headers={"content-type": "application/json", BATCH_HEADER: batch.encode_header()},
        )
    detail: dict[str, Any] = {"batch_id": batch.batch_id, "service": service}
    if upstream.status_code == 200:
        answer = upstream.json()
        detail.update({k: answer.get(k) for k in ("applied", "duplicates", "held")})
    _audit_node(request, auth.node_id, auth.region_code, detail)
    return _relay(upstream)


@sync_router.post("/{service}/pull", summary="下级节点拉取下行消息 (a child pulls)")
async def pull(service: str, request: Request, rt: Runtime) -> Response:
    """Authenticate the pull, let the service answer, sign the answer with the child's secret."""
    body = await request.body()
    asked = parse_pull(body)
    request.state.audit_actor = f"node:{asked.node}"
    request.state.audit_actor_kind = "node"
    auth = await to_thread.run_sync(_authenticate, rt, asked.node)
    secret = verify_pull_mac(asked, auth.secrets)
    async with service_client(rt, service, _node_identity(auth)) as client:
        upstream = await client.post(
            f"{INTERNAL_BASE}/pull", content=body, headers={"content-type": "application/json"}
        )
    _audit_node(
        request, auth.node_id, auth.region_code, {"stream": asked.stream, "after": asked.after}
    )
    if upstream.status_code != 200:
        return _relay(upstream)
    answer = parse_pull_response(upstream.content)
    signed = sign_batch(answer.batch, secret)
    return Response(
        json.dumps({"head": answer.head, "batch": signed.as_wire()}, ensure_ascii=False),
        media_type="application/json",
    )


def _require_admin(identity: Identity) -> None:
    if not identity.has(Role.admin):
        raise Forbidden("需要管理员角色 (admin role required)", slug="role-required")


async def _each_service(
    rt: GatewayRuntime, identity: Identity, method: str, path: str, only: str | None = None
) -> dict[str, Any]:
    """Ask every federated service of this node (``only`` one of them) at ``path``; a service
    without the internal sync router (404) is left out, an unreachable one reported."""
    if only is not None and only not in SERVICE_NAMES:
        raise NotFound(f"没有此服务 (no such service): {only}", slug="unknown-service")
    services: dict[str, Any] = {}
    for name in SERVICE_NAMES:
        if only is not None and name != only:
            continue
        if name not in rt.inprocess and not rt.settings.service_url(name):
            continue
        try:
            async with service_client(rt, name, identity) as client:
                answer = await client.request(method, path)
        except httpx.HTTPError as exc:
            services[name] = {"error": f"服务不可达 (unreachable): {exc}"}
            continue
        if answer.status_code == 404:
            continue  # this service does not take part in federation yet
        services[name] = (
            answer.json()
            if answer.status_code == 200
            else {"error": f"HTTP {answer.status_code}: {answer.text[:200]}"}
        )
    return services


@sync_router.get("/status", summary="同步链路状态 (sync status of every link)")
async def status(rt: Runtime, identity: CurrentIdentity) -> dict[str, Any]:
    """Every service's links: pending, oldest pending age, last ack, state, last error."""
    _require_admin(identity)
    services = await _each_service(rt, identity, "GET", f"{INTERNAL_BASE}/status")
    return {
        "node": rt.settings.node_id,
        "region_code": rt.settings.region_code,
        "parent_url": rt.settings.parent_url,
        "services": services,
    }


@sync_router.post("/retry", summary="重试死信链路 (revive dead-lettered links)")
async def retry(
    request: Request,
    rt: Runtime,
    identity: CurrentIdentity,
    service: Annotated[str | None, Query(description="仅此服务 (only this service)")] = None,
) -> dict[str, Any]:
    """Put this node's dead-lettered links back to work once the cause is fixed (a new
    credential, a corrected system): every federated service, or one."""
    _require_admin(identity)
    services = await _each_service(rt, identity, "POST", f"{INTERNAL_BASE}/retry", service)
    request.state.audit_detail = {
        "revived": {name: doc.get("revived") for name, doc in services.items()}
    }
    return {"node": rt.settings.node_id, "services": services}
