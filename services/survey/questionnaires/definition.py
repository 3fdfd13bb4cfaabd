"""The questionnaire definition: its shape, its rules, and how answers are checked and scored."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from shared.errors import ValidationFailed
from shared.regions import is_valid_code

__all__ = [
    "DEMOGRAPHICS",
    "SCORED_TYPES",
    "Definition",
    "Question",
    "ScoredItem",
    "Section",
    "checked_answers",
    "definition_checksum",
    "parse_definition",
    "score_answers",
    "visible_questions",
]

CODE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,39}$"
OPTION_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,39}$"

QuestionType = Literal[
    "single", "multiple", "likert5", "score10", "text", "community", "demographic"
]
DemographicKind = Literal["age_band", "sex", "residence", "tenure"]
Level = Literal["housing", "compound", "community", "block", "district", "city"]
SCORED_TYPES = ("likert5", "score10")

# Fixed vocabularies: population margins and quotas use the same codes.
DEMOGRAPHICS: dict[str, list[tuple[str, str]]] = {
    "age_band": [
        ("18-29", "18–29岁"),
        ("30-39", "30–39岁"),
        ("40-49", "40–49岁"),
        ("50-59", "50–59岁"),
        ("60-69", "60–69岁"),
        ("70+", "70岁及以上"),
    ],
    "sex": [("M", "男"), ("F", "女")],
    "residence": [("lt1", "不满1年"), ("1-5", "1–5年"), ("5-10", "5–10年"), ("10+", "10年及以上")],
    "tenure": [
        ("own", "自有住房"),
        ("rent", "租住"),
        ("public", "公租房/廉租房"),
        ("other", "其他"),
    ],
}
LIKERT_LABELS = ["很不满意", "不太满意", "一般", "比较满意", "很满意"]
NA = "na"
NA_LABEL = "不了解/不适用"


class Option(BaseModel):
    code: str = Field(pattern=OPTION_PATTERN)
    label: str = Field(min_length=1, max_length=200)


class Condition(BaseModel):
    """Show a question only when an earlier answer matches (simple skip logic)."""

    question: str = Field(pattern=CODE_PATTERN)
    op: Literal["eq", "ne", "in", "ge", "le", "answered"] = "eq"
    value: str | int | float | list[str | int] | None = None


class Attention(BaseModel):
    """An attention check: the one answer an attentive respondent gives."""

    expected: str | int


class Question(BaseModel):
    code: str = Field(pattern=CODE_PATTERN)
    type: QuestionType
    text: str = Field(min_length=1, max_length=500)
    required: bool = True
    options: list[Option] = Field(default_factory=list)
    allow_na: bool = False
    max_choices: int | None = Field(default=None, ge=1)
    max_length: int = Field(default=500, ge=1, le=5000)
    demographic: DemographicKind | None = None
    show_if: Condition | None = None
    attention: Attention | None = None
    indicator_code: str | None = Field(default=None, max_length=40)
    indicator_measure: Literal["rate", "mean"] = "rate"
    objective_indicators: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _type_rules(self) -> Question:
        t = self.type
        if t in ("single", "multiple", "community") and not self.options:
            raise ValueError(f"{t} 题必须列出选项 (options required)")
        if t == "demographic":
            if self.demographic is None:
                raise ValueError("人口属性题须指明 demographic (age_band/sex/residence/tenure)")
            # The vocabulary is fixed so that answers match population margins.
            self.options = [Option(code=c, label=lbl) for c, lbl in DEMOGRAPHICS[self.demographic]]
        elif self.demographic is not None:
            raise ValueError("只有 demographic 题可指明 demographic 属性")
        if t == "community":
            bad = [o.code for o in self.options if not is_valid_code(o.code)]
            if bad:
                raise ValueError(
                    f"社区选择题的选项须为区划代码 (options must be division codes): {bad}"
                )
        codes = [o.code for o in self.options]
        if len(set(codes)) != len(codes):
            raise ValueError("选项代码重复 (duplicate option codes)")
        if NA in codes:
            raise ValueError(f"选项代码 {NA!r} 保留给“不了解” (reserved)")
        if (self.indicator_code or self.objective_indicators) and t not in SCORED_TYPES:
            raise ValueError(
                "只有满意度评分题 (likert5/score10) 可对应指标 (only scored questions)"
            )
        if self.attention is not None:
            if t not in ("single", "likert5", "score10"):
                raise ValueError(
                    "注意力检测题须为单选或评分题 (attention checks are single/scored)"
                )
            if not self.accepts(self.attention.expected):
                raise ValueError("注意力检测的期望答案不是有效答案 (expected answer invalid)")
        if self.allow_na and t not in SCORED_TYPES:
            raise ValueError("只有评分题可设“不了解”选项 (allow_na only on scored questions)")
        if self.max_choices is not None and t != "multiple":
            raise ValueError("max_choices 只用于多选题 (only for multiple choice)")
        return self

    @property
    def scored(self) -> bool:
        return self.type in SCORED_TYPES and self.attention is None

    def accepts(self, value: Any) -> bool:
        """Whether a single value is a valid answer (no multiple choice lists)."""
        return self.answer_error(value) is None

    def answer_error(self, value: Any) -> str | None:
        """Why ``value`` is not a valid answer to this question, or None."""
        t = self.type
        if t in SCORED_TYPES:
            if value == NA:
                return None if self.allow_na else "本题不接受“不了解” (na not allowed)"
            if isinstance(value, bool) or not isinstance(value, int):
                hi = 5 if t == "likert5" else 10
                return f"须为整数 {1 if t == 'likert5' else 0}–{hi} (integer expected)"
            lo, hi = (1, 5) if t == "likert5" else (0, 10)
            if not lo <= value <= hi:
                return f"超出范围 {lo}–{hi} (out of range)"
            return None
        if t == "text":
            if not isinstance(value, str):
                return "须为文本 (string expected)"
            if len(value) > self.max_length:
                return f"文本超过 {self.max_length} 字 (too long)"
            return None
        if t == "multiple":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return "须为选项代码列表 (list of option codes expected)"
            if not value and self.required:
                return "至少选择一项 (choose at least one)"
            if len(set(value)) != len(value):
                return "选项重复 (duplicate choices)"
            unknown = [v for v in value if v not in self.option_codes]
            if unknown:
                return f"未知选项 (unknown options): {unknown}"
            if self.max_choices is not None and len(value) > self.max_choices:
                return f"最多选择 {self.max_choices} 项 (too many choices)"
            return None
        if not isinstance(value, str):
            return "须为选项代码 (option code expected)"
        if value not in self.option_codes:
            return f"未知选项 (unknown option): {value!r}"
        return None

    @property
    def option_codes(self) -> set[str]:
        return {o.code for o in self.options}


class Section(BaseModel):
    code: str = Field(pattern=CODE_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    dimension: str = Field(default="", max_length=60)
    level: Level | None = None
    indicator_code: str | None = Field(default=None, max_length=40)
    indicator_measure: Literal["rate", "mean"] = "rate"
    objective_indicators: list[str] = Field(default_factory=list)
    questions: list[Question] = Field(min_length=1)

    @property
    def dimension_key(self) -> str:
        return self.dimension or self.title


class Definition(BaseModel):
    """A whole questionnaire as JSON: sections of questions, in order."""

    code: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,40}$")
    title: str = Field(min_length=1, max_length=200)
    year: int = Field(ge=2000, le=2100)
    region_code: str
    intro: str = Field(default="", max_length=2000)
    sections: list[Section] = Field(min_length=1)

    @model_validator(mode="after")
    def _whole_form_rules(self) -> Definition:
        if not is_valid_code(self.region_code):
            raise ValueError(f"region_code 不是区划代码 (not a division code): {self.region_code}")
        seen: dict[str, Question] = {}
        sections = [s.code for s in self.sections]
        if len(set(sections)) != len(sections):
            raise ValueError("分区代码重复 (duplicate section codes)")
        kinds: set[str] = set()
        for q in self.questions():
            if q.code in seen or q.code in sections:
                raise ValueError(f"题目代码重复 (duplicate question code): {q.code}")
            if q.show_if is not None:
                ref = seen.get(q.show_if.question)
                if ref is None:
                    raise ValueError(
                        f"{q.code} 的跳转条件须引用前面的题目 "
                        f"(show_if must refer to an earlier question): {q.show_if.question}"
                    )
                _check_condition(q.code, q.show_if, ref)
            if q.type == "demographic" and q.demographic:
                if q.demographic in kinds:
                    raise ValueError(f"人口属性重复 (duplicate demographic): {q.demographic}")
                kinds.add(q.demographic)
            if q.type == "community":
                if "community" in kinds:
                    raise ValueError("只能有一道社区选择题 (one community picker at most)")
                kinds.add("community")
            seen[q.code] = q
        return self

    def questions(self) -> list[Question]:
        return [q for s in self.sections for q in s.questions]

    def question(self, code: str) -> Question | None:
        return next((q for q in self.questions() if q.code == code), None)

    def demographic_question(self, kind: str) -> Question | None:
        if kind == "community":
            return next((q for q in self.questions() if q.type == "community"), None)
        return next((q for q in self.questions() if q.demographic == kind), None)

    def section_of(self, code: str) -> Section:
        return next(s for s in self.sections if any(q.code == code for q in s.questions))


def _check_condition(code: str, cond: Condition, ref: Question) -> None:
    if cond.op == "answered":
        return
    if cond.op == "in":
        if not isinstance(cond.value, list) or not cond.value:
            raise ValueError(f"{code}: 'in' 条件须给出取值列表 (list of values)")
        values: list[Any] = list(cond.value)
    else:
        if cond.value is None or isinstance(cond.value, list):
            raise ValueError(f"{code}: 条件须给出一个取值 (one value)")
        values = [cond.value]
    if cond.op in ("ge", "le") and ref.type not in SCORED_TYPES:
        raise ValueError(f"{code}: 大小比较只用于评分题 (ge/le only on scored questions)")
    for v in values:
        if not ref.accepts(v) and not (ref.type == "multiple" and v in ref.option_codes):
            raise ValueError(f"{code}: 条件取值 {v!r} 不是 {ref.code} 的有效答案")


def _errors_from_pydantic(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    out = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()))
        msg = e.get("msg", "")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(
            {"field": f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body", "message": msg}
        )
    return out


def parse_definition(data: Any) -> Definition:
    """Validate a questionnaire definition; 422 naming every bad field."""
    try:
        return Definition.model_validate(data)
    except ValidationError as exc:
        errors = _errors_from_pydantic(exc, "definition.")
        raise ValidationFailed(
            f"问卷定义有 {len(errors)} 处错误 (invalid questionnaire definition)", errors=errors
        ) from exc


def definition_checksum(defn: Definition) -> str:
    """SHA-256 of the canonical JSON of a definition (what a released version locks)."""
    canonical = json.dumps(defn.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _condition_holds(cond: Condition, answer: Any) -> bool:
    if answer is None:
        return False
    if cond.op == "answered":
        return answer not in ("", [])
    values = cond.value if isinstance(cond.value, list) else [cond.value]
    if isinstance(answer, list):  # multiple choice: "selected(...)"
        hit = any(str(v) in answer for v in values)
        return not hit if cond.op == "ne" else hit
    if cond.op == "eq":
        return answer == values[0]
    if cond.op == "ne":
        return answer != values[0]
    if cond.op == "in":
        return answer in values
    bound = values[0]
    if answer == NA or not isinstance(answer, int | float) or not isinstance(bound, int | float):
        return False
    return answer >= bound if cond.op == "ge" else answer <= bound


def visible_questions(defn: Definition, answers: dict[str, Any]) -> list[Question]:
    """The questions a respondent with these answers was shown, in order."""
    shown: list[Question] = []
    shown_codes: set[str] = set()
    for q in defn.questions():
        cond = q.show_if
        if cond is not None and (
            cond.question not in shown_codes
            or not _condition_holds(cond, answers.get(cond.question))
        ):
            continue
        shown.append(q)
        shown_codes.add(q.code)
    return shown


def checked_answers(defn: Definition, answers: Any) -> dict[str, Any]:
    """The answers if they obey the questionnaire; 422 naming each bad answer otherwise."""
    if not isinstance(answers, dict):
        raise ValidationFailed(
            "answers 须为 {题目代码: 答案} 对象 (answers must be an object)",
            errors=[{"field": "answers", "message": "须为对象 (object expected)"}],
        )
    errors: list[dict[str, Any]] = []
    known = {q.code for q in defn.questions()}
    for code in answers:
        if code not in known:
            errors.append(
                {"field": f"answers.{code}", "message": "问卷中没有此题 (unknown question)"}
            )
    shown = visible_questions(defn, answers)
    shown_codes = {q.code for q in shown}
    for q in defn.questions():
        value = answers.get(q.code)
        present = q.code in answers and value is not None and value != ""
        if q.code not in shown_codes:
            if present:
                errors.append(
                    {
                        "field": f"answers.{q.code}",
                        "message": "按跳转逻辑本题不应作答 (hidden by skip logic)",
                    }
                )
            continue
        if not present:
            if q.required:
                errors.append({"field": f"answers.{q.code}", "message": "必答题未作答 (required)"})
            continue
        problem = q.answer_error(value)
        if problem:
            errors.append({"field": f"answers.{q.code}", "message": problem})
    if errors:
        raise ValidationFailed(
            f"答卷有 {len(errors)} 处不符合问卷 (answers violate the questionnaire)", errors=errors
        )
    return {k: v for k, v in answers.items() if v is not None and v != ""}


@dataclass
class ScoredItem:
    """What one response contributes to one target: k items, score sum, top-two count."""

    kind: str  # question / dimension / overall
    code: str
    k: int = 0
    s: float = 0.0
    t: int = 0
    scores: list[float] = field(default_factory=list)


def item_score(q: Question, value: Any) -> tuple[float, bool] | None:
    """(0–100 score, top-two box) of a scored answer; None for 'na' or unscored questions."""
    if not q.scored or value == NA or not isinstance(value, int):
        return None
    if q.type == "likert5":
        return (value - 1) * 25.0, value >= 4
    return value * 10.0, value >= 9


def score_answers(defn: Definition, answers: dict[str, Any]) -> list[ScoredItem]:
    """Per-question, per-dimension and overall ('*') items of one checked answer set."""
    by_key: dict[tuple[str, str], ScoredItem] = {}
    order: list[tuple[str, str]] = []

    def add(kind: str, code: str, score: float, top: bool) -> None:
        key = (kind, code)
        item = by_key.get(key)
        if item is None:
            item = by_key[key] = ScoredItem(kind, code)
            order.append(key)
        item.k += 1
        item.s += score
        item.t += int(top)

    for section in defn.sections:
        for q in section.questions:
            scored = item_score(q, answers.get(q.code))
            if scored is None:
                continue
            add("question", q.code, *scored)
            add("dimension", section.dimension_key, *scored)
            add("overall", "*", *scored)
    return [by_key[k] for k in order]
