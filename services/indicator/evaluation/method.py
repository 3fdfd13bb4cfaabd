"""The health-index method stored on a system version (``IndicatorSystem.index_method``).

Keys (all optional; documented with formulas in docs/health-index.md):

- ``normalisation``: ``"grade_points"`` (the only method): each graded value scores
  the points of its grade.
- ``grade_points``: ``{"green": 100, "yellow": 60, "red": 0}``; grey values score nothing
  and are left out of every mean.
- ``dimension_weights``: ``{dimension: weight}``; absent → every dimension weighs 1. When
  present it must name every dimension of the system.
- ``source_priority``: the order in which sources are preferred when several sources
  have a value for the same indicator and region; default
  self_checkup > department > third_party > survey > hotline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.indicator.values.models import SOURCES
from shared.errors import ValidationFailed

__all__ = [
    "DEFAULT_GRADE_POINTS",
    "DEFAULT_SOURCE_PRIORITY",
    "NORMALISATIONS",
    "IndexMethod",
    "parse_index_method",
]

NORMALISATIONS = ("grade_points",)
DEFAULT_GRADE_POINTS = {"green": 100.0, "yellow": 60.0, "red": 0.0}
DEFAULT_SOURCE_PRIORITY = ("self_checkup", "department", "third_party", "survey", "hotline")


@dataclass(frozen=True)
class IndexMethod:
    """A validated index method with defaults filled in."""

    normalisation: str = "grade_points"
    grade_points: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_GRADE_POINTS))
    dimension_weights: Mapping[str, float] | None = None
    source_priority: tuple[str, ...] = DEFAULT_SOURCE_PRIORITY

    def weight_of(self, dimension: str) -> float:
        """The weight of one dimension in the health index."""
        if self.dimension_weights is None:
            return 1.0
        return self.dimension_weights.get(dimension, 0.0)

    def source_rank(self, source: str) -> int:
        """Position of a source in the priority list (unknown sources come last)."""
        try:
            return self.source_priority.index(source)
        except ValueError:
            return len(self.source_priority)

    def as_dict(self) -> dict[str, Any]:
        """The effective method, as returned to API callers."""
        return {
            "normalisation": self.normalisation,
            "grade_points": dict(self.grade_points),
            "dimension_weights": (
                dict(self.dimension_weights) if self.dimension_weights is not None else None
            ),
            "source_priority": list(self.source_priority),
        }


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_index_method(
    data: Mapping[str, Any] | None, dimensions: Iterable[str] | None = None
) -> IndexMethod:
    """Validate an ``index_method`` dict (422 naming the key) and fill in the defaults."""
    data = data or {}
    errors: list[dict[str, str]] = []

    def fail(key: str, message: str) -> None:
        errors.append({"field": f"index_method.{key}", "message": message})

    unknown = set(data) - {"normalisation", "grade_points", "dimension_weights", "source_priority"}
    for key in sorted(unknown):
        fail(key, "未知的键 (unknown key)")

    normalisation = data.get("normalisation", "grade_points")
    if normalisation not in NORMALISATIONS:
        fail("normalisation", f"不支持的标准化方法，可选: {', '.join(NORMALISATIONS)}")

    points = dict(DEFAULT_GRADE_POINTS)
    raw_points = data.get("grade_points")
    if raw_points is not None:
        if not isinstance(raw_points, Mapping):
            fail("grade_points", "应为对象 {green, yellow, red} (an object)")
        else:
            for grade, pts in raw_points.items():
                if grade not in points:
                    fail(f"grade_points.{grade}", "只能为 green / yellow / red 赋分")
                elif not _number(pts) or not 0 <= pts <= 100:
                    fail(f"grade_points.{grade}", "分值应为 0–100 的数 (0..100)")
                else:
                    points[grade] = float(pts)

    weights: dict[str, float] | None = None
    raw_weights = data.get("dimension_weights")
    if raw_weights is not None:
        if not isinstance(raw_weights, Mapping) or not raw_weights:
            fail("dimension_weights", "应为非空对象 {维度: 权重} (a non-empty object)")
        else:
            weights = {}
            for dim, w in raw_weights.items():
                if not _number(w) or w < 0:
                    fail(f"dimension_weights.{dim}", "权重应为非负数 (a non-negative number)")
                else:
                    weights[str(dim)] = float(w)
            if weights and not any(weights.values()):
                fail("dimension_weights", "权重不能全为 0 (weights cannot all be zero)")
            for dim in sorted(set(dimensions or ()) - set(weights)):
                fail(
                    f"dimension_weights.{dim}",
                    f"缺少维度“{dim}”的权重 (every dimension of the system needs a weight)",
                )

    priority = DEFAULT_SOURCE_PRIORITY
    raw_priority = data.get("source_priority")
    if raw_priority is not None:
        if (
            not isinstance(raw_priority, list | tuple)
            or not raw_priority
            or any(s not in SOURCES for s in raw_priority)
            or len(set(raw_priority)) != len(raw_priority)
        ):
            fail(
                "source_priority",
                f"应为不重复的数据来源列表，可选: {', '.join(SOURCES)} (distinct known sources)",
            )
        else:
            priority = tuple(raw_priority)

    if errors:
        raise ValidationFailed(
            "指标体系的健康指数方法无效 (invalid index_method): "
            + "; ".join(e["field"] for e in errors),
            errors=errors,
            slug="invalid-index-method",
        )
    return IndexMethod(
        normalisation=normalisation,
        grade_points=points,
        dimension_weights=weights,
        source_priority=priority,
    )
