"""Sibling services over HTTP: one kept-alive connection pool per sibling, shared by the
clients of a loop, each request signed as its own identity."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from shared.identity import IDENTITY_HEADER, Identity, verify_identity
from shared.peers import Peers
from shared.settings import NodeSettings


class Sibling:
    """A minimal HTTP/1.1 server on loopback: keeps connections alive, counts them, and
    records the identity header of every request."""

    def __init__(self) -> None:
        self.connections = 0
        self.open = 0
        self.identities: list[str] = []
        self.server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        self.open += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                for line in head.decode().split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == IDENTITY_HEADER:
                        self.identities.append(value.strip())
                body = b'{"status":"ok"}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        finally:
            self.open -= 1
            writer.close()
            self._handlers.discard(task)

    async def stop(self) -> None:
        """Stop listening and end the connections still open (clients of ended loops)."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        handlers = list(self._handlers)
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def _identity(region: str) -> Identity:
    return Identity(subject=f"clerk-{region}", kind="user", roles=frozenset(), region=region)


def test_clients_of_a_sibling_share_one_kept_alive_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy from the environment would refuse every request: sibling calls ignore it.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")

    async def scenario() -> None:
        sibling = Sibling()
        url = await sibling.start()
        settings = NodeSettings(data_dir=tmp_path, indicator_url=url)
        peers = Peers(settings)
        secret = settings.internal_secret.get_secret_value()
        try:
            for region in ("360121", "360124", "360121"):
                async with peers.client("indicator", _identity(region)) as client:
                    r = await client.get("/health")
                assert r.status_code == 200 and r.json() == {"status": "ok"}
            # Three clients, one connection: closing a client leaves the pool open.
            assert sibling.connections == 1
            assert sibling.open == 1
            # Each request went as its own client's identity.
            regions = [verify_identity(h, secret).region for h in sibling.identities]
            assert regions == ["360121", "360124", "360121"]
            await peers.aclose()
            for _ in range(50):
                if sibling.open == 0:
                    break
                await asyncio.sleep(0.02)
            assert sibling.open == 0  # shutdown closes the pooled connection
            # A client made after shutdown opens a fresh pool.
            async with peers.client("indicator", _identity("360121")) as client:
                assert (await client.get("/health")).status_code == 200
            assert sibling.connections == 2
            await peers.aclose()
        finally:
            await sibling.stop()

    asyncio.run(scenario())


def test_each_event_loop_gets_its_own_pool(tmp_path: Path) -> None:
    # Connections cannot move between loops: a second loop (a second TestClient, a
    # worker thread) gets connections of its own, and the first loop's keep working.
    sibling_loop = asyncio.new_event_loop()
    sibling = Sibling()
    url = sibling_loop.run_until_complete(sibling.start())

    thread = threading.Thread(target=sibling_loop.run_forever, daemon=True)
    thread.start()
    peers = Peers(NodeSettings(data_dir=tmp_path, indicator_url=url))

    async def one_call() -> int:
        async with peers.client("indicator", _identity("360121")) as client:
            return (await client.get("/health")).status_code

    try:
        # The first loop ends with its connection still pooled (no shutdown); the second
        # loop must not pick it up.
        assert asyncio.run(one_call()) == 200
        assert asyncio.run(one_call()) == 200
        assert sibling.connections == 2
    finally:
        asyncio.run_coroutine_threadsafe(sibling.stop(), sibling_loop).result(5)
        sibling_loop.call_soon_threadsafe(sibling_loop.stop)
        thread.join(5)
        sibling_loop.close()
