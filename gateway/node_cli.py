"""Command line of federation: `checkup nodes join|add-child|list|approve|revoke|reinstate|
rotate`, `checkup sync status|retry`.

Registry commands work on this node's gateway storage directly (audited like API calls);
`nodes join` talks to the parent's gateway; `sync status` reads and `sync retry` revives
the links in every federated service's own sync tables.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError

from gateway import nodes
from gateway.cli import _audit, _db, _fail
from shared.db import Database
from shared.errors import ProblemError
from shared.identity import Identity, Role
from shared.settings import NodeSettings, ServiceName
from shared.sync import SyncTables

__all__ = ["FEDERATED", "federated_tables", "format_status", "register", "retry", "status_of"]

Handler = Callable[[NodeSettings, argparse.Namespace], int]
JOIN_FILE = "node-join.json"

# Services that take part in federation: where their sync tables are defined.
FEDERATED: dict[ServiceName, str] = {
    "indicator": "services.indicator.sync.tables",
    "report": "services.report.sync.tables",
    "survey": "services.survey.sync.tables",
}


def _cli_identity(settings: NodeSettings) -> Identity:
    return Identity(
        subject=f"cli:{getpass.getuser()}",
        kind="cli",
        roles=frozenset({Role.admin}),
        region=settings.region_code,
        node=settings.node_id,
    )


def _node_dict(node: Any) -> dict[str, Any]:
    return {
        "node_id": node.node_id,
        "region_code": node.region_code,
        "tier": node.tier,
        "name": node.name,
        "state": node.state,
        "decided_by": node.decided_by,
        "revoked_at": node.revoked_at.isoformat() if node.revoked_at else None,
        "revoke_reason": node.revoke_reason,
    }


def _registry(settings: NodeSettings, what: str, action: Callable[[Any], dict[str, Any]]) -> int:
    db = _db(settings)
    try:
        with db.session() as session:
            result = action(session)
            _audit(session, settings, what, settings.region_code, {"node": result.get("node_id")})
    except ProblemError as exc:
        return _fail(exc)
    finally:
        db.dispose()
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def cmd_add_child(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Register and approve a child; prints its credential (give it to the child once)."""
    by = _cli_identity(settings).subject

    def act(session: Any) -> dict[str, Any]:
        got = nodes.add_child(
            session,
            settings,
            node_id=args.node_id,
            region_code=args.child_region,
            name=args.name,
            by=by,
        )
        return {
            "node_id": got.node_id,
            "region_code": got.region_code,
            "key_id": got.key_id,
            "secret": got.secret,
        }

    return _registry(settings, "nodes add-child", act)


