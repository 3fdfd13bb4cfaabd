"""The three-colour rule (三色管理) of rectification tasks: precise, configurable, explained.

For an open task on day ``today`` (all dates are calendar days):

1. **expected progress** is read off the plan: a piecewise-linear line through
   (start_date, 0%), each milestone (due, percent) in date order, and (deadline, 100%);
   before the start it is 0%, after the deadline 100%.
2. **lag** = expected − reported progress, in percentage points.
3. The colour is the first that applies:
   - **red**: today is after the deadline (overdue), or lag ≥ ``red_lag_points``;
   - **yellow**: lag ≥ ``yellow_lag_points``; or at most ``near_deadline_days`` days remain and
     the task is not closed; or no progress report for more than ``stale_days`` days
     (0 switches that off);
   - **green**: otherwise (on schedule).

A closed task (re-inspected and 销号) is green with the reason "已销号".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel, Field, model_validator

__all__ = ["ColourRule", "TaskColour", "colour_of", "expected_progress", "rule_text"]


class ColourRule(BaseModel):
    """Thresholds of the three-colour rule (documented in docs/report.md)."""

    near_deadline_days: int = Field(default=15, ge=0, le=365)
    yellow_lag_points: float = Field(default=10, gt=0, le=100)
    red_lag_points: float = Field(default=30, gt=0, le=100)
    stale_days: int = Field(default=30, ge=0, le=365)

    @model_validator(mode="after")
    def _ordered(self) -> ColourRule:
        if self.red_lag_points < self.yellow_lag_points:
            raise ValueError("red_lag_points must not be below yellow_lag_points")
        return self


@dataclass(frozen=True)
class TaskColour:
    colour: str  # green / yellow / red
    reason: str
    expected: float
    lag: float
    days_left: int


def expected_progress(
    start: date, deadline: date, milestones: list[dict[str, Any]], today: date
) -> float:
    """Planned progress (0–100) on ``today`` from the plan's milestones."""
    points = [(start, 0.0)]
    for m in sorted(milestones, key=lambda m: str(m["due"])):
        due = m["due"] if isinstance(m["due"], date) else date.fromisoformat(str(m["due"]))
        points.append((due, float(m["percent"])))
    points.append((deadline, 100.0))
    if today <= points[0][0]:
        return 0.0
    for (d0, p0), (d1, p1) in itertools.pairwise(points):
        if today <= d1:
            span = (d1 - d0).days
            if span <= 0:
                return p1
            return p0 + (p1 - p0) * (today - d0).days / span
    return 100.0


def colour_of(
    *,
    status: str,
    start: date,
    deadline: date,
    progress: int,
    last_progress_on: date | None,
    milestones: list[dict[str, Any]],
    rule: ColourRule,
    today: date,
) -> TaskColour:
    """The colour of one task on ``today`` and the reason for it."""
    expected = expected_progress(start, deadline, milestones, today)
    lag = max(0.0, expected - progress)
    days_left = (deadline - today).days
    if status == "closed":
        return TaskColour("green", "已复查销号", expected, 0.0, days_left)
    if days_left < 0:
        return TaskColour("red", f"已逾期 {-days_left} 天", expected, lag, days_left)
    if lag >= rule.red_lag_points:
        return TaskColour(
            "red", f"进度严重滞后：计划 {expected:.0f}%，实际 {progress}%", expected, lag, days_left
        )
    if lag >= rule.yellow_lag_points:
        return TaskColour(
            "yellow", f"进度滞后：计划 {expected:.0f}%，实际 {progress}%", expected, lag, days_left
        )
    if days_left <= rule.near_deadline_days:
        return TaskColour(
            "yellow", f"临近完成时限（剩余 {days_left} 天）", expected, lag, days_left
        )
    since = last_progress_on or start
    if rule.stale_days and (today - since).days > rule.stale_days:
        return TaskColour(
            "yellow", f"超过 {rule.stale_days} 天未报送进展", expected, lag, days_left
        )
    return TaskColour("green", "按计划推进", expected, lag, days_left)


def rule_text(rule: ColourRule) -> str:
    """The rule in one Chinese sentence, for reports and bulletins."""
    stale = f"或超过 {rule.stale_days} 天未报送进展" if rule.stale_days else ""
    return (
        f"三色管理规则：已逾期或进度落后计划 {rule.red_lag_points:g} 个百分点及以上为红色；"
        f"进度落后计划 {rule.yellow_lag_points:g} 个百分点及以上、距完成时限不足 "
        f"{rule.near_deadline_days} 天{stale}为黄色；其余按计划推进为绿色。"
        f"计划进度按整改方案节点线性插值。"
    )
