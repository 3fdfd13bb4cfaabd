"""Questionnaires as XLSForm workbooks (``survey``/``choices``/``settings``, as ODK and KoBo use).

Our own facts (indicator mapping, dimension, attention check…) travel in ``checkup_*``
columns, which XLSForm tools ignore; a form without them is read from its plain columns.
"""

from __future__ import annotations

import io
import re
from typing import Any

from openpyxl import Workbook, load_workbook

from services.survey.questionnaires.definition import (
    DEMOGRAPHICS,
    LIKERT_LABELS,
    NA,
    NA_LABEL,
    SCORED_TYPES,
    Condition,
    Definition,
    Question,
    parse_definition,
)
from shared.errors import ValidationFailed

__all__ = ["from_xlsform", "to_xlsform"]

SURVEY_COLUMNS = [
    "type",
    "name",
    "label",
    "required",
    "relevant",
    "constraint",
    "constraint_message",
    "checkup_type",
    "checkup_demographic",
    "checkup_dimension",
    "checkup_level",
    "checkup_indicator",
    "checkup_measure",
    "checkup_objective",
    "checkup_attention",
    "checkup_allow_na",
    "checkup_max_length",
]


def _list_name(q: Question) -> str:
    if q.type == "likert5":
        return "likert5_na" if q.allow_na else "likert5"
    if q.type == "score10":
        return "score10_na" if q.allow_na else "score10"
    if q.type == "demographic" and q.demographic:
        return q.demographic
    return f"{q.code}_opts"


def _choices(q: Question) -> list[tuple[str, str]]:
    if q.type == "likert5":
        base = [(str(i + 1), f"{i + 1} {lbl}") for i, lbl in enumerate(LIKERT_LABELS)]
    elif q.type == "score10":
        base = [(str(i), str(i)) for i in range(11)]
    else:
        return [(o.code, o.label) for o in q.options]
    return [*base, (NA, NA_LABEL)] if q.allow_na else base


def _xpath_literal(ref: Question, value: Any) -> str:
    return f"'{value}'"


def _relevant(cond: Condition, ref: Question) -> str:
    var = "${" + cond.question + "}"
    if cond.op == "answered":
        return f"{var} != ''"
    values = cond.value if isinstance(cond.value, list) else [cond.value]
    if ref.type == "multiple":
        parts = [f"selected({var}, '{v}')" for v in values]
        if cond.op == "ne":
            return f"not({parts[0]})"
        return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"
    if cond.op in ("ge", "le"):
        return f"{var} {'>=' if cond.op == 'ge' else '<='} {values[0]}"
    if cond.op == "ne":
        return f"{var} != {_xpath_literal(ref, values[0])}"
    parts = [f"{var} = {_xpath_literal(ref, v)}" for v in values]
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def _constraint(q: Question) -> tuple[str, str]:
    if q.type == "text":
        return f"string-length(.) <= {q.max_length}", f"最多 {q.max_length} 字"
    if q.type == "multiple" and q.max_choices:
        return f"count-selected(.) <= {q.max_choices}", f"最多选择 {q.max_choices} 项"
    return "", ""


def to_xlsform(defn: Definition, version: int) -> bytes:
    """The questionnaire as an XLSForm workbook (bytes of an .xlsx file)."""
    wb = Workbook()
    survey = wb.active
    assert survey is not None
    survey.title = "survey"
    survey.append(SURVEY_COLUMNS)
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", "label"])
    lists_done: set[str] = set()
    by_code = {q.code: q for q in defn.questions()}

    def row(**cells: Any) -> None:
        survey.append([cells.get(c, "") for c in SURVEY_COLUMNS])

    for s in defn.sections:
        row(
            type="begin_group",
            name=s.code,
            label=s.title,
            checkup_dimension=s.dimension,
            checkup_level=s.level or "",
            checkup_indicator=s.indicator_code or "",
            checkup_measure=s.indicator_measure if s.indicator_code else "",
            checkup_objective=",".join(s.objective_indicators),
        )
        for q in s.questions:
            if q.type == "text":
                xls_type = "text"
            else:
                lst = _list_name(q)
                xls_type = ("select_multiple " if q.type == "multiple" else "select_one ") + lst
                if lst not in lists_done:
                    lists_done.add(lst)
                    for code, label in _choices(q):
                        choices.append([lst, code, label])
            constraint, message = _constraint(q)
            row(
                type=xls_type,
                name=q.code,
                label=q.text,
                required="yes" if q.required else "",
                relevant=_relevant(q.show_if, by_code[q.show_if.question]) if q.show_if else "",
                constraint=constraint,
                constraint_message=message,
                checkup_type=q.type,
                checkup_demographic=q.demographic or "",
                checkup_indicator=q.indicator_code or "",
                checkup_measure=q.indicator_measure if q.indicator_code else "",
                checkup_objective=",".join(q.objective_indicators),
                checkup_attention="" if q.attention is None else str(q.attention.expected),
                checkup_allow_na="yes" if q.allow_na else "",
                checkup_max_length=str(q.max_length) if q.type == "text" else "",
            )
        row(type="end_group", name=s.code)
    settings = wb.create_sheet("settings")
    settings.append(
        ["form_title", "form_id", "version", "checkup_year", "checkup_region", "checkup_intro"]
    )
    settings.append([defn.title, defn.code, str(version), defn.year, defn.region_code, defn.intro])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --- reading ---------------------------------------------------------------------------

