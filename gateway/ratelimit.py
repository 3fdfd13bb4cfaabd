"""Per-identity token buckets (in memory, per gateway process)."""

from __future__ import annotations

import math

__all__ = ["RateLimiter"]


class RateLimiter:
    """``per_minute`` sustained with bursts of ``burst``; answers the seconds to wait or 0."""

    MAX_KEYS = 100_000

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = max(per_minute, 1) / 60.0
        self.capacity = float(max(burst, 1))
        # key → [tokens, last refill time]
        self._buckets: dict[str, list[float]] = {}

    def take(self, key: str, now: float) -> int:
        """Spend one token of ``key``; the Retry-After seconds when there is none."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self._prune(now)
            self._buckets[key] = [self.capacity - 1.0, now]
            return 0
        tokens = min(self.capacity, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0
        bucket[0] = tokens
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def _prune(self, now: float) -> None:
        # Full buckets carry no information: forgetting them changes no answer.
        full = [
            k
            for k, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.capacity
        ]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.MAX_KEYS:
            self._buckets.clear()
