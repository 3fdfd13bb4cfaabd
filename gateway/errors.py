"""Problems only the gateway raises (login, sessions, upstream transport)."""

from __future__ import annotations

from shared.errors import ProblemError

__all__ = [
    "AccountLocked",
    "IdentityStoreUnavailable",
    "InvalidCredentials",
    "NotAuthenticated",
    "UpstreamFailed",
]


class InvalidCredentials(ProblemError):
    status = 401
    slug = "invalid-credentials"
    title = "用户名或密码错误 (invalid username or password)"


class NotAuthenticated(ProblemError):
    """Missing, invalid, expired or revoked credentials on a request."""

    status = 401
    slug = "unauthorized"
    title = "未认证 (unauthorized)"


class AccountLocked(ProblemError):
    status = 423
    slug = "account-locked"
    title = "账户已锁定 (account locked)"


class IdentityStoreUnavailable(ProblemError):
    status = 503
    slug = "identity-store-unavailable"
    title = "身份校验暂不可用 (identity store unavailable)"


class UpstreamFailed(ProblemError):
    status = 502
    slug = "upstream-unavailable"
    title = "后端服务不可用 (upstream service unavailable)"
