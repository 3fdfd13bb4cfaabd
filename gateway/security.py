"""Credentials: argon2 password hashes and complexity, JWT access tokens, API key material."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "API_KEY_PREFIX",
    "TokenClaims",
    "api_key_matches",
    "decode_access_token",
    "encode_access_token",
    "hash_api_key",
    "hash_password",
    "new_api_key",
    "new_session_id",
    "parse_api_key",
    "password_problems",
    "verify_password",
]

API_KEY_PREFIX = "ck_"
_hasher = PasswordHasher()
# Verifying against this keeps a login for an unknown user as slow as for a known one.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """Argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches the hash (constant work when there is no hash)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problems(password: str, *, min_length: int, username: str = "") -> list[str]:
    """What is wrong with a new password (empty when it meets the complexity rule)."""
    problems = []
    if len(password) < min_length:
        problems.append(f"密码长度至少 {min_length} 位 (at least {min_length} characters)")
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 3:
        problems.append(
            "密码须包含大写字母、小写字母、数字、符号中的至少三类 "
            "(use at least three of: upper case, lower case, digits, symbols)"
        )
    if username and username.lower() in password.lower():
        problems.append("密码不得包含用户名 (must not contain the user name)")
    if password and len(set(password)) <= 2:
        problems.append("密码不得由重复字符组成 (must not repeat one or two characters)")
    return problems


def new_session_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    session_id: str
    expires_at: float


def encode_access_token(
    secret: str, *, user_id: int, session_id: str, issued_at: float, expires_at: float, issuer: str
) -> str:
    """HS256 JWT naming the user and the server-side session."""
    payload = {
        "sub": str(user_id),
        "sid": session_id,
        "iat": int(issued_at),
        "exp": int(expires_at),
        "iss": issuer,
        "typ": "access",
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def decode_access_token(token: str, secret: str, issuer: str) -> TokenClaims | None:
    """The claims of a validly signed token of this node, or None (expiry is checked by caller)."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=issuer,
            options={"verify_exp": False, "verify_iat": False, "require": ["sub", "sid", "exp"]},
        )
    except jwt.PyJWTError:
        return None
    if payload.get("typ") != "access":
        return None
    try:
        return TokenClaims(int(payload["sub"]), str(payload["sid"]), float(payload["exp"]))
    except (TypeError, ValueError):
        return None


def new_api_key() -> tuple[str, str]:
    """(public key id, full plaintext key) — the plaintext is shown once and never stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_api_key(key: str) -> str | None:
    """The key id of something shaped like one of our keys, else None."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    key_id, sep, rest = key[len(API_KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not rest:
        return None
    return key_id


def hash_api_key(key: str) -> str:
    # A random 256-bit key needs no slow hash: SHA-256 cannot be reversed or guessed.
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(stored_hash: str, key: str) -> bool:
    return hmac.compare_digest(stored_hash, hash_api_key(key))
