"""Why a batch or pull was refused: each reason a problem+json type of its own."""

from __future__ import annotations

from shared.errors import Conflict, Forbidden, Unauthorized, ValidationFailed

__all__ = [
    "AckAhead",
    "BadSignature",
    "ClockSkew",
    "CredentialRevoked",
    "DigestMismatch",
    "MalformedBatch",
    "OriginConflict",
    "OutOfScope",
    "ReplayedBatch",
    "UnknownNode",
]


class MalformedBatch(ValidationFailed):
    slug = "sync-malformed"
    title = "同步批次格式错误 (malformed sync batch)"


class DigestMismatch(ValidationFailed):
    slug = "sync-digest-mismatch"
    title = "同步批次摘要不符 (batch digest mismatch)"


class BadSignature(Unauthorized):
    slug = "sync-bad-signature"
    title = "同步批次签名无效 (bad batch signature)"


class ClockSkew(Unauthorized):
    slug = "sync-clock-skew"
    title = "同步批次时间戳超出允许范围 (batch timestamp outside the skew window)"


class UnknownNode(Unauthorized):
    slug = "sync-unknown-node"
    title = "未登记的节点 (unknown node)"


class CredentialRevoked(Unauthorized):
    slug = "sync-credential-revoked"
    title = "节点凭据已吊销 (node credential revoked)"


class OutOfScope(Forbidden):
    slug = "sync-out-of-scope"
    title = "数据超出下级节点的区划范围 (change outside the sending node's region)"


class ReplayedBatch(Conflict):
    slug = "sync-replayed-batch"
    title = "批次编号重复且内容不同 (batch id replayed with different content)"


class OriginConflict(Conflict):
    slug = "sync-origin-conflict"
    title = "来源节点与已登记区划不符 (origin bound to another region)"


class AckAhead(Conflict):
    slug = "sync-ack-ahead"
    title = "确认序号超过已发送的最大序号 (acknowledged beyond what was sent)"
