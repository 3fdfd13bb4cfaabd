"""Users, logins and sessions, API keys: the functions the HTTP API and the CLI call."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.errors import AccountLocked, InvalidCredentials
from gateway.models import ApiKey, User, UserSession
from gateway.security import (
    api_key_matches,
    encode_access_token,
    hash_api_key,
    hash_password,
    new_api_key,
    new_session_id,
    password_problems,
    verify_password,
)
from shared.db import Database
from shared.dbtypes import utcnow
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.identity import Identity, Role
from shared.regions import contains, is_valid_code
from shared.settings import NodeSettings

__all__ = [
    "API_KEY_ROLES",
    "USER_ROLES",
    "ApiKeyState",
    "LoginResult",
    "SessionState",
    "api_key_identity",
    "change_password",
    "create_api_key",
    "create_user",
    "get_api_key",
    "get_user",
    "list_api_keys",
    "list_users",
    "load_api_key",
    "load_session",
    "login",
    "require_admin",
    "reset_password",
    "revoke_api_key",
    "revoke_session",
    "revoke_user_sessions",
    "touch_api_key",
    "touch_session",
    "unlock_user",
    "update_user",
    "user_identity",
]

USER_ROLES = frozenset({Role.admin, Role.data_entry, Role.reviewer, Role.viewer})
# Keys are for other systems; an administrator is always a person.
API_KEY_ROLES = frozenset({Role.system, Role.data_entry, Role.reviewer, Role.viewer})
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")


# ----------------------------------------------------------------------------- checks


def _check_scope(
    settings: NodeSettings, region_code: str, by: Identity | None, field: str = "region_code"
) -> None:
    """A credential's region must be a division code inside the node and inside the admin's."""
    if not is_valid_code(region_code):
        raise ValidationFailed(
            f"区划代码无效 (invalid division code): {region_code}",
            errors=[{"field": field, "message": "须为 6、9 或 12 位区划代码 (6/9/12 digits)"}],
        )
    if not contains(settings.region_code, region_code):
        raise ValidationFailed(
            f"区划 {region_code} 不在本节点 {settings.region_code} 范围内 "
            f"(region is outside this node's region)",
            errors=[{"field": field, "message": "须在本节点区划之内 (inside the node's region)"}],
        )
    if by is not None:
        by.check_write(region_code, Role.admin)


def _check_roles(roles: Sequence[str], allowed: frozenset[Role], field: str = "roles") -> list[str]:
    wanted = sorted(set(roles))
    bad = [r for r in wanted if r not in allowed]
    if not wanted or bad:
        raise ValidationFailed(
            f"角色无效 (invalid roles): {', '.join(bad) or '空 (empty)'}",
            errors=[{"field": field, "message": f"可选 (allowed): {', '.join(sorted(allowed))}"}],
        )
    return wanted


def _check_password(settings: NodeSettings, password: str, username: str, field: str) -> None:
    problems = password_problems(
        password, min_length=settings.password_min_length, username=username
    )
    if problems:
        raise ValidationFailed(
            "密码不符合复杂度要求 (password does not meet the complexity rules)",
            errors=[{"field": field, "message": p} for p in problems],
        )


def _actor(by: Identity | None, actor: str) -> str:
    return by.subject if by is not None else actor


# ----------------------------------------------------------------------------- users


def user_identity(user: User, node_id: str) -> Identity:
    """The identity a user's requests carry to the services."""
    return Identity(
        subject=user.username,
        kind="user",
        roles=frozenset(user.roles),
        region=user.region_code,
        name=user.display_name,
        node=node_id,
    )


