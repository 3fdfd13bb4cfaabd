"""Domain errors carry their status; one set of handlers renders RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "PROBLEM_JSON",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Locked",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "TooManyRequests",
    "Unauthorized",
    "ValidationFailed",
    "install_error_handlers",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://checkup.example.org/problems/"
log = logging.getLogger("checkup.errors")


class ProblemError(Exception):
    """An error a caller can act on: HTTP status, stable type slug, Chinese/English title."""

    status = 400
    slug = "bad-request"
    title = "请求无效 (bad request)"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        slug: str | None = None,
        title: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        if slug:
            self.slug = slug
        if title:
            self.title = title
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class BadRequest(ProblemError):
    pass


class ValidationFailed(ProblemError):
    status = 422
    slug = "validation-failed"
    title = "数据校验未通过 (validation failed)"


class Unauthorized(ProblemError):
    status = 401
    slug = "unauthorized"
    title = "未认证 (unauthorized)"


class Forbidden(ProblemError):
    status = 403
    slug = "forbidden"
    title = "无权访问 (forbidden)"


class NotFound(ProblemError):
    status = 404
    slug = "not-found"
    title = "对象不存在 (not found)"


class Conflict(ProblemError):
    status = 409
    slug = "conflict"
    title = "状态冲突 (conflict)"


class Locked(ProblemError):
    status = 409
    slug = "locked"
    title = "数据已锁定 (locked)"


class PayloadTooLarge(ProblemError):
    status = 413
    slug = "payload-too-large"
    title = "请求体过大 (payload too large)"


class TooManyRequests(ProblemError):
    status = 429
    slug = "rate-limited"
    title = "请求过于频繁 (too many requests)"


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of the app as problem+json."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        headers = (
            {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else None
        )
        return JSONResponse(
            exc.to_problem(request.url.path),
            status_code=exc.status,
            media_type=PROBLEM_JSON,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field_name(e.get("loc", ())),
                "message": e.get("msg", ""),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        fields = ", ".join(e["field"] for e in errors[:5])
        return problem_response(
            422,
            "validation-failed",
            ValidationFailed.title,
            f"请求字段无效 (invalid fields): {fields}",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(
            exc.status_code, slug, str(exc.detail), str(exc.detail), instance=request.url.path
        )

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        rid = request.headers.get("x-request-id", "")
        log.exception(
            "unhandled error on %s %s (request %s)", request.method, request.url.path, rid
        )
        return problem_response(
            500,
            "internal-error",
            "服务内部错误 (internal error)",
            f"服务处理请求时出错，请凭请求编号联系管理员 (request id {rid})",
            instance=request.url.path,
            request_id=rid,
        )
