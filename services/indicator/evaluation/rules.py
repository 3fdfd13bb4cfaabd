"""Grading rules of one indicator: green / yellow bounds and the Chinese rule text.

The rules are derived once per indicator in Python (readable, unit-testable) and handed
to the database as a small table of bounds, so that grading a million values is one
set-based statement with a uniform CASE instead of one branch per direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GRADES",
    "GRADE_LABELS",
    "IndicatorRule",
    "fmt_number",
    "rule_for",
]

GRADES = ("green", "yellow", "red", "grey")
GRADE_LABELS = {"green": "达标", "yellow": "预警", "red": "不达标", "grey": "无标准"}
DIRECTION_LABELS = {"higher": "越大越好", "lower": "越小越好", "band": "区间为宜"}
NO_VALUE_TEXT = "；实际值缺失 → 无法评价"
INF = math.inf


def fmt_number(value: float) -> str:
    """Numbers in rule texts: 15 significant digits, no trailing zeros (like SQL printf %.15g)."""
    if value == 0:
        return "0"  # avoid "-0"
    return f"{value:.15g}"


def _interval(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{fmt_number(low)} ~ {fmt_number(high)}"
    if low is not None:
        return f"≥ {fmt_number(low)}"
    return f"≤ {fmt_number(high)}"  # type: ignore[arg-type]


@dataclass(frozen=True)
class IndicatorRule:
    """Green within [green_low, green_high], else yellow within the yellow bounds, else red."""

    # ``graded`` is False when the indicator has no standard: every value is grey. Open
    # bounds are ±infinity so that the SQL needs no NULL branches.

    code: str
    graded: bool
    green_low: float = -INF
    green_high: float = INF
    # An empty interval (low > high) when there is no warning bound.
    yellow_low: float = INF
    yellow_high: float = -INF
    text: str = "无标准"
    standard: str = ""  # the standard clause alone, e.g. "≥ 90"

    def grade(self, value: float | None) -> str:
        """The grade of one value (the SQL statement applies the same bounds)."""
        if value is None or not self.graded:
            return "grey"
        if self.green_low <= value <= self.green_high:
            return "green"
        if self.yellow_low <= value <= self.yellow_high:
            return "yellow"
        return "red"

    def gap(self, value: float | None) -> float:
        """Relative distance of a value outside the standard (0 inside; for ordering red items)."""
        if value is None or not self.graded:
            return 0.0
        if value < self.green_low:
            ref = self.green_low
        elif value > self.green_high:
            ref = self.green_high
        else:
            return 0.0
        return abs(value - ref) / max(abs(ref), 1.0)

    def full_text(self, value: float | None) -> str:
        """The rule as stored with an evaluation: the standard, the actual value and the grade."""
        if value is None:
            return self.text + NO_VALUE_TEXT
        return f"{self.text}；实际值 {fmt_number(value)} → {GRADE_LABELS[self.grade(value)]}"


def _no_standard(code: str, why: str = "无标准") -> IndicatorRule:
    return IndicatorRule(code=code, graded=False, text=why)


def rule_for(indicator: Any) -> IndicatorRule:
    """Derive the grading rule from an indicator's direction, standard and warning columns."""
    code = indicator.code
    direction = indicator.direction
    std = indicator.standard_value
    warn = indicator.warning_value
    label = DIRECTION_LABELS.get(direction)
    if label is None:
        return _no_standard(code, f"评价方向未定义（{direction}），无标准")
    if direction in ("higher", "lower"):
        if std is None:
            return _no_standard(code, f"{label}：无标准")
        sign = "≥" if direction == "higher" else "≤"
        standard = f"{sign} {fmt_number(std)}"
        parts = [f"{standard} 达标"]
        if direction == "higher":
            bounds: dict[str, float] = {"green_low": std}
            if warn is not None:
                bounds.update(yellow_low=warn, yellow_high=INF)
        else:
            bounds = {"green_high": std}
            if warn is not None:
                bounds.update(yellow_low=-INF, yellow_high=warn)
        if warn is not None:
            parts.append(f"{sign} {fmt_number(warn)} 预警")
        parts.append("否则不达标")
        return IndicatorRule(
            code=code,
            graded=True,
            text=f"{label}：{'，'.join(parts)}",
            standard=standard,
            **bounds,
        )
    low, high = indicator.band_low, indicator.band_high
    if low is None and high is None:
        return _no_standard(code, f"{label}：无标准")
    standard = _interval(low, high)
    parts = [f"{standard} 达标"]
    wlow, whigh = indicator.warning_low, indicator.warning_high
    bounds = {
        "green_low": -INF if low is None else low,
        "green_high": INF if high is None else high,
    }
    if wlow is not None or whigh is not None:
        parts.append(f"{_interval(wlow, whigh)} 预警")
        bounds.update(
            yellow_low=-INF if wlow is None else wlow,
            yellow_high=INF if whigh is None else whigh,
        )
    parts.append("否则不达标")
    return IndicatorRule(
        code=code, graded=True, text=f"{label}：{'，'.join(parts)}", standard=standard, **bounds
    )
