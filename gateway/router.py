"""The gateway's own API: login and sessions, users, API keys, the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from gateway import accounts
from gateway.audit import query_audit
from gateway.errors import AccountLocked
from gateway.runtime import GatewayRuntime
from gateway.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditOut,
    AuditPage,
    LoginIn,
    MeOut,
    PasswordChange,
    PasswordReset,
    TokenOut,
    UserCreate,
    UserOut,
    UserPage,
    UserUpdate,
)
from shared.db import DbSession
from shared.errors import BadRequest
from shared.identity import CurrentIdentity

__all__ = ["api_keys_router", "audit_router", "auth_router", "users_router"]


def get_runtime(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.gateway
    return runtime


Runtime = Annotated[GatewayRuntime, Depends(get_runtime)]
Cursor = Annotated[int | None, Query(ge=0, description="上一页返回的 next_cursor")]
Limit = Annotated[int, Query(ge=1, le=1000)]

auth_router = APIRouter(prefix="/api/v1/auth", tags=["auth 登录与会话"])
users_router = APIRouter(prefix="/api/v1/users", tags=["users 用户"])
api_keys_router = APIRouter(prefix="/api/v1/api-keys", tags=["api-keys 系统对接密钥"])
audit_router = APIRouter(prefix="/api/v1/audit", tags=["audit 审计"])


# ----------------------------------------------------------------------------- auth


@auth_router.post("/login", response_model=TokenOut, summary="登录 (log in)")
def login(body: LoginIn, request: Request, rt: Runtime) -> TokenOut:
    """Check the password and open a session; repeated failures lock the account."""
    # The audit row of this anonymous request names the account that was tried.
    request.state.audit_actor = body.username
    request.state.audit_actor_kind = "user"
    client = request.client.host if request.client else ""
    try:
        result = accounts.login(
            rt.database(),
            rt.settings,
            body.username,
            body.password,
            client_addr=client,
            now=rt.now(),
        )
    except AccountLocked:
        # A lockout suspends the account's open sessions too, on this gateway at once.
        rt.auth.forget_username(body.username)
        raise
    request.state.audit_region = result.user.region_code
    return TokenOut(
        access_token=result.token,
        expires_at=result.expires_at,
        idle_timeout_s=rt.settings.session_idle_minutes * 60,
        user=UserOut.model_validate(result.user),
    )


@auth_router.post("/logout", status_code=204, summary="注销 (log out)")
def logout(request: Request, session: DbSession, rt: Runtime, _identity: CurrentIdentity) -> None:
    """End the current session at once."""
    sid = request.state.session_id
    if not sid:
        raise BadRequest("API 密钥无会话可注销 (API keys have no session)", slug="no-session")
    accounts.revoke_session(session, sid, "logout", rt.now())
    rt.auth.forget_session(sid)


@auth_router.get("/me", response_model=MeOut, summary="当前身份 (who am I)")
def me(identity: CurrentIdentity) -> MeOut:
    """The caller's identity as the services see it."""
    return MeOut(
        subject=identity.subject,
        kind=identity.kind,
        roles=sorted(identity.roles),
        region=identity.region,
        name=identity.name,
        node=identity.node,
    )


@auth_router.post("/password", status_code=204, summary="修改密码 (change password)")
def change_password(
    body: PasswordChange, request: Request, rt: Runtime, identity: CurrentIdentity
) -> None:
    """Change one's own password; the user's other sessions end."""
    if identity.kind != "user":
        raise BadRequest("仅用户可修改密码 (only users have passwords)", slug="not-a-user")
    accounts.change_password(
        rt.database(),
        rt.settings,
        identity.subject,
        body.current_password,
        body.new_password,
        keep_session=request.state.session_id,
        now=rt.now(),
    )
    rt.auth.forget_user(request.state.user_id)


# ----------------------------------------------------------------------------- users


@users_router.post("", response_model=UserOut, status_code=201, summary="新建用户 (create user)")
def create_user(
    body: UserCreate, session: DbSession, rt: Runtime, identity: CurrentIdentity
) -> UserOut:
    """Create a user inside the node's and the admin's region."""
    user = accounts.create_user(
        session,
        body.username,
        body.password,
        body.roles,
        body.region_code,
        body.display_name,
        settings=rt.settings,
        by=identity,
        now=rt.now(),
    )
    return UserOut.model_validate(user)


