"""Who is calling: JWT sessions and API keys, checked from memory, revalidated every few seconds.

Bounds (see docs/gateway.md):
- A session or key is re-read from the database at most ``session_revalidate_s`` after it
  was last read, so a logout, revocation, deactivation or lockout made by another gateway
  replica or the command line takes effect within that time (in this process: at once).
- If the database cannot be read, cached entries are served for at most another
  ``session_revalidate_s``; after that requests fail closed with 503.
- Last activity is written back at most every ``session_touch_s``; another replica may
  therefore see a session up to that much older than it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway import accounts
from gateway.errors import AccountLocked, IdentityStoreUnavailable, NotAuthenticated
from gateway.security import TokenClaims, decode_access_token, parse_api_key
from shared.db import Database
from shared.identity import Identity, sign_identity
from shared.settings import NodeSettings

__all__ = ["Authenticator", "Caller"]

log = logging.getLogger("checkup.gateway.authn")
SIGNED_TTL_S = 60.0  # services cache a verified header for 60 s; re-sign at that pace
_MAX_CACHE = 50_000


@dataclass(slots=True)
class Caller:
    """An authenticated caller and the signed header that carries it to the services."""

    identity: Identity
    key: str  # rate-limit and cache key
    session_id: str | None
    user_id: int | None
    expires_at: float
    last_seen: float  # in memory, updated per request
    written_seen: float  # as last read from / written to the database
    verified_at: float
    signed: bytes = b""
    signed_at: float = 0.0


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Authenticator:
    """Admits requests carrying a bearer JWT or an API key."""

    def __init__(
        self, settings: NodeSettings, db_getter: Callable[[], Database], clock: Callable[[], float]
    ) -> None:
        self.settings = settings
        self._db = db_getter
        self.clock = clock
        self.secret = settings.internal_secret.get_secret_value()
        self.jwt_secret = settings.jwt_secret.get_secret_value()
        self.revalidate_s = settings.session_revalidate_s
        self.touch_s = settings.session_touch_s
        self.idle_s = settings.session_idle_minutes * 60.0
        self._tokens: dict[str, TokenClaims] = {}
        self._sessions: dict[str, Caller] = {}
        self._keys: dict[str, Caller] = {}

    # ------------------------------------------------------------------ entry points

    async def authenticate(self, authorization: bytes | None, api_key: bytes | None) -> Caller:
        """The caller named by the request's credentials, or NotAuthenticated."""
        if api_key:
            return await self._by_key(api_key.decode("latin-1").strip())
        if not authorization:
            raise NotAuthenticated(
                "需要登录或 API 密钥 (missing credentials: Authorization or X-API-Key)"
            )
        scheme, _, credential = authorization.decode("latin-1").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise NotAuthenticated("认证方式须为 Bearer (use Authorization: Bearer <token>)")
        if parse_api_key(credential) is not None:
            return await self._by_key(credential)
        return await self._by_token(credential)

    def signed_header(self, caller: Caller) -> bytes:
        """The caller's signed internal identity, re-signed once a minute."""
        now = time.time()  # services check the signature's age against the real clock
        if now - caller.signed_at > SIGNED_TTL_S:
            caller.signed = sign_identity(caller.identity, self.secret, now).encode()
            caller.signed_at = now
        return caller.signed

    def forget_session(self, session_id: str) -> None:
        """Drop a session from memory (logout): its next use reads the database."""
        self._sessions.pop(session_id, None)

    def forget_user(self, user_id: int) -> None:
        """Drop every cached session of a user (password, roles, scope or state changed)."""
        for sid in [s for s, c in self._sessions.items() if c.user_id == user_id]:
            del self._sessions[sid]

    def forget_username(self, username: str) -> None:
        """Drop every cached session of a user by name (lockout)."""
        for sid in [s for s, c in self._sessions.items() if c.identity.subject == username]:
            del self._sessions[sid]

    def forget_key(self, key_id: str) -> None:
        """Drop a revoked key from memory."""
        prefix = f"key:{key_id}"
        for k in [k for k, c in self._keys.items() if c.key == prefix]:
            del self._keys[k]

    # ------------------------------------------------------------------ JWT sessions

    async def _by_token(self, token: str) -> Caller:
        claims = self._tokens.get(token)
        if claims is None:
            claims = decode_access_token(token, self.jwt_secret, self.settings.node_id)
            if claims is None:
                raise NotAuthenticated("令牌无效 (invalid token)", slug="invalid-token")
            if len(self._tokens) >= _MAX_CACHE:
                self._tokens.clear()
            self._tokens[token] = claims
        now = self.clock()
        if now >= claims.expires_at:
            raise NotAuthenticated(
                "会话已超过最长时限，请重新登录 (session reached its maximum age)",
                slug="session-expired",
            )
        caller = self._sessions.get(claims.session_id)
        if (
            caller is None
            or now - caller.verified_at >= self.revalidate_s
            or now - caller.last_seen > self.idle_s
        ):
            caller = await self._refresh_session(claims.session_id, caller, now)
        caller.last_seen = now
        return caller

    async def _refresh_session(self, sid: str, cached: Caller | None, now: float) -> Caller:
        try:
            state = await asyncio.to_thread(self._load_session, sid)
        except Exception as exc:
            return self._stale_or_fail(cached, now, exc)
        if state is None or state.revoked:
            self._sessions.pop(sid, None)
            reason = (state.revoked if state else None) or "unknown"
            if reason == "idle":
                raise NotAuthenticated(
                    "会话因长时间未操作已失效，请重新登录 (session ended after inactivity)",
                    slug="session-idle",
                )
            raise NotAuthenticated(
                "会话已注销或失效，请重新登录 (session ended)", slug="session-revoked"
            )
        if not state.user_active:
            self._sessions.pop(sid, None)
            raise NotAuthenticated("账户已停用 (account disabled)", slug="account-disabled")
        if state.locked_until is not None and _ts(state.locked_until) > now:
            self._sessions.pop(sid, None)
            raise AccountLocked(
                "账户已锁定 (account locked)", locked_until=state.locked_until.isoformat()
            )
        if _ts(state.expires_at) <= now:
            self._sessions.pop(sid, None)
            raise NotAuthenticated(
                "会话已超过最长时限，请重新登录 (session reached its maximum age)",
                slug="session-expired",
            )
        db_seen = _ts(state.last_seen)
        last_seen = max(db_seen, cached.last_seen if cached else 0.0)
        if now - last_seen > self.idle_s:
            self._sessions.pop(sid, None)
            await self._run(self._revoke_idle, sid, now)
            raise NotAuthenticated(
                "会话因长时间未操作已失效，请重新登录 (session ended after inactivity)",
                slug="session-idle",
            )
        if now - db_seen >= self.touch_s:
            # Write-behind of activity: at most once per touch interval per session.
            await self._run(self._touch_session, sid, now)
            db_seen = now
        caller = Caller(
            identity=state.identity,
            key=f"user:{state.identity.subject}",
            session_id=sid,
            user_id=state.user_id,
            expires_at=_ts(state.expires_at),
            last_seen=last_seen,
            written_seen=db_seen,
            verified_at=now,
        )
        if cached is not None and cached.identity == caller.identity:
            caller.signed, caller.signed_at = cached.signed, cached.signed_at
        if len(self._sessions) >= _MAX_CACHE:
            self._sessions.clear()
        self._sessions[sid] = caller
        return caller

    def _load_session(self, sid: str) -> accounts.SessionState | None:
        with self._db().session() as session:
            return accounts.load_session(session, sid, self.settings.node_id)

    def _touch_session(self, sid: str, now: float) -> None:
        with self._db().session() as session:
            accounts.touch_session(session, sid, _dt(now))

    def _revoke_idle(self, sid: str, now: float) -> None:
        with self._db().session() as session:
            accounts.revoke_session(session, sid, "idle", _dt(now))

    # ------------------------------------------------------------------ API keys

    async def _by_key(self, plaintext: str) -> Caller:
        now = self.clock()
        caller = self._keys.get(plaintext)
        if caller is None or now - caller.verified_at >= self.revalidate_s:
            caller = await self._refresh_key(plaintext, caller, now)
        if now >= caller.expires_at:
            raise NotAuthenticated("API 密钥已过期 (API key expired)", slug="api-key-expired")
        caller.last_seen = now
        return caller

    async def _refresh_key(self, plaintext: str, cached: Caller | None, now: float) -> Caller:
        key_id = parse_api_key(plaintext)
        if key_id is None:
            raise NotAuthenticated("API 密钥无效 (invalid API key)", slug="invalid-api-key")
        try:
            state = await asyncio.to_thread(self._load_key, plaintext, key_id)
        except Exception as exc:
            return self._stale_or_fail(cached, now, exc)
        if state is None:
            self._keys.pop(plaintext, None)
            raise NotAuthenticated("API 密钥无效 (invalid API key)", slug="invalid-api-key")
        if state.revoked:
            self._keys.pop(plaintext, None)
            raise NotAuthenticated("API 密钥已吊销 (API key revoked)", slug="api-key-revoked")
        last_used = _ts(state.last_used) if state.last_used else 0.0
        if now - last_used >= self.touch_s:
            await self._run(self._touch_key, key_id, now)
            last_used = now
        caller = Caller(
            identity=state.identity,
            key=f"key:{key_id}",
            session_id=None,
            user_id=None,
            expires_at=_ts(state.expires_at),
            last_seen=now,
            written_seen=last_used,
            verified_at=now,
        )
        if cached is not None and cached.identity == caller.identity:
            caller.signed, caller.signed_at = cached.signed, cached.signed_at
        if len(self._keys) >= _MAX_CACHE:
            self._keys.clear()
        self._keys[plaintext] = caller
        return caller

    def _load_key(self, plaintext: str, key_id: str) -> accounts.ApiKeyState | None:
        with self._db().session() as session:
            return accounts.load_api_key(session, plaintext, key_id, self.settings.node_id)

    def _touch_key(self, key_id: str, now: float) -> None:
        with self._db().session() as session:
            accounts.touch_api_key(session, key_id, _dt(now))

    # ------------------------------------------------------------------ helpers

    def _stale_or_fail(self, cached: Caller | None, now: float, exc: Exception) -> Caller:
        # Fail closed: a cached entry may outlive its revalidation by one more interval.
        if cached is not None and now - cached.verified_at < 2 * self.revalidate_s:
            log.warning("identity store unreachable, serving cached identity: %s", exc)
            return cached
        log.error("identity store unreachable: %s", exc)
        raise IdentityStoreUnavailable(
            "暂时无法校验身份，请稍后重试 (cannot check credentials right now)"
        ) from exc

    async def _run(self, fn: Callable[[str, float], None], key: str, now: float) -> None:
        try:
            await asyncio.to_thread(fn, key, now)
        except Exception:  # activity bookkeeping must not fail the request
            log.exception("could not record session/key activity")
