"""Quality screens of each response as it arrives (pure rules; duplicates need the table)."""

from __future__ import annotations

from typing import Any

from services.survey.campaigns.schemas import Screening
from services.survey.questionnaires.definition import NA, Definition, visible_questions
from shared.regions import contains, is_valid_code

__all__ = ["FLAG_LABELS", "min_seconds", "screen"]

FLAG_LABELS = {
    "speeder": "作答过快 (speeder)",
    "straightline": "所有评分题答案相同 (straight-lining)",
    "attention": "注意力检测题未通过 (failed attention check)",
    "duplicate": "与同一设备或地址的答卷完全相同 (duplicate)",
    "out_of_region": "来自调查区划以外 (outside the campaign's region)",
    "manual": "审核人员手工剔除 (excluded by a reviewer)",
}


def min_seconds(defn: Definition, answers: dict[str, Any], rules: Screening) -> float:
    """The least time in which the questions shown could have been read and answered."""
    total = 0.0
    for q in visible_questions(defn, answers):
        total += len(q.text) / rules.chars_per_second + rules.seconds_per_answer
    return total


def screen(
    defn: Definition,
    answers: dict[str, Any],
    *,
    duration_s: float | None,
    campaign_region: str,
    picked_region: str,
    located_region: str | None,
    rules: Screening,
) -> list[dict[str, Any]]:
    """The flags one response earns on its own (duplicates are checked against the table)."""
    flags: list[dict[str, Any]] = []
    if duration_s is not None:
        floor = min_seconds(defn, answers, rules)
        if duration_s < floor:
            flags.append(
                {
                    "code": "speeder",
                    "detail": {"duration_s": round(duration_s, 1), "min_s": round(floor, 1)},
                }
            )
    # Straight-lining is judged on the Likert grid: one scale, so one value means one click.
    scored = [
        answers[q.code]
        for q in visible_questions(defn, answers)
        if q.type == "likert5" and q.attention is None and answers.get(q.code) not in (None, NA)
    ]
    if len(scored) >= rules.straightline_min_items and len(set(scored)) == 1:
        flags.append({"code": "straightline", "detail": {"items": len(scored), "value": scored[0]}})
    failed = [
        q.code
        for q in defn.questions()
        if q.attention is not None and q.code in answers and answers[q.code] != q.attention.expected
    ]
    if failed:
        flags.append({"code": "attention", "detail": {"questions": failed}})
    outside = []
    if not contains(campaign_region, picked_region):
        outside.append({"picked": picked_region})
    if (
        located_region
        and is_valid_code(located_region)
        and not contains(campaign_region, located_region)
        and not contains(located_region, campaign_region)
    ):
        outside.append({"located": located_region})
    if outside:
        flags.append(
            {"code": "out_of_region", "detail": {"campaign": campaign_region, "seen": outside}}
        )
    return flags
