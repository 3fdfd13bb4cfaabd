"""The gateway app (identity, routing to services, limits, audit)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from gateway.proxy import ANONYMOUS_PATHS, GatewayMiddleware
from gateway.router import api_keys_router, audit_router, auth_router, users_router
from gateway.routing import merge_openapi
from gateway.runtime import GatewayRuntime
from gateway.sync_routes import nodes_router, sync_router
from shared.app import PROBLEM_RESPONSES, storage_readiness
from shared.db import Database
from shared.errors import install_error_handlers
from shared.settings import NodeSettings

__all__ = ["PACKAGE_DIR", "create_app"]

PACKAGE_DIR = Path(__file__).parent

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    413: {
        "description": "请求体过大 / payload too large",
        "content": {"application/problem+json": {}},
    },
    429: {
        "description": "请求过于频繁 / rate limited",
        "content": {"application/problem+json": {}},
    },
}


def create_app(settings: NodeSettings, services: Mapping[str, ASGIApp] | None = None) -> FastAPI:
    """The node's gateway; services given here are called in-process, others over HTTP."""
    runtime = GatewayRuntime(settings, services or {})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url, schema = settings.database_for("gateway")
        db = Database(url, schema=schema)
        app.state.db = db
        try:
            await runtime.start(db)
            yield
        finally:
            await runtime.stop()
            db.dispose()

    app = FastAPI(
        title="城市体检信息平台 API (city checkup platform)",
        description=(
            "经网关访问的全部接口：登录后以 `Authorization: Bearer <token>` 调用，"
            "其他系统以 `X-API-Key` 调用；错误均为 RFC 9457 problem+json。"
            " (Every API of the node through its gateway.)"
        ),
        version="1.0.0",
        lifespan=lifespan,
        responses=_RESPONSES,
    )
    app.state.settings = settings
    app.state.gateway = runtime
    app.state.service_name = "gateway"
    install_error_handlers(app)
    for router in (
        auth_router,
        users_router,
        api_keys_router,
        audit_router,
        nodes_router,
        sync_router,
    ):
        app.include_router(router)

    @app.get("/health", tags=["health"], summary="存活检查 (liveness)")
    def health() -> dict[str, str]:
        """Liveness: the gateway answers."""
        return {"status": "ok", "service": "gateway", "node": settings.node_id}

    @app.get("/ready", tags=["health"], summary="就绪检查 (readiness)")
    def ready(request: Request) -> JSONResponse:
        """Readiness: storage at its migration head and every configured service discovered."""
        state = storage_readiness(request.app.state.db, PACKAGE_DIR)
        if isinstance(state, JSONResponse):
            return state
        problems = []
        if not state.at_head:
            problems.append(f"migrations pending ({state.current} → {state.head})")
        problems += [f"service {name} not discovered" for name in sorted(runtime.missing)]
        return JSONResponse(
            {
                "status": "ok" if not problems else "degraded",
                "revision": state.current,
                "services": sorted(runtime.service_docs),
                "problems": problems,
            },
            status_code=200 if not problems else 503,
        )

    base_openapi = app.openapi

    def merged_openapi() -> dict[str, Any]:
        if runtime.openapi_cache is None:
            app.openapi_schema = None
            runtime.openapi_cache = merge_openapi(
                base_openapi(), runtime.service_docs, set(ANONYMOUS_PATHS)
            )
        return runtime.openapi_cache

    app.openapi = merged_openapi  # type: ignore[method-assign]
    app.add_middleware(GatewayMiddleware, runtime=runtime)
    return app
