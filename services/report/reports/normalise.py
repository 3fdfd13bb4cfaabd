"""Normalising what the sibling services return into report facts (pure functions).

The shapes follow the contracts; where a contract names only a path, the readers accept the
plausible field names and leave a note when something is missing instead of failing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from statistics import mean
from typing import Any

from services.report.diagnosis.rules import IndicatorMeta
from services.report.reports.render.charts import band_of

__all__ = [
    "SOURCE_PRIORITY",
    "children_rows",
    "compute_scores",
    "grade_counts",
    "indicator_meta",
    "indicator_rows",
    "items_of",
    "satisfaction_rows",
    "standard_text",
    "summary_scores",
]

SOURCE_PRIORITY = ("self_checkup", "department", "third_party", "survey", "hotline")


def items_of(raw: Any) -> list[dict[str, Any]]:
    """A list from either a bare list or a page/document with ``items``."""
    if raw is None:
        return []
    if isinstance(raw, list):
        return [r for r in raw if isinstance(r, dict)]
    if isinstance(raw, dict):
        for key in ("items", "results", "children", "rows", "data"):
            if isinstance(raw.get(key), list):
                return [r for r in raw[key] if isinstance(r, dict)]
    return []


def _first(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def _float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def standard_text(r: dict[str, Any]) -> str:
    """The standard of an indicator in words ("≥ 90", "≤ 0", "20–30"), or 无标准."""
    direction = r.get("direction")
    std = _float(r.get("standard_value"))
    low, high = _float(r.get("band_low")), _float(r.get("band_high"))
    if direction == "band" and low is not None and high is not None:
        return f"{low:g}–{high:g}"
    if std is None:
        return "无标准"
    return (
        f"{'≥' if direction == 'higher' else '≤' if direction == 'lower' else ''} {std:g}".strip()
    )


def indicator_meta(raw: Iterable[dict[str, Any]]) -> dict[str, IndicatorMeta]:
    """Indicator code → name, level, dimension, unit and standard."""
    out = {}
    for r in raw:
        code = r.get("code")
        if not code:
            continue
        out[code] = IndicatorMeta(
            code=code,
            name=str(_first(r, "name_zh", "name") or code),
            level=str(r.get("level") or ""),
            dimension=str(r.get("dimension") or ""),
            unit=str(r.get("unit") or ""),
            standard=standard_text(r),
        )
    return out


def indicator_rows(
    evaluations: Iterable[dict[str, Any]], region_code: str, meta: dict[str, IndicatorMeta]
) -> list[dict[str, Any]]:
    """One row per indicator of the region itself: the preferred source's graded value."""
    best: dict[str, dict[str, Any]] = {}
    rank = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    for ev in evaluations:
        if ev.get("region_code") != region_code:
            continue
        code = ev["indicator_code"]
        cur = best.get(code)
        if cur is None or rank.get(str(ev.get("source")), 99) < rank.get(
            str(cur.get("source")), 99
        ):
            best[code] = ev
    order = list(meta)
    rows = []
    for code, ev in best.items():
        m = meta.get(code) or IndicatorMeta(code=code)
        rows.append(
            {
                "code": code,
                "name": m.name or code,
                "level": m.level,
                "dimension": m.dimension,
                "unit": m.unit,
                "standard": m.standard or "无标准",
                "source": ev.get("source"),
                "value": ev.get("value"),
                "grade": ev.get("grade") or "grey",
                "points": ev.get("points"),
                "rule": ev.get("rule"),
            }
        )
    rows.sort(
        key=lambda r: (order.index(r["code"]) if r["code"] in order else len(order), r["code"])
    )
    return rows


