"""Deterministic SYNTHETIC demo data: compounds, buildings, facilities, inspection outcomes.

Everything here is invented for demos, tests and benchmarks — not survey data. Region codes
are real (the shipped 2023 division codes); positions are plausible: each prefecture-level
city of Jiangxi is placed at its approximate public centre, and counties, streets and
communities are scattered around it deterministically from their codes, so the same seed
always yields the same objects. Outcomes follow fixed failure rates per sub-item.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.indicator.regions.models import Region
from services.indicator.spatial.geoio import InRow
from services.indicator.spatial.inspections import FieldRow
from services.indicator.spatial.models import FACILITY_TYPES
from services.indicator.systems.models import Indicator, IndicatorSystem, SubItem
from shared.regions import prefix_of

__all__ = [
    "CITY_CENTRES",
    "DEMO_COUNT_INDICATORS",
    "DemoPlan",
    "community_centre",
    "demo_system",
    "generate",
    "inspection_rows",
    "load_demo",
]

# Approximate centres of Jiangxi's prefecture-level cities (public geography, lon/lat).
CITY_CENTRES: dict[str, tuple[float, float]] = {
    "3601": (115.89, 28.68),  # 南昌
    "3602": (117.18, 29.27),  # 景德镇
    "3603": (113.85, 27.62),  # 萍乡
    "3604": (116.00, 29.71),  # 九江
    "3605": (114.92, 27.82),  # 新余
    "3606": (117.07, 28.26),  # 鹰潭
    "3607": (114.93, 25.83),  # 赣州
    "3608": (114.99, 27.11),  # 吉安
    "3609": (114.42, 27.81),  # 宜春
    "3610": (116.36, 27.95),  # 抚州
    "3611": (117.94, 28.45),  # 上饶
}
# A small checklist drawn from the 2023 base system's housing-safety indicators
# (REFERENCE-indicators.md): 4 count indicators with 10 sub-items in all.
DEMO_COUNT_INDICATORS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "H-SAFE-STRUCT",
        "存在结构安全隐患的住宅数量",
        (
            ("ST-1", "明显贯通裂缝"),
            ("ST-2", "违规拆改承重构件"),
            ("ST-3", "砖砌体或砂浆严重风化"),
        ),
    ),
    ("H-SAFE-GAS", "存在燃气安全隐患的住宅数量", (("GAS-1", "立管、引入管老化锈蚀"),)),
    (
        "H-SAFE-CORR",
        "存在楼道安全隐患的住宅数量",
        (
            ("CO-1", "楼梯扶手或照明损坏"),
            ("CO-2", "消防设施缺失或失效"),
            ("CO-3", "楼道内停放或充电电动自行车"),
        ),
    ),
    (
        "H-SAFE-ENV",
        "存在围护安全隐患的住宅数量",
        (("EN-1", "外墙饰面或保温层脱落"), ("EN-2", "屋面渗漏"), ("EN-3", "地下室渗漏")),
    ),
)
# Coverage indicators of the demo system: code, name, facility type.
DEMO_COVERAGE_INDICATORS = (
    ("C-COV-KG", "幼儿园服务半径覆盖率", "kindergarten"),
    ("C-COV-PS", "小学服务半径覆盖率", "primary_school"),
    ("B-COV-MS", "中学服务半径覆盖率", "middle_school"),
)
_FAIL_RATE = {"ST-1": 0.03, "ST-2": 0.01, "ST-3": 0.04, "GAS-1": 0.08, "CO-1": 0.06}
_NA_RATE = {"GAS-1": 0.1}


def _unit(code: str, salt: str) -> tuple[float, float]:
    """Two deterministic numbers in [-1, 1) from a code."""
    h = hashlib.sha256(f"{salt}:{code}".encode()).digest()
    a = int.from_bytes(h[:4], "big") / 2**32
    b = int.from_bytes(h[4:8], "big") / 2**32
    return 2 * a - 1, 2 * b - 1


def community_centre(code: str) -> tuple[float, float]:
    """A plausible, deterministic position for a community (or any region below a city)."""
    lon, lat = CITY_CENTRES.get(code[:4], (115.9, 28.0))
    for length, spread in ((6, 0.35), (9, 0.06), (12, 0.015)):
        if len(code) >= length:
            dx, dy = _unit(code[:length], "pos")
            lon, lat = lon + dx * spread, lat + dy * spread
    # Keep clear of the province's edge so objects around the centre stay inside it.
    return min(max(lon, 113.7), 118.35), min(max(lat, 24.6), 29.95)


@dataclass
class DemoPlan:
    """What to generate (all synthetic)."""

    region_code: str = "360121"
    compounds: int = 60
    buildings_per_compound: tuple[int, int] = (4, 12)
    facilities_per_type: int = 8
    seed: int = 2025
    footprint_share: float = 0.3  # share of buildings given a footprint instead of a point
    code_prefix: str = "DEMO"
    facility_types: tuple[str, ...] = FACILITY_TYPES


@dataclass
class DemoData:
    compounds: list[InRow] = field(default_factory=list)
    buildings: list[InRow] = field(default_factory=list)
    facilities: list[InRow] = field(default_factory=list)


def _communities(session: Session, region_code: str) -> list[str]:
    return list(
        session.scalars(
            select(Region.code)
            .where(Region.code.startswith(prefix_of(region_code)), Region.level == "community")
            .order_by(Region.code)
        )
    )


def _rect(lon: float, lat: float, w_m: float, h_m: float, angle: float) -> shapely.Polygon:
    dx = w_m / (111_320 * math.cos(math.radians(lat))) / 2
    dy = h_m / 110_574 / 2
    ca, sa = math.cos(angle), math.sin(angle)
    pts = [(-dx, -dy), (dx, -dy), (dx, dy), (-dx, dy)]
    return shapely.Polygon([(lon + x * ca - y * sa, lat + x * sa + y * ca) for x, y in pts])


def generate(session: Session, plan: DemoPlan) -> DemoData:
    """Compounds, buildings and facilities for the plan (deterministic for one seed)."""
    rng = random.Random(plan.seed)
    communities = _communities(session, plan.region_code)
    if not communities:
        raise ValueError(f"no communities below {plan.region_code}")
    data = DemoData()
    p = plan.code_prefix
    for i in range(plan.compounds):
        community = communities[i % len(communities)]
        clon, clat = community_centre(community)
        lon = clon + rng.uniform(-0.006, 0.006)
        lat = clat + rng.uniform(-0.006, 0.006)
        w, h, angle = rng.uniform(120, 320), rng.uniform(100, 280), rng.uniform(0, math.pi / 2)
        poly = _rect(lon, lat, w, h, angle)
        ccode = f"{p}-C{i + 1:06d}"
        residents = rng.randint(200, 3000)
        data.compounds.append(
            InRow(
                i + 1,
                f"compound {i + 1}",
                {
                    "code": ccode,
                    "name": f"示例小区{i + 1}",
                    "region_code": community,
                    "residents": residents,
                    "built_year": rng.randint(1985, 2020),
                },
                poly,
            )
        )
        n_b = rng.randint(*plan.buildings_per_compound)
        inner = poly.buffer(-min(w, h) / 8 / 111_000)
        minx, miny, maxx, maxy = inner.bounds
        for j in range(n_b):
            for _ in range(20):
                pt = shapely.Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
                if inner.contains(pt):
                    break
            else:
                pt = inner.representative_point()
            geom: Any = pt
            if rng.random() < plan.footprint_share:
                geom = _rect(pt.x, pt.y, rng.uniform(12, 20), rng.uniform(10, 16), angle)
                if not poly.contains(geom):
                    geom = pt
            data.buildings.append(
                InRow(
                    len(data.buildings) + 1,
                    f"building {len(data.buildings) + 1}",
                    {
                        "code": f"{ccode}-B{j + 1:03d}",
                        "name": f"示例小区{i + 1}{j + 1}号楼",
                        "compound_code": ccode,
                        "floors": rng.randint(2, 33),
                        "dwellings": rng.randint(12, 200),
                    },
                    geom,
                )
            )
    # Facilities near the compounds' communities: points, parks as small polygons.
    for t_index, ftype in enumerate(plan.facility_types):
        for k in range(plan.facilities_per_type):
            community = communities[(k * 7 + t_index * 3) % len(communities)]
            clon, clat = community_centre(community)
            lon = clon + rng.uniform(-0.01, 0.01)
            lat = clat + rng.uniform(-0.01, 0.01)
            fgeom: Any = shapely.Point(lon, lat)
            if ftype == "park":
                fgeom = _rect(lon, lat, rng.uniform(60, 200), rng.uniform(60, 200), 0.3)
            data.facilities.append(
                InRow(
                    len(data.facilities) + 1,
                    f"facility {len(data.facilities) + 1}",
                    {
                        "code": f"{p}-F-{ftype}-{k + 1:04d}",
                        "name": f"示例{ftype}{k + 1}",
                        "facility_type": ftype,
                        "region_code": community,
                        "capacity": rng.randint(50, 2000),
                    },
                    fgeom,
                )
            )
    return data


def inspection_rows(
    building_codes: Sequence[str],
    *,
    period: str,
    seed: int = 2025,
    fail_scale: float = 1.0,
    start_row: int = 1,
) -> Iterator[FieldRow]:
    """One synthetic inspection per building: every demo sub-item's outcome, with photos."""
    rng = random.Random(seed)
    year = int(period[:4])
    base = datetime(year, 4, 1, 1, 0, tzinfo=UTC)
    row = start_row
    for code in building_codes:
        when = base + timedelta(minutes=rng.randint(0, 60 * 24 * 150))
        inspector = f"检查员{rng.randint(1, 40):02d}"
        for ind, _name, subs in DEMO_COUNT_INDICATORS:
            for sub, _label in subs:
                r = rng.random()
                fail = _FAIL_RATE.get(sub, 0.02) * fail_scale
                na = _NA_RATE.get(sub, 0.0)
                outcome = "fail" if r < fail else ("na" if r < fail + na else "pass")
                evidence: list[tuple[str, str, str | None]] = []
                if outcome == "fail":
                    ref = f"photos/{period}/{code}/{sub}.jpg"
                    evidence.append((ref, hashlib.sha256(ref.encode()).hexdigest(), sub))
                yield FieldRow(
                    row,
                    f"synthetic row {row}",
                    {
                        "unit_code": code,
                        "indicator_code": ind,
                        "sub_item_code": sub,
                        "outcome": outcome,
                        "inspector": inspector,
                        "inspected_at": when,
                    },
                    evidence,
                )
                row += 1