def create_user(
    session: Session,
    username: str,
    password: str,
    roles: Sequence[str],
    region_code: str,
    display_name: str = "",
    *,
    settings: NodeSettings | None = None,
    by: Identity | None = None,
    actor: str = "cli",
    now: datetime | None = None,
) -> User:
    """Create a user (by an admin in scope, or from the command line when ``by`` is None)."""
    settings = settings or NodeSettings()
    now = now or utcnow()
    if not _USERNAME.match(username):
        raise ValidationFailed(
            f"用户名无效 (invalid user name): {username!r}",
            errors=[
                {"field": "username", "message": "2–64 位字母、数字或 _.@- (letters, digits, _.@-)"}
            ],
        )
    wanted = _check_roles(roles, USER_ROLES)
    _check_scope(settings, region_code, by)
    _check_password(settings, password, username, "password")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"用户名已存在 (user name taken): {username}", slug="username-taken")
    user = User(
        username=username,
        display_name=display_name,
        password_hash=hash_password(password),
        roles=wanted,
        region_code=region_code,
        is_active=True,
        failed_logins=0,
        password_changed_at=now,
        created_at=now,
        created_by=_actor(by, actor),
        updated_at=now,
        updated_by=_actor(by, actor),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(
            f"用户名已存在 (user name taken): {username}", slug="username-taken"
        ) from exc
    return user


def _prefix_filter(column: Any, region: str) -> Any:
    from shared.regions import prefix_of

    return column.like(prefix_of(region) + "%")


def list_users(
    session: Session, by: Identity, *, cursor: int | None = None, limit: int = 100
) -> list[User]:
    """Users whose region lies inside the admin's scope, by id."""
    by.check_write(by.region, Role.admin)
    stmt = select(User).where(_prefix_filter(User.region_code, by.region)).order_by(User.id)
    if cursor is not None:
        stmt = stmt.where(User.id > cursor)
    return list(session.scalars(stmt.limit(limit)))


def get_user(session: Session, by: Identity, user_id: int) -> User:
    """One user, if inside the admin's scope."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"用户不存在 (no such user): {user_id}")
    by.check_write(user.region_code, Role.admin)
    return user


def update_user(
    session: Session,
    settings: NodeSettings,
    by: Identity,
    user_id: int,
    *,
    roles: Sequence[str] | None = None,
    region_code: str | None = None,
    display_name: str | None = None,
    is_active: bool | None = None,
    now: datetime | None = None,
) -> User:
    """Change a user's roles, region, name or active flag; deactivation ends their sessions."""
    now = now or utcnow()
    user = get_user(session, by, user_id)
    if roles is not None:
        user.roles = _check_roles(roles, USER_ROLES)
    if region_code is not None:
        _check_scope(settings, region_code, by)
        user.region_code = region_code
    if display_name is not None:
        user.display_name = display_name
    if is_active is not None:
        if not is_active and user.username == by.subject:
            raise Conflict(
                "不能停用自己的账户 (cannot deactivate yourself)", slug="self-deactivate"
            )
        user.is_active = is_active
        if not is_active:
            revoke_user_sessions(session, user.id, "deactivated", now)
    user.updated_at, user.updated_by = now, by.subject
    session.flush()
    return user


def unlock_user(session: Session, by: Identity, user_id: int, now: datetime | None = None) -> User:
    """Lift a lockout before it runs out."""
    user = get_user(session, by, user_id)
    user.locked_until, user.failed_logins = None, 0
    user.updated_at, user.updated_by = now or utcnow(), by.subject
    session.flush()
    return user


def reset_password(
    session: Session,
    settings: NodeSettings,
    by: Identity | None,
    user_id: int,
    new_password: str,
    *,
    actor: str = "cli",
    now: datetime | None = None,
) -> User:
    """An admin sets a new password; every session of the user ends."""
    now = now or utcnow()
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"用户不存在 (no such user): {user_id}")
    if by is not None:
        by.check_write(user.region_code, Role.admin)
    _check_password(settings, new_password, user.username, "new_password")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = now
    user.locked_until, user.failed_logins = None, 0
    user.updated_at, user.updated_by = now, _actor(by, actor)
    revoke_user_sessions(session, user.id, "password-reset", now)
    session.flush()
    return user


# ----------------------------------------------------------------------------- logins


@dataclass(frozen=True)
class LoginResult:
    token: str
    session_id: str
    expires_at: datetime
    user: User


def _lockout_expired(user: User, now: datetime) -> bool:
    return user.locked_until is None or user.locked_until <= now


def _record_failure(session: Session, settings: NodeSettings, user: User, now: datetime) -> bool:
    """Count a failed attempt atomically; True when this attempt locked the account."""
    failed = session.execute(
        update(User)
        .where(User.id == user.id)
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.failed_logins)
    ).scalar_one()
    if failed >= settings.lockout_threshold:
        session.execute(
            update(User)
            .where(User.id == user.id)
            .values(
                failed_logins=0,
                locked_until=now + timedelta(minutes=settings.lockout_minutes),
            )
        )
        return True
    return False


def _locked_problem(user: User, now: datetime) -> AccountLocked:
    assert user.locked_until is not None
    wait = max(1, int((user.locked_until - now).total_seconds()))
    return AccountLocked(
        f"连续登录失败次数过多，账户已锁定至 {user.locked_until.isoformat()} "
        f"(too many failed logins; locked until then)",
        locked_until=user.locked_until.isoformat(),
        retry_after=wait,
    )


