"""Own gateway paths answered without a user credential (the node endpoints check their own)."""

__all__ = ["ANONYMOUS_PATTERNS"]

ANONYMOUS_PATTERNS = (
    r"^/api/v1/nodes/join(/[A-Za-z0-9]+)?$",
    r"^/api/v1/sync/[a-z]+/(batches|pull)$",
)
