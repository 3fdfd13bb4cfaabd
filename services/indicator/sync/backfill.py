"""A node that gets its parent after its data was made: queue everything it owns once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import not_, or_, select, true
from sqlalchemy.orm import Session

from services.indicator.approval.models import Submission
from services.indicator.sync.outgoing import record_system_up
from services.indicator.sync.submissions import record_submission
from services.indicator.sync.tables import SYNC
from services.indicator.sync.values import record_values
from services.indicator.systems.models import IndicatorSystem
from services.indicator.values.models import IndicatorValue
from shared.regions import prefix_of
from shared.sync.node import node_of
from shared.sync.outbox import UP

__all__ = ["backfill_upward"]


def backfill_upward(session: Session) -> int:
    """Record this node's own systems, every value it holds and its submissions' states, in
    that order (a value needs its system above; a state, its values). Returns how many.

    Called once, when a node with a parent has never recorded anything: a node that joined
    later than its data was entered. Everything after goes up with each write.
    """
    me = node_of(session)
    own = prefix_of(me.region)
    # Regions whose data a child sends itself (and this node relays with the child's origin).
    i = SYNC.inbox.c
    children = [
        prefix_of(r)
        for r in session.scalars(
            select(i.region).where(i.direction == UP, i.region.is_not(None)).distinct()
        )
        if r
    ]

    def owned(column: Any) -> Any:
        if not children:
            return true()
        return not_(or_(*(column.startswith(p, autoescape=True) for p in children)))

    n = 0
    systems = session.scalars(
        select(IndicatorSystem)
        .where(
            IndicatorSystem.state.in_(("released", "retired")),
            IndicatorSystem.region_code.startswith(own, autoescape=True),
            IndicatorSystem.checksum.is_not(None),
        )
        .order_by(IndicatorSystem.released_at, IndicatorSystem.id)
    ).all()
    for system in systems:
        record_system_up(session, system)
        n += 1
    n += record_values(session, owned(IndicatorValue.region_code))
    rows = session.execute(
        select(Submission, IndicatorSystem)
        .join(IndicatorSystem, IndicatorSystem.id == Submission.system_id)
        .where(Submission.state != "draft", owned(Submission.region_code))
        .order_by(Submission.id)
    ).all()
    for sub, system in rows:
        record_submission(
            session,
            code=system.code,
            year=system.year,
            version=system.version,
            region_code=sub.region_code,
            period=sub.period,
            state=sub.state,
            action="backfill",
            reason=sub.reason,
            actor=sub.updated_by,
            actor_region=me.region,
        )
        n += 1
    return n