_VAR = r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}"
_LIT = r"(?:'([^']*)'|\"([^\"]*)\"|(-?\d+(?:\.\d+)?))"
_RE_ANSWERED = re.compile(rf"^{_VAR}\s*!=\s*''$")
_RE_CMP = re.compile(rf"^{_VAR}\s*(=|!=|>=|<=)\s*{_LIT}$")
_RE_SELECTED = re.compile(rf"^selected\(\s*{_VAR}\s*,\s*{_LIT}\s*\)$")
_RE_NOT_SELECTED = re.compile(rf"^not\(\s*selected\(\s*{_VAR}\s*,\s*{_LIT}\s*\)\s*\)$")


def _lit(m: re.Match[str], first: int) -> str:
    for g in (first, first + 1, first + 2):
        if m.group(g) is not None:
            return m.group(g)
    return ""


def _parse_relevant(expr: str) -> dict[str, Any]:
    """The simple skip-logic forms this platform writes; anything else is refused."""
    expr = expr.strip()
    if m := _RE_ANSWERED.match(expr):
        return {"question": m.group(1), "op": "answered"}
    if m := _RE_NOT_SELECTED.match(expr):
        return {"question": m.group(1), "op": "ne", "value": _lit(m, 2)}
    if m := _RE_SELECTED.match(expr):
        return {"question": m.group(1), "op": "eq", "value": _lit(m, 2)}
    if m := _RE_CMP.match(expr):
        op = {"=": "eq", "!=": "ne", ">=": "ge", "<=": "le"}[m.group(2)]
        return {"question": m.group(1), "op": op, "value": _lit(m, 3)}
    inner = expr[1:-1] if expr.startswith("(") and expr.endswith(")") else expr
    parts = [p.strip() for p in re.split(r"\s+or\s+", inner)]
    if len(parts) > 1:
        conds = [_parse_relevant(p) for p in parts]
        questions = {c["question"] for c in conds}
        if len(questions) == 1 and all(c["op"] == "eq" for c in conds):
            return {
                "question": conds[0]["question"],
                "op": "in",
                "value": [c["value"] for c in conds],
            }
    raise ValueError(
        f"不支持的跳转条件 (unsupported relevant expression): {expr!r}; "
        "支持 = != >= <= selected() 及同一题的 or"
    )


def _sheet_rows(wb: Any, name: str) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    if name not in wb.sheetnames:
        return [], []
    ws = wb[name]
    rows = list(ws.iter_rows(values_only=True))
    if not rows:
        return [], []
    header = [str(h).strip() if h is not None else "" for h in rows[0]]
    out = []
    for i, values in enumerate(rows[1:], start=2):
        if values is None or all(v is None or str(v).strip() == "" for v in values):
            continue
        cells = {
            h: ("" if v is None else str(v).strip())
            for h, v in zip(header, values, strict=False)
            if h
        }
        out.append((i, cells))
    return header, out


def _label(cells: dict[str, str]) -> str:
    if cells.get("label"):
        return cells["label"]
    for key, value in cells.items():
        if key.startswith("label") and value:
            return value
    return ""


def _infer_type(xls_type: str, list_name: str, choices: list[tuple[str, str]]) -> str:
    if xls_type == "text":
        return "text"
    if xls_type == "select_multiple":
        return "multiple"
    if list_name in DEMOGRAPHICS:
        return "demographic"
    codes = [c for c, _ in choices if c != NA]
    if codes == [str(i) for i in range(1, 6)]:
        return "likert5"
    if codes == [str(i) for i in range(11)]:
        return "score10"
    return "single"


