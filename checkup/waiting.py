"""Polling until something holds: the one waiting loop of the demo, the node processes'
helpers and the federation tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_for"]


def wait_for(
    check: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "",
    every: float = 0.1,
    *,
    error: Callable[[str], Exception] = TimeoutError,
) -> Any:
    """Call ``check`` every ``every`` seconds until it returns something truthy, and return
    that; after ``timeout`` seconds raise ``error`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise error(f"等待超时 (timed out after {timeout:.0f}s): {what or check}")
        time.sleep(every)
