"""The sync wire format: changes, batches, pull requests, their digest and HMAC."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import attrgetter
from typing import Annotated, Any

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

from shared.regions import is_valid_code
from shared.sync.errors import BadSignature, ClockSkew, DigestMismatch, MalformedBatch
from shared.sync.tables import ENTITY_LEN, KEY_LEN, NODE_LEN, OP_LEN

__all__ = [
    "BATCH_HEADER",
    "BROADCAST",
    "DEFAULT_MAX_SKEW_S",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_CHANGES",
    "PROTOCOL",
    "Batch",
    "Change",
    "PullRequest",
    "PullResponse",
    "batch_digest",
    "batch_mac",
    "build_batch",
    "build_pull",
    "canonical_changes",
    "canonical_json",
    "down_batch_id",
    "down_batch_prefix",
    "encode_signed",
    "parse_batch",
    "parse_batch_header",
    "parse_pull",
    "parse_pull_response",
    "sign_batch",
    "verify_batch_mac",
    "verify_digest",
    "verify_pull_mac",
    "wire_change",
]

PROTOCOL = "checkup-sync-v1"
# HTTP header repeating a pushed batch's header (every field but the changes), so that the
# parent's gateway checks the credential and the MAC without parsing the changes; the
# service then takes the batch only if its body carries the same id, digest and timestamp.
BATCH_HEADER = "x-checkup-batch"
BROADCAST = "*"  # the downward stream every child pulls (catalog releases)
MAX_BATCH_CHANGES = 10_000
# What a pusher puts in one batch at most, beyond its first change or relayed run: well
# under a receiving gateway's body limit (``max_body_bytes``, 64 MiB by default).
MAX_BATCH_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_SKEW_S = 300.0
MAX_SEQ = 2**63 - 1  # seqs are stored as BIGINT

_NODE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_ENTITY = r"^[a-z][a-z0-9_.]*$"
_OP = r"^[a-z_]+$"
_STREAM = r"^(\*|[A-Za-z0-9][A-Za-z0-9_.:-]*)$"


class Change(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One recorded change: which origin stream and seq, what entity and key, what happened.

    A struct that a batch's body decodes into directly (``_decode_changes``); the bounds
    below are checked there, and the patterns of ``_ChangeIn`` once per distinct value.
    """

    origin: Annotated[str, msgspec.Meta(min_length=1, max_length=NODE_LEN)]
    seq: Annotated[int, msgspec.Meta(ge=1, le=MAX_SEQ)]
    entity: Annotated[str, msgspec.Meta(min_length=1, max_length=ENTITY_LEN)]
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=KEY_LEN)]
    op: Annotated[str, msgspec.Meta(min_length=1, max_length=OP_LEN)]
    payload: dict[str, Any]

    def as_wire(self) -> dict[str, Any]:
        return wire_change(self.origin, self.seq, self.entity, self.key, self.op, self.payload)