def demo_system(session: Session, *, region_code: str = "360000", year: int = 2025) -> int:
    """A released SYNTHETIC indicator system with the demo checklist (created once)."""
    found = session.scalar(
        select(IndicatorSystem.id).where(
            IndicatorSystem.code == "SPATIAL-DEMO", IndicatorSystem.year == year
        )
    )
    if found is not None:
        return int(found)
    system = IndicatorSystem(
        code="SPATIAL-DEMO",
        name="空间演示指标体系（合成数据用）(synthetic demo system)",
        year=year,
        version=1,
        state="released",
        region_code=region_code,
        description="演示与基准测试用，非正式指标体系 (for demos and benchmarks only)",
        created_by="demo",
        released_by="demo",
        released_at=datetime.now(UTC),
    )
    for n, (code, name, subs) in enumerate(DEMO_COUNT_INDICATORS):
        system.indicators.append(
            Indicator(
                code=code,
                name_zh=name,
                level="housing",
                dimension="安全耐久",
                unit="栋",
                direction="lower",
                compute="sub_items",
                value_type="integer",
                sort_order=n,
                sub_items=[
                    SubItem(code=s, name=label, sort_order=k) for k, (s, label) in enumerate(subs)
                ],
            )
        )
    for n, (code, name, _ftype) in enumerate(DEMO_COVERAGE_INDICATORS):
        system.indicators.append(
            Indicator(
                code=code,
                name_zh=name,
                level="community" if code.startswith("C") else "block",
                dimension="设施完善",
                unit="%",
                direction="higher",
                compute="entered",
                value_type="percent",
                min_value=0,
                max_value=100,
                sort_order=10 + n,
            )
        )
    session.add(system)
    session.flush()
    return system.id


def load_demo(
    session: Session,
    identity: Any,
    plan: DemoPlan,
    *,
    system_id: int,
    period: str,
    inspect: bool = True,
) -> dict[str, Any]:
    """Import the plan's synthetic objects (and inspections) through the normal bulk paths."""
    from services.indicator.spatial.inspections import record_inspections
    from services.indicator.spatial.service import import_rows

    data = generate(session, plan)
    out: dict[str, Any] = {}
    for target, rows in (
        ("compound", data.compounds),
        ("building", data.buildings),
        ("facility", data.facilities),
    ):
        report = import_rows(session, identity, target=target, rows=rows, fmt="demo")
        out[target] = {"applied": report.rows_applied, "rejected": report.rows_rejected}
        if report.errors:
            out[target]["first_errors"] = report.errors[:3]
    if inspect:
        codes = [str(r.props["code"]) for r in data.buildings]
        sheet = list(inspection_rows(codes, period=period, seed=plan.seed))
        report = record_inspections(
            session, identity, system_id=system_id, period=period, rows=sheet, fmt="demo"
        )
        out["inspection_rows"] = {"applied": report.rows_applied, "rejected": report.rows_rejected}
    return out
