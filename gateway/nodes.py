"""Node registry: children join, are approved, pick up their credential once; revoke, rotate.

Credential secrets are kept encrypted (AES-256-GCM) because the batch HMAC needs the
secret itself, not a hash of it. The key is derived from CHECKUP_INTERNAL_SECRET with
HKDF-SHA256; changing the internal secret makes every stored credential unreadable
(re-issue them with `checkup nodes rotate`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.node_models import ChildNode, NodeCredential
from shared.dbtypes import utcnow
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.identity import Identity, Role
from shared.regions import contains, is_valid_code, tier_of
from shared.settings import NodeSettings
from shared.sync import CredentialRevoked, UnknownNode

__all__ = [
    "IssuedCredential",
    "JoinIn",
    "NodeAuth",
    "add_child",
    "approve",
    "authenticate_node",
    "get_node",
    "list_nodes",
    "pickup",
    "reinstate",
    "request_join",
    "revoke",
    "rotate",
]

REQUESTED, APPROVED, REVOKED = "requested", "approved", "revoked"
_TIER_RANK = {"province": 0, "city": 1, "county": 2}
_NODE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class JoinIn(BaseModel):
    """A child's request to join this node."""

    node_id: str = Field(pattern=_NODE_ID, description="子节点标识 (child node id)")
    region_code: str = Field(min_length=6, max_length=6)
    tier: str = Field(description="province | city | county")
    name: str = Field(default="", max_length=100)


@dataclass(frozen=True)
class IssuedCredential:
    """A freshly issued secret: shown once, never again."""

    node_id: str
    region_code: str
    key_id: str
    secret: str


@dataclass(frozen=True)
class NodeAuth:
    """What the sync endpoints need about a sending child."""

    node_id: str
    region_code: str
    secrets: tuple[str, ...]


# ----------------------------------------------------------------------------- crypto


def _key(settings: NodeSettings) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"checkup-node-credentials",
        info=b"checkup-node-credential-v1",
    ).derive(settings.internal_secret.get_secret_value().encode())


def _encrypt(settings: NodeSettings, node_id: str, key_id: str, secret: str) -> bytes:
    nonce = secrets.token_bytes(12)
    # The node id and key id are bound as associated data: a ciphertext copied onto
    # another node's row does not decrypt.
    aad = f"{node_id}\n{key_id}".encode()
    return nonce + AESGCM(_key(settings)).encrypt(nonce, secret.encode(), aad)


def _decrypt(settings: NodeSettings, cred: NodeCredential) -> str:
    aad = f"{cred.node_id}\n{cred.key_id}".encode()
    blob = bytes(cred.secret_enc)
    return AESGCM(_key(settings)).decrypt(blob[:12], blob[12:], aad).decode()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ----------------------------------------------------------------------------- rules


def _require_admin(by: Identity, settings: NodeSettings) -> None:
    if not by.has(Role.admin):
        raise Forbidden("需要管理员角色 (admin role required)", slug="role-required")
    by.check_write(settings.region_code, Role.admin)


def _check_child(settings: NodeSettings, node_id: str, region: str, tier: str | None) -> str:
    """The child's tier; 422 unless its region lies inside this node's and below its tier."""
    if not is_valid_code(region) or len(region) != 6:
        raise ValidationFailed(
            f"区划代码无效 (invalid region code): {region}",
            errors=[{"field": "region_code", "message": "6-digit division code"}],
        )
    try:
        actual = tier_of(region)
    except ValueError as exc:
        raise ValidationFailed(
            f"子节点须为市级或县级区划 (a node serves a city or county): {region}",
            errors=[{"field": "region_code", "message": str(exc)}],
        ) from exc
    if tier is not None and tier != actual:
        raise ValidationFailed(
            f"层级 {tier} 与区划 {region} 不符，应为 {actual} (tier does not match the region)",
            errors=[{"field": "tier", "message": f"expected {actual}"}],
        )
    if not contains(settings.region_code, region) or (
        _TIER_RANK[actual] <= _TIER_RANK[settings.tier]
    ):
        raise ValidationFailed(
            f"子节点区划 {region} 须在本节点区划 {settings.region_code} 之下 "
            "(a child's region must lie inside this node's, at a lower tier)",
            errors=[{"field": "region_code", "message": f"not below {settings.region_code}"}],
        )
    if node_id == settings.node_id:
        raise ValidationFailed(
            "子节点标识不能与本节点相同 (a child cannot use this node's id)",
            errors=[{"field": "node_id", "message": "taken by this node"}],
        )
    return actual


