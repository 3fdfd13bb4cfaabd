"""Safe arithmetic formulas over indicator codes (hand-written tokenizer + recursive descent).

Grammar (whitespace is free between tokens)::

    formula := expr EOF
    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("-" | "+") unary | atom
    atom    := NUMBER | CODE | FUNC "(" expr ("," expr)* ")" | "(" expr ")"
    FUNC    := min | max | abs            (case-insensitive)
    CODE    := [A-Za-z][A-Za-z0-9_]* ("-" [A-Za-z0-9_]+)*   or   "[" any code "]"
    NUMBER  := digits ["." digits] [("e"|"E") ["+"|"-"] digits]   (finite, |x| <= 1e15)

A bare code swallows hyphens that join it to letters/digits ("H-01"), so a binary minus
next to a code needs spaces ("C-05 - C-06") or brackets ("[C-05]-[C-06]").
Nothing here ever calls eval/exec/compile: the text becomes a tree of a handful of node
classes which are walked to compute a value or build a SQLAlchemy expression.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FunctionElement

from shared.errors import ValidationFailed

__all__ = [
    "MAX_DEPTH",
    "MAX_HEIGHT",
    "MAX_LENGTH",
    "Formula",
    "FormulaError",
    "evaluation_order",
    "find_cycle",
    "parse",
]

MAX_LENGTH = 1000  # characters; real formulas are a few dozen
MAX_DEPTH = 32  # nesting of parentheses, calls and unary signs
MAX_HEIGHT = 64  # operators in one chain; keeps SQL compilation well inside the stack
MAX_ABS_NUMBER = 1e15
FUNCTIONS = {"min": 2, "max": 2, "abs": 1}  # name -> minimum argument count
MAX_ARGS = 16

_CODE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")
_BRACKET_CODE_RE = re.compile(r"\[([A-Za-z0-9][A-Za-z0-9_.\-]*)\]")
_NUMBER_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS = frozenset("0123456789")  # ASCII only: str.isdigit() also accepts "１" and "²"
_VALID_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$")


class FormulaError(ValidationFailed):
    """A formula that cannot be accepted; `position` is the 0-based character offset."""

    def __init__(self, message: str, *, position: int | None = None, field: str = "formula"):
        where = (
            f"（第 {position + 1} 个字符 / at character {position + 1}）"
            if position is not None
            else ""
        )
        item: dict[str, Any] = {"field": field, "message": message + where}
        if position is not None:
            item["position"] = position
        super().__init__(f"公式无效 (invalid formula): {message}{where}", errors=[item])
        self.message = message
        self.position = position
        self.field = field


# --- tokens -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # num / code / name / op / end
    text: str
    pos: int
    value: float = 0.0


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "+-*/(),":
            if ch == "*" and text.startswith("**", i):
                raise FormulaError("不支持乘方运算 (exponentiation is not supported)", position=i)
            tokens.append(_Token("op", ch, i))
            i += 1
            continue
        if ch == "^":
            raise FormulaError("不支持乘方运算 (exponentiation is not supported)", position=i)
        if ch == "[":
            m = _BRACKET_CODE_RE.match(text, i)
            if not m:
                raise FormulaError("方括号内应为指标编码 (expected a code inside [ ])", position=i)
            tokens.append(_Token("code", m.group(1), i))
            i = m.end()
            continue
        if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER_RE.match(text, i)
            assert m is not None  # the first character already matches
            try:
                value = float(m.group(0))
            except (OverflowError, ValueError):  # pragma: no cover - float() returns inf
                value = math.inf
            if not math.isfinite(value) or abs(value) > MAX_ABS_NUMBER:
                raise FormulaError(
                    f"数值超出范围 (number out of range, |x| ≤ {MAX_ABS_NUMBER:g})", position=i
                )
            end = m.end()
            if end < n and (text[end].isalpha() or text[end] in "_."):
                raise FormulaError(
                    "数字后有多余字符 (unexpected character after number)", position=end
                )
            tokens.append(_Token("num", m.group(0), i, value))
            i = end
            continue
        if ch.isascii() and ch.isalpha():
            m = _CODE_RE.match(text, i)
            assert m is not None
            word = m.group(0)
            end = m.end()
            if end < n and text[end] in "._":
                # Attribute access ("x.__class__") and dunder tricks stop here.
                raise FormulaError(
                    f"不允许的字符 (character not allowed): {text[end]!r}", position=end
                )
            j = end
            while j < n and text[j].isspace():
                j += 1
            kind = "name" if j < n and text[j] == "(" else "code"
            tokens.append(_Token(kind, word, i))
            i = end
            continue
        raise FormulaError(f"不允许的字符 (character not allowed): {ch!r}", position=i)
    tokens.append(_Token("end", "", n))
    return tokens


# --- tree -------------------------------------------------------------------------------


class _Node:
    __slots__ = ()

    def evaluate(self, values: Mapping[str, float | None]) -> float | None:
        raise NotImplementedError

    def to_sql(self, column_for: Callable[[str], Any]) -> ColumnElement[float]:
        raise NotImplementedError

    def render(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Num(_Node):
    value: float

    def evaluate(self, values: Mapping[str, float | None]) -> float | None:
        return self.value

    def to_sql(self, column_for: Callable[[str], Any]) -> ColumnElement[float]:
        return sa.literal(self.value, sa.Float)

    def render(self) -> str:
        return repr(int(self.value)) if self.value.is_integer() else repr(self.value)


@dataclass(frozen=True, slots=True)
class _Ref(_Node):
    code: str

    def evaluate(self, values: Mapping[str, float | None]) -> float | None:
        v = values.get(self.code)
        return None if v is None else float(v)

    def to_sql(self, column_for: Callable[[str], Any]) -> ColumnElement[float]:
        # Cast so PostgreSQL never falls into integer division whatever column_for returns.
        return sa.cast(column_for(self.code), sa.Float)

    def render(self) -> str:
        return self.code if _CODE_RE.fullmatch(self.code) else f"[{self.code}]"


@dataclass(frozen=True, slots=True)
class _Neg(_Node):
    operand: _Node

    def evaluate(self, values: Mapping[str, float | None]) -> float | None:
        v = self.operand.evaluate(values)
        return None if v is None else -v

    def to_sql(self, column_for: Callable[[str], Any]) -> ColumnElement[float]:
        return sa.literal(0.0, sa.Float) - self.operand.to_sql(column_for)

    def render(self) -> str:
        return f"-{self.operand.render()}"


@dataclass(frozen=True, slots=True)
class _Bin(_Node):
    op: str
    left: _Node
    right: _Node

    def evaluate(self, values: Mapping[str, float | None]) -> float | None:
        a = self.left.evaluate(values)
        b = self.right.evaluate(values)
        if a is None or b is None:
            return None
        if self.op == "+":
            return a + b
        if self.op == "-":
            return a - b
        if self.op == "*":
            return a * b
        if b == 0:
            return None
        return a / b

    def to_sql(self, column_for: Callable[[str], Any]) -> ColumnElement[float]:
        a = self.left.to_sql(column_for)
        b = self.right.to_sql(column_for)
        if self.op == "+":
            return sa.type_coerce(a + b, sa.Float)
        if self.op == "-":
            return sa.type_coerce(a - b, sa.Float)
        if self.op == "*":
            return sa.type_coerce(a * b, sa.Float)
        # NULLIF turns x/0 into NULL on both databases (PostgreSQL would raise otherwise).
        return sa.type_coerce(
            a / sa.func.nullif(b, sa.literal(0.0, sa.Float), type_=sa.Float), sa.Float
        )

    def render(self) -> str:
        return f"({self.left.render()} {self.op} {self.right.render()})"


@dataclass(frozen=True, slots=True)
class _Call(_Node):
    name: str
    args: tuple[_Node, ...]

    def evaluate(self, values: Mapping[str, float | None]) -> float | None:
        vals = [a.evaluate(values) for a in self.args]
        if any(v is None for v in vals):
            return None
        nums = [v for v in vals if v is not None]
        if self.name == "abs":
            return abs(nums[0])
        return min(nums) if self.name == "min" else max(nums)

    def to_sql(self, column_for: Callable[[str], Any]) -> ColumnElement[float]:
        args = [a.to_sql(column_for) for a in self.args]
        if self.name == "abs":
            return sa.func.abs(args[0], type_=sa.Float)
        return _Min(*args) if self.name == "min" else _Max(*args)

    def render(self) -> str:
        return f"{self.name}({', '.join(a.render() for a in self.args)})"


class _Extreme(FunctionElement[float]):
    """min/max over arguments, NULL when any argument is NULL (as Formula.evaluate).

    The one place where the dialects differ: SQLite's multi-argument min()/max() already
    propagate NULL; PostgreSQL's least()/greatest() skip NULLs, so it gets a VALUES list
    whose non-NULL count is checked (each argument is rendered once, so nesting stays linear).
    One subclass per function: the class is part of SQLAlchemy's statement cache key, an
    instance attribute would not be (min and max would share one cached SQL string).
    """

    type = sa.Float()
    inherit_cache = True
    which = ""


class _Min(_Extreme):
    inherit_cache = True
    which = "min"


class _Max(_Extreme):
    inherit_cache = True
    which = "max"


@compiles(_Extreme)
def _extreme_default(element: _Extreme, compiler: Any, **kw: Any) -> str:
    return f"{element.which}({compiler.process(element.clauses, **kw)})"


@compiles(_Extreme, "postgresql")
def _extreme_postgresql(element: _Extreme, compiler: Any, **kw: Any) -> str:
    rows = ", ".join(f"(({compiler.process(c, **kw)})::float8)" for c in element.clauses)
    n = len(element.clauses.clauses)
    return (
        f"(SELECT CASE WHEN count(_fx.v) = {n} THEN {element.which}(_fx.v) END "
        f"FROM (VALUES {rows}) AS _fx(v))"
    )


# --- parser -----------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _advance(self) -> _Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def _enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError(f"嵌套层数超过 {MAX_DEPTH} (nested too deeply)", position=pos)

    def parse(self) -> _Node:
        if self.tok.kind == "end":
            raise FormulaError("公式为空 (empty formula)", position=0)
        node = self._expr()
        if self.tok.kind != "end":
            raise FormulaError(f"多余的内容 (unexpected {self.tok.text!r})", position=self.tok.pos)
        return node

    def _expr(self) -> _Node:
        node = self._term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self._advance().text
            node = _Bin(op, node, self._term())
        return node

    def _term(self) -> _Node:
        node = self._unary()
        while self.tok.kind == "op" and self.tok.text in "*/":
            op = self._advance().text
            node = _Bin(op, node, self._unary())
        return node

    def _unary(self) -> _Node:
        t = self.tok
        if t.kind == "op" and t.text in "+-":
            self._advance()
            self._enter(t.pos)
            operand = self._unary()
            self.depth -= 1
            return _Neg(operand) if t.text == "-" else operand
        return self._atom()

    def _atom(self) -> _Node:
        t = self.tok
        if t.kind == "num":
            self._advance()
            return _Num(t.value)
        if t.kind == "code":
            self._advance()
            if not _VALID_CODE_RE.match(t.text):
                raise FormulaError(f"指标编码无效 (invalid code) {t.text!r}", position=t.pos)
            return _Ref(t.text)
        if t.kind == "name":
            return self._call()
        if t.kind == "op" and t.text == "(":
            self._advance()
            self._enter(t.pos)
            node = self._expr()
            self._expect(")", t.pos)
            self.depth -= 1
            return node
        if t.kind == "end":
            raise FormulaError("公式不完整 (unexpected end of formula)", position=t.pos)
        raise FormulaError(f"此处不应出现 (unexpected) {t.text!r}", position=t.pos)

    def _call(self) -> _Node:
        t = self._advance()
        name = t.text.lower()
        if name not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise FormulaError(
                f"不支持的函数 (function not allowed) {t.text!r}；可用 (allowed): {allowed}",
                position=t.pos,
            )
        self._advance()  # "("
        self._enter(t.pos)
        args = [self._expr()]
        while self.tok.kind == "op" and self.tok.text == ",":
            self._advance()
            args.append(self._expr())
            if len(args) > MAX_ARGS:
                raise FormulaError(f"参数过多 (more than {MAX_ARGS} arguments)", position=t.pos)
        self._expect(")", t.pos)
        self.depth -= 1
        need = FUNCTIONS[name]
        if name == "abs" and len(args) != 1:
            raise FormulaError("abs 只接受一个参数 (abs takes one argument)", position=t.pos)
        if len(args) < need:
            raise FormulaError(
                f"{name} 至少需要 {need} 个参数 (needs {need}+ arguments)", position=t.pos
            )
        return _Call(name, tuple(args))

    def _expect(self, text: str, opened_at: int) -> None:
        if self.tok.kind == "op" and self.tok.text == text:
            self._advance()
            return
        if self.tok.kind == "end":
            raise FormulaError("括号未闭合 (unclosed parenthesis opened here)", position=opened_at)
        raise FormulaError(f"应为 {text!r} (expected {text!r})", position=self.tok.pos)


def _height(node: _Node) -> int:
    if isinstance(node, _Neg):
        return 1 + _height(node.operand)
    if isinstance(node, _Bin):
        return 1 + max(_height(node.left), _height(node.right))
    if isinstance(node, _Call):
        return 1 + max(_height(a) for a in node.args)
    return 1


def _collect_codes(node: _Node, out: set[str]) -> None:
    if isinstance(node, _Ref):
        out.add(node.code)
    elif isinstance(node, _Neg):
        _collect_codes(node.operand, out)
    elif isinstance(node, _Bin):
        _collect_codes(node.left, out)
        _collect_codes(node.right, out)
    elif isinstance(node, _Call):
        for a in node.args:
            _collect_codes(a, out)


class Formula:
    """A parsed formula: the codes it reads, its value for given inputs, its SQL expression."""

    __slots__ = ("_root", "codes", "text")

    def __init__(self, text: str, root: _Node) -> None:
        self.text = text
        self._root = root
        found: set[str] = set()
        _collect_codes(root, found)
        self.codes: frozenset[str] = frozenset(found)

    def evaluate(self, values: Mapping[str, float | None]) -> float | None:
        """Value for the given inputs; None when an input is missing, on x/0 or overflow."""
        result = self._root.evaluate(values)
        if result is None or not math.isfinite(result):
            return None
        return result

    def to_sql(self, column_for: Callable[[str], Any]) -> ColumnElement[float]:
        """SQLAlchemy expression (double precision, NULL on a NULL input or x/0)."""
        return sa.type_coerce(self._root.to_sql(column_for), sa.Float)

    def normalized(self) -> str:
        """Fully parenthesised canonical text (two formulas are equal when these are)."""
        return self._root.render()

    def check_codes(self, known: Iterable[str], *, field: str = "formula") -> None:
        """Raise FormulaError naming the codes this formula reads that are not in `known`."""
        missing = sorted(self.codes - set(known))
        if missing:
            raise FormulaError(
                f"引用了不存在的指标 (unknown indicator codes): {', '.join(missing)}", field=field
            )

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Formula) and self.normalized() == other.normalized()

    def __hash__(self) -> int:
        return hash(self.normalized())


def parse(text: str, *, field: str = "formula") -> Formula:
    """Parse a formula; raises FormulaError (422 problem) naming the field and position."""
    if not isinstance(text, str):
        raise FormulaError("公式必须是文本 (formula must be a string)", field=field)
    if len(text) > MAX_LENGTH:
        raise FormulaError(
            f"公式过长，超过 {MAX_LENGTH} 个字符 (formula too long)",
            position=MAX_LENGTH,
            field=field,
        )
    try:
        root = _Parser(text).parse()
    except FormulaError as exc:
        if field != "formula":
            raise FormulaError(exc.message, position=exc.position, field=field) from None
        raise
    if _height(root) > MAX_HEIGHT:
        raise FormulaError(
            f"公式过于复杂，运算层数超过 {MAX_HEIGHT} (formula too complex)", field=field
        )
    return Formula(text, root)


def find_cycle(dependencies: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle among formula indicators as [a, b, ..., a], or None (iterative DFS)."""
    graph = {k: sorted(set(v)) for k, v in dependencies.items()}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        state[start] = 1
        while stack:
            node, idx = stack[-1]
            children = graph.get(node, [])
            if idx < len(children):
                stack[-1] = (node, idx + 1)
                child = children[idx]
                if child not in graph:
                    continue  # an entered indicator: a leaf
                if state.get(child) == 1:
                    return [*path[path.index(child) :], child]
                if not state.get(child):
                    state[child] = 1
                    stack.append((child, 0))
                    path.append(child)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return None


def evaluation_order(formulas: Mapping[str, Formula]) -> list[str]:
    """Formula indicator codes ordered so each comes after the formulas it reads."""
    deps = {code: set(f.codes) & set(formulas) for code, f in formulas.items()}
    cycle = find_cycle(deps)
    if cycle:
        raise FormulaError(f"公式循环引用 (circular formulas): {' → '.join(cycle)}")
    order: list[str] = []
    done: set[str] = set()
    remaining = dict(sorted(deps.items()))
    while remaining:
        ready = [c for c, d in remaining.items() if d <= done]
        for c in ready:
            order.append(c)
            done.add(c)
            del remaining[c]
    return order