def wire_change(
    origin: str, seq: int, entity: str, key: str, op: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """A change as a batch carries it (``canonical_json`` of a list of them is the relay's
    and the digest's form); also built straight from outbox rows, without a ``Change``."""
    return {
        "origin": origin,
        "seq": seq,
        "entity": entity,
        "key": key,
        "op": op,
        "payload": payload,
    }


@dataclass(frozen=True)
class Batch:
    """A signed, digested set of changes from one node to another."""

    batch_id: str
    sender: str
    service: str
    timestamp: str
    origins: dict[str, str]
    changes: list[Change]
    digest: str
    mac: str | None = None
    # The changes exactly as they came in the body (``parse_batch`` of bytes written as a
    # pusher writes them): the digest is checked over these bytes first, and a relay keeps
    # them as they are.
    changes_json: bytes | None = field(default=None, compare=False, repr=False)

    def header(self) -> dict[str, Any]:
        """Every field but the changes."""
        return {
            "batch_id": self.batch_id,
            "sender": self.sender,
            "service": self.service,
            "timestamp": self.timestamp,
            "origins": self.origins,
            "digest": self.digest,
            "mac": self.mac,
        }

    def as_wire(self) -> dict[str, Any]:
        return {**self.header(), "changes": [c.as_wire() for c in self.changes]}

    def encode(self) -> bytes:
        return _with_changes(orjson.dumps(self.header()), canonical_changes(self.changes))

    def encode_header(self) -> str:
        """The BATCH_HEADER value: the batch without its changes, as compact JSON."""
        return orjson.dumps(self.header()).decode()

    def signed_fields(self) -> tuple[str, str, str]:
        """What the MAC covers besides the protocol: id, digest, timestamp."""
        return (self.batch_id, self.digest, self.timestamp)


@dataclass(frozen=True)
class PullRequest:
    """A child asking its parent for the downward stream after the seq it has applied."""

    node: str
    service: str
    stream: str
    after: int
    limit: int
    timestamp: str
    mac: str | None = None

    def as_wire(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "service": self.service,
            "stream": self.stream,
            "after": self.after,
            "limit": self.limit,
            "timestamp": self.timestamp,
            "mac": self.mac,
        }

    def encode(self) -> bytes:
        return json.dumps(self.as_wire(), separators=(",", ":")).encode()


@dataclass(frozen=True)
class PullResponse:
    """The next changes of a downward stream and the stream's head seq at the parent."""

    head: int
    batch: Batch

    def as_wire(self) -> dict[str, Any]:
        return {"head": self.head, "batch": self.batch.as_wire()}


# --- parsing ------------------------------------------------------------------------------


class _ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origin: StrictStr = Field(min_length=1, max_length=NODE_LEN, pattern=_NODE)
    seq: StrictInt = Field(ge=1, le=MAX_SEQ)
    entity: StrictStr = Field(min_length=1, max_length=ENTITY_LEN, pattern=_ENTITY)
    key: StrictStr = Field(min_length=1, max_length=KEY_LEN)
    op: StrictStr = Field(min_length=1, max_length=OP_LEN, pattern=_OP)
    payload: dict[str, Any]


class _BatchIn(BaseModel):
    """The batch's header; ``changes`` are checked by ``_changes`` (same rules as
    ``_ChangeIn``, without building a model per change: a batch holds thousands)."""

    model_config = ConfigDict(extra="forbid")

    batch_id: StrictStr = Field(min_length=8, max_length=NODE_LEN, pattern=_NODE)
    sender: StrictStr = Field(min_length=1, max_length=NODE_LEN, pattern=_NODE)
    service: StrictStr = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    timestamp: StrictStr = Field(min_length=10, max_length=40)
    origins: dict[StrictStr, StrictStr]
    changes: list[Any] = Field(max_length=MAX_BATCH_CHANGES)
    digest: StrictStr = Field(pattern=r"^[0-9a-f]{64}$")
    mac: StrictStr | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


_CHANGE_FIELDS = frozenset(_ChangeIn.model_fields)


def _changes(items: list[Any]) -> list[Change]:
    """Check each change as ``_ChangeIn`` would and build it; 422 names the rows.

    The common case (well-formed, a few distinct origins, entities and ops) is checked
    with plain comparisons and cached strings; anything unusual is handed to ``_ChangeIn``
    itself so that the errors read the same.
    """
    ok_strings: set[tuple[str, str]] = set()
    out: list[Change] = []
    errors: list[dict[str, Any]] = []
    for row, item in enumerate(items):
        if (
            type(item) is dict
            and item.keys() == _CHANGE_FIELDS
            and type(seq := item["seq"]) is int
            and 1 <= seq <= MAX_SEQ
            and type(key := item["key"]) is str
            and 1 <= len(key) <= KEY_LEN
            and type(payload := item["payload"]) is dict
            and ("o", item["origin"]) in ok_strings
            and ("e", item["entity"]) in ok_strings
            and ("p", item["op"]) in ok_strings
        ):
            out.append(Change(item["origin"], seq, item["entity"], key, item["op"], payload))
            continue
        try:
            c = _ChangeIn.model_validate(item)
        except PydanticValidationError as exc:
            for err in exc.errors()[:10]:
                errors.append(
                    {
                        "row": row,
                        "field": ".".join(["changes", str(row), *map(str, err.get("loc", ()))]),
                        "message": err.get("msg", ""),
                    }
                )
            if len(errors) >= 50:
                break
            continue
        ok_strings.update((("o", c.origin), ("e", c.entity), ("p", c.op)))
        out.append(Change(c.origin, c.seq, c.entity, c.key, c.op, c.payload))
    if errors:
        raise MalformedBatch(
            f"同步批次格式错误，共 {len(errors)} 处 (malformed batch)", errors=errors[:50]
        )
    return out


class _PullIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: StrictStr = Field(min_length=1, max_length=NODE_LEN, pattern=_NODE)
    service: StrictStr = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    stream: StrictStr = Field(min_length=1, max_length=NODE_LEN, pattern=_STREAM)
    after: StrictInt = Field(ge=0)
    limit: StrictInt = Field(ge=1, le=MAX_BATCH_CHANGES)
    timestamp: StrictStr = Field(min_length=10, max_length=40)
    mac: StrictStr | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


def _problems(exc: PydanticValidationError) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for err in exc.errors()[:50]:
        loc = err.get("loc", ())
        item: dict[str, Any] = {
            "field": ".".join(str(p) for p in loc),
            "message": err.get("msg", ""),
        }
        if len(loc) >= 2 and loc[0] == "changes" and isinstance(loc[1], int):
            item["row"] = loc[1]
        out.append(item)
    return out


def _load(body: Mapping[str, Any] | bytes | str) -> Any:
    if isinstance(body, bytes | str):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedBatch(f"请求体不是有效的 JSON (body is not valid JSON): {exc}") from exc
    return body


_CHANGES_KEY = b',"changes":['


_DECODE_CHANGES = msgspec.json.Decoder(list[Change])
# The patterns of ``_ChangeIn``, matched whole (``fullmatch``: a ``$`` before a final
# newline does not pass, as in pydantic's own matching).
_KIND_PATTERNS = (re.compile(_NODE), re.compile(_ENTITY), re.compile(_OP))
# A change's (origin, entity, op): a batch names few distinct ones, checked once each.
change_kind = attrgetter("origin", "entity", "op")


def _decode_changes(changes_json: bytes) -> list[Change] | None:
    """A batch's changes decoded straight into ``Change`` structs, if every one is
    well-formed as ``_ChangeIn`` has it (a fifth of the time of JSON objects checked one
    by one); None for anything else, which the caller then parses the thorough way, so
    that an error names its row exactly as before."""
    try:
        changes = _DECODE_CHANGES.decode(changes_json)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    node, entity, op = _KIND_PATTERNS
    for o, e, p in set(map(change_kind, changes)):
        if not (node.fullmatch(o) and entity.fullmatch(e) and op.fullmatch(p)):
            return None
    return changes


def _split(body: bytes) -> tuple[dict[str, Any], list[Any], bytes, bool] | None:
    """(header, changes, the changes' bytes, whether the changes are ``Change`` structs
    already) of a body laid out as ``encode_signed`` writes it: the header's object with
    ``changes`` added last. None for any other layout (it is then parsed whole). A JSON
    string cannot hold an unescaped quote, so the first ``,"changes":[`` is a key; if it
    is not the top level's, the header part does not parse as an object and the body is
    parsed whole."""
    at = body.find(_CHANGES_KEY)
    if at < 0 or not body.endswith(b"]}"):
        return None
    changes_json = body[at + len(_CHANGES_KEY) - 1 : -1]
    try:
        header = orjson.loads(body[:at] + b"}")
    except orjson.JSONDecodeError:
        return None
    if type(header) is not dict or "changes" in header:
        return None
    decoded = _decode_changes(changes_json)
    if decoded is not None:
        return header, decoded, changes_json, True
    try:
        changes = orjson.loads(changes_json)
    except orjson.JSONDecodeError:
        return None
    if type(changes) is not list:
        return None
    return header, changes, changes_json, False


def parse_batch(body: Mapping[str, Any] | bytes | str, *, header_only: bool = False) -> Batch:
    """Check a batch's shape (every change, every field) and return it; 422 names the rows.

    ``header_only``: check and return the header alone (no changes), enough to verify the
    MAC (the gateway's part; the service checks the whole batch and its digest).
    """
    split = None if header_only or not isinstance(body, bytes) else _split(body)
    data = _load(body) if split is None else {**split[0], "changes": split[1]}
    try:
        raw = _BatchIn.model_validate(data)
    except PydanticValidationError as exc:
        errors = _problems(exc)
        raise MalformedBatch(
            f"同步批次格式错误，共 {exc.error_count()} 处 (malformed batch)", errors=errors
        ) from exc
    bad_regions = [
        {"field": f"origins.{o}", "message": f"不是有效的区划代码 (not a division code): {r}"}
        for o, r in raw.origins.items()
        if not is_valid_code(r)
    ]
    if bad_regions:
        raise MalformedBatch("来源区划代码无效 (invalid origin region)", errors=bad_regions)
    if header_only:
        changes = []
    elif split is not None and split[3]:
        changes = raw.changes
    else:
        changes = _changes(raw.changes)
    return Batch(
        batch_id=raw.batch_id,
        sender=raw.sender,
        service=raw.service,
        timestamp=raw.timestamp,
        origins=dict(raw.origins),
        changes=changes,
        digest=raw.digest,
        mac=raw.mac,
        changes_json=None if split is None else split[2],
    )


def parse_batch_header(value: bytes | str) -> Batch:
    """A batch's header from BATCH_HEADER (a Batch without changes); 422 if malformed."""
    data = _load(value)
    if not isinstance(data, dict) or "changes" in data:
        raise MalformedBatch(
            f"{BATCH_HEADER} 须为不含 changes 的 JSON 对象 (must be a JSON object without changes)"
        )
    return parse_batch({**data, "changes": []}, header_only=True)


def parse_pull(body: Mapping[str, Any] | bytes | str) -> PullRequest:
    """Check a pull request's shape and return it."""
    try:
        raw = _PullIn.model_validate(_load(body))
    except PydanticValidationError as exc:
        raise MalformedBatch(
            "拉取请求格式错误 (malformed pull request)", errors=_problems(exc)
        ) from exc
    return PullRequest(**raw.model_dump())


def parse_pull_response(body: Mapping[str, Any] | bytes | str) -> PullResponse:
    """Check a parent's answer to a pull and return it."""
    data = _load(body)
    head = data.get("head") if isinstance(data, Mapping) else None
    if not isinstance(head, int) or isinstance(head, bool) or head < 0:
        raise MalformedBatch("拉取响应缺少 head (pull response without head)")
    return PullResponse(head=head, batch=parse_batch(data.get("batch") or {}))


# --- digest and MAC -----------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace: the bytes the digest is taken over.

    Numbers in their shortest round-trip form (``1e16``, ``1e-5``). Keys sort by code
    point; every key of the protocol and the services' payloads is ASCII.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        # Only a received payload can get here (a number JSON allows and 64 bits do not
        # hold, say): a clear refusal, not a server error.
        raise MalformedBatch(
            f"数据无法按规范编码 (cannot be encoded as canonical JSON): {exc}"
        ) from exc


def canonical_changes(changes: Iterable[Change]) -> bytes:
    """The canonical JSON of a list of changes (what a relay keeps and a batch carries)."""
    return canonical_json([c.as_wire() for c in changes])


def batch_digest(
    sender: str, service: str, origins: Mapping[str, str], changes: Iterable[Change]
) -> str:
    """SHA-256 (hex) over the canonical JSON of the batch content."""
    return _content_digest(sender, service, origins, canonical_changes(changes))


def _content_digest(
    sender: str, service: str, origins: Mapping[str, str], changes_json: bytes
) -> str:
    """``batch_digest`` from the changes' canonical JSON: the canonical JSON of
    ``{"changes", "origins", "sender", "service"}`` (keys in that order) hashed piecewise."""
    digest = hashlib.sha256(b'{"changes":')
    digest.update(changes_json)
    digest.update(b',"origins":' + canonical_json(dict(origins)))
    digest.update(b',"sender":' + canonical_json(sender))
    digest.update(b',"service":' + canonical_json(service) + b"}")
    return digest.hexdigest()


def _with_changes(header: bytes, changes_json: bytes) -> bytes:
    """A batch's body: its header's JSON object with ``changes`` added last."""
    return header[:-1] + b',"changes":' + changes_json + b"}"


def _mac(secret: str, *parts: object) -> str:
    message = "\n".join(str(p) for p in parts).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def batch_mac(secret: str, batch_id: str, digest: str, timestamp: str) -> str:
    """HMAC-SHA256 (hex) over (protocol, batch id, digest, timestamp)."""
    return _mac(secret, PROTOCOL, batch_id, digest, timestamp)


def _pull_mac(secret: str, pull: PullRequest) -> str:
    return _mac(
        secret,
        PROTOCOL + "-pull",
        pull.node,
        pull.service,
        pull.stream,
        pull.after,
        pull.limit,
        pull.timestamp,
    )


def _timestamp(now: datetime | None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def build_batch(
    *,
    sender: str,
    service: str,
    origins: Mapping[str, str],
    changes: Sequence[Change],
    secret: str | None,
    batch_id: str | None = None,
    now: datetime | None = None,
) -> Batch:
    """A batch with its digest, signed with the node credential secret (unsigned if None)."""
    signed = _signed(sender, service, origins, canonical_changes(changes), secret, batch_id, now)
    return replace(signed, changes=list(changes))


def encode_signed(
    *,
    sender: str,
    service: str,
    origins: Mapping[str, str],
    changes_json: bytes,
    secret: str | None,
    batch_id: str | None = None,
    now: datetime | None = None,
) -> tuple[bytes, str]:
    """(body, BATCH_HEADER) of a signed batch whose changes are given as canonical JSON
    (``canonical_changes``): digested and sent as they are, never parsed or re-encoded."""
    header = orjson.dumps(
        _signed(sender, service, origins, changes_json, secret, batch_id, now).header()
    )
    return _with_changes(header, changes_json), header.decode()


def _signed(
    sender: str,
    service: str,
    origins: Mapping[str, str],
    changes_json: bytes,
    secret: str | None,
    batch_id: str | None,
    now: datetime | None,
) -> Batch:
    """The header of a batch of ``changes_json`` (a Batch without its changes), signed."""
    batch_id = batch_id or uuid.uuid4().hex
    timestamp = _timestamp(now)
    digest = _content_digest(sender, service, origins, changes_json)
    mac = batch_mac(secret, batch_id, digest, timestamp) if secret is not None else None
    return Batch(batch_id, sender, service, timestamp, dict(origins), [], digest, mac)


def build_pull(
    *,
    node: str,
    service: str,
    stream: str,
    after: int,
    limit: int,
    secret: str,
    now: datetime | None = None,
) -> PullRequest:
    """A signed pull request."""
    unsigned = PullRequest(node, service, stream, after, limit, _timestamp(now))
    return PullRequest(**{**unsigned.as_wire(), "mac": _pull_mac(secret, unsigned)})


def _check_skew(timestamp: str, now: datetime | None, max_skew_s: float) -> None:
    try:
        sent = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedBatch(f"时间戳格式错误 (bad timestamp): {timestamp}") from exc
    if sent.tzinfo is None:
        raise MalformedBatch(f"时间戳须带时区 (timestamp needs a UTC offset): {timestamp}")
    skew = abs(((now or datetime.now(UTC)) - sent).total_seconds())
    if skew > max_skew_s:
        raise ClockSkew(
            f"时间戳与本节点时钟相差 {skew:.0f} 秒，超过 {max_skew_s:.0f} 秒 "
            f"(timestamp {timestamp} is {skew:.0f}s off; check the node clocks)"
        )


def _matching(
    secrets: str | Sequence[str], mac: str | None, expected: Callable[[str], str]
) -> str | None:
    # Several secrets are valid while a credential is being rotated.
    if mac is None:
        return None
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        if hmac.compare_digest(mac, expected(secret)):
            return secret
    return None


def verify_batch_mac(
    batch: Batch,
    secrets: str | Sequence[str],
    *,
    now: datetime | None = None,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> str:
    """The secret the batch is signed with; 401 if none matches or it is outside the window."""
    if batch.mac is None:
        raise BadSignature("同步批次未签名 (batch carries no MAC)")
    secret = _matching(secrets, batch.mac, lambda s: batch_mac(s, *batch.signed_fields()))
    if secret is None:
        raise BadSignature(
            f"批次 {batch.batch_id} 的签名与节点 {batch.sender} 的凭据不符 "
            "(MAC does not match the node credential)"
        )
    _check_skew(batch.timestamp, now, max_skew_s)
    return secret


def verify_digest(batch: Batch) -> bytes | None:
    """Raise 422 unless the digest matches the batch content.

    Checked first over the changes' bytes as received (``changes_json``: the changes were
    parsed from exactly these bytes, and a pusher writes them as their canonical JSON),
    then over the changes' canonical JSON. Returns the received bytes if the digest is
    theirs (they are then what the sender digested, byte for byte), else None."""
    content = batch.sender, batch.service, batch.origins
    raw = batch.changes_json
    if raw is not None and hmac.compare_digest(_content_digest(*content, raw), batch.digest):
        return raw
    actual = batch_digest(*content, batch.changes)
    if not hmac.compare_digest(actual, batch.digest):
        raise DigestMismatch(
            f"批次 {batch.batch_id} 内容与摘要不符，可能在传输中被篡改或损坏 "
            "(content does not match its digest: corrupted or tampered in transit)"
        )
    return None


def verify_pull_mac(
    pull: PullRequest,
    secrets: str | Sequence[str],
    *,
    now: datetime | None = None,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> str:
    """The secret the pull request is signed with; 401 if none matches."""
    secret = _matching(secrets, pull.mac, lambda s: _pull_mac(s, pull))
    if secret is None:
        raise BadSignature(f"节点 {pull.node} 的拉取请求签名无效 (pull request MAC does not match)")
    _check_skew(pull.timestamp, now, max_skew_s)
    return secret


def down_batch_prefix(stream: str, after: int) -> str:
    """How the id of the answer to a pull begins: it names the stream and position asked for."""
    token = "all" if stream == BROADCAST else stream
    return f"down-{token}-{after}-"


def down_batch_id(stream: str, after: int) -> str:
    """Id of the answer to a pull (bound to the stream and position under the MAC)."""
    return down_batch_prefix(stream, after) + uuid.uuid4().hex[:12]


def sign_batch(batch: Batch, secret: str) -> Batch:
    """The batch with its MAC set (for a gateway that signs what its service built)."""
    return replace(batch, mac=batch_mac(secret, *batch.signed_fields()))
