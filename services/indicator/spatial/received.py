"""Inspections received from the nodes below: read-only listing and a summary by region.

The copies are written only by the sync applier (``services.indicator.sync.inspections``);
nothing here changes them. Every read is limited to the caller's region scope.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Select, distinct, exists, func, select
from sqlalchemy.orm import Session

from services.indicator.spatial.models import ReceivedInspection
from shared.identity import Identity
from shared.regions import prefix_of

__all__ = ["LEVELS", "list_received", "summarise_received"]

# Summary levels: how many leading digits of the community code name the group.
LEVELS: dict[str, int] = {"county": 6, "street": 9, "community": 12}


def _latest() -> Any:
    """True when no later copy of the same unit, system and period from the same origin."""
    t = ReceivedInspection
    o = ReceivedInspection.__table__.alias("later")
    return ~exists().where(
        o.c.origin_node == t.origin_node,
        o.c.unit_code == t.unit_code,
        o.c.system == t.system,
        o.c.period == t.period,
        o.c.inspected_at > t.inspected_at,
    )


def _filtered(
    stmt: Select[Any],
    scope: str,
    *,
    period: str | None,
    system: str | None,
    unit_code: str | None,
    origin: str | None,
    latest: bool,
) -> Select[Any]:
    t = ReceivedInspection
    stmt = stmt.where(t.region_code.startswith(prefix_of(scope), autoescape=True))
    if period:
        stmt = stmt.where(t.period == period)
    if system:
        stmt = stmt.where(t.system == system)
    if unit_code:
        stmt = stmt.where(t.unit_code == unit_code)
    if origin:
        stmt = stmt.where(t.origin_node == origin)
    if latest:
        stmt = stmt.where(_latest())
    return stmt


def list_received(
    session: Session,
    identity: Identity,
    *,
    region_code: str | None = None,
    period: str | None = None,
    system: str | None = None,
    unit_code: str | None = None,
    origin: str | None = None,
    latest: bool = False,
    cursor: int | None = None,
    limit: int = 1000,
) -> dict[str, Any]:
    """A page of copies in the region (default: the caller's), ordered by id."""
    scope = identity.read_scope(region_code)
    t = ReceivedInspection
    stmt = _filtered(
        select(t, _latest().label("latest")),
        scope,
        period=period,
        system=system,
        unit_code=unit_code,
        origin=origin,
        latest=latest,
    )
    if cursor is not None:
        stmt = stmt.where(t.id > cursor)
    rows = session.execute(stmt.order_by(t.id).limit(limit)).all()
    items = [
        {
            "id": c.id,
            "origin_node": c.origin_node,
            "key": c.entity_key,
            "region_code": c.region_code,
            "unit_code": c.unit_code,
            "unit_kind": c.unit_kind,
            "unit_name": c.unit_name,
            "lon": c.lon,
            "lat": c.lat,
            "system": c.system,
            "period": c.period,
            "inspector": c.inspector,
            "inspected_at": c.inspected_at,
            "note": c.note,
            "results": c.results,
            "items": c.items,
            "failed": c.failed,
            "evidence_count": c.evidence_count,
            "evidence": c.evidence,
            "latest": bool(is_latest),
            "received_at": c.received_at,
        }
        for c, is_latest in rows
    ]
    more = len(items) == limit
    return {"items": items, "next_cursor": items[-1]["id"] if more and items else None}


def summarise_received(
    session: Session,
    identity: Identity,
    *,
    region_code: str | None = None,
    period: str | None = None,
    system: str | None = None,
    latest: bool = False,
    level: Literal["county", "street", "community"] = "county",
) -> list[dict[str, Any]]:
    """Per region of ``level`` inside the scope: inspections, sub-items, failed sub-items."""
    scope = identity.read_scope(region_code)
    t = ReceivedInspection
    group = func.substr(t.region_code, 1, LEVELS[level])
    stmt = _filtered(
        select(
            group.label("region_code"),
            func.count().label("inspections"),
            func.coalesce(func.sum(t.items), 0).label("items"),
            func.coalesce(func.sum(t.failed), 0).label("failed"),
            func.count(distinct(t.origin_node + "/" + t.unit_code)).label("units"),
            func.max(t.inspected_at).label("last_inspected_at"),
        ),
        scope,
        period=period,
        system=system,
        unit_code=None,
        origin=None,
        latest=latest,
    )
    rows = session.execute(stmt.group_by(group).order_by(group)).all()
    return [
        {
            "region_code": r.region_code,
            "inspections": int(r.inspections),
            "items": int(r.items),
            "failed": int(r.failed),
            "units": int(r.units),
            "last_inspected_at": r.last_inspected_at,
        }
        for r in rows
    ]
