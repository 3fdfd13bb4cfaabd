"""Small builders for evaluation and dashboard tests: systems, indicators, values (no tests here).

They write straight to the indicator service's database, so that evaluation tests
exercise grading alone, independent of the systems and values endpoints.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.indicator.evaluation.models import RegionScore
from services.indicator.systems.models import Indicator, IndicatorSystem
from services.indicator.values.models import IndicatorValue
from shared.db import Database
from shared.dbtypes import utcnow
from shared.settings import NodeSettings

ValueRow = tuple[str, str, float | None] | tuple[str, str, float | None, str]


@contextmanager
def seed(settings: NodeSettings) -> Iterator[Session]:
    """A committed-on-exit session on the node's indicator database."""
    url, schema = settings.database_for("indicator")
    db = Database(url, schema=schema, pool_size=1)
    try:
        with db.session() as session:
            yield session
    finally:
        db.dispose()


def create_system(
    session: Session,
    *,
    code: str = "JX-CHECKUP",
    year: int = 2025,
    version: int = 1,
    index_method: dict[str, Any] | None = None,
    **overrides: Any,
) -> IndicatorSystem:
    fields: dict[str, Any] = {
        "code": code,
        "name": f"江西城市体检指标体系 {year}",
        "year": year,
        "version": version,
        "state": "released",
        "region_code": "360000",
        "description": "",
        "index_method": index_method or {},
        "created_by": "builder",
    }
    fields.update(overrides)
    system = IndicatorSystem(**fields)
    session.add(system)
    session.flush()
    return system


def create_indicator(
    session: Session,
    system: IndicatorSystem,
    code: str,
    *,
    direction: str = "higher",
    standard: float | None = None,
    warning: float | None = None,
    band: tuple[float | None, float | None] | None = None,
    warning_band: tuple[float | None, float | None] | None = None,
    dimension: str = "安全耐久",
    weight: float = 1.0,
    **overrides: Any,
) -> Indicator:
    fields: dict[str, Any] = {
        "system_id": system.id,
        "code": code,
        "name_zh": f"指标{code}",
        "level": "city",
        "dimension": dimension,
        "unit": "%",
        "direction": direction,
        "standard_value": standard,
        "warning_value": warning,
        "band_low": band[0] if band else None,
        "band_high": band[1] if band else None,
        "warning_low": warning_band[0] if warning_band else None,
        "warning_high": warning_band[1] if warning_band else None,
        "standard_source": "",
        "data_source": "",
        "weight": weight,
        "sort_order": 0,
    }
    fields.update(overrides)
    indicator = Indicator(**fields)
    session.add(indicator)
    session.flush()
    return indicator


def add_values(
    session: Session, system: IndicatorSystem, period: str, rows: Sequence[ValueRow]
) -> dict[tuple[str, str, str], int]:
    """Insert values (indicator, region, value[, source]); returns their ids by key."""
    payload = [
        {
            "system_id": system.id,
            "indicator_code": row[0],
            "region_code": row[1],
            "period": period,
            "source": row[3] if len(row) > 3 else "self_checkup",
            "value": row[2],
            "on_behalf": False,
            "revision": 1,
            "updated_by": "builder",
            "updated_at": utcnow(),
        }
        for row in rows
    ]
    if payload:
        session.execute(insert(IndicatorValue), payload)
    ids = session.execute(
        select(
            IndicatorValue.indicator_code,
            IndicatorValue.region_code,
            IndicatorValue.source,
            IndicatorValue.id,
        ).where(IndicatorValue.system_id == system.id, IndicatorValue.period == period)
    )
    return {(c, r, s): i for c, r, s, i in ids}


def scores_of(
    session: Session, system_id: int, period: str, region_code: str
) -> dict[str, RegionScore]:
    """The stored score rows of one region by dimension ('*' is the index)."""
    rows = session.scalars(
        select(RegionScore).where(
            RegionScore.system_id == system_id,
            RegionScore.period == period,
            RegionScore.region_code == region_code,
        )
    )
    return {r.dimension: r for r in rows}


def children_of(session: Session, parent: str, n: int) -> list[str]:
    """The first ``n`` child region codes of a region (from the shipped catalog)."""
    from services.indicator.regions.models import Region

    codes = session.scalars(
        select(Region.code).where(Region.parent_code == parent).order_by(Region.code).limit(n)
    ).all()
    assert len(codes) == n, f"{parent} has fewer than {n} children"
    return list(codes)
