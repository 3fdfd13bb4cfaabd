"""Builders and fixtures shared by the values and approval tests (no tests here)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from services.indicator.systems.models import Indicator, IndicatorSystem
from services.indicator.values.models import IndicatorValue, ValueHistory
from shared.db import Database
from shared.settings import NodeSettings
from tests.conftest import identity_headers

# Communities of Nanchang County (360121) used throughout.
STREET = "360121001"
COMMUNITIES = ["360121001001", "360121001002", "360121001003"]


def default_indicators() -> list[dict[str, Any]]:
    return [
        {"code": "C01", "name_zh": "停车泊位缺口数", "level": "community", "unit": "个",
         "value_type": "integer", "min_value": 0, "max_value": 10000},
        {"code": "C02", "name_zh": "不达标的步行道长度", "level": "community", "unit": "千米",
         "min_value": 0, "max_value": 100},
        {"code": "C03", "name_zh": "物业管理覆盖率", "level": "community", "unit": "%",
         "value_type": "percent"},
        {"code": "D01", "name_zh": "应急供水保障率", "level": "district", "unit": "%",
         "value_type": "percent"},
        {"code": "F01", "name_zh": "每千米步行道缺口泊位", "level": "community", "unit": "个/千米",
         "compute": "formula", "formula": "C01 / C02"},
    ]  # fmt: skip


def create_system(
    session: Session,
    *,
    state: str = "released",
    indicators: list[dict[str, Any]] | None = None,
    code: str = "JX-TEST",
    year: int = 2025,
    version: int = 1,
) -> int:
    """A system of the province with the given indicators (defaults: five community ones)."""
    system = IndicatorSystem(
        code=code,
        name="测试指标体系",
        year=year,
        version=version,
        state=state,
        region_code="360000",
        description="",
        index_method={},
        created_by="builder",
    )
    session.add(system)
    session.flush()
    for i, spec in enumerate(indicators if indicators is not None else default_indicators()):
        data = {
            "dimension": "设施完善",
            "direction": "lower",
            "unit": "",
            "value_type": "number",
            "compute": "entered",
            "sort_order": i,
            **spec,
        }
        session.add(Indicator(system_id=system.id, **data))
    session.flush()
    return system.id


@contextmanager
def node_session(settings: NodeSettings) -> Iterator[Session]:
    """A committed-on-exit session on the node's indicator database."""
    url, schema = settings.database_for("indicator")
    db = Database(url, schema=schema, spatial=True, pool_size=1)
    try:
        with db.session() as session:
            yield session
    finally:
        db.dispose()


def values_of(settings: NodeSettings, system_id: int) -> dict[tuple[str, str, str], float | None]:
    """(indicator, region, source) → value of every stored value of a system."""
    with node_session(settings) as s:
        rows = s.query(IndicatorValue).filter_by(system_id=system_id).all()
        return {(r.indicator_code, r.region_code, r.source): r.value for r in rows}


def history_count(settings: NodeSettings) -> int:
    with node_session(settings) as s:
        return s.query(ValueHistory).count()


@pytest.fixture
def system_id(node_settings: NodeSettings) -> int:
    """A released system with the default indicators on the test node."""
    with node_session(node_settings) as s:
        return create_system(s)


def client_as(
    client: TestClient, settings: NodeSettings, region: str, *roles: str, subject: str = "tester"
) -> dict[str, str]:
    """Headers for another identity on the same client."""
    return identity_headers(settings, region, *roles, subject=subject)
