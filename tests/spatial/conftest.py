"""Builders for the spatial tests: a released system with checklists, objects, sheets."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.indicator.systems.models import Indicator, IndicatorSystem, SubItem
from shared.db import Database
from shared.settings import NodeSettings

COMMUNITY = "360121001001"  # 莲塘镇 … a community of Nanchang County
COMMUNITY_2 = "360121001002"
OTHER_COUNTY_COMMUNITY = "360102002001"  # in Nanchang's 东湖区, outside county 360121


@pytest.fixture
def indicator_db(node_settings: NodeSettings) -> Iterator[Database]:
    """The node's indicator database, for arranging data and reading what was stored."""
    url, schema = node_settings.database_for("indicator")
    db = Database(url, schema=schema, spatial=True)
    yield db
    db.dispose()


def create_system(db: Database, *, state: str = "released", code: str = "T-SPATIAL") -> int:
    """A small system: two count indicators (gas 1 sub-item, corridor 2) and one coverage."""
    with db.session() as s:
        system = IndicatorSystem(
            code=code,
            name="测试体系",
            year=2025,
            version=1,
            state=state,
            region_code="360121",
            created_by="test",
            released_at=datetime.now(UTC) if state == "released" else None,
        )
        system.indicators = [
            Indicator(
                code="GAS",
                name_zh="存在燃气安全隐患的住宅数量",
                level="housing",
                dimension="安全耐久",
                unit="栋",
                direction="lower",
                compute="sub_items",
                sub_items=[SubItem(code="GAS-1", name="立管锈蚀")],
            ),
            Indicator(
                code="CORR",
                name_zh="存在楼道安全隐患的住宅数量",
                level="housing",
                dimension="安全耐久",
                unit="栋",
                direction="lower",
                compute="sub_items",
                sub_items=[
                    SubItem(code="CO-1", name="扶手照明", sort_order=0),
                    SubItem(code="CO-2", name="消防设施", sort_order=1),
                ],
            ),
            Indicator(
                code="COV-KG",
                name_zh="幼儿园服务半径覆盖率",
                level="community",
                dimension="设施完善",
                unit="%",
                direction="higher",
                compute="entered",
                min_value=0,
                max_value=100,
            ),
        ]
        s.add(system)
        s.flush()
        return system.id


def square(lon: float, lat: float, half: float = 0.002) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [
            [
                [lon - half, lat - half],
                [lon + half, lat - half],
                [lon + half, lat + half],
                [lon - half, lat + half],
                [lon - half, lat - half],
            ]
        ],
    }


def feature(geometry: dict[str, Any] | None, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def geojson(*features: dict[str, Any]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


GJ = {"content-type": "application/geo+json"}
CSV = {"content-type": "text/csv"}

# Two compounds in county 360121 near 莲塘 and buildings inside them.
C1 = (115.94, 28.55)
C2 = (115.96, 28.55)


def seed_objects(client: Any) -> dict[str, Any]:
    """Two compounds with three buildings (one footprint) through the import API."""
    r = client.post(
        "/api/v1/units/import",
        params={"kind": "compound"},
        content=geojson(
            feature(
                square(*C1), code="C1", name="莲塘一小区", region_code=COMMUNITY, residents=900
            ),
            feature(
                square(*C2), code="C2", name="莲塘二小区", region_code=COMMUNITY_2, residents=300
            ),
        ),
        headers=GJ,
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/api/v1/units/import",
        params={"kind": "building"},
        content=geojson(
            feature(
                {"type": "Point", "coordinates": [C1[0] - 0.001, C1[1]]},
                code="B1",
                compound_code="C1",
                floors=6,
            ),
            feature(
                {"type": "Point", "coordinates": [C1[0] + 0.001, C1[1]]},
                code="B2",
                compound_code="C1",
                floors=6,
            ),
            feature(square(C2[0], C2[1], 0.0001), code="B3", compound_code="C2", floors=18),
        ),
        headers=GJ,
    )
    assert r.status_code == 200, r.text
    return r.json()
