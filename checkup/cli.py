"""The `checkup` command line: serve a node, migrate, manage accounts, import, demo."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from shared.settings import NodeSettings

SERVE_MODES = ("all-in-one", "gateway", "indicator", "survey", "report")


def _settings(args: argparse.Namespace) -> NodeSettings:
    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "region", None):
        overrides["region_code"] = args.region
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return NodeSettings(**overrides)  # type: ignore[arg-type]


def cmd_serve(args: argparse.Namespace) -> int:
    from checkup.node import run_migrations, serve

    settings = _settings(args)
    if not args.no_migrate and args.mode == "all-in-one":
        run_migrations(settings)
    if not args.quiet:
        os.environ.setdefault("CHECKUP_LOG_LEVEL", "info")
    serve(settings, "all" if args.mode == "all-in-one" else args.mode, args.host, args.port)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from checkup.node import run_migrations

    settings = _settings(args)
    run_migrations(settings)
    where = "PostgreSQL" if settings.database_url else str(settings.data_dir)
    print(f"已迁移到最新版本 (migrated): {where}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from checkup.demo import run_demo

    return run_demo(
        data_dir=Path(args.data_dir or "var/demo"),
        port=args.port,
        keep_running=args.keep_running,
    )


def cmd_local_api(args: argparse.Namespace) -> int:
    """Operator commands that call the node's own API in-process as the local operator."""
    from checkup.local import LocalNode

    settings = _settings(args)
    with LocalNode(settings) as node:
        if args.command == "systems":
            if args.action == "load-starter":
                out = node.load_starter_system(release=args.release)
            else:
                out = node.import_system(Path(args.file), release=args.release)
        elif args.command == "values":
            out = node.import_values(
                Path(args.file),
                system_id=args.system,
                period=args.period,
                source=args.source,
                mode=args.mode,
            )
        else:
            out = node.evaluate(
                system_id=args.system, period=args.period, region_code=args.region_code
            )
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="checkup", description="城市体检信息平台 节点命令行")
    parser.add_argument("--data-dir", help="节点数据目录 (CHECKUP_DATA_DIR)")
    parser.add_argument("--region", help="节点区划代码 (CHECKUP_REGION_CODE)")
    parser.add_argument("--database-url", help="PostgreSQL URL (CHECKUP_DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="启动节点或单个服务 (start a node all-in-one or one service)")
    p.add_argument("mode", nargs="?", choices=SERVE_MODES, default="all-in-one")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-migrate", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="执行数据库迁移 (run migrations of every service)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("demo", help="演示全流程 (run the demo of the whole flow)")
    p.add_argument("--port", type=int, default=0, help="0 = any free port")
    p.add_argument(
        "--keep-running",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="演示结束后保持节点运行 (default: yes on a terminal)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("systems", help="指标体系 (indicator systems)")
    p.add_argument("action", choices=("load-starter", "import"))
    p.add_argument("file", nargs="?", help="JSON 或 Excel 文件 (for import)")
    p.add_argument("--release", action="store_true", help="导入后发布 (release after import)")
    p.set_defaults(func=cmd_local_api)

    p = sub.add_parser("values", help="导入指标数据 (import values: CSV, JSON lines, Excel)")
    p.add_argument("action", choices=("import",))
    p.add_argument("file")
    p.add_argument("--system", type=int, required=True)
    p.add_argument("--period", required=True)
    p.add_argument("--source", default="self_checkup")
    p.add_argument("--mode", choices=("per_row", "all_or_nothing"), default="per_row")
    p.set_defaults(func=cmd_local_api)

    p = sub.add_parser("evaluate", help="评价 (grade values, compute scores and index)")
    p.add_argument("--system", type=int, required=True)
    p.add_argument("--period", required=True)
    p.add_argument("--region-code")
    p.set_defaults(func=cmd_local_api)

    try:
        from gateway.cli import register as register_gateway
    except ImportError:  # pragma: no cover - the gateway ships with the platform
        pass
    else:
        register_gateway(sub, _settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
