"""The signed internal identity the gateway forwards and every service verifies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import Forbidden, Unauthorized, ValidationFailed, problem_response
from shared.regions import contains, is_valid_code

__all__ = [
    "IDENTITY_HEADER",
    "CurrentIdentity",
    "Identity",
    "IdentityMiddleware",
    "Role",
    "get_identity",
    "require_roles",
    "sign_identity",
    "verify_identity",
]

IDENTITY_HEADER = "x-checkup-identity"
MAX_AGE_S = 300


class Role(StrEnum):
    admin = "admin"
    data_entry = "data_entry"  # 填报
    reviewer = "reviewer"  # 审核
    viewer = "viewer"
    system = "system"  # other government systems (API keys)
    node = "node"  # a peer node (federation)


WRITE_ROLES = frozenset({Role.admin, Role.data_entry, Role.system, Role.node})


@dataclass(frozen=True)
class Identity:
    """Who is calling, with which roles, over which region."""

    subject: str
    kind: str  # user | api_key | node | service
    roles: frozenset[str]
    region: str
    name: str = ""
    node: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def can_read(self, region_code: str) -> bool:
        return contains(self.region, region_code)

    def check_read(self, region_code: str) -> None:
        """Raise 403 unless the region is inside the caller's scope."""
        if not self.can_read(region_code):
            raise Forbidden(
                f"区划 {region_code} 不在当前身份的管辖范围 {self.region} 内 "
                f"(region {region_code} is outside scope {self.region})",
                slug="out-of-scope",
            )

    def read_scope(self, region_code: str | None, field: str = "region_code") -> str:
        """The region a listing covers: the one asked for (valid, inside scope) or the caller's."""
        scope = region_code or self.region
        if not is_valid_code(scope):
            raise ValidationFailed(
                f"区划代码格式错误: {scope} (division codes have 6, 9 or 12 digits)",
                errors=[{"field": field, "message": "6, 9 or 12 digits"}],
            )
        self.check_read(scope)
        return scope

    def check_write(self, region_code: str, *roles: str) -> None:
        """Raise 403 unless the caller may write data of the region with one of the roles."""
        self.check_read(region_code)
        needed = roles or tuple(WRITE_ROLES)
        if not self.has(*needed):
            raise Forbidden(
                f"当前角色无此操作权限，需要: {', '.join(needed)} (requires one of these roles)",
                slug="role-required",
            )

    def as_claims(self) -> dict[str, Any]:
        return {
            "sub": self.subject,
            "kind": self.kind,
            "roles": sorted(self.roles),
            "region": self.region,
            "name": self.name,
            "node": self.node,
            "extra": self.extra,
        }


def _mac(secret: bytes, payload: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret, payload, hashlib.sha256).digest()).decode()


def sign_identity(identity: Identity, secret: str, now: float | None = None) -> str:
    """Header value: base64url(JSON claims with issue time) '.' HMAC-SHA256."""
    claims = identity.as_claims()
    claims["iat"] = int(now if now is not None else time.time())
    payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
    return payload.decode() + "." + _mac(secret.encode(), payload)


def verify_identity(header: str, secret: str, now: float | None = None) -> Identity:
    """Check the MAC and age of an identity header and return the identity."""
    try:
        payload, mac = header.split(".", 1)
    except ValueError as exc:
        raise Unauthorized("内部身份格式错误 (malformed internal identity)") from exc
    if not hmac.compare_digest(mac, _mac(secret.encode(), payload.encode())):
        raise Unauthorized("内部身份签名无效 (bad internal identity signature)")
    claims = json.loads(base64.urlsafe_b64decode(payload.encode()))
    age = (now if now is not None else time.time()) - claims["iat"]
    if age > MAX_AGE_S or age < -MAX_AGE_S:
        raise Unauthorized("内部身份已过期 (internal identity expired)")
    return Identity(
        subject=claims["sub"],
        kind=claims["kind"],
        roles=frozenset(claims["roles"]),
        region=claims["region"],
        name=claims.get("name", ""),
        node=claims.get("node", ""),
        extra=claims.get("extra") or {},
    )


class IdentityMiddleware:
    """Answers 401 to any request without a valid signed identity, except public paths."""

    PUBLIC = ("/health", "/ready", "/openapi.json", "/docs", "/redoc")

    def __init__(self, app: ASGIApp, secret: str, public_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.secret = secret
        self.public = self.PUBLIC + public_prefixes
        self._cache: dict[str, tuple[float, Identity]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.public):
            await self.app(scope, receive, send)
            return
        header = None
        for key, value in scope["headers"]:
            if key == b"x-checkup-identity":
                header = value.decode("latin-1")
                break
        try:
            if header is None:
                raise Unauthorized(
                    "缺少内部身份，请经网关访问 "
                    "(missing internal identity: call through the gateway)"
                )
            identity = self._verify(header)
        except Unauthorized as exc:
            response = problem_response(
                401, exc.slug, exc.title, exc.detail, instance=scope["path"]
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, receive, send)

    def _verify(self, header: str) -> Identity:
        now = time.time()
        hit = self._cache.get(header)
        if hit is not None and now - hit[0] < 60:
            return hit[1]
        identity = verify_identity(header, self.secret, now)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[header] = (now, identity)
        return identity


def get_identity(request: Request) -> Identity:
    identity = request.scope.get("state", {}).get("identity")
    if identity is None:
        raise Unauthorized("缺少内部身份 (missing internal identity)")
    return identity  # type: ignore[no-any-return,unused-ignore]


CurrentIdentity = Annotated[Identity, Depends(get_identity)]


def require_roles(*roles: str) -> Any:
    """Dependency: the caller must hold one of the roles."""

    def _check(identity: CurrentIdentity) -> Identity:
        if not identity.has(*roles):
            raise Forbidden(
                f"当前角色无此操作权限，需要: {', '.join(roles)} (requires one of these roles)",
                slug="role-required",
            )
        return identity

    return Depends(_check)