def get_node(session: Session, node_id: str) -> ChildNode:
    """The registered child, or 404."""
    node = session.get(ChildNode, node_id)
    if node is None:
        raise NotFound(f"未登记的节点 (unknown node): {node_id}", slug="unknown-node")
    return node


def _issue(session: Session, settings: NodeSettings, node: ChildNode, by: str) -> IssuedCredential:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    session.add(
        NodeCredential(
            key_id=key_id,
            node_id=node.node_id,
            secret_enc=_encrypt(settings, node.node_id, key_id, secret),
            created_at=utcnow(),
            created_by=by,
        )
    )
    session.flush()
    return IssuedCredential(node.node_id, node.region_code, key_id, secret)


def _live(session: Session, node_id: str, now: datetime) -> list[NodeCredential]:
    rows = session.scalars(
        select(NodeCredential)
        .where(NodeCredential.node_id == node_id, NodeCredential.revoked_at.is_(None))
        .order_by(NodeCredential.id)
    ).all()
    return [r for r in rows if r.expires_at is None or r.expires_at > now]


# ----------------------------------------------------------------------------- operations


def request_join(
    session: Session, settings: NodeSettings, data: JoinIn, *, client: str = ""
) -> tuple[ChildNode, str]:
    """Record a join request; returns it and the one-time pickup token."""
    _check_child(settings, data.node_id, data.region_code, data.tier)
    if session.get(ChildNode, data.node_id) is not None:
        raise Conflict(
            f"节点 {data.node_id} 已登记或已申请 (node id already registered)",
            errors=[{"field": "node_id", "message": "exists"}],
            slug="node-exists",
        )
    token = secrets.token_urlsafe(24)
    node = ChildNode(
        node_id=data.node_id,
        region_code=data.region_code,
        tier=data.tier,
        name=data.name,
        state=REQUESTED,
        request_id=secrets.token_hex(16),
        pickup_token_hash=_token_hash(token),
        requested_at=utcnow(),
        requested_from=client[:64],
    )
    session.add(node)
    session.flush()
    return node, token


def approve(session: Session, settings: NodeSettings, by: Identity, node_id: str) -> ChildNode:
    """The parent admin approves a join request; the credential waits for its pickup."""
    _require_admin(by, settings)
    node = get_node(session, node_id)
    if node.state != REQUESTED:
        raise Conflict(
            f"节点 {node_id} 状态为 {node.state}，不能批准 (only requested nodes can be approved)",
            slug="invalid-state",
        )
    _check_child(settings, node.node_id, node.region_code, node.tier)
    node.state = APPROVED
    node.decided_by = by.subject
    node.decided_at = utcnow()
    _issue(session, settings, node, by.subject)
    return node


def add_child(
    session: Session,
    settings: NodeSettings,
    *,
    node_id: str,
    region_code: str,
    name: str = "",
    by: str,
) -> IssuedCredential:
    """Register and approve a child directly (scripts); returns its credential."""
    tier = _check_child(settings, node_id, region_code, None)
    if session.get(ChildNode, node_id) is not None:
        raise Conflict(
            f"节点 {node_id} 已登记 (node id already registered)",
            errors=[{"field": "node_id", "message": "exists"}],
            slug="node-exists",
        )
    now = utcnow()
    node = ChildNode(
        node_id=node_id,
        region_code=region_code,
        tier=tier,
        name=name,
        state=APPROVED,
        request_id=secrets.token_hex(16),
        requested_at=now,
        decided_by=by,
        decided_at=now,
        picked_up_at=now,
    )
    session.add(node)
    session.flush()
    return _issue(session, settings, node, by)


