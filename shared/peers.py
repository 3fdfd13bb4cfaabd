"""How a service reaches its sibling services: in-process (all-in-one) or over HTTP (split)."""

from __future__ import annotations

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


class Peers:
    """Sibling services of one node, each reached through its HTTP API."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.apps: dict[str, ASGIApp] = {}

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
        return httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout)


def get_peers(request: Request) -> Peers:
    peers: Peers = request.app.state.peers
    return peers


PeersDep = Annotated[Peers, Depends(get_peers)]
