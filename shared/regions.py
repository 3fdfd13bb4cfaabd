"""National statistical division codes: levels, parents and containment by code prefix."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

__all__ = [
    "RegionLevel",
    "contains",
    "is_valid_code",
    "level_of",
    "parent_of",
    "prefix_of",
    "related",
    "tier_of",
]


class RegionLevel(StrEnum):
    province = "province"
    city = "city"
    county = "county"
    street = "street"
    community = "community"


LEVEL_RANK = {
    RegionLevel.province: 1,
    RegionLevel.city: 2,
    RegionLevel.county: 3,
    RegionLevel.street: 4,
    RegionLevel.community: 5,
}


def is_valid_code(code: str) -> bool:
    """A 6-, 9- or 12-digit division code."""
    return code.isascii() and code.isdigit() and len(code) in (6, 9, 12)


def level_of(code: str) -> RegionLevel:
    """The level a division code names, read from its digits."""
    if not is_valid_code(code):
        raise ValueError(f"not a division code: {code!r}")
    if len(code) == 12:
        return RegionLevel.community
    if len(code) == 9:
        return RegionLevel.street
    if code[2:] == "0000":
        return RegionLevel.province
    if code[4:] == "00":
        return RegionLevel.city
    return RegionLevel.county


@lru_cache(maxsize=4096)
def prefix_of(code: str) -> str:
    """The significant digits of a code: every region below it starts with them."""
    level = level_of(code)
    if level is RegionLevel.province:
        return code[:2]
    if level is RegionLevel.city:
        return code[:4]
    return code


def parent_of(code: str) -> str | None:
    """The parent division code as derived from the digits (None for a province)."""
    level = level_of(code)
    if level is RegionLevel.province:
        return None
    if level is RegionLevel.city:
        return code[:2] + "0000"
    if level is RegionLevel.county:
        return code[:4] + "00"
    if level is RegionLevel.street:
        return code[:6]
    return code[:9]


@lru_cache(maxsize=65536)
def contains(scope: str, code: str) -> bool:
    """Whether region ``code`` is ``scope`` itself or lies below it (cached: asked for every
    row of a sync batch, about the few hundred regions it covers)."""
    if not (is_valid_code(scope) and is_valid_code(code)):
        return False
    return code.startswith(prefix_of(scope))


def related(a: str, b: str) -> bool:
    """Whether two regions lie on one line of the hierarchy: one is, or contains, the other
    (a county and its city or province; not two counties, not a county and another city)."""
    return contains(a, b) or contains(b, a)


def tier_of(code: str) -> str:
    """The node tier (province / city / county) a 6-digit code's region would run."""
    level = level_of(code)
    if level not in (RegionLevel.province, RegionLevel.city, RegionLevel.county):
        raise ValueError(f"a node serves a province, city or county, not {level.value}: {code}")
    return level.value
