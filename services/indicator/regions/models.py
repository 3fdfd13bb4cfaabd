"""Administrative regions (national statistical division codes)."""

from __future__ import annotations

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.indicator.base import Base


class Region(Base):
    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(12))  # province/city/county/street/community
    level_rank: Mapped[int] = mapped_column(Integer)  # 1..5
    parent_code: Mapped[str | None] = mapped_column(String(12), index=True)
    # True where the node's own region or a region registered as having its own node.
    has_node: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_regions_name", "name"),)
