"""Diagnosis rules (configurable) and the engine that turns evidence into a problem list.

The engine is pure: it takes the evidence gathered from the indicator and survey services
and returns merged findings; storing them is ``diagnosis.service``'s job.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.regions import contains

__all__ = [
    "SEVERITY_RANK",
    "DiagnosisConfig",
    "DiagnosisInput",
    "Finding",
    "IndicatorMeta",
    "diagnose",
    "merge_findings",
]

Severity = Literal["high", "medium", "low"]
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3}
GRADE_RANK = {"green": 0, "yellow": 1, "red": 2}
GRADE_ZH = {
    "green": "绿色（达标）",
    "yellow": "黄色（预警）",
    "red": "红色（不达标）",
    "grey": "无标准",
}
OBJECTIVE_SOURCES = ["self_checkup", "third_party", "department"]


def _grade_severity() -> dict[str, Severity]:
    return {"red": "high", "yellow": "medium"}


class GradeRule(BaseModel):
    """Red and yellow indicators become problems located where the value was measured."""

    enabled: bool = True
    severity: dict[str, Severity] = Field(default_factory=_grade_severity)
    sources: list[str] = Field(default_factory=lambda: list(OBJECTIVE_SOURCES))


class SatisfactionRule(BaseModel):
    """Satisfaction below ``threshold`` (0–100) with the whole confidence interval below it."""

    enabled: bool = True
    threshold: float = Field(default=60.0, ge=0, le=100)
    high_below: float = Field(default=45.0, ge=0, le=100)  # CI upper bound below this → high
    z: float = Field(default=1.96, gt=0)  # for intervals computed from n when the survey gives none
    severity: Severity = "medium"


class DisagreementRule(BaseModel):
    """Subjective (survey) and objective sources that disagree about the same indicator."""

    enabled: bool = True
    subjective_sources: list[str] = Field(default_factory=lambda: ["survey"])
    objective_sources: list[str] = Field(default_factory=lambda: list(OBJECTIVE_SOURCES))
    min_grade_gap: int = Field(default=2, ge=1, le=2)  # 2: green against red
    compare_objective_sources: bool = True  # self-checkup against third party (多方比对)
    satisfied_above: float = Field(
        default=80.0, ge=0, le=100
    )  # satisfaction "high" for item vs red
    severity: Severity = "medium"


class ClusterRule(BaseModel):
    """Many deficient objects (buildings, compounds) counted in one street or community."""

    enabled: bool = True
    levels: list[str] = Field(default_factory=lambda: ["housing", "compound", "住房", "小区"])
    indicator_codes: list[str] = Field(default_factory=list)  # extra codes counted as objects
    region_levels: list[int] = Field(default_factory=lambda: [9, 12])  # code lengths
    min_count: float = Field(default=10, gt=0)
    high_at: float = Field(default=30, gt=0)
    severity: Severity = "medium"


class Theme(BaseModel):
    name: str
    keywords: list[str] = Field(min_length=1)
    indicator_codes: list[str] = Field(default_factory=list)


def _default_themes() -> list[Theme]:
    return [
        Theme(name="停车难", keywords=["停车", "车位", "乱停"]),
        Theme(name="物业管理", keywords=["物业", "保安", "管理差"]),
        Theme(name="加装电梯与适老化", keywords=["电梯", "适老", "扶手", "老人上下楼"]),
        Theme(name="垃圾分类与清运", keywords=["垃圾", "清运", "分类"]),
        Theme(name="噪声扰民", keywords=["噪音", "噪声", "扰民"]),
        Theme(name="积水内涝", keywords=["积水", "内涝", "排水", "下水道"]),
        Theme(name="燃气安全", keywords=["燃气", "煤气", "管道老化"]),
        Theme(name="电动自行车充电", keywords=["充电", "飞线", "电瓶车", "电动车"]),
    ]


class ThemeRule(BaseModel):
    """Open answers of the survey: a theme mentioned by a large enough share of respondents."""

    enabled: bool = True
    min_share: float = Field(default=0.05, gt=0, le=1)
    min_mentions: int = Field(default=5, ge=1)
    medium_share: float = Field(default=0.15, gt=0, le=1)
    themes: list[Theme] = Field(default_factory=_default_themes)
    quotes: int = Field(default=3, ge=0, le=10)


class DiagnosisConfig(BaseModel):
    """All diagnosis rules of a region (documented in docs/report.md)."""

    indicator_grade: GradeRule = Field(default_factory=lambda: GradeRule())
    low_satisfaction: SatisfactionRule = Field(default_factory=lambda: SatisfactionRule())
    disagreement: DisagreementRule = Field(default_factory=lambda: DisagreementRule())
    object_cluster: ClusterRule = Field(default_factory=lambda: ClusterRule())
    survey_themes: ThemeRule = Field(default_factory=lambda: ThemeRule())


@dataclass(frozen=True)
class IndicatorMeta:
    code: str
    name: str = ""
    level: str = ""
    dimension: str = ""
    unit: str = ""
    standard: str = ""


@dataclass
class DiagnosisInput:
    """Evidence for one region and period, as gathered from the sibling services."""

    region_code: str
    period: str
    system_id: int | None = None
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    indicators: dict[str, IndicatorMeta] = field(default_factory=dict)
    # {"region_code", "item_code", "item_name", "score" (0–100), "ci_low", "ci_high", "n",
    #  "indicator_codes": [...]}
    satisfaction: list[dict[str, Any]] = field(default_factory=list)
    # {"region_code", "text"}: open answers of the satisfaction survey.
    texts: list[dict[str, Any]] = field(default_factory=list)
    # Themes already counted by the survey service: {"region_code", "theme", "label",
    #  "count", "answers", "examples"?}.
    theme_counts: list[dict[str, Any]] = field(default_factory=list)
    region_names: dict[str, str] = field(default_factory=dict)


@dataclass
class Finding:
    """A problem candidate; findings with the same region and key are merged."""

    region_code: str
    dedupe_key: str
    category: str
    title: str
    description: str
    severity: str
    rule: str
    evidence: list[dict[str, Any]]
    indicator_code: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    rules: list[str] = field(default_factory=list)


def _name(inp: DiagnosisInput, code: str) -> str:
    meta = inp.indicators.get(code)
    return meta.name if meta and meta.name else code


def _unit(inp: DiagnosisInput, code: str) -> str:
    meta = inp.indicators.get(code)
    return meta.unit if meta else ""


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _in_scope(inp: DiagnosisInput, region: str) -> bool:
    return contains(inp.region_code, region)


def _grade_findings(cfg: GradeRule, inp: DiagnosisInput) -> Iterable[Finding]:
    for ev in inp.evaluations:
        grade = ev.get("grade")
        if grade not in cfg.severity or ev.get("source") not in cfg.sources:
            continue
        region, code = ev["region_code"], ev["indicator_code"]
        if not _in_scope(inp, region):
            continue
        name, unit = _name(inp, code), _unit(inp, code)
        yield Finding(
            region_code=region,
            dedupe_key=f"indicator:{code}",
            category="indicator",
            title=f"{name}{'不达标' if grade == 'red' else '预警'}",
            description=(
                f"{inp.region_names.get(region, region)}「{name}」{ev.get('period', inp.period)}年"
                f"取值 {_fmt(ev.get('value'))}{unit}，评价为{GRADE_ZH[grade]}"
                f"（{ev.get('rule') or '按标准值评价'}）。"
            ),
            severity=cfg.severity[grade],
            rule="indicator_grade",
            indicator_code=code,
            evidence=[
                {
                    "kind": "evaluation",
                    "value_id": ev.get("value_id"),
                    "indicator_code": code,
                    "source": ev.get("source"),
                    "value": ev.get("value"),
                    "grade": grade,
                    "rule": ev.get("rule"),
                }
            ],
        )


def _interval(row: dict[str, Any], z: float) -> tuple[float, float] | None:
    lo, hi = row.get("ci_low"), row.get("ci_high")
    if lo is not None and hi is not None:
        return float(lo), float(hi)
    n, score = row.get("n"), row.get("score")
    if not n or score is None:
        return None
    # Share of satisfied respondents: normal approximation of a proportion's interval.
    p = min(max(float(score) / 100.0, 0.0), 1.0)
    half = z * math.sqrt(p * (1 - p) / float(n)) * 100.0
    return float(score) - half, float(score) + half


def _satisfaction_findings(cfg: SatisfactionRule, inp: DiagnosisInput) -> Iterable[Finding]:
    for row in inp.satisfaction:
        score = row.get("score")
        region = row.get("region_code") or inp.region_code
        if score is None or not _in_scope(inp, region):
            continue
        ci = _interval(row, cfg.z)
        if ci is None or ci[1] >= cfg.threshold:
            continue  # not clearly below: the survey cannot tell it from the threshold
        item = row.get("item_name") or row.get("item_code")
        severity: Severity = "high" if ci[1] < cfg.high_below else cfg.severity
        yield Finding(
            region_code=region,
            dedupe_key=f"satisfaction:{row.get('item_code')}",
            category="satisfaction",
            title=f"居民对「{item}」满意度偏低",
            description=(
                f"{inp.region_names.get(region, region)}居民对「{item}」的满意度为 {score:.1f}"
                f"（置信区间 {ci[0]:.1f}–{ci[1]:.1f}，样本 {row.get('n') or '—'}），"
                f"整体低于阈值 {cfg.threshold:g}。"
            ),
            severity=severity,
            rule="low_satisfaction",
            evidence=[
                {
                    "kind": "satisfaction",
                    "item_code": row.get("item_code"),
                    "score": score,
                    "ci_low": round(ci[0], 2),
                    "ci_high": round(ci[1], 2),
                    "n": row.get("n"),
                    "threshold": cfg.threshold,
                }
            ],
        )


def _disagreement_findings(
    cfg: DisagreementRule, sat_cfg: SatisfactionRule, inp: DiagnosisInput
) -> Iterable[Finding]:
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for ev in inp.evaluations:
        if ev.get("grade") in GRADE_RANK and _in_scope(inp, ev["region_code"]):
            by_key[(ev["region_code"], ev["indicator_code"])][ev["source"]] = ev
    for (region, code), sources in sorted(by_key.items()):
        pairs: list[tuple[str, str, str]] = []
        for subj in cfg.subjective_sources:
            for obj in cfg.objective_sources:
                if subj in sources and obj in sources:
                    pairs.append((subj, obj, "subjective_objective"))
        if cfg.compare_objective_sources:
            objs = [s for s in cfg.objective_sources if s in sources]
            pairs.extend((a, b, "sources") for i, a in enumerate(objs) for b in objs[i + 1 :])
        for a, b, kind in pairs:
            ga, gb = sources[a]["grade"], sources[b]["grade"]
            if abs(GRADE_RANK[ga] - GRADE_RANK[gb]) < cfg.min_grade_gap:
                continue
            name = _name(inp, code)
            what = "主观评价与客观数据" if kind == "subjective_objective" else "多方数据"
            yield Finding(
                region_code=region,
                dedupe_key=f"indicator:{code}",
                category="disagreement",
                title=f"{name}{what}不一致",
                description=(
                    f"「{name}」来源 {a} 评价为{GRADE_ZH[ga]}（{_fmt(sources[a].get('value'))}），"
                    f"来源 {b} 评价为{GRADE_ZH[gb]}（{_fmt(sources[b].get('value'))}），需核实。"
                ),
                severity=cfg.severity,
                rule="disagreement",
                indicator_code=code,
                evidence=[
                    {
                        "kind": "disagreement",
                        "indicator_code": code,
                        "sources": {
                            s: {"value": sources[s].get("value"), "grade": sources[s]["grade"]}
                            for s in (a, b)
                        },
                    }
                ],
            )
    # Satisfaction items linked to objective indicators.
    for row in inp.satisfaction:
        region = row.get("region_code") or inp.region_code
        score = row.get("score")
        ci = _interval(row, sat_cfg.z)
        if score is None or ci is None:
            continue
        for code in row.get("indicator_codes") or []:
            objective = [by_key.get((region, code), {}).get(s) for s in cfg.objective_sources]
            grades = [o["grade"] for o in objective if o]
            if not grades:
                continue
            low = ci[1] < sat_cfg.threshold
            high = ci[0] > cfg.satisfied_above
            if (low and "green" in grades) or (high and "red" in grades):
                name = _name(inp, code)
                yield Finding(
                    region_code=region,
                    dedupe_key=f"indicator:{code}",
                    category="disagreement",
                    title=f"{name}主观评价与客观数据不一致",
                    description=(
                        f"居民对「{row.get('item_name') or row.get('item_code')}」满意度 "
                        f"{score:.1f}，而客观指标「{name}」评价为"
                        f"{'、'.join(GRADE_ZH[g] for g in grades)}。"
                    ),
                    severity=cfg.severity,
                    rule="disagreement",
                    indicator_code=code,
                    evidence=[
                        {
                            "kind": "disagreement",
                            "indicator_code": code,
                            "item_code": row.get("item_code"),
                            "score": score,
                            "grades": grades,
                        }
                    ],
                )


def _cluster_findings(cfg: ClusterRule, inp: DiagnosisInput) -> Iterable[Finding]:
    levels = set(cfg.levels)
    extra = set(cfg.indicator_codes)
    for ev in inp.evaluations:
        code, region, value = ev["indicator_code"], ev["region_code"], ev.get("value")
        meta = inp.indicators.get(code)
        counted = code in extra or (meta is not None and meta.level in levels)
        if not counted or value is None or len(region) not in cfg.region_levels:
            continue
        if value < cfg.min_count or not _in_scope(inp, region):
            continue
        name = _name(inp, code)
        yield Finding(
            region_code=region,
            dedupe_key=f"indicator:{code}",
            category="cluster",
            title=f"{inp.region_names.get(region, region)}{name}集中",
            description=(
                f"{inp.region_names.get(region, region)}「{name}」计 {_fmt(value)}"
                f"{_unit(inp, code)}，达到集中连片阈值 {cfg.min_count:g}。"
            ),
            severity="high" if value >= cfg.high_at else cfg.severity,
            rule="object_cluster",
            indicator_code=code,
            object_type="region",
            object_id=region,
            evidence=[
                {
                    "kind": "cluster",
                    "indicator_code": code,
                    "count": value,
                    "source": ev.get("source"),
                    "min_count": cfg.min_count,
                }
            ],
        )


def _theme_findings(cfg: ThemeRule, inp: DiagnosisInput) -> Iterable[Finding]:
    by_region: dict[str, list[str]] = defaultdict(list)
    for t in inp.texts:
        region = t.get("region_code") or inp.region_code
        if t.get("text") and _in_scope(inp, region):
            by_region[region].append(str(t["text"]))
    for region, texts in sorted(by_region.items()):
        for theme in cfg.themes:
            pattern = re.compile("|".join(re.escape(k) for k in theme.keywords))
            hits = [t for t in texts if pattern.search(t)]
            f = _theme_finding(
                cfg, inp, region, theme.name, len(hits), len(texts), hits, theme.indicator_codes
            )
            if f is not None:
                yield f


def _theme_finding(
    cfg: ThemeRule,
    inp: DiagnosisInput,
    region: str,
    name: str,
    mentions: int,
    answers: int,
    quotes: list[str],
    indicator_codes: list[str],
) -> Finding | None:
    share = mentions / answers if answers else 0.0
    if mentions < cfg.min_mentions or share < cfg.min_share or not _in_scope(inp, region):
        return None
    return Finding(
        region_code=region,
        dedupe_key=f"theme:{name}",
        category="theme",
        title=f"居民集中反映：{name}",
        description=(
            f"{inp.region_names.get(region, region)}满意度调查开放题中 {mentions} 条"
            f"（占 {share:.0%}）提及{name}。"
        ),
        severity="medium" if share >= cfg.medium_share else "low",
        rule="survey_themes",
        evidence=[
            {
                "kind": "survey_text",
                "theme": name,
                "mentions": mentions,
                "answers": answers,
                "share": round(share, 4),
                "quotes": quotes[: cfg.quotes],
                "indicator_codes": indicator_codes,
            }
        ],
    )


def _counted_theme_findings(cfg: ThemeRule, inp: DiagnosisInput) -> Iterable[Finding]:
    for t in inp.theme_counts:
        f = _theme_finding(
            cfg,
            inp,
            str(t.get("region_code") or inp.region_code),
            str(t.get("label") or t.get("theme")),
            int(t.get("count") or 0),
            int(t.get("answers") or 0),
            [str(q) for q in t.get("examples") or []],
            [],
        )
        if f is not None:
            yield f


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Merge findings about the same thing: rules and evidence united, the worst severity kept."""
    merged: dict[tuple[str, str], Finding] = {}
    for f in findings:
        key = (f.region_code, f.dedupe_key)
        cur = merged.get(key)
        if cur is None:
            f.rules = [f.rule]
            merged[key] = f
            continue
        if f.rule not in cur.rules:
            cur.rules.append(f.rule)
        for e in f.evidence:
            if e not in cur.evidence:
                cur.evidence.append(e)
        if SEVERITY_RANK[f.severity] > SEVERITY_RANK[cur.severity]:
            # The most severe finding names the problem; the others stay as evidence.
            cur.title, cur.description, cur.severity, cur.category = (
                f.title,
                f.description,
                f.severity,
                f.category,
            )
            cur.object_type = cur.object_type or f.object_type
            cur.object_id = cur.object_id or f.object_id
        elif f.description not in cur.description:
            cur.description = f"{cur.description}\n{f.description}"
    return sorted(
        merged.values(),
        key=lambda f: (-SEVERITY_RANK[f.severity], f.region_code, f.dedupe_key),
    )


def diagnose(cfg: DiagnosisConfig, inp: DiagnosisInput) -> list[Finding]:
    """Run every enabled rule over the evidence and merge duplicates."""
    findings: list[Finding] = []
    if cfg.indicator_grade.enabled:
        findings.extend(_grade_findings(cfg.indicator_grade, inp))
    if cfg.object_cluster.enabled:
        findings.extend(_cluster_findings(cfg.object_cluster, inp))
    if cfg.disagreement.enabled:
        findings.extend(_disagreement_findings(cfg.disagreement, cfg.low_satisfaction, inp))
    if cfg.low_satisfaction.enabled:
        findings.extend(_satisfaction_findings(cfg.low_satisfaction, inp))
    if cfg.survey_themes.enabled:
        findings.extend(_theme_findings(cfg.survey_themes, inp))
        findings.extend(_counted_theme_findings(cfg.survey_themes, inp))
    return merge_findings(findings)
