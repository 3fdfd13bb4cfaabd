"""Node composition: all-in-one (one process) or split (one process per service), migrations."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from shared.db import Database
from shared.migrate import upgrade
from shared.settings import NodeSettings, ServiceName

__all__ = [
    "MIGRATION_ORDER",
    "app_from_env",
    "build_all_in_one",
    "build_service",
    "package_dirs",
    "run_migrations",
    "serve",
]

MIGRATION_ORDER: tuple[ServiceName, ...] = ("indicator", "survey", "report", "gateway")
# Young-generation threshold of the garbage collector in a served node (see ``serve``).
GC_YOUNG_THRESHOLD = 50_000


def _factories() -> dict[str, Callable[[NodeSettings], FastAPI]]:
    from gateway.app import create_app as gateway_app
    from services.indicator.app import create_app as indicator_app
    from services.report.app import create_app as report_app
    from services.survey.app import create_app as survey_app

    return {
        "indicator": indicator_app,
        "survey": survey_app,
        "report": report_app,
        "gateway": gateway_app,
    }


def package_dirs() -> dict[str, tuple[Path, bool]]:
    """Service name → (package dir holding its migrations, spatial storage)."""
    from gateway.app import PACKAGE_DIR as gateway_dir
    from services.indicator.app import PACKAGE_DIR as indicator_dir
    from services.report.app import PACKAGE_DIR as report_dir
    from services.survey.app import PACKAGE_DIR as survey_dir

    return {
        "indicator": (indicator_dir, True),
        "survey": (survey_dir, False),
        "report": (report_dir, False),
        "gateway": (gateway_dir, False),
    }


def run_migrations(
    settings: NodeSettings, services: tuple[ServiceName, ...] = MIGRATION_ORDER
) -> None:
    """Upgrade the storage of every service of the node (gateway included) to head."""
    dirs = package_dirs()
    for name in services:
        package_dir, spatial = dirs[name]
        url, schema = settings.database_for(name)
        db = Database(url, schema=schema, spatial=spatial)
        try:
            upgrade(package_dir, db)
        finally:
            db.dispose()


def build_service(settings: NodeSettings, name: str) -> FastAPI:
    """One service for split mode (the gateway proxies over HTTP to the configured URLs)."""
    factories = _factories()
    if name not in factories:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(factories)}")
    return factories[name](settings)


def build_all_in_one(settings: NodeSettings) -> FastAPI:
    """The whole node in one app: the gateway calls the services in-process."""
    from gateway.app import create_app as gateway_app

    factories = _factories()
    services = {name: factories[name](settings) for name in ("indicator", "survey", "report")}
    for name, app in services.items():
        for other, other_app in services.items():
            if other != name:
                app.state.peers.register_app(other, other_app)
    gateway = gateway_app(settings, services)
    gateway_lifespan = gateway.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Services first (their storage must be open before requests reach them), the
        # gateway last; torn down in reverse order.
        async with AsyncExitStack() as stack:
            for service in services.values():
                await stack.enter_async_context(service.router.lifespan_context(service))
            await stack.enter_async_context(gateway_lifespan(app))
            yield

    gateway.router.lifespan_context = lifespan
    gateway.state.services = services
    return gateway


def app_from_env() -> FastAPI:
    """uvicorn factory: the service named by CHECKUP_SERVICE ('all' for all-in-one)."""
    settings = NodeSettings()
    name = os.environ.get("CHECKUP_SERVICE", "all")
    return build_all_in_one(settings) if name == "all" else build_service(settings, name)


def serve(
    settings: NodeSettings, name: str = "all", host: str = "127.0.0.1", port: int = 8000
) -> None:
    """Run one service (or the all-in-one node) under uvicorn (uvloop + httptools)."""
    import gc

    import uvicorn

    app = build_all_in_one(settings) if name == "all" else build_service(settings, name)
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise rescan it while a large batch or import is parsed.
    gc.collect()
    gc.freeze()
    # A sync batch or an import holds some 100,000 containers while it is handled. With
    # the default threshold (700), a city relaying 100,000 changes ran 2,140 young, 194
    # middle and 17 full passes (~70 ms each): 2.2 s of its CPU. Nearly all garbage goes
    # by reference counting; cycles are still collected, once GC_YOUNG_THRESHOLD
    # containers have piled up.
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=os.environ.get("CHECKUP_LOG_LEVEL", "warning"),
        access_log=False,
        # The gateway keeps upstream connections alive; do not drop them after 5 s idle.
        timeout_keep_alive=75,
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m checkup.node SERVICE --port N``: run one process of a node."""
    parser = argparse.ArgumentParser(prog="python -m checkup.node")
    parser.add_argument("service", choices=["all", "indicator", "survey", "report", "gateway"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    serve(NodeSettings(), args.service, args.host, args.port)


if __name__ == "__main__":
    main()
