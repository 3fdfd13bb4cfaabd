"""Command-line account management: `users create|list`, `api-keys create|list|revoke`.

The main `checkup` command mounts these with ``register(subparsers, settings_for)``;
each parsed command carries ``func(args) -> int`` (and ``handler(settings, args)``).
There are no default credentials: the first admin is created here.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway import accounts
from gateway.audit import AuditRecord, record_audit
from shared.db import Database
from shared.dbtypes import utcnow
from shared.errors import ProblemError
from shared.settings import NodeSettings

__all__ = ["main", "register"]

Handler = Callable[[NodeSettings, argparse.Namespace], int]


def _db(settings: NodeSettings) -> Database:
    url, schema = settings.database_for("gateway")
    return Database(url, schema=schema)


def _audit(
    session: Any, settings: NodeSettings, what: str, region: str, detail: dict[str, Any]
) -> None:
    # Account changes made at the console are audited like those made through the API.
    record_audit(
        session,
        AuditRecord(
            at=utcnow(),
            actor=f"cli:{getpass.getuser()}",
            actor_kind="cli",
            method="CLI",
            path=what,
            query="",
            region_code=region,
            node_id=settings.node_id,
            status=0,
            request_id="",
            client_addr="",
            duration_ms=0.0,
            detail=detail,
        ),
    )


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("密码 (password): ")
    if getpass.getpass("再次输入 (again): ") != first:
        raise SystemExit("两次输入不一致 (passwords differ)")
    return first


def _fail(exc: ProblemError) -> int:
    print(f"错误 (error): {exc.detail}", file=sys.stderr)
    for err in exc.errors or []:
        print(f"  {err.get('field', '')}: {err.get('message', '')}", file=sys.stderr)
    return 2


def users_create(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Create a user (the first admin, or any other)."""
    password = _read_password(args)
    db = _db(settings)
    try:
        with db.session() as session:
            user = accounts.create_user(
                session,
                args.username,
                password,
                args.roles.split(","),
                args.scope or settings.region_code,
                args.display_name,
                settings=settings,
                actor=f"cli:{getpass.getuser()}",
            )
            _audit(
                session,
                settings,
                "users create",
                user.region_code,
                {"username": user.username, "roles": user.roles},
            )
            roles = ",".join(user.roles)
            print(f"已创建用户 (created user) {user.username} id={user.id} roles={roles}")
    except ProblemError as exc:
        return _fail(exc)
    finally:
        db.dispose()
    return 0


def users_list(settings: NodeSettings, args: argparse.Namespace) -> int:
    """List every user of the node."""
    from sqlalchemy import select

    from gateway.models import User

    db = _db(settings)
    try:
        with db.session() as session:
            for u in session.scalars(select(User).order_by(User.id)):
                state = "active" if u.is_active else "disabled"
                if u.locked_until and u.locked_until > utcnow():
                    state = f"locked until {u.locked_until.isoformat()}"
                print(f"{u.id}\t{u.username}\t{','.join(u.roles)}\t{u.region_code}\t{state}")
    finally:
        db.dispose()
    return 0


def keys_create(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Issue an API key and print it once."""
    expires = datetime.now(UTC) + timedelta(days=args.days)
    db = _db(settings)
    try:
        with db.session() as session:
            key_id, plaintext = accounts.create_api_key(
                session,
                args.name,
                args.roles.split(","),
                args.scope or settings.region_code,
                expires,
                settings=settings,
                actor=f"cli:{getpass.getuser()}",
            )
            _audit(
                session,
                settings,
                "api-keys create",
                args.scope or settings.region_code,
                {"key_id": key_id, "name": args.name},
            )
    except ProblemError as exc:
        return _fail(exc)
    finally:
        db.dispose()
    print(json.dumps({"key_id": key_id, "key": plaintext, "expires_at": expires.isoformat()}))
    print("请妥善保存，密钥不会再次显示 (store it now: it is not shown again)", file=sys.stderr)
    return 0


def keys_list(settings: NodeSettings, args: argparse.Namespace) -> int:
    """List API keys (never the keys themselves)."""
    db = _db(settings)
    try:
        with db.session() as session:
            for k in accounts.list_api_keys(session, None):
                state = "revoked" if k.revoked_at else f"expires {k.expires_at.isoformat()}"
                print(f"{k.key_id}\t{k.name}\t{','.join(k.roles)}\t{k.region_code}\t{state}")
    finally:
        db.dispose()
    return 0


def keys_revoke(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Revoke an API key (effective within session_revalidate_s on running gateways)."""
    db = _db(settings)
    try:
        with db.session() as session:
            key = accounts.revoke_api_key(session, args.key_id, actor=f"cli:{getpass.getuser()}")
            _audit(session, settings, "api-keys revoke", key.region_code, {"key_id": key.key_id})
    except ProblemError as exc:
        return _fail(exc)
    finally:
        db.dispose()
    print(f"已吊销 (revoked) {args.key_id}")
    return 0


def _node_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="节点数据目录 (node data folder)")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite files)")


def register(
    subparsers: Any, settings_for: Callable[[argparse.Namespace], NodeSettings] | None = None
) -> None:
    """Add `users`, `api-keys`, `nodes` and `sync` command groups to the main command."""
    make_settings = settings_for or _settings_from

    def bind(parser: argparse.ArgumentParser, handler: Handler) -> None:
        if settings_for is None:
            # Stand-alone only: the main command has these options already, and a
            # subparser's default would overwrite the value given before the subcommand.
            _node_options(parser)
        parser.set_defaults(handler=handler, func=lambda args: handler(make_settings(args), args))

    users = subparsers.add_parser("users", help="用户管理 (users)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser("create", help="新建用户，如首个管理员 (create a user)")
    create.add_argument("--username", required=True)
    create.add_argument(
        "--roles", default="admin", help="逗号分隔: admin,data_entry,reviewer,viewer"
    )
    create.add_argument("--scope", default=None, help="管辖区划，默认本节点 (default: node region)")
    create.add_argument("--display-name", default="")
    create.add_argument(
        "--password-stdin", action="store_true", help="从标准输入读取密码 (read from stdin)"
    )
    bind(create, users_create)
    bind(users_sub.add_parser("list", help="用户列表 (list users)"), users_list)

    keys = subparsers.add_parser("api-keys", help="系统对接密钥 (API keys)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    kc = keys_sub.add_parser("create", help="签发密钥 (issue a key)")
    kc.add_argument("--name", required=True)
    kc.add_argument("--roles", default="system", help="逗号分隔: system,data_entry,reviewer,viewer")
    kc.add_argument("--scope", default=None, help="管辖区划，默认本节点 (default: node region)")
    kc.add_argument("--days", type=int, default=365, help="有效天数 (valid for N days)")
    bind(kc, keys_create)
    bind(keys_sub.add_parser("list", help="密钥列表 (list keys)"), keys_list)
    kr = keys_sub.add_parser("revoke", help="吊销密钥 (revoke a key)")
    kr.add_argument("key_id")
    bind(kr, keys_revoke)

    # Federation commands (`nodes …`, `sync status`) share this mount point.
    from gateway.node_cli import register as register_federation

    register_federation(subparsers, make_settings)


def _settings_from(args: argparse.Namespace) -> NodeSettings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return NodeSettings(**overrides)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m gateway.cli``) until the main command mounts these."""
    parser = argparse.ArgumentParser(prog="python -m gateway.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
