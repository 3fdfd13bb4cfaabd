"""The gateway's live state: storage, caches, limits, routes and upstream connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import httpx
from starlette.types import ASGIApp

from gateway.authn import Authenticator
from gateway.ratelimit import RateLimiter
from gateway.routing import fetch_openapi, route_table
from gateway.upstream import Upstream
from shared.db import Database
from shared.identity import Identity, sign_identity
from shared.peers import Peers
from shared.settings import NodeSettings, ServiceName

__all__ = ["OWN_RESOURCES", "SERVICE_NAMES", "GatewayRuntime"]

log = logging.getLogger("checkup.gateway")
SERVICE_NAMES: tuple[ServiceName, ...] = ("indicator", "survey", "report")
# Resources the gateway serves itself (its own FastAPI routes).
OWN_RESOURCES = frozenset({"auth", "users", "api-keys", "audit", "nodes", "sync"})
ANONYMOUS = Identity(subject="anonymous", kind="anonymous", roles=frozenset(), region="")


class GatewayRuntime:
    """Everything the forwarding path needs, built once and shared by all requests."""

    def __init__(self, settings: NodeSettings, services: Mapping[str, ASGIApp]) -> None:
        self.settings = settings
        self.inprocess: dict[str, ASGIApp] = dict(services)
        # The node's services as API clients (sync forwarding), in-process or over HTTP.
        self.peers = Peers(settings)
        for name, app in self.inprocess.items():
            self.peers.register_app(cast(ServiceName, name), app)
        # Seconds since the epoch; tests replace it to move time forward.
        self.clock: Callable[[], float] = time.time
        self._db: Database | None = None
        self.auth = Authenticator(settings, self.database, lambda: self.clock())
        self.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        self.upstreams: dict[str, Upstream] = {}
        self.routes: dict[str, str] = {}
        self.service_docs: dict[str, dict[str, Any]] = {}
        self.missing: set[str] = set()
        self._retry_task: asyncio.Task[None] | None = None
        self._anonymous: tuple[float, bytes] = (0.0, b"")
        self.openapi_cache: dict[str, Any] | None = None

    # ------------------------------------------------------------------ storage and time

    def database(self) -> Database:
        if self._db is None:
            raise RuntimeError("the gateway's database is opened in its lifespan")
        return self._db

    def now(self) -> datetime:
        """The gateway clock as an aware UTC datetime."""
        return datetime.fromtimestamp(self.clock(), UTC)

    def anonymous_header(self) -> bytes:
        """The signed identity of anonymous public requests (re-signed once a minute)."""
        now = time.time()
        if now - self._anonymous[0] > 60:
            secret = self.settings.internal_secret.get_secret_value()
            self._anonymous = (now, sign_identity(ANONYMOUS, secret, now).encode())
        return self._anonymous[1]

    # ------------------------------------------------------------------ lifecycle

    async def start(self, db: Database) -> None:
        """Open storage, learn the services' routes (waiting for split-mode services)."""
        self._db = db
        wanted: dict[str, str] = {}
        for name in SERVICE_NAMES:
            if name in self.inprocess:
                self.service_docs[name] = await self._inprocess_openapi(self.inprocess[name])
                continue
            url = self.settings.service_url(name)
            if url:
                self.upstreams[name] = Upstream(
                    name,
                    url,
                    timeout_s=self.settings.upstream_timeout_s,
                    pool_size=self.settings.upstream_pool_size,
                )
                wanted[name] = url
        results = await asyncio.gather(
            *(fetch_openapi(n, u, self.settings.discovery_timeout_s) for n, u in wanted.items()),
            return_exceptions=True,
        )
        for (wanted_name, _url), result in zip(wanted.items(), results, strict=True):
            if isinstance(result, BaseException):
                log.error("service %s not reachable at start-up: %s", wanted_name, result)
                self.missing.add(wanted_name)
            else:
                self.service_docs[wanted_name] = result
        self._rebuild_routes()
        if self.missing:
            self._retry_task = asyncio.create_task(self._rediscover(wanted))

    async def stop(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        for upstream in self.upstreams.values():
            await upstream.close()
        await self.peers.aclose()

    def _rebuild_routes(self) -> None:
        self.routes = route_table(self.service_docs, set(OWN_RESOURCES))
        self.openapi_cache = None

    async def _rediscover(self, wanted: dict[str, str]) -> None:
        # A service that came up late is routed as soon as its document can be read.
        while self.missing:
            for name in sorted(self.missing):
                try:
                    doc = await fetch_openapi(name, wanted[name], 5.0)
                except RuntimeError:
                    continue
                self.service_docs[name] = doc
                self.missing.discard(name)
                self._rebuild_routes()
                log.info("service %s discovered", name)
            await asyncio.sleep(5.0)

    @staticmethod
    async def _inprocess_openapi(app: ASGIApp) -> dict[str, Any]:
        openapi = getattr(app, "openapi", None)
        if callable(openapi):
            doc: dict[str, Any] = openapi()
            return doc
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            response = await client.get("/openapi.json")
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result
