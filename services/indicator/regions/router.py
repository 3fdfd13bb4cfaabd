"""Region catalog: tree, children, ancestors, search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.indicator.regions import service
from services.indicator.regions.schemas import RegionOut, RegionPage, RegionTree
from shared.db import DbSession
from shared.identity import CurrentIdentity
from shared.regions import RegionLevel

router = APIRouter(prefix="/api/v1/regions", tags=["regions 区划"])


@router.get("", response_model=RegionPage, summary="按名称或代码检索区划 (search regions)")
def search_regions(
    session: DbSession,
    _identity: CurrentIdentity,
    q: Annotated[str, Query(max_length=50, description="代码前缀或名称片段")] = "",
    within: Annotated[str | None, Query(description="只在此区划之下")] = None,
    level: RegionLevel | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> RegionPage:
    """Search regions by code prefix or name fragment; cursor-paginated by code."""
    rows = service.search(session, q, within, level, limit, cursor)
    next_cursor = rows[-1].code if len(rows) == limit else None
    return RegionPage(items=[RegionOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{code}", response_model=RegionOut, summary="区划详情 (one region)")
def get_region(code: str, session: DbSession, _identity: CurrentIdentity) -> RegionOut:
    """One region by its division code."""
    return RegionOut.model_validate(service.get_region(session, code))


@router.get("/{code}/children", response_model=list[RegionOut], summary="下级区划 (children)")
def region_children(code: str, session: DbSession, _identity: CurrentIdentity) -> list[RegionOut]:
    """The direct children of a region."""
    return [RegionOut.model_validate(r) for r in service.children(session, code)]


@router.get("/{code}/ancestors", response_model=list[RegionOut], summary="上级区划链 (ancestors)")
def region_ancestors(code: str, session: DbSession, _identity: CurrentIdentity) -> list[RegionOut]:
    """The chain of parents, province first."""
    return [RegionOut.model_validate(r) for r in service.ancestors(session, code)]


@router.get("/{code}/tree", response_model=RegionTree, summary="区划树 (subtree)")
def region_tree(
    code: str,
    session: DbSession,
    _identity: CurrentIdentity,
    depth: Annotated[int, Query(ge=0, le=4)] = 1,
) -> RegionTree:
    """The region and its descendants down to ``depth`` levels."""
    return RegionTree.model_validate(service.subtree(session, code, depth))