def from_xlsform(data: bytes, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read an XLSForm workbook into a definition (JSON-able dict, validated); 422 with rows.

    ``defaults`` fill what a foreign form's settings sheet lacks (code, year, region_code).
    """
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # any unreadable upload is the caller's error
        raise ValidationFailed(
            "无法读取 XLSForm 工作簿 (not a readable .xlsx workbook)",
            errors=[{"field": "body", "message": str(exc)[:200]}],
        ) from exc
    errors: list[dict[str, Any]] = []
    header, survey_rows = _sheet_rows(wb, "survey")
    if not survey_rows or "type" not in header or "name" not in header:
        raise ValidationFailed(
            "XLSForm 缺少 survey 表或其 type/name 列 (survey sheet with type and name required)",
            errors=[{"field": "survey", "message": "缺少 survey 表或 type/name 列"}],
        )
    _, choice_rows = _sheet_rows(wb, "choices")
    lists: dict[str, list[tuple[str, str]]] = {}
    for _, c in choice_rows:
        lists.setdefault(c.get("list_name", ""), []).append((c.get("name", ""), _label(c)))
    _, settings_rows = _sheet_rows(wb, "settings")
    settings = settings_rows[0][1] if settings_rows else {}

    sections: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    kinds: dict[str, str] = {}
    for rownum, cells in survey_rows:
        raw_type = cells.get("type", "")
        parts = raw_type.split()
        xls_type = parts[0] if parts else ""
        name = cells.get("name", "")

        def err(field: str, message: str, rownum: int = rownum) -> None:
            errors.append({"sheet": "survey", "row": rownum, "field": field, "message": message})

        if xls_type in ("begin_group", "begin group"):
            current = {
                "code": name,
                "title": _label(cells) or name,
                "dimension": cells.get("checkup_dimension", ""),
                "level": cells.get("checkup_level") or None,
                "indicator_code": cells.get("checkup_indicator") or None,
                "indicator_measure": cells.get("checkup_measure") or "rate",
                "objective_indicators": _split(cells.get("checkup_objective", "")),
                "questions": [],
            }
            sections.append(current)
            continue
        if xls_type in ("end_group", "end group"):
            current = None
            continue
        if xls_type in ("start", "end", "today", "deviceid", "note", "calculate"):
            continue  # metadata and display rows carry no answer
        if xls_type not in ("select_one", "select_multiple", "text"):
            err("type", f"不支持的题型 (unsupported question type): {raw_type!r}")
            continue
        list_name = parts[1] if len(parts) > 1 else ""
        if xls_type != "text" and list_name not in lists:
            err("type", f"choices 表中没有选项列表 (no choices list) {list_name!r}")
            continue
        choices = lists.get(list_name, [])
        qtype = cells.get("checkup_type") or _infer_type(xls_type, list_name, choices)
        kinds[name] = qtype
        q: dict[str, Any] = {
            "code": name,
            "type": qtype,
            "text": _label(cells),
            "required": cells.get("required", "").lower() in ("yes", "true", "true()", "1"),
        }
        if qtype in ("single", "multiple", "community"):
            q["options"] = [{"code": c, "label": lbl} for c, lbl in choices]
        if qtype == "demographic":
            q["demographic"] = cells.get("checkup_demographic") or list_name
        if qtype in SCORED_TYPES:
            q["allow_na"] = cells.get("checkup_allow_na", "") == "yes" or any(
                c == NA for c, _ in choices
            )
            if cells.get("checkup_indicator"):
                q["indicator_code"] = cells["checkup_indicator"]
                q["indicator_measure"] = cells.get("checkup_measure") or "rate"
            if cells.get("checkup_objective"):
                q["objective_indicators"] = _split(cells["checkup_objective"])
        if qtype == "text":
            ml = cells.get("checkup_max_length") or _max_from_constraint(cells.get("constraint"))
            if ml:
                q["max_length"] = int(ml)
        if qtype == "multiple":
            mc = re.match(r"^count-selected\(\.\)\s*<=\s*(\d+)$", cells.get("constraint", ""))
            if mc:
                q["max_choices"] = int(mc.group(1))
        if cells.get("checkup_attention"):
            expected: Any = cells["checkup_attention"]
            q["attention"] = {"expected": int(expected) if qtype in SCORED_TYPES else expected}
        if cells.get("relevant"):
            try:
                cond = _parse_relevant(cells["relevant"])
            except ValueError as exc:
                err("relevant", str(exc))
            else:
                ref_type = kinds.get(cond["question"])
                if ref_type in SCORED_TYPES and cond["op"] != "answered":
                    cond["value"] = _as_int(cond["value"])
                q["show_if"] = cond
        if current is None:
            current = {
                "code": "main",
                "title": settings.get("form_title") or "问卷",
                "questions": [],
            }
            sections.append(current)
        current["questions"].append(q)
    if errors:
        raise ValidationFailed(
            f"XLSForm 有 {len(errors)} 处无法转换 (XLSForm rows not convertible)", errors=errors
        )
    year = settings.get("checkup_year", "")
    definition = {
        "code": settings.get("form_id", ""),
        "title": settings.get("form_title", ""),
        "year": int(year) if year.isdigit() else 0,
        "region_code": settings.get("checkup_region", ""),
        "intro": settings.get("checkup_intro", ""),
        "sections": sections,
    }
    for key, value in (defaults or {}).items():
        if value is not None and not definition.get(key):
            definition[key] = value
    # A foreign form may lack a title: its id names it.
    definition["title"] = definition["title"] or definition["code"]
    return parse_definition(definition).model_dump(mode="json")


def _as_int(v: Any) -> Any:
    if isinstance(v, list):
        return [_as_int(x) for x in v]
    return int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _max_from_constraint(constraint: str | None) -> str | None:
    m = re.match(r"^string-length\(\.\)\s*<=\s*(\d+)$", constraint or "")
    return m.group(1) if m else None
