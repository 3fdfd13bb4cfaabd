"""Deterministic synthetic indicator values for demos and benchmarks (not real statistics)."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable, Mapping
from typing import Any


def _draw(rng: random.Random, ind: Mapping[str, Any], scale: float) -> float:
    unit = ind.get("unit") or ""
    lo, hi = ind.get("min_value"), ind.get("max_value")
    std = ind.get("standard_value")
    if unit == "%" or (lo == 0 and hi == 100):
        base = std if std is not None else 80.0
        # Around the standard: some regions meet it, some fall short.
        v = rng.gauss(base, 12.0)
        return round(min(100.0, max(0.0, v)), 1)
    if unit in ("栋", "个", "套", "条"):
        mean = 40.0 * scale
        v = max(0.0, rng.gauss(mean, mean * 0.6))
        if std is not None and rng.random() < 0.4:
            v = std * rng.uniform(0.0, 1.0)
        return float(round(v))
    if std is not None:
        return round(max(0.0, rng.gauss(std, abs(std) * 0.3 + 0.1)), 2)
    return round(rng.uniform(0.5, 30.0) * scale, 2)


def sample_values(
    indicators: Iterable[Mapping[str, Any]],
    region_codes: Iterable[str],
    period: str,
    seed: int = 2025,
) -> list[dict[str, Any]]:
    """One value per entered indicator × region; the same inputs always give the same values."""
    from services.indicator.values.bulk import max_rank_of
    from shared.regions import LEVEL_RANK, level_of

    entered = [i for i in indicators if i.get("compute", "entered") != "formula"]
    rows: list[dict[str, Any]] = []
    for region in region_codes:
        rng = random.Random(f"{seed}:{region}:{period}")
        scale = 1.0 if len(region) == 6 else 0.1
        rank = LEVEL_RANK[level_of(region)]
        for ind in entered:
            if rank > max_rank_of(ind.get("level", "")):
                continue  # e.g. district-level indicators are not entered for streets
            rows.append(
                {
                    "indicator_code": ind["code"],
                    "region_code": region,
                    "value": _draw(rng, ind, scale),
                    "note": "演示数据（合成）",
                }
            )
    return rows


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["indicator_code", "region_code", "value", "note"])
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()
