"""How a service reaches its sibling services: in-process (all-in-one) or over HTTP (split)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Annotated

import httpx
from fastapi import Depends, Request
from starlette.types import ASGIApp

from shared.errors import ProblemError
from shared.identity import IDENTITY_HEADER, Identity, sign_identity
from shared.settings import NodeSettings, ServiceName

__all__ = ["Peers", "PeersDep", "get_peers"]


class PeerUnavailable(ProblemError):
    status = 502
    slug = "peer-unavailable"
    title = "关联服务不可用 (sibling service unavailable)"


class _Borrowed(httpx.AsyncBaseTransport):
    """A shared connection pool lent to one client: closing the client leaves it open."""

    def __init__(self, pool: httpx.AsyncHTTPTransport) -> None:
        self.pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.pool.handle_async_request(request)

    async def aclose(self) -> None:
        """The pool outlives the client (``Peers.aclose`` closes it)."""


class Peers:
    """Sibling services of one node, each reached through its HTTP API.

    Over HTTP the clients of one event loop share a connection pool per sibling: a client
    is cheap to make (no TLS context loaded, no connection opened per request), and
    sibling calls never go through a proxy from the environment (they stay inside the
    node's network).
    """

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.apps: dict[str, ASGIApp] = {}
        # Connections belong to the loop that opened them: one set of pools per loop.
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, httpx.AsyncHTTPTransport]
        ] = weakref.WeakKeyDictionary()

    def register_app(self, name: ServiceName, app: ASGIApp) -> None:
        """All-in-one mode: call this sibling in-process."""
        self.apps[name] = app

    def client(self, name: ServiceName, identity: Identity) -> httpx.AsyncClient:
        """An async client for the sibling, acting as ``identity`` (use as a context manager)."""
        headers = {
            IDENTITY_HEADER: sign_identity(
                identity, self.settings.internal_secret.get_secret_value()
            )
        }
        timeout = httpx.Timeout(self.settings.upstream_timeout_s, connect=5.0)
        app = self.apps.get(name)
        if app is not None:
            return httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=f"http://{name}",
                headers=headers,
                timeout=timeout,
            )
        url = self.settings.service_url(name)
        if not url:
            raise PeerUnavailable(
                f"未配置 {name} 服务地址 (no URL configured for the {name} service)"
            )
        return httpx.AsyncClient(
            transport=self._transport(url),
            base_url=url,
            headers=headers,
            timeout=timeout,
            trust_env=False,
        )

    def _transport(self, url: str) -> httpx.AsyncBaseTransport:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # made outside a loop: a pool of its own, closed with it
            return httpx.AsyncHTTPTransport(trust_env=False)
        pools = self._pools.setdefault(loop, {})
        if url not in pools:
            pools[url] = httpx.AsyncHTTPTransport(trust_env=False)
        return _Borrowed(pools[url])

    async def aclose(self) -> None:
        """Close the pools of the running loop (at shutdown)."""
        pools = self._pools.pop(asyncio.get_running_loop(), {})
        for pool in pools.values():
            await pool.aclose()


def get_peers(request: Request) -> Peers:
    peers: Peers = request.app.state.peers
    return peers


PeersDep = Annotated[Peers, Depends(get_peers)]
