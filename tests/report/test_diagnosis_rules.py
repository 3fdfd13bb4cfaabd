"""The diagnosis rules on hand-made evidence (pure functions, no database)."""

from __future__ import annotations

from datetime import date

from services.report.diagnosis.rules import (
    DiagnosisConfig,
    DiagnosisInput,
    IndicatorMeta,
    diagnose,
)
from services.report.tasks.colour import ColourRule, colour_of, expected_progress

META = {
    "H-02": IndicatorMeta("H-02", "存在燃气安全隐患的住宅数量", "housing", "安全耐久", "栋"),
    "D-06": IndicatorMeta("D-06", "城市生活污水集中收集率", "city", "生态宜居", "%", "≥ 70"),
}


def ev(code: str, region: str, source: str, value: float, grade: str, vid: int = 1) -> dict:
    return {
        "value_id": vid,
        "indicator_code": code,
        "region_code": region,
        "period": "2025",
        "source": source,
        "value": value,
        "grade": grade,
        "points": None,
        "rule": "r",
    }


def _inp(**kw: object) -> DiagnosisInput:
    return DiagnosisInput(region_code="360121", period="2025", indicators=META, **kw)  # type: ignore[arg-type]


def test_red_and_yellow_values_become_problems_located_where_measured() -> None:
    found = diagnose(
        DiagnosisConfig(),
        _inp(
            evaluations=[
                ev("D-06", "360121", "self_checkup", 60, "red"),
                ev("H-02", "360121001", "third_party", 3, "yellow", 2),
                ev("D-06", "360123", "self_checkup", 50, "red", 3),  # another county: out of scope
                ev(
                    "H-02", "360121100", "hotline", 9, "red", 4
                ),  # hotline is not an objective source
            ]
        ),
    )
    assert [(f.region_code, f.dedupe_key, f.severity) for f in found] == [
        ("360121", "indicator:D-06", "high"),
        ("360121001", "indicator:H-02", "medium"),
    ]
    assert found[0].title == "城市生活污水集中收集率不达标"
    assert "60" in found[0].description and "红色" in found[0].description


def test_duplicates_merge_with_the_worst_severity_and_all_evidence() -> None:
    found = diagnose(
        DiagnosisConfig(),
        _inp(
            evaluations=[
                ev("H-02", "360121100", "self_checkup", 35, "yellow", 1),
                ev("H-02", "360121100", "third_party", 34, "red", 2),
                ev("H-02", "360121100", "survey", 0, "green", 3),
            ]
        ),
    )
    assert len(found) == 1
    f = found[0]
    assert f.severity == "high"  # red (third party), cluster ≥ 30 also high
    assert set(f.rules) == {"indicator_grade", "object_cluster", "disagreement"}
    value_ids = {e.get("value_id") for e in f.evidence if e["kind"] == "evaluation"}
    assert value_ids == {1, 2}
    assert {e["kind"] for e in f.evidence} == {"evaluation", "cluster", "disagreement"}


def test_low_satisfaction_needs_the_whole_interval_below_the_threshold() -> None:
    sat = [
        {
            "item_code": "S1",
            "item_name": "小区停车",
            "score": 52,
            "ci_low": 47,
            "ci_high": 57,
            "n": 400,
        },
        {
            "item_code": "S2",
            "item_name": "物业服务",
            "score": 57,
            "ci_low": 50,
            "ci_high": 64,
            "n": 120,
        },
        {"item_code": "S3", "item_name": "燃气安全", "score": 40, "n": 300},  # interval from n
        {"item_code": "S4", "item_name": "垃圾分类", "score": 55, "n": 10},  # too few to tell
        {"item_code": "S5", "item_name": "积水内涝", "score": 30, "n": 300},
    ]
    found = {f.dedupe_key: f for f in diagnose(DiagnosisConfig(), _inp(satisfaction=sat))}
    assert set(found) == {"satisfaction:S1", "satisfaction:S3", "satisfaction:S5"}
    assert found["satisfaction:S1"].severity == "medium"
    assert found["satisfaction:S3"].severity == "medium"  # upper bound 45.5 ≥ 45
    assert found["satisfaction:S5"].severity == "high"  # upper bound 35.2 < 45
    ev3 = found["satisfaction:S3"].evidence[0]
    assert ev3["ci_high"] < 60 and round(ev3["ci_high"] - ev3["ci_low"], 1) == 11.1


def test_themes_from_open_answers_and_from_survey_counts() -> None:
    texts = [
        {"region_code": "360121001", "text": t}
        for t in ["停车位太少", "晚上乱停车", "物业不管事", "楼下停车难", "很好"] * 2
    ]
    counted = [
        {
            "region_code": "360121100",
            "theme": "water",
            "label": "积水内涝",
            "count": 30,
            "answers": 120,
            "examples": ["一下雨就积水"],
        }
    ]
    found = {
        (f.region_code, f.dedupe_key): f
        for f in diagnose(DiagnosisConfig(), _inp(texts=texts, theme_counts=counted))
    }
    parking = found[("360121001", "theme:停车难")]
    assert parking.evidence[0]["mentions"] == 6 and parking.severity == "medium"
    assert ("360121001", "theme:物业管理") not in found  # 2 mentions < 5
    water = found[("360121100", "theme:积水内涝")]
    assert water.evidence[0]["share"] == 0.25 and water.evidence[0]["quotes"] == ["一下雨就积水"]


def test_rules_can_be_switched_off_and_tuned() -> None:
    cfg = DiagnosisConfig.model_validate(
        {
            "indicator_grade": {"severity": {"red": "medium"}},
            "object_cluster": {"enabled": False},
            "disagreement": {"enabled": False},
        }
    )
    found = diagnose(
        cfg,
        _inp(
            evaluations=[
                ev("H-02", "360121100", "self_checkup", 35, "red"),
                ev("D-06", "360121", "self_checkup", 65, "yellow", 2),
            ]
        ),
    )
    assert [(f.dedupe_key, f.severity, f.rules) for f in found] == [
        ("indicator:H-02", "medium", ["indicator_grade"]),
    ]


def test_expected_progress_and_colours_follow_the_plan() -> None:
    start, deadline = date(2026, 1, 1), date(2026, 12, 31)
    plan = [{"due": "2026-03-31", "percent": 60}]
    assert expected_progress(start, deadline, plan, date(2026, 3, 31)) == 60.0
    assert round(expected_progress(start, deadline, plan, date(2026, 2, 14)), 1) == 29.7  # 60·44/89
    rule = ColourRule()

    def colour(progress: int, today: date, last: date | None = None) -> str:
        return colour_of(
            status="in_progress",
            start=start,
            deadline=deadline,
            progress=progress,
            last_progress_on=last,
            milestones=plan,
            rule=rule,
            today=today,
        ).colour

    assert colour(60, date(2026, 3, 31), date(2026, 3, 30)) == "green"
    assert colour(45, date(2026, 3, 31), date(2026, 3, 30)) == "yellow"  # 15 behind
    assert colour(25, date(2026, 3, 31), date(2026, 3, 30)) == "red"  # 35 behind
    assert colour(95, date(2026, 12, 20), date(2026, 12, 19)) == "yellow"  # 11 days left
    assert colour(99, date(2027, 1, 1), date(2026, 12, 30)) == "red"  # overdue
    assert colour(70, date(2026, 6, 1), date(2026, 4, 1)) == "yellow"  # 61 days silent