@users_router.get("", response_model=UserPage, summary="用户列表 (list users)")
def list_users(
    session: DbSession, identity: CurrentIdentity, cursor: Cursor = None, limit: Limit = 100
) -> UserPage:
    """Users inside the admin's region, by id; cursor-paginated."""
    users = accounts.list_users(session, identity, cursor=cursor, limit=limit)
    next_cursor = str(users[-1].id) if len(users) == limit else None
    return UserPage(items=[UserOut.model_validate(u) for u in users], next_cursor=next_cursor)


@users_router.get("/{user_id}", response_model=UserOut, summary="用户详情 (one user)")
def get_user(user_id: int, session: DbSession, identity: CurrentIdentity) -> UserOut:
    """One user inside the admin's region."""
    return UserOut.model_validate(accounts.get_user(session, identity, user_id))


@users_router.patch("/{user_id}", response_model=UserOut, summary="修改用户 (update user)")
def update_user(
    user_id: int, body: UserUpdate, session: DbSession, rt: Runtime, identity: CurrentIdentity
) -> UserOut:
    """Change roles, region, name or active state; takes effect on the user's next request."""
    user = accounts.update_user(
        session, rt.settings, identity, user_id, **body.model_dump(exclude_unset=True), now=rt.now()
    )
    rt.auth.forget_user(user_id)
    return UserOut.model_validate(user)


@users_router.post("/{user_id}/unlock", response_model=UserOut, summary="解除锁定 (unlock)")
def unlock_user(
    user_id: int, session: DbSession, rt: Runtime, identity: CurrentIdentity
) -> UserOut:
    """Lift a lockout before it runs out."""
    return UserOut.model_validate(accounts.unlock_user(session, identity, user_id, rt.now()))


@users_router.post("/{user_id}/password", response_model=UserOut, summary="重置密码 (reset)")
def reset_password(
    user_id: int,
    body: PasswordReset,
    session: DbSession,
    rt: Runtime,
    identity: CurrentIdentity,
) -> UserOut:
    """An admin sets a new password for a user; the user's sessions end."""
    user = accounts.reset_password(
        session, rt.settings, identity, user_id, body.new_password, now=rt.now()
    )
    rt.auth.forget_user(user_id)
    return UserOut.model_validate(user)


# ----------------------------------------------------------------------------- API keys


@api_keys_router.post(
    "", response_model=ApiKeyCreated, status_code=201, summary="签发密钥 (issue API key)"
)
def create_api_key(
    body: ApiKeyCreate, session: DbSession, rt: Runtime, identity: CurrentIdentity
) -> ApiKeyCreated:
    """Issue a key for another system; the key is in this response only."""
    key_id, plaintext = accounts.create_api_key(
        session,
        body.name,
        body.roles,
        body.region_code,
        body.expires_at,
        settings=rt.settings,
        by=identity,
        now=rt.now(),
    )
    key = accounts.get_api_key(session, key_id)
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=plaintext)


@api_keys_router.get("", response_model=list[ApiKeyOut], summary="密钥列表 (list API keys)")
def list_api_keys(session: DbSession, identity: CurrentIdentity) -> list[ApiKeyOut]:
    """Keys inside the admin's region (never the keys themselves)."""
    accounts.require_admin(identity)
    return [ApiKeyOut.model_validate(k) for k in accounts.list_api_keys(session, identity)]


@api_keys_router.post("/{key_id}/revoke", response_model=ApiKeyOut, summary="吊销密钥 (revoke)")
def revoke_api_key(
    key_id: str, session: DbSession, rt: Runtime, identity: CurrentIdentity
) -> ApiKeyOut:
    """Revoke a key; it stops working at once on this gateway."""
    key = accounts.revoke_api_key(session, key_id, by=identity, now=rt.now())
    rt.auth.forget_key(key_id)
    return ApiKeyOut.model_validate(key)


# ----------------------------------------------------------------------------- audit


@audit_router.get("", response_model=AuditPage, summary="审计日志 (audit log)")
def audit_log(
    session: DbSession,
    rt: Runtime,
    identity: CurrentIdentity,
    actor: str | None = None,
    region_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    path: Annotated[str | None, Query(description="路径前缀 (path prefix)")] = None,
    method: str | None = None,
    status: int | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> AuditPage:
    """Writes through the gateway, newest first; admins only, filtered and cursor-paginated."""
    rows = query_audit(
        session,
        identity,
        node_region=rt.settings.region_code,
        actor=actor,
        region_code=region_code,
        since=since,
        until=until,
        path=path,
        method=method,
        status=status,
        cursor=cursor,
        limit=limit,
    )
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    return AuditPage(items=[AuditOut.model_validate(r) for r in rows], next_cursor=next_cursor)
