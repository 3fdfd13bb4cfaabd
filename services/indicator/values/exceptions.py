"""Errors of the values domain that shared/errors.py has no class for."""

from __future__ import annotations

from shared.errors import ProblemError

__all__ = ["UnsupportedMediaType"]


class UnsupportedMediaType(ProblemError):
    status = 415
    slug = "unsupported-media-type"
    title = "不支持的内容类型 (unsupported media type)"
