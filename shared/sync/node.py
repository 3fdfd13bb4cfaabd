"""Which node and service a session records changes for, and waking the pusher on commit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from shared.regions import is_valid_code

__all__ = [
    "SyncNode",
    "applying_received",
    "bind_node",
    "mark_upward",
    "node_of",
    "records_upward",
    "wake_on_commit",
]

NODE_INFO = "checkup.sync.node"
RECORDED_INFO = "checkup.sync.recorded"
# Set on the session factory of a node that has a parent: only then does anyone drain the
# upward outbox (it is never pruned before an ack), so only then are own changes recorded.
UPWARD_INFO = "checkup.sync.upward"
# Set while a session applies changes received from a child: the receiver relays those
# itself with their original origin, so they are not recorded again as this node's own.
APPLYING_INFO = "checkup.sync.applying"


@dataclass(frozen=True)
class SyncNode:
    """This installation as the sync protocol sees it: origin id, region and service."""

    node_id: str
    region: str
    service: str

    def __post_init__(self) -> None:
        if not self.node_id or not is_valid_code(self.region):
            raise ValueError(f"a sync node needs an id and a division code: {self!r}")


def bind_node(factory: sessionmaker[Session], node: SyncNode) -> None:
    """Make every session of ``factory`` record changes as ``node`` (call once at start-up)."""
    factory.kw.setdefault("info", {})
    factory.kw["info"] = {**factory.kw["info"], NODE_INFO: node}


def node_of(session: Session, node: SyncNode | None = None) -> SyncNode:
    """The node a session records for: the explicit one, or the one bound to its factory."""
    found = node or session.info.get(NODE_INFO)
    if not isinstance(found, SyncNode):
        raise RuntimeError(
            "no sync node bound to this session: call shared.sync.bind_node(db.sessionmaker, "
            "SyncNode(...)) at start-up or pass node="
        )
    return found


def mark_upward(factory: sessionmaker[Session]) -> None:
    """This node pushes to a parent: its sessions record their own changes in the outbox."""
    factory.kw["info"] = {**factory.kw.get("info", {}), UPWARD_INFO: True}


def records_upward(session: Session) -> bool:
    """Whether this session's own changes go into the upward outbox (bound node + parent,
    and not a child's changes being applied)."""
    return (
        isinstance(session.info.get(NODE_INFO), SyncNode)
        and bool(session.info.get(UPWARD_INFO))
        and not session.info.get(APPLYING_INFO)
    )


@contextmanager
def applying_received(session: Session) -> Iterator[None]:
    """Writes inside apply changes received from a child: ``records_upward`` is False."""
    session.info[APPLYING_INFO] = True
    try:
        yield
    finally:
        session.info.pop(APPLYING_INFO, None)


def mark_recorded(session: Session) -> None:
    session.info[RECORDED_INFO] = True


def wake_on_commit(factory: sessionmaker[Session], wake: Callable[[], None]) -> Callable[[], None]:
    """Call ``wake`` after each commit that recorded a change; returns a function to undo it."""

    def _after_commit(session: Session) -> None:
        if session.info.pop(RECORDED_INFO, False):
            wake()

    def _after_rollback(session: Session) -> None:
        session.info.pop(RECORDED_INFO, None)

    listeners: list[tuple[str, Any]] = [
        ("after_commit", _after_commit),
        ("after_rollback", _after_rollback),
    ]
    for name, fn in listeners:
        event.listen(factory, name, fn)

    def _remove() -> None:
        for name, fn in listeners:
            event.remove(factory, name, fn)

    return _remove
