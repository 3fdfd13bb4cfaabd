"""Polling until something holds, in the federation tests: a timeout fails the test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checkup import waiting


def wait_for(
    check: Callable[[], Any], timeout: float = 30.0, what: str = "", every: float = 0.1
) -> Any:
    """Poll ``check`` every ``every`` seconds until it returns something truthy."""
    return waiting.wait_for(check, timeout, what, every, error=AssertionError)
