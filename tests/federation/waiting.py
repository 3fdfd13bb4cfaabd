"""Polling until something holds: the federation tests' one waiting loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    check: Callable[[], Any], timeout: float = 30.0, what: str = "", every: float = 0.1
) -> Any:
    """Poll ``check`` every ``every`` seconds until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or check}")
        time.sleep(every)
