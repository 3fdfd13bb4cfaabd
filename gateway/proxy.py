"""The forwarding path: one pure-ASGI middleware in front of the gateway's own routes.

Per request it assigns the request id, enforces the body limit, authenticates from memory,
applies the rate limit, routes by the first path segment, forwards (in-process or over
HTTP) with the signed identity, and writes the audit row of every write before answering.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from anyio import to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.audit import AuditRecord, find_region, write_audit
from gateway.authn import Caller
from gateway.routing import resource_of
from gateway.runtime import OWN_RESOURCES, GatewayRuntime
from gateway.sync_patterns import ANONYMOUS_PATTERNS
from gateway.upstream import UpstreamError, upstream_problem
from shared.errors import PROBLEM_JSON, PayloadTooLarge, ProblemError, TooManyRequests

__all__ = ["ANONYMOUS_PATHS", "GatewayMiddleware"]

log = logging.getLogger("checkup.gateway.proxy")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Gateway paths answered without credentials (besides everything outside /api/v1/).
ANONYMOUS_PATHS = frozenset({"/api/v1/auth/login"})
# Own paths with a variable part answered without user credentials (node join and sync:
# those endpoints authenticate the node themselves).
_ANONYMOUS_RE = re.compile("|".join(ANONYMOUS_PATTERNS))
_RID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_BUFFER_LIMIT = 1024 * 1024  # bodies up to this size are buffered (and retryable)
_SAMPLE_LIMIT = 64 * 1024  # JSON bodies up to this size are read for the audit's region
# Request headers the services must not see from the client: credentials, identity
# (only the gateway signs one), and everything the gateway sets itself.
_DROP = frozenset(
    {
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
        b"authorization",
        b"x-api-key",
        b"x-checkup-identity",
        b"x-checkup-batch",  # what the gateway verified of a sync batch (shared.sync.wire)
        b"x-request-id",
        b"x-forwarded-for",
    }
)


class _Ctx:
    """What the gateway learns about one request on its way through."""

    __slots__ = (
        "audited",
        "body_len",
        "caller",
        "client",
        "content_type",
        "detail",
        "method",
        "path",
        "query",
        "rid",
        "sample",
        "started",
        "state",
        "status",
        "t0",
    )

    def __init__(self, scope: Scope, rid: bytes, content_type: bytes) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        client = scope.get("client")
        self.client: str = client[0] if client else ""
        self.rid = rid
        self.content_type = content_type
        self.audited = self.method not in SAFE_METHODS
        self.caller: Caller | None = None
        self.status = 0
        self.started = False
        self.body_len = 0
        self.sample: list[bytes] = []
        self.detail: dict[str, Any] | None = None
        self.state: dict[str, Any] = {}
        self.t0 = time.perf_counter()


class GatewayMiddleware:
    """Pure-ASGI front of the gateway (no FastAPI routing on the forwarding path)."""

    def __init__(self, app: ASGIApp, runtime: GatewayRuntime) -> None:
        self.app = app
        self.rt = runtime
        self.max_body = runtime.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = authorization = api_key = content_length = None
        content_type = b""
        chunked = False
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key == b"x-request-id":
                rid = value
            elif key == b"x-api-key":
                api_key = value
            elif key == b"content-length":
                content_length = value
            elif key == b"content-type":
                content_type = value
            elif key == b"transfer-encoding":
                chunked = True
        if rid is None or not _RID.match(rid):
            rid = uuid.uuid4().hex.encode()
        ctx = _Ctx(scope, rid, content_type)
        path = ctx.path
        resource = resource_of(path)
        service: str | None = None
        anonymous = True
        if resource is not None and resource not in OWN_RESOURCES:
            service = self.rt.routes.get(resource)
            anonymous = resource.startswith("public/")
        elif resource is not None:
            anonymous = path in ANONYMOUS_PATHS or _ANONYMOUS_RE.match(path) is not None

        try:
            if content_length is not None:
                try:
                    declared = int(content_length)
                except ValueError:
                    declared = -1
                if declared < 0:
                    raise ProblemError("Content-Length 无效 (invalid Content-Length)")
                if declared > self.max_body:
                    raise self._too_large()
            else:
                declared = -1 if chunked else 0
            if anonymous:
                limit_key = "addr:" + ctx.client
            else:
                ctx.caller = await self.rt.auth.authenticate(authorization, api_key)
                limit_key = ctx.caller.key
            wait = self.rt.limiter.take(limit_key, self.rt.clock())
            if wait:
                raise TooManyRequests(
                    f"请求过于频繁，请 {wait} 秒后重试 (rate limit exceeded, retry in {wait} s)",
                    retry_after=wait,
                )
            if resource is not None and resource not in OWN_RESOURCES and service is None:
                raise _problem(
                    404,
                    "not-found",
                    "对象不存在 (not found)",
                    f"没有服务提供此路径 (no service serves {path})",
                )
        except ProblemError as exc:
            await self._send_problem(ctx, send, exc)
            return

        if declared < 0 and (service is None or service in self.rt.inprocess):
            # In-process apps would read an unlimited stream themselves; read it here,
            # up to the limit, so an oversized one is a clean 413 before anything runs.
            try:
                body = await self._read_body(ctx, receive)
            except ProblemError as exc:
                await self._send_problem(ctx, send, exc)
                return
            receive = _replay_body(body, receive)
            ctx.body_len = 0
            ctx.sample.clear()

        if service is None:
            await self._own(ctx, scope, receive, send)
        elif service in self.rt.inprocess:
            await self._inprocess(ctx, service, scope, receive, send)
        else:
            await self._http(ctx, service, scope, receive, send, declared)

    # ------------------------------------------------------------------ targets

    async def _own(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        if ctx.caller is not None:
            state["identity"] = ctx.caller.identity
            state["session_id"] = ctx.caller.session_id
            state["user_id"] = ctx.caller.user_id
        ctx.state = state
        if not ctx.audited:
            await self.app(scope, self._receive(ctx, receive), self._send(ctx, send))
            return
        held: list[Message] = []
        try:
            await self.app(scope, self._receive(ctx, receive), self._hold(held))
        except BaseException:
            if not ctx.started:
                ctx.status = 500
                await self._audit(ctx)
            raise
        await self._replay(ctx, held, send)

    async def _inprocess(
        self, ctx: _Ctx, service: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        sub = dict(scope)
        sub["headers"] = self._headers(ctx, scope)
        sub["state"] = {}
        app = self.rt.inprocess[service]
        held: list[Message] = []
        target: Send = self._hold(held) if ctx.audited else self._send(ctx, send)
        try:
            await app(sub, self._receive(ctx, receive), target)
        except Exception:
            # A service's error middleware answers 500 and then re-raises; the answer
            # (held or sent) stands, the exception is only logged here.
            log.exception("%s failed on %s %s", service, ctx.method, ctx.path)
            if not ctx.started and not held:
                detail = f"{service} 服务处理请求时出错 (request id {ctx.rid.decode()})"
                await self._send_problem(
                    ctx,
                    send,
                    _problem(500, "internal-error", "服务内部错误 (internal error)", detail),
                )
                return
        if ctx.audited:
            await self._replay(ctx, held, send)

    async def _http(
        self, ctx: _Ctx, service: str, scope: Scope, receive: Receive, send: Send, declared: int
    ) -> None:
        upstream = self.rt.upstreams[service]
        headers = self._headers(ctx, scope)
        headers.insert(0, (b"host", upstream.host_header))
        body: bytes | AsyncIterator[bytes]
        try:
            if declared == 0:
                body = b""
                if ctx.method not in SAFE_METHODS:
                    headers.append((b"content-length", b"0"))
            elif 0 < declared <= _BUFFER_LIMIT:
                body = await self._read_body(ctx, receive)
                headers.append((b"content-length", str(len(body)).encode()))
            else:
                body = self._stream_body(ctx, receive)
                headers.append((b"transfer-encoding", b"chunked"))
            head = upstream.head(
                ctx.method, scope.get("raw_path") or ctx.path.encode(), ctx.query, headers
            )

            async def on_start(status: int, response_headers: list[tuple[bytes, bytes]]) -> None:
                await self._start(ctx, send, status, response_headers)

            await upstream.forward(head, body, send, on_start, head_only=ctx.method == "HEAD")
        except ProblemError as exc:
            if ctx.started:
                raise
            await self._send_problem(ctx, send, exc)
        except (UpstreamError, OSError, TimeoutError) as exc:
            if ctx.started:
                raise
            status, slug, title, detail = upstream_problem(service, exc)
            log.warning("upstream %s failed for %s %s: %s", service, ctx.method, ctx.path, exc)
            await self._send_problem(ctx, send, _problem(status, slug, title, detail))

    # ------------------------------------------------------------------ plumbing

    def _headers(self, ctx: _Ctx, scope: Scope) -> list[tuple[bytes, bytes]]:
        forwarded_for = ctx.client.encode()
        out = []
        for key, value in scope["headers"]:
            if key in _DROP:
                if key == b"x-forwarded-for" and ctx.client:
                    forwarded_for = value + b", " + forwarded_for
                continue
            out.append((key, value))
        if ctx.caller is not None:
            identity = self.rt.auth.signed_header(ctx.caller)
        else:
            identity = self.rt.anonymous_header()
        out.append((b"x-checkup-identity", identity))
        out.append((b"x-request-id", ctx.rid))
        if forwarded_for:
            out.append((b"x-forwarded-for", forwarded_for))
        return out

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"请求体超过上限 {self.max_body} 字节 (body exceeds {self.max_body} bytes)",
            max_bytes=self.max_body,
        )

    def _count(self, ctx: _Ctx, chunk: bytes) -> None:
        ctx.body_len += len(chunk)
        if ctx.body_len > self.max_body:
            raise self._too_large()
        if ctx.audited and ctx.body_len <= _SAMPLE_LIMIT and b"json" in ctx.content_type:
            ctx.sample.append(chunk)

    def _receive(self, ctx: _Ctx, receive: Receive) -> Receive:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self._count(ctx, message.get("body", b""))
            return message

        return counted

    async def _read_body(self, ctx: _Ctx, receive: Receive) -> bytes:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise asyncio.CancelledError("client went away")
            chunk = message.get("body", b"")
            self._count(ctx, chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _stream_body(self, ctx: _Ctx, receive: Receive) -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise asyncio.CancelledError("client went away")
            chunk = message.get("body", b"")
            self._count(ctx, chunk)
            yield chunk
            if not message.get("more_body", False):
                return

    @staticmethod
    def _hold(held: list[Message]) -> Send:
        # Writes are answered only after the endpoint has returned, i.e. after its
        # request-scoped transaction committed, and after the audit row is written.
        async def hold(message: Message) -> None:
            held.append(message)

        return hold

    async def _replay(self, ctx: _Ctx, held: list[Message], send: Send) -> None:
        if not held or held[0]["type"] != "http.response.start":
            detail = f"处理请求时未产生响应 (no response, request id {ctx.rid.decode()})"
            await self._send_problem(
                ctx, send, _problem(500, "internal-error", "服务内部错误 (internal error)", detail)
            )
            return
        start = held[0]
        await self._start(ctx, send, start["status"], list(start.get("headers", [])), start)
        for message in held[1:]:
            await send(message)

    def _send(self, ctx: _Ctx, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                await self._start(ctx, send, message["status"], headers, message)
                return
            await send(message)

        return wrapped

    async def _start(
        self,
        ctx: _Ctx,
        send: Send,
        status: int,
        headers: list[tuple[bytes, bytes]],
        template: Message | None = None,
    ) -> None:
        ctx.status = status
        if ctx.audited:
            await self._audit(ctx)
        headers.append((b"x-request-id", ctx.rid))
        message: Message = dict(template) if template else {"type": "http.response.start"}
        message["status"] = status
        message["headers"] = headers
        ctx.started = True
        await send(message)

    async def _send_problem(self, ctx: _Ctx, send: Send, exc: ProblemError) -> None:
        body = json.dumps(exc.to_problem(ctx.path), ensure_ascii=False).encode()
        headers = [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        if "retry_after" in exc.extra:
            headers.append((b"retry-after", str(exc.extra["retry_after"]).encode()))
        ctx.detail = {"problem": exc.slug}
        await self._start(ctx, send, exc.status, headers)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _audit(self, ctx: _Ctx) -> None:
        rt = self.rt
        state = ctx.state
        if ctx.caller is not None:
            actor, kind = ctx.caller.identity.subject, ctx.caller.identity.kind
        else:
            actor = state.get("audit_actor") or "anonymous"
            kind = state.get("audit_actor_kind") or "anonymous"
        detail = state.get("audit_detail") or ctx.detail
        record = AuditRecord(
            at=rt.now(),
            actor=actor,
            actor_kind=kind,
            method=ctx.method,
            path=ctx.path,
            query=ctx.query.decode("latin-1"),
            region_code=state.get("audit_region")
            or find_region(ctx.path, ctx.query, b"".join(ctx.sample), ctx.content_type),
            node_id=rt.settings.node_id,
            status=ctx.status,
            request_id=ctx.rid.decode(),
            client_addr=ctx.client,
            duration_ms=(time.perf_counter() - ctx.t0) * 1000.0,
            detail=detail,
        )
        try:
            await to_thread.run_sync(write_audit, rt.database(), record)
        except Exception:
            # The write itself has happened upstream; failing the answer would invite a
            # retry of it. The loss is logged loudly instead.
            log.exception(
                "AUDIT WRITE FAILED for %s %s by %s (request %s, status %s)",
                ctx.method,
                ctx.path,
                actor,
                record.request_id,
                ctx.status,
            )


def _replay_body(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _problem(status: int, slug: str, title: str, detail: str) -> ProblemError:
    exc = ProblemError(detail, slug=slug, title=title)
    exc.status = status
    return exc
