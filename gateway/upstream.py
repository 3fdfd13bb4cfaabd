"""A lean HTTP/1.1 client for forwarding: keep-alive pool on asyncio streams, httptools parsing.

Upstream transport failures are translated to problems in one place, ``upstream_problem``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import httptools
from starlette.types import Message, Send

__all__ = ["Upstream", "UpstreamError", "UpstreamTimeout", "upstream_problem"]

log = logging.getLogger("checkup.gateway.upstream")
READ_SIZE = 65536
# Headers that describe one hop, not the message: never passed on.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
    }
)

OnStart = Callable[[int, list[tuple[bytes, bytes]]], Awaitable[None]]


class UpstreamError(Exception):
    """The upstream could not be reached or broke the exchange."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""


class _StaleConnection(UpstreamError):
    """A pooled connection the server had already closed."""


def upstream_problem(service: str, exc: BaseException) -> tuple[int, str, str, str]:
    """(status, slug, title, detail) for a transport failure: timeout 504, otherwise 502."""
    if isinstance(exc, UpstreamTimeout | TimeoutError):
        return (
            504,
            "upstream-timeout",
            "后端服务超时 (upstream timeout)",
            f"{service} 服务未在规定时间内响应 (the {service} service did not answer in time)",
        )
    return (
        502,
        "upstream-unavailable",
        "后端服务不可用 (upstream service unavailable)",
        f"无法连接 {service} 服务 (cannot reach the {service} service): {type(exc).__name__}",
    )


class _Response:
    """httptools callbacks collecting one response."""

    __slots__ = ("body", "done", "headers", "headers_done")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.headers_done = False
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Upstream:
    """One service reached over HTTP/1.1 with a pool of kept-alive connections."""

    def __init__(self, name: str, url: str, *, timeout_s: float, pool_size: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{name}: only http:// upstream URLs are supported, got {url!r}")
        self.name = name
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/").encode()
        self.host_header = parts.netloc.encode()
        self.timeout_s = timeout_s
        self.connect_timeout_s = min(5.0, timeout_s)
        self.pool_size = pool_size
        self._idle: deque[_Conn] = deque()

    async def _connect(self) -> _Conn:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, limit=READ_SIZE * 4
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"connect to {self.name} timed out") from exc
        except OSError as exc:
            raise UpstreamError(f"connect to {self.name} failed: {exc}") from exc
        return _Conn(reader, writer)

    def _take_idle(self) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _give_back(self, conn: _Conn) -> None:
        if len(self._idle) < self.pool_size and conn.usable():
            self._idle.append(conn)
        else:
            conn.close()

    async def close(self) -> None:
        """Close every idle connection."""
        while self._idle:
            self._idle.pop().close()

    def head(
        self, method: str, path: bytes, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> bytes:
        """The request line and headers (``headers`` already carry Host and framing)."""
        target = self.prefix + path + (b"?" + query if query else b"")
        lines = [method.encode(), b" ", target, b" HTTP/1.1\r\n"]
        for k, v in headers:
            lines += (k, b": ", v, b"\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    async def forward(
        self,
        head: bytes,
        body: bytes | AsyncIterator[bytes],
        send: Send,
        on_start: OnStart,
        *,
        head_only: bool = False,
    ) -> int:
        """Send one request and stream the response to ``send``; returns the status.

        ``on_start`` runs after the upstream's status and headers arrive and before anything
        is sent to the client (the audit row is written there). A buffered body may be
        retried once on a fresh connection when a pooled one turns out closed.
        """
        replayable = isinstance(body, bytes)
        conn = self._take_idle() if replayable else None
        if conn is not None:
            try:
                return await self._exchange(conn, head, body, send, on_start, head_only, True)
            except _StaleConnection:
                pass
        conn = await self._connect()
        try:
            return await self._exchange(conn, head, body, send, on_start, head_only, False)
        except _StaleConnection as exc:
            raise UpstreamError(str(exc)) from exc

    async def _exchange(
        self,
        conn: _Conn,
        head: bytes,
        body: bytes | AsyncIterator[bytes],
        send: Send,
        on_start: OnStart,
        head_only: bool,
        reused: bool,
    ) -> int:
        reader, writer = conn.reader, conn.writer
        resp = _Response()
        parser = httptools.HttpResponseParser(resp)
        received = False
        started = False
        try:
            async with asyncio.timeout(self.timeout_s):
                if isinstance(body, bytes):
                    writer.write(head + body if body else head)
                else:
                    writer.write(head)
                    async for chunk in body:
                        if chunk:
                            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            await writer.drain()
                    writer.write(b"0\r\n\r\n")
                while not resp.headers_done:
                    data = await reader.read(READ_SIZE)
                    if not data:
                        if reused and not received:
                            raise _StaleConnection(f"{self.name} closed a kept-alive connection")
                        raise UpstreamError(f"{self.name} closed the connection mid-response")
                    received = True
                    parser.feed_data(data)
            status = parser.get_status_code()
            keep_alive = parser.should_keep_alive()
            headers = [(k, v) for k, v in resp.headers if k not in HOP_BY_HOP]
            await on_start(status, headers)
            started = True
            if resp.done or head_only:
                await send(
                    {"type": "http.response.body", "body": b"".join(resp.body), "more_body": False}
                )
            else:
                await self._stream_body(reader, parser, resp, send)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, ConnectionError) and reused and not received:
                raise _StaleConnection(str(exc)) from exc
            if started or isinstance(exc, UpstreamError | asyncio.CancelledError):
                raise
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout(f"{self.name} did not answer in time") from exc
            if isinstance(exc, OSError | httptools.HttpParserError):
                raise UpstreamError(f"{self.name}: {exc}") from exc
            raise
        if keep_alive and (resp.done or head_only):
            self._give_back(conn)
        else:
            conn.close()
        return status

    async def _stream_body(
        self,
        reader: asyncio.StreamReader,
        parser: httptools.HttpResponseParser,
        resp: _Response,
        send: Send,
    ) -> None:
        if resp.body:
            await send(
                {"type": "http.response.body", "body": b"".join(resp.body), "more_body": True}
            )
            resp.body.clear()
        while not resp.done:
            async with asyncio.timeout(self.timeout_s):
                data = await reader.read(READ_SIZE)
            if not data:
                # No length and no chunking: the body ends with the connection.
                if not any(k in (b"content-length", b"transfer-encoding") for k, _ in resp.headers):
                    resp.done = True
                    break
                raise UpstreamError(f"{self.name} closed the connection mid-body")
            parser.feed_data(data)
            if resp.body:
                message: Message = {
                    "type": "http.response.body",
                    "body": b"".join(resp.body),
                    "more_body": True,
                }
                resp.body.clear()
                await send(message)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
