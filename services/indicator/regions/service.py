"""Queries over the region catalog."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.indicator.regions.models import Region
from shared.errors import NotFound, ValidationFailed
from shared.regions import LEVEL_RANK, RegionLevel, is_valid_code, prefix_of


def get_region(session: Session, code: str) -> Region:
    if not is_valid_code(code):
        raise ValidationFailed(
            f"区划代码格式错误: {code} (division codes have 6, 9 or 12 digits)",
            errors=[{"field": "code", "message": "6, 9 or 12 digits"}],
        )
    region = session.get(Region, code)
    if region is None:
        raise NotFound(f"区划代码不存在: {code} (unknown region)", slug="unknown-region")
    return region


def children(session: Session, code: str) -> list[Region]:
    get_region(session, code)
    return list(
        session.scalars(select(Region).where(Region.parent_code == code).order_by(Region.code))
    )


def ancestors(session: Session, code: str) -> list[Region]:
    """From the province down to the region's parent."""
    chain: list[Region] = []
    region = get_region(session, code)
    while region.parent_code:
        region = get_region(session, region.parent_code)
        chain.append(region)
    return list(reversed(chain))


def subtree(session: Session, code: str, depth: int) -> dict[str, Any]:
    """The region with its descendants down to ``depth`` levels (one query)."""
    root = get_region(session, code)
    max_rank = root.level_rank + depth
    rows = session.scalars(
        select(Region)
        .where(Region.code.startswith(prefix_of(code)), Region.level_rank <= max_rank)
        .order_by(Region.level_rank, Region.code)
    ).all()
    nodes: dict[str, dict[str, Any]] = {}
    for r in rows:
        nodes[r.code] = {
            "code": r.code,
            "name": r.name,
            "level": r.level,
            "parent_code": r.parent_code,
            "has_node": r.has_node,
            "children": [],
        }
    for r in rows:
        if r.code != code and r.parent_code in nodes:
            nodes[r.parent_code]["children"].append(nodes[r.code])
    return nodes[code]


def search(
    session: Session,
    q: str,
    within: str | None,
    level: RegionLevel | None,
    limit: int,
    cursor: str | None,
) -> list[Region]:
    """By code prefix or name fragment, optionally within a region and at one level."""
    stmt = select(Region)
    if q:
        stmt = stmt.where(or_(Region.code.startswith(q), Region.name.contains(q)))
    if within:
        get_region(session, within)
        stmt = stmt.where(Region.code.startswith(prefix_of(within)))
    if level:
        stmt = stmt.where(Region.level_rank == LEVEL_RANK[level])
    if cursor:
        stmt = stmt.where(Region.code > cursor)
    return list(session.scalars(stmt.order_by(Region.code).limit(limit)))