def pickup(
    session: Session, settings: NodeSettings, request_id: str, token: str
) -> IssuedCredential | ChildNode:
    """The credential, once, for the holder of the pickup token (the node while still pending)."""
    node = session.scalars(select(ChildNode).where(ChildNode.request_id == request_id)).first()
    if (
        node is None
        or node.pickup_token_hash is None
        or not hmac.compare_digest(node.pickup_token_hash, _token_hash(token))
    ):
        # Same answer for an unknown request, a wrong token and a used one: nothing to probe.
        raise NotFound(
            "申请不存在、令牌错误或凭据已领取 (unknown request, wrong token or already picked up)",
            slug="unknown-join-request",
        )
    if node.state != APPROVED:
        return node
    live = _live(session, node.node_id, utcnow())
    node.pickup_token_hash = None
    node.picked_up_at = utcnow()
    session.flush()
    cred = live[-1]
    return IssuedCredential(node.node_id, node.region_code, cred.key_id, _decrypt(settings, cred))


def revoke(
    session: Session, settings: NodeSettings, by: Identity, node_id: str, reason: str = ""
) -> ChildNode:
    """Revoke a child: every secret stops verifying at once; its batches are refused (401)."""
    _require_admin(by, settings)
    node = get_node(session, node_id)
    now = utcnow()
    node.state = REVOKED
    node.revoked_by = by.subject
    node.revoked_at = now
    node.revoke_reason = reason[:200] or None
    node.pickup_token_hash = None
    for cred in _live(session, node_id, now):
        cred.revoked_at = now
        cred.revoked_by = by.subject
    session.flush()
    return node


def reinstate(
    session: Session, settings: NodeSettings, by: Identity, node_id: str
) -> IssuedCredential:
    """Re-admit a revoked child with a new secret (returned once); the revoked ones stay
    revoked. The revocation and the re-admission remain in the audit log."""
    _require_admin(by, settings)
    node = get_node(session, node_id)
    if node.state != REVOKED:
        raise Conflict(
            f"节点 {node_id} 状态为 {node.state}，无需恢复 (only revoked nodes are reinstated)",
            slug="invalid-state",
        )
    _check_child(settings, node.node_id, node.region_code, node.tier)
    node.state = APPROVED
    node.decided_by = by.subject
    node.decided_at = utcnow()
    node.picked_up_at = node.decided_at
    node.revoked_by = None
    node.revoked_at = None
    node.revoke_reason = None
    return _issue(session, settings, node, by.subject)


def rotate(
    session: Session, settings: NodeSettings, by: Identity, node_id: str
) -> IssuedCredential:
    """Issue a new secret; the old ones keep verifying for the grace period, then expire."""
    _require_admin(by, settings)
    node = get_node(session, node_id)
    if node.state != APPROVED:
        raise Conflict(
            f"节点 {node_id} 状态为 {node.state}，不能轮换凭据 (only approved nodes rotate)",
            slug="invalid-state",
        )
    now = utcnow()
    until = now + timedelta(hours=settings.credential_grace_hours)
    for cred in _live(session, node_id, now):
        if cred.expires_at is None or cred.expires_at > until:
            cred.expires_at = until
    return _issue(session, settings, node, by.subject)


def list_nodes(session: Session, settings: NodeSettings, by: Identity) -> list[ChildNode]:
    """Every child registered here (admins of this node)."""
    _require_admin(by, settings)
    return list(session.scalars(select(ChildNode).order_by(ChildNode.node_id)).all())


def authenticate_node(session: Session, settings: NodeSettings, node_id: str) -> NodeAuth:
    """The child's region and valid secrets; 401 if unknown, revoked or without a secret."""
    node = session.get(ChildNode, node_id)
    if node is None or node.state == REQUESTED:
        raise UnknownNode(f"节点 {node_id} 未在本节点登记或未获批准 (unknown or unapproved node)")
    if node.state == REVOKED:
        raise CredentialRevoked(
            f"节点 {node_id} 的凭据已被吊销 (credential revoked)"
            + (f": {node.revoke_reason}" if node.revoke_reason else "")
        )
    live = _live(session, node_id, utcnow())
    if not live:
        raise CredentialRevoked(f"节点 {node_id} 没有有效凭据 (no valid credential)")
    return NodeAuth(
        node.node_id, node.region_code, tuple(_decrypt(settings, c) for c in reversed(live))
    )