def login(
    db: Database,
    settings: NodeSettings,
    username: str,
    password: str,
    *,
    client_addr: str = "",
    now: datetime,
) -> LoginResult:
    """Check a password, count failures towards the lockout, and open a session."""
    # A failed attempt must be counted even though the request then fails, so this
    # function owns its transaction instead of using the request-scoped session.
    problem: Exception | None = None
    with db.session(write=True) as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is not None and not _lockout_expired(user, now):
            problem = _locked_problem(user, now)
        elif not verify_password(user.password_hash if user else None, password) or user is None:
            if user is not None and _record_failure(session, settings, user, now):
                session.refresh(user)
                problem = _locked_problem(user, now)
            else:
                problem = InvalidCredentials("用户名或密码错误 (invalid username or password)")
        elif not user.is_active:
            problem = InvalidCredentials(
                "账户已停用 (account disabled)", slug="account-disabled", title="账户已停用"
            )
        else:
            user.failed_logins, user.locked_until = 0, None
            expires = now + timedelta(hours=settings.session_max_hours)
            row = UserSession(
                id=new_session_id(),
                user_id=user.id,
                created_at=now,
                last_seen_at=now,
                expires_at=expires,
                client_addr=client_addr[:64],
            )
            session.add(row)
            session.flush()
            token = encode_access_token(
                settings.jwt_secret.get_secret_value(),
                user_id=user.id,
                session_id=row.id,
                issued_at=now.timestamp(),
                expires_at=expires.timestamp(),
                issuer=settings.node_id,
            )
            return LoginResult(token=token, session_id=row.id, expires_at=expires, user=user)
    assert problem is not None
    raise problem


def change_password(
    db: Database,
    settings: NodeSettings,
    username: str,
    current_password: str,
    new_password: str,
    *,
    keep_session: str | None,
    now: datetime,
) -> None:
    """The user changes their own password; a wrong current one counts towards the lockout."""
    problem: Exception | None = None
    with db.session(write=True) as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"用户不存在 (no such user): {username}")
        if not verify_password(user.password_hash, current_password):
            if _record_failure(session, settings, user, now):
                session.refresh(user)
                problem = _locked_problem(user, now)
            else:
                problem = ValidationFailed(
                    "当前密码不正确 (current password is wrong)",
                    errors=[{"field": "current_password", "message": "当前密码不正确 (wrong)"}],
                )
        elif verify_password(user.password_hash, new_password):
            problem = ValidationFailed(
                "新密码不能与当前密码相同 (new password equals the current one)",
                errors=[{"field": "new_password", "message": "与当前密码相同 (same as current)"}],
            )
        else:
            _check_password(settings, new_password, user.username, "new_password")
            user.password_hash = hash_password(new_password)
            user.password_changed_at = user.updated_at = now
            user.updated_by = username
            revoke_user_sessions(session, user.id, "password-changed", now, keep=keep_session)
            return
    assert problem is not None
    raise problem


# ----------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class SessionState:
    """A session row with what the gateway needs to admit its requests."""

    session_id: str
    user_id: int
    identity: Identity
    last_seen: datetime
    expires_at: datetime
    revoked: str | None  # reason, when revoked
    user_active: bool
    locked_until: datetime | None


def load_session(session: Session, session_id: str, node_id: str) -> SessionState | None:
    """The session and its user's current roles, scope and lock state."""
    row = session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.id == session_id)
    ).first()
    if row is None:
        return None
    sess, user = row
    return SessionState(
        session_id=sess.id,
        user_id=user.id,
        identity=user_identity(user, node_id),
        last_seen=sess.last_seen_at,
        expires_at=sess.expires_at,
        revoked=sess.revoke_reason or ("revoked" if sess.revoked_at else None),
        user_active=user.is_active,
        locked_until=user.locked_until,
    )


def touch_session(session: Session, session_id: str, last_seen: datetime) -> None:
    """Write back a session's last activity (never moving it backwards)."""
    session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.last_seen_at < last_seen)
        .values(last_seen_at=last_seen)
    )


def revoke_session(session: Session, session_id: str, reason: str, now: datetime) -> None:
    """End one session (logout, idle timeout)."""
    session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    )


