"""Tables of the node registry: child nodes of this node and their credentials."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models import Base
from shared.dbtypes import UtcDateTime, utcnow

__all__ = ["ChildNode", "NodeCredential"]


class ChildNode(Base):
    """A child node (city or county installation) that asked to join or was registered here."""

    __tablename__ = "nodes"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), index=True)
    tier: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100), default="")
    # requested → approved → revoked; a refused request is revoked without ever approving.
    state: Mapped[str] = mapped_column(String(16), default="requested")
    request_id: Mapped[str] = mapped_column(String(32), unique=True)
    # SHA-256 of the one-time pickup token; cleared once the credential is picked up.
    pickup_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    requested_from: Mapped[str] = mapped_column(String(64), default="")
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    picked_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class NodeCredential(Base):
    """One secret of a child node, encrypted at rest (the HMAC needs the secret itself)."""

    __tablename__ = "node_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    node_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("nodes.node_id", ondelete="CASCADE"), index=True
    )
    # AES-256-GCM nonce + ciphertext, key derived from CHECKUP_INTERNAL_SECRET (HKDF).
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    # Set when a rotation replaces this secret: valid until then (grace period).
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
