"""Wire shapes of regions."""

from __future__ import annotations

from pydantic import BaseModel


class RegionOut(BaseModel):
    code: str
    name: str
    level: str
    parent_code: str | None
    has_node: bool = False

    model_config = {"from_attributes": True}


class RegionTree(RegionOut):
    children: list[RegionTree] = []


class RegionPage(BaseModel):
    items: list[RegionOut]
    next_cursor: str | None = None
