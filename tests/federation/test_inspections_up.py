"""Up: a county's field inspections reach the city and the province with their origin, once."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.federation.conftest import LiveNode, Tiers
from tests.federation.helpers import release_starter_at_province, start_three_tiers
from tests.federation.waiting import wait_for
from tests.spatial.conftest import COMMUNITY, CSV, csv_bytes, seed_objects

COUNTY_NODE = "node-360121"
SHA = hashlib.sha256(b"photo").hexdigest()
HEADER = ["对象编码", "子项编码", "检查结果", "检查人", "检查时间", "照片", "照片校验值"]


def _copies(node: LiveNode, **params: Any) -> list[dict[str, Any]]:
    with node.client() as c:
        r = c.get("/api/v1/spatial/received-inspections", params=params)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


def _view(node: LiveNode) -> list[tuple[str, str, str, int, bool]]:
    """(origin, unit, inspector, failed sub-items, latest) of every copy, in key order."""
    return sorted(
        (c["origin_node"], c["unit_code"], c["inspector"], c["failed"], c["latest"])
        for c in _copies(node)
    )


def _sheet(node: LiveNode, system_id: int, rows: list[list[str]]) -> None:
    with node.client() as c:
        r = c.post(
            "/api/v1/inspections/import",
            params={"system_id": system_id, "period": "2025"},
            content=csv_bytes(HEADER, rows),
            headers=CSV,
        )
        assert r.status_code == 200, r.text


def _everywhere(tiers: Tiers, want: list[tuple[str, str, str, int, bool]]) -> bool:
    return all(_view(node) == want for node in (tiers.city, tiers.province))


def test_county_inspections_reach_city_and_province_once(tiers: Tiers) -> None:
    start_three_tiers(tiers)
    system = release_starter_at_province(tiers)
    with tiers.county.client() as c:
        seed_objects(c)
    _sheet(
        tiers.county,
        system["id"],
        [
            ["B1", "H-01-1", "不合格", "王工", "2025-06-01 09:00", "b1.jpg", SHA],
            ["B1", "H-01-2", "合格", "王工", "2025-06-01 09:00", "", ""],
            ["B2", "H-01-1", "合格", "王工", "2025-06-01 09:30", "", ""],
        ],
    )
    first = [
        (COUNTY_NODE, "B1", "王工", 1, True),
        (COUNTY_NODE, "B2", "王工", 0, True),
    ]
    wait_for(lambda: _everywhere(tiers, first), what="inspections at the city and province")
    b1 = next(c for c in _copies(tiers.province) if c["unit_code"] == "B1")
    assert (b1["region_code"], b1["system"], b1["period"]) == (COMMUNITY, system["key"], "2025")
    assert b1["inspected_at"].startswith("2025-06-01T01:00:00")
    assert {x["sub_item_code"]: x["outcome"] for x in b1["results"]} == {
        "H-01-1": "fail",
        "H-01-2": "pass",
    }
    assert (b1["evidence_count"], b1["evidence"]) == (1, ["b1.jpg"])
    # The copies stay at the top: the province's own data is untouched by them.
    with tiers.province.client() as c:
        r = c.get("/api/v1/spatial/received-inspections/summary", params={"period": "2025"})
        assert [(s["region_code"], s["inspections"], s["failed"]) for s in r.json()] == [
            ("360121", 2, 1)
        ]

    # B1 rectified and re-inspected; B2's sheet arrives a second time with a correction.
    _sheet(tiers.county, system["id"], [["B1", "H-01-1", "合格", "李工", "2025-09-01 09:00"]])
    _sheet(tiers.county, system["id"], [["B2", "H-01-1", "不合格", "王工", "2025-06-01 09:30"]])
    after = [
        (COUNTY_NODE, "B1", "李工", 0, True),
        (COUNTY_NODE, "B1", "王工", 1, False),
        (COUNTY_NODE, "B2", "王工", 1, True),
    ]
    wait_for(lambda: _everywhere(tiers, after), what="re-inspections at the city and province")
    latest = _copies(tiers.province, latest="true", unit_code="B1")
    assert [(c["inspector"], c["failed"]) for c in latest] == [("李工", 0)]
    assert _copies(tiers.county) == []  # a county has nothing below it