def cmd_approve(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Approve a child's join request."""
    who = _cli_identity(settings)
    return _registry(
        settings,
        "nodes approve",
        lambda s: _node_dict(nodes.approve(s, settings, who, args.node_id)),
    )


def cmd_revoke(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Revoke a child's credentials."""
    who = _cli_identity(settings)
    return _registry(
        settings,
        "nodes revoke",
        lambda s: _node_dict(nodes.revoke(s, settings, who, args.node_id, args.reason)),
    )


def cmd_reinstate(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Re-admit a revoked child; prints its new credential (give it to the child once)."""
    who = _cli_identity(settings)

    def act(session: Any) -> dict[str, Any]:
        got = nodes.reinstate(session, settings, who, args.node_id)
        return {"node_id": got.node_id, "key_id": got.key_id, "secret": got.secret}

    return _registry(settings, "nodes reinstate", act)


def cmd_rotate(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Issue a new secret for a child (the old one stays valid for the grace period)."""
    who = _cli_identity(settings)

    def act(session: Any) -> dict[str, Any]:
        got = nodes.rotate(session, settings, who, args.node_id)
        return {"node_id": got.node_id, "key_id": got.key_id, "secret": got.secret}

    return _registry(settings, "nodes rotate", act)


def cmd_list(settings: NodeSettings, args: argparse.Namespace) -> int:
    """The children registered at this node."""
    db = _db(settings)
    try:
        with db.session() as session:
            rows = [
                _node_dict(n) for n in nodes.list_nodes(session, settings, _cli_identity(settings))
            ]
    finally:
        db.dispose()
    print(json.dumps(rows, ensure_ascii=False, indent=2))
    return 0


def cmd_join(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Ask the parent to join (first run), or pick the credential up once it is approved."""
    parent = (args.parent or settings.parent_url or "").rstrip("/")
    if not parent:
        print("需要 --parent 或 CHECKUP_PARENT_URL (parent gateway URL)", file=sys.stderr)
        return 2
    state_file = settings.data_dir / JOIN_FILE
    with httpx.Client(base_url=parent, timeout=30.0) as client:
        if not state_file.exists():
            answer = client.post(
                "/api/v1/nodes/join",
                json={
                    "node_id": settings.node_id,
                    "region_code": settings.region_code,
                    "tier": settings.tier,
                    "name": args.name or settings.node_id,
                },
            )
            if answer.status_code != 202:
                print(answer.text, file=sys.stderr)
                return 1
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            state_file.write_text(answer.text, encoding="utf-8")
            print(f"已提交加入申请，等待上级批准 (join requested): {answer.json()['request_id']}")
            return 0
        request = json.loads(state_file.read_text(encoding="utf-8"))
        answer = client.get(
            f"/api/v1/nodes/join/{request['request_id']}",
            params={"token": request["pickup_token"]},
        )
    if answer.status_code != 200:
        print(answer.text, file=sys.stderr)
        return 1
    got = answer.json()
    if "secret" not in got:
        print(f"尚未批准 (not approved yet): {got['state']}")
        return 3
    settings.store_credential(got["secret"])
    state_file.unlink()
    print(f"凭据已保存到 (credential stored in) {settings.credential_file}")
    return 0


# ----------------------------------------------------------------------------- status


def federated_tables(only: str | None = None) -> dict[ServiceName, SyncTables]:
    """Sync tables of every federated service installed here (``only``: one of them)."""
    out: dict[ServiceName, SyncTables] = {}
    for name, module in FEDERATED.items():
        if only is not None and name != only:
            continue
        try:
            tables = importlib.import_module(module).SYNC
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            continue  # this service does not take part in federation in this build
        out[name] = tables
    return out


def _service_db(settings: NodeSettings, service: ServiceName) -> Database:
    url, schema = settings.database_for(service)
    return Database(url, schema=schema)


def status_of(settings: NodeSettings) -> dict[str, Any]:
    """Every federated service's links, read from its own storage."""
    from shared.sync import sync_status

    services: dict[str, Any] = {}
    for name, tables in federated_tables().items():
        db = _service_db(settings, name)
        try:
            with db.session() as session:
                services[name] = {
                    "links": [link.as_dict() for link in sync_status(session, tables)]
                }
        except SQLAlchemyError as exc:
            services[name] = {"error": f"无法读取同步表 (cannot read the sync tables): {exc}"}
        finally:
            db.dispose()
    return {"node": settings.node_id, "parent_url": settings.parent_url, "services": services}


def retry(settings: NodeSettings, only: str | None = None) -> dict[str, int]:
    """Revive the dead-lettered links of every federated service (or one); how many each."""
    from shared.sync import revive

    revived: dict[str, int] = {}
    for name, tables in federated_tables(only).items():
        db = _service_db(settings, name)
        try:
            with db.session(write=True) as session:
                revived[name] = revive(session, tables)
        finally:
            db.dispose()
    return revived


def _age(seconds: Any) -> str:
    if seconds is None:
        return "-"
    s = float(seconds)
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.1f}h"


def format_status(status: dict[str, Any]) -> str:
    """A readable table: one line per service link."""
    head = (
        "service",
        "kind",
        "peer",
        "stream",
        "pending",
        "oldest",
        "acked",
        "state",
        "last error",
    )
    rows = [head]
    for service, doc in status["services"].items():
        if "error" in doc:
            rows.append((service, "", "", "", "", "", "", "", str(doc["error"])[:80]))
        for link in doc.get("links", []):
            rows.append(
                (
                    service,
                    str(link.get("kind", "")),
                    str(link.get("peer", "")),
                    str(link.get("stream", "")),
                    str(link.get("pending", "")),
                    _age(link.get("oldest_pending_age_s")),
                    str(link.get("last_acked_seq", "")),
                    str(link.get("state", "")),
                    str(link.get("last_error") or "")[:80],
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1]
        for r in rows
    ]
    return "\n".join(lines)


def cmd_retry(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Revive dead-lettered links once their cause is fixed; the running pushers and pullers
    take them up at their next poll."""
    revived = retry(settings, args.service)
    db = _db(settings)
    try:
        with db.session() as session:
            _audit(session, settings, "sync retry", settings.region_code, {"revived": revived})
    finally:
        db.dispose()
    print(json.dumps({"node": settings.node_id, "revived": revived}, ensure_ascii=False))
    return 0


def cmd_status(settings: NodeSettings, args: argparse.Namespace) -> int:
    """Print the sync status of every link (JSON with --json)."""
    status = status_of(settings)
    print(json.dumps(status, ensure_ascii=False, indent=2) if args.json else format_status(status))
    return 0


def register(subparsers: Any, settings_for: Callable[[argparse.Namespace], NodeSettings]) -> None:
    """Add the `nodes` and `sync` command groups to the main command."""

    def bind(parser: argparse.ArgumentParser, handler: Handler) -> None:
        parser.set_defaults(func=lambda args: handler(settings_for(args), args))

    group = subparsers.add_parser("nodes", help="节点登记与凭据 (node registry)")
    sub = group.add_subparsers(dest="nodes_command", required=True)
    p = sub.add_parser("join", help="向上级申请加入 / 领取凭据 (join the parent)")
    p.add_argument("--parent", help="上级网关地址 (parent gateway URL)")
    p.add_argument("--name", default="")
    bind(p, cmd_join)
    p = sub.add_parser("add-child", help="直接登记下级节点并签发凭据 (register a child)")
    p.add_argument("--node-id", required=True)
    p.add_argument("--region", dest="child_region", required=True)
    p.add_argument("--name", default="")
    bind(p, cmd_add_child)
    bind(sub.add_parser("list", help="下级节点列表 (list children)"), cmd_list)
    p = sub.add_parser("approve", help="批准加入申请 (approve)")
    p.add_argument("node_id")
    bind(p, cmd_approve)
    p = sub.add_parser("revoke", help="吊销下级节点 (revoke)")
    p.add_argument("node_id")
    p.add_argument("--reason", default="")
    bind(p, cmd_revoke)
    p = sub.add_parser("reinstate", help="恢复已吊销的下级节点 (re-admit a revoked child)")
    p.add_argument("node_id")
    bind(p, cmd_reinstate)
    p = sub.add_parser("rotate", help="轮换下级节点凭据 (rotate)")
    p.add_argument("node_id")
    bind(p, cmd_rotate)

    group = subparsers.add_parser("sync", help="三级联动同步 (federation sync)")
    sub = group.add_subparsers(dest="sync_command", required=True)
    p = sub.add_parser("status", help="各链路同步状态 (status of every link)")
    p.add_argument("--json", action="store_true")
    bind(p, cmd_status)
    p = sub.add_parser("retry", help="重试死信链路 (revive dead-lettered links)")
    p.add_argument("--service", choices=sorted(FEDERATED), help="仅此服务 (only this service)")
    bind(p, cmd_retry)