def revoke_user_sessions(
    session: Session, user_id: int, reason: str, now: datetime, keep: str | None = None
) -> None:
    """End every open session of a user, except ``keep``."""
    stmt = update(UserSession).where(
        UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
    )
    if keep:
        stmt = stmt.where(UserSession.id != keep)
    session.execute(stmt.values(revoked_at=now, revoke_reason=reason))


# ----------------------------------------------------------------------------- API keys


def api_key_identity(key: ApiKey, node_id: str) -> Identity:
    """The identity an API key's requests carry to the services."""
    return Identity(
        subject=f"key:{key.key_id}",
        kind="api_key",
        roles=frozenset(key.roles),
        region=key.region_code,
        name=key.name,
        node=node_id,
    )


def create_api_key(
    session: Session,
    name: str,
    roles: Iterable[str],
    region_code: str,
    expires_at: datetime,
    *,
    settings: NodeSettings | None = None,
    by: Identity | None = None,
    actor: str = "cli",
    now: datetime | None = None,
) -> tuple[str, str]:
    """Issue a key; returns (key id, plaintext key) — the plaintext is never stored."""
    settings = settings or NodeSettings()
    now = now or utcnow()
    if not name.strip() or len(name) > 100:
        raise ValidationFailed(
            "名称不能为空且不超过 100 字 (name is required, at most 100 characters)",
            errors=[{"field": "name", "message": "1–100 字 (1–100 characters)"}],
        )
    wanted = _check_roles(list(roles), API_KEY_ROLES)
    _check_scope(settings, region_code, by)
    if expires_at.tzinfo is None:
        raise ValidationFailed(
            "有效期须带时区 (expires_at needs a time zone)",
            errors=[{"field": "expires_at", "message": "ISO 8601 with offset, e.g. Z"}],
        )
    if expires_at <= now:
        raise ValidationFailed(
            "有效期须晚于当前时间 (expires_at must be in the future)",
            errors=[{"field": "expires_at", "message": "须晚于当前时间 (in the future)"}],
        )
    key_id, plaintext = new_api_key()
    session.add(
        ApiKey(
            key_id=key_id,
            name=name.strip(),
            key_hash=hash_api_key(plaintext),
            roles=wanted,
            region_code=region_code,
            expires_at=expires_at,
            created_at=now,
            created_by=_actor(by, actor),
        )
    )
    session.flush()
    return key_id, plaintext


def get_api_key(session: Session, key_id: str) -> ApiKey:
    """One key by its public id."""
    key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if key is None:
        raise NotFound(f"API 密钥不存在 (no such API key): {key_id}")
    return key


def list_api_keys(session: Session, by: Identity | None) -> list[ApiKey]:
    """Keys inside the admin's scope (all keys of the node from the command line)."""
    stmt = select(ApiKey).order_by(ApiKey.id)
    if by is not None:
        by.check_write(by.region, Role.admin)
        stmt = stmt.where(_prefix_filter(ApiKey.region_code, by.region))
    return list(session.scalars(stmt))


def revoke_api_key(
    session: Session,
    key_id: str,
    *,
    by: Identity | None = None,
    actor: str = "cli",
    now: datetime | None = None,
) -> ApiKey:
    """Revoke a key at once; revoking twice is harmless."""
    key = get_api_key(session, key_id)
    if by is not None:
        by.check_write(key.region_code, Role.admin)
    if key.revoked_at is None:
        key.revoked_at, key.revoked_by = now or utcnow(), _actor(by, actor)
        session.flush()
    return key


@dataclass(frozen=True)
class ApiKeyState:
    key_id: str
    identity: Identity
    expires_at: datetime
    revoked: bool
    last_used: datetime | None


def load_api_key(session: Session, plaintext: str, key_id: str, node_id: str) -> ApiKeyState | None:
    """The key named by ``key_id`` if ``plaintext`` is that key, else None."""
    key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if key is None or not api_key_matches(key.key_hash, plaintext):
        return None
    return ApiKeyState(
        key_id=key.key_id,
        identity=api_key_identity(key, node_id),
        expires_at=key.expires_at,
        revoked=key.revoked_at is not None,
        last_used=key.last_used_at,
    )


def touch_api_key(session: Session, key_id: str, used_at: datetime) -> None:
    """Write back when a key was last used."""
    session.execute(update(ApiKey).where(ApiKey.key_id == key_id).values(last_used_at=used_at))


def require_admin(by: Identity) -> None:
    """Raise 403 unless the caller is an admin."""
    if not by.has(Role.admin):
        raise Forbidden("需要管理员角色 (admin role required)", slug="role-required")
