"""Report outlines: YAML files listing sections in order, with Jinja2 text blocks.

A province (or city) can change its outline without code; every error is reported with the
line of the outline file it comes from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from jinja2 import ChainableUndefined, StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.loaders import DictLoader
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.report.reports.render.layout import SECTION_TYPES, num
from shared.errors import ValidationFailed

__all__ = [
    "KINDS",
    "Outline",
    "OutlineInvalid",
    "default_outline_text",
    "parse_outline",
    "render_outline",
]

KINDS = ("annual", "province", "bulletin")
OUTLINES = Path(__file__).parent / "outlines"


class OutlineInvalid(ValidationFailed):
    slug = "template-invalid"
    title = "报告模板有误 (report template invalid)"


class SectionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    id: str | None = None
    title: str = ""
    text: str = ""
    options: dict[str, Any] = Field(default_factory=dict)


class OutlineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str
    title: str
    subtitle: str = ""
    sections: list[SectionSpec] = Field(min_length=1)


@dataclass
class Outline:
    """A validated outline, its source text and where each text block starts."""

    spec: OutlineSpec
    text: str
    sha256: str
    lines: dict[str, tuple[int, bool]]  # block name → (0-based line of node, block scalar?)


def default_outline_text(kind: str) -> str:
    """The outline shipped with the platform for a report kind."""
    return (OUTLINES / f"{kind}.yaml").read_text(encoding="utf-8")


def _line_of(lines: dict[str, tuple[int, bool]], name: str, lineno: int | None) -> int:
    start, block = lines.get(name, (0, False))
    inner = max(lineno or 1, 1)
    return start + inner + (1 if block else 0)


def _node_lines(root: yaml.Node) -> dict[str, tuple[int, bool]]:
    """Positions of the text blocks and of each section mapping."""
    out: dict[str, tuple[int, bool]] = {}
    if not isinstance(root, yaml.MappingNode):
        return out
    for key, value in root.value:
        name = key.value
        out[f"key:{name}"] = (key.start_mark.line, False)
        if name in ("title", "subtitle") and isinstance(value, yaml.ScalarNode):
            out[name] = (value.start_mark.line, getattr(value, "style", None) in ("|", ">"))
        if name == "sections" and isinstance(value, yaml.SequenceNode):
            for i, item in enumerate(value.value):
                out[f"sections[{i}]"] = (item.start_mark.line, False)
                if isinstance(item, yaml.MappingNode):
                    for k, v in item.value:
                        out[f"sections[{i}].{k.value}"] = (
                            v.start_mark.line,
                            getattr(v, "style", None) in ("|", ">"),
                        )
    return out


def _environment(strict: bool, blocks: dict[str, str]) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=DictLoader(blocks),
        undefined=StrictUndefined if strict else ChainableUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters["num"] = num
    env.filters["pct"] = lambda v, d=0: "—" if v is None else f"{100 * float(v):.{d}f}%"
    return env


def _blocks(spec: OutlineSpec) -> dict[str, str]:
    blocks = {"title": spec.title, "subtitle": spec.subtitle}
    for i, s in enumerate(spec.sections):
        blocks[f"sections[{i}].title"] = s.title
        blocks[f"sections[{i}].text"] = s.text
    return blocks


def _template_lineno(tb: TracebackType | None, name: str) -> int | None:
    # Jinja rewrites tracebacks so that template frames carry template line numbers.
    lineno = None
    while tb is not None:
        # DictLoader templates have no file: their frames are named "<template>".
        if tb.tb_frame.f_code.co_filename in (name, "<template>"):
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def parse_outline(text: str, *, kind: str, sample: dict[str, Any] | None = None) -> Outline:
    """Parse and check an outline; a sample document context catches unknown names."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # An unclosed quote or bracket is found at the end of the file; the line where it
        # was opened (the context) is the one to fix.
        opened = exc.context and "scanning" in exc.context
        mark = (exc.context_mark if opened else None) or exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise OutlineInvalid(
            f"模板第 {line} 行 YAML 格式错误 (YAML error at line {line}): {exc.problem}",
            errors=[{"line": line, "field": "template", "message": str(exc.problem)}],
        ) from exc
    if root is None or not isinstance(data, dict):
        raise OutlineInvalid(
            "模板应为包含 kind、title、sections 的 YAML 映射 (the template must be a mapping)",
            errors=[{"line": 1, "field": "template", "message": "not a mapping"}],
        )
    lines = _node_lines(root)
    try:
        spec = OutlineSpec.model_validate(data)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = []
        for e in exc.errors():
            loc = [str(p) for p in e["loc"]]
            name = loc[0]
            if name == "sections" and len(loc) > 1:
                name = f"sections[{loc[1]}]" + (f".{loc[2]}" if len(loc) > 2 else "")
            line = (lines.get(name) or lines.get(name.rsplit(".", 1)[0]) or (0, False))[0] + 1
            errors.append({"line": line, "field": name, "message": e["msg"]})
        first = errors[0]
        raise OutlineInvalid(
            f"模板第 {first['line']} 行 {first['field']}：{first['message']} "
            f"(template error at line {first['line']})",
            errors=errors,
        ) from exc
    errors = []
    if spec.kind != kind:
        errors.append(
            {
                "line": lines.get("kind", lines.get("key:kind", (0, False)))[0] + 1,
                "field": "kind",
                "message": f"模板类型应为 {kind} (kind must be {kind}, got {spec.kind})",
            }
        )
    for i, s in enumerate(spec.sections):
        if s.type not in SECTION_TYPES:
            errors.append(
                {
                    "line": lines.get(f"sections[{i}].type", (0, False))[0] + 1,
                    "field": f"sections[{i}].type",
                    "message": f"未知的章节类型 {s.type}，可用: {', '.join(SECTION_TYPES)}",
                }
            )
    blocks = _blocks(spec)
    env = _environment(strict=True, blocks=blocks)
    for name, source in blocks.items():
        try:
            template = env.get_template(name)
        except TemplateSyntaxError as exc:
            errors.append(
                {
                    "line": _line_of(lines, name, exc.lineno),
                    "field": name,
                    "message": f"Jinja2 语法错误: {exc.message}",
                }
            )
            continue
        if sample is not None and source:
            try:
                template.render(**sample)
            except TemplateError as exc:
                errors.append(
                    {
                        "line": _line_of(lines, name, _template_lineno(exc.__traceback__, name)),
                        "field": name,
                        "message": f"模板变量错误: {exc}",
                    }
                )
    if errors:
        errors.sort(key=lambda e: e["line"] or 0)
        first = errors[0]
        raise OutlineInvalid(
            f"模板第 {first['line']} 行 {first['field']}：{first['message']} "
            f"(template error at line {first['line']})",
            errors=errors,
        )
    return Outline(
        spec=spec, text=text, sha256=hashlib.sha256(text.encode()).hexdigest(), lines=lines
    )


def render_outline(outline: Outline, context: dict[str, Any]) -> dict[str, Any]:
    """Title, subtitle and sections with their text blocks rendered for one document."""
    blocks = _blocks(outline.spec)
    env = _environment(strict=False, blocks=blocks)

    def text(name: str) -> str:
        if not blocks[name]:
            return ""
        try:
            return env.get_template(name).render(**context).strip()
        except TemplateError as exc:
            line = _line_of(outline.lines, name, _template_lineno(exc.__traceback__, name))
            raise OutlineInvalid(
                f"模板第 {line} 行 {name} 渲染失败 (template error at line {line}): {exc}",
                errors=[{"line": line, "field": name, "message": str(exc)}],
            ) from exc

    sections = []
    for i, s in enumerate(outline.spec.sections):
        sections.append(
            {
                "id": s.id or f"s{i + 1}",
                "type": s.type,
                "title": text(f"sections[{i}].title"),
                "text": text(f"sections[{i}].text"),
                "options": s.options,
            }
        )
    return {"title": text("title"), "subtitle": text("subtitle"), "sections": sections}
