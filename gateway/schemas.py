"""Wire shapes of the gateway's own API (auth, users, API keys, audit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyOut",
    "AuditOut",
    "AuditPage",
    "LoginIn",
    "MeOut",
    "PasswordChange",
    "PasswordReset",
    "TokenOut",
    "UserCreate",
    "UserOut",
    "UserPage",
    "UserUpdate",
]


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64, description="用户名")
    password: str = Field(min_length=1, max_length=256, description="密码")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    roles: list[str]
    region_code: str
    is_active: bool
    locked_until: datetime | None
    password_changed_at: datetime
    created_at: datetime
    created_by: str


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime = Field(description="会话最长时限 (absolute expiry)")
    idle_timeout_s: int = Field(description="无操作超时秒数 (idle timeout)")
    user: UserOut


class MeOut(BaseModel):
    subject: str
    kind: str
    roles: list[str]
    region: str
    name: str
    node: str


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class PasswordReset(BaseModel):
    new_password: str = Field(min_length=1, max_length=256)


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    roles: list[str] = Field(min_length=1, description="admin / data_entry / reviewer / viewer")
    region_code: str = Field(description="管辖区划代码 (scope region)")
    display_name: str = Field(default="", max_length=100)


class UserUpdate(BaseModel):
    roles: list[str] | None = None
    region_code: str | None = None
    display_name: str | None = Field(default=None, max_length=100)
    is_active: bool | None = None


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="对接系统名称")
    roles: list[str] = Field(
        default=["system"], description="system / data_entry / reviewer / viewer"
    )
    region_code: str
    expires_at: datetime = Field(description="到期时间，须带时区 (expiry, with offset)")


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key_id: str
    name: str
    roles: list[str]
    region_code: str
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    created_by: str


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="完整密钥，仅此一次显示 (the key, shown only once)")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    actor_kind: str
    method: str
    path: str
    query: str
    region_code: str | None
    node_id: str
    status: int
    request_id: str
    client_addr: str
    duration_ms: float
    detail: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None
