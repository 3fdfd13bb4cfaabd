"""Factory for a service's FastAPI app: storage in lifespan, identity, errors, health."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from shared.db import Database
from shared.errors import install_error_handlers
from shared.identity import IdentityMiddleware
from shared.migrate import Revisions, storage_revisions
from shared.peers import Peers
from shared.settings import NodeSettings, ServiceName

__all__ = ["PROBLEM_RESPONSES", "create_service_app"]

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": desc, "content": {"application/problem+json": {}}}
    for code, desc in (
        (401, "未认证 / missing or invalid identity"),
        (403, "超出管辖范围或角色不足 / out of scope or role"),
        (404, "对象不存在 / not found"),
        (409, "状态冲突或已锁定 / conflict or locked"),
        (422, "数据校验未通过 / validation failed"),
    )
}


def create_service_app(
    name: ServiceName,
    settings: NodeSettings,
    *,
    package_dir: Path,
    routers: Sequence[APIRouter],
    title: str,
    spatial: bool = False,
    public_prefixes: tuple[str, ...] = (),
    on_startup: Callable[[FastAPI], None] | None = None,
    lifespans: Sequence[Callable[[FastAPI], AbstractAsyncContextManager[None]]] = (),
) -> FastAPI:
    """Build one service; its database is opened in lifespan and closed after.

    ``lifespans``: async context managers entered in order once the database is open
    (e.g. the federation pusher and puller) and left in reverse before it closes.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url, schema = settings.database_for(name)
        db = Database(url, schema=schema, spatial=spatial)
        app.state.db = db
        if on_startup is not None:
            on_startup(app)
        try:
            async with AsyncExitStack() as stack:
                for enter in lifespans:
                    await stack.enter_async_context(enter(app))
                yield
        finally:
            await app.state.peers.aclose()
            db.dispose()

    app = FastAPI(
        title=title,
        version="1.0.0",
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
    )
    app.state.settings = settings
    app.state.service_name = name
    app.state.peers = Peers(settings)
    install_error_handlers(app)
    app.add_middleware(
        IdentityMiddleware,
        secret=settings.internal_secret.get_secret_value(),
        public_prefixes=public_prefixes,
    )

    @app.get("/health", tags=["health"], summary="存活检查 (liveness)")
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": name, "node": settings.node_id}

    @app.get("/ready", tags=["health"], summary="就绪检查 (readiness)")
    def ready(request: Request) -> JSONResponse:
        """Readiness: the database answers and its migrations are at head."""
        state = storage_readiness(request.app.state.db, package_dir)
        if isinstance(state, JSONResponse):
            return state
        return JSONResponse(
            {
                "status": "ok" if state.at_head else "migrations-pending",
                "revision": state.current,
                "head": state.head,
            },
            status_code=200 if state.at_head else 503,
        )

    for router in routers:
        app.include_router(router)
    return app


def storage_readiness(db: Database, package_dir: Path) -> Revisions | JSONResponse:
    """A storage's migration revisions, or the 503 answer of ``/ready`` when its database
    does not answer."""
    try:
        return storage_revisions(package_dir, db)
    except Exception as exc:  # the database itself is what is being checked
        return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