def grade_counts(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = {"green": 0, "yellow": 0, "red": 0, "grey": 0}
    for r in rows:
        grade = str(r.get("grade"))
        counts[grade if grade in counts else "grey"] += 1
    counts["total"] = sum(counts.values())
    return counts


def compute_scores(rows: list[dict[str, Any]]) -> tuple[float | None, list[dict[str, Any]]]:
    """Index and dimension scores as means of graded points (used when no summary exists)."""
    by_dim: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_dim[r.get("dimension") or "其他"].append(r)
    dims: list[dict[str, Any]] = []
    for name, items in by_dim.items():
        pts = [float(i["points"]) for i in items if i.get("points") is not None]
        counts = grade_counts(items)
        dims.append(
            {
                "name": name,
                "score": round(mean(pts), 1) if pts else None,
                **{k: counts[k] for k in ("green", "yellow", "red", "grey")},
            }
        )
    scored = [float(d["score"]) for d in dims if d["score"] is not None]
    return (round(mean(scored), 1) if scored else None), dims


def summary_scores(raw: dict[str, Any] | None) -> dict[str, Any]:
    """Index (score, rank, rank_of), dimensions and grade counts from a dashboard summary."""
    out: dict[str, Any] = {"score": None, "rank": None, "rank_of": None, "dimensions": []}
    if not raw:
        return out
    idx = _first(raw, "index", "health_index", "score")
    if isinstance(idx, dict):
        out["score"] = _float(_first(idx, "score", "value"))
        out["rank"] = idx.get("rank")
        out["rank_of"] = idx.get("rank_of")
    else:
        out["score"] = _float(idx)
    out["rank"] = out["rank"] or raw.get("rank")
    out["rank_of"] = out["rank_of"] or raw.get("rank_of")
    dims = raw.get("dimensions")
    if isinstance(dims, dict):
        dims = [
            {"name": k, **(v if isinstance(v, dict) else {"score": v})} for k, v in dims.items()
        ]
    for d in dims or []:
        if not isinstance(d, dict):
            continue
        name = _first(d, "name", "dimension")
        if name in (None, "*"):
            continue
        c: dict[str, Any] = d["counts"] if isinstance(d.get("counts"), dict) else d
        out["dimensions"].append(
            {
                "name": str(name),
                "score": _float(d.get("score")),
                **{k: int(c.get(k) or 0) for k in ("green", "yellow", "red", "grey")},
            }
        )
    counts = _first(raw, "grade_counts", "grades", "counts")
    if isinstance(counts, dict):
        out["grade_counts"] = {
            k: int(counts.get(k) or 0) for k in ("green", "yellow", "red", "grey")
        }
    return out


def children_rows(raw: Any, names: dict[str, str]) -> list[dict[str, Any]]:
    """Child regions with index score, band, grade counts and rank."""
    rows: list[dict[str, Any]] = []
    for r in items_of(raw):
        code = _first(r, "region_code", "code")
        if not code:
            continue
        idx = _first(r, "index", "score", "health_index")
        score = _float(_first(idx, "score", "value") if isinstance(idx, dict) else idx)
        counts = r.get("counts") or r.get("grade_counts") or r.get("grades") or r
        rows.append(
            {
                "code": str(code),
                "name": str(_first(r, "name", "region_name") or names.get(str(code)) or code),
                "score": score,
                "band": band_of(score),
                "rank": r.get("rank"),
                **{k: int((counts or {}).get(k) or 0) for k in ("green", "yellow", "red", "grey")},
            }
        )
    ranked = sorted((x for x in rows if x["score"] is not None), key=lambda x: -float(x["score"]))
    for i, x in enumerate(ranked, 1):
        x["rank"] = x["rank"] or i
    return rows


def satisfaction_rows(raw: Any, threshold: float, region_code: str) -> list[dict[str, Any]]:
    """Satisfaction items on a 0–100 scale with interval and sample size."""
    rows = []
    for r in items_of(raw):
        score = _float(_first(r, "score", "satisfaction", "rate", "value", "mean"))
        if score is None:
            continue
        scale = 100.0 if score <= 1.0 and r.get("scale") != "0-100" else 1.0
        ci = r.get("ci")
        lo = _float(r.get("ci_low") if r.get("ci_low") is not None else (ci or [None, None])[0])
        hi = _float(r.get("ci_high") if r.get("ci_high") is not None else (ci or [None, None])[1])
        rows.append(
            {
                "code": str(_first(r, "item_code", "code", "target") or ""),
                "name": str(_first(r, "item_name", "label", "name") or ""),
                "kind": r.get("kind") or "question",
                "region_code": str(r.get("region_code") or region_code),
                "score": round(score * scale, 2),
                "ci_low": None if lo is None else round(lo * scale, 2),
                "ci_high": None if hi is None else round(hi * scale, 2),
                "n": _first(r, "n", "sample_size", "respondents"),
                "indicator_codes": list(_first(r, "objective_indicators", "indicator_codes") or []),
            }
        )
    for row in rows:
        row["below_threshold"] = row["ci_high"] is not None and row["ci_high"] < threshold
    return rows
