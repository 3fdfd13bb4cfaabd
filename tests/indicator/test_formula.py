"""The safe formula parser: grammar, values, escapes and limits; SQL agrees with Python."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from services.indicator.systems import formula as fm
from services.indicator.systems.formula import FormulaError, evaluation_order, find_cycle, parse
from shared.db import Database
from shared.errors import ValidationFailed
from shared.settings import NodeSettings


def test_codes_and_arithmetic() -> None:
    f = parse("H-01 / H-11 * 100")
    assert f.codes == {"H-01", "H-11"}
    assert f.evaluate({"H-01": 3, "H-11": 12}) == 25.0
    assert parse("10 - 3 - 2").evaluate({}) == 5.0  # left-associative
    assert parse("8 / 4 / 2").evaluate({}) == 1.0
    assert parse("2 + 3 * 4").evaluate({}) == 14.0
    assert parse("(2 + 3) * 4").evaluate({}) == 20.0
    assert parse("-2 * -3").evaluate({}) == 6.0
    assert parse("- (A - B)").evaluate({"A": 1, "B": 4}) == 3.0
    assert parse("+A").evaluate({"A": 7}) == 7.0
    assert parse("1.5e2 + .5").evaluate({}) == 150.5
    assert parse("min(A, B, 3) + max(A, B) + abs(-A)").evaluate({"A": 1, "B": 5}) == 7.0
    assert parse("MAX(A, 2)").evaluate({"A": 1}) == 2.0  # function names ignore case


def test_bracketed_codes_and_the_hyphen_rule() -> None:
    assert parse("[C-05]-[C-06]").evaluate({"C-05": 9, "C-06": 4}) == 5.0
    assert parse("C-05 - C-06").codes == {"C-05", "C-06"}
    # Without spaces a hyphen joins a code: one (unknown) code, caught at save time.
    assert parse("C-05-C-06").codes == {"C-05-C-06"}
    assert parse("[1.2]+[3x]").codes == {"1.2", "3x"}


def test_missing_inputs_and_division_by_zero_give_none() -> None:
    f = parse("A / B * 100")
    assert f.evaluate({"A": 1}) is None
    assert f.evaluate({"A": 1, "B": None}) is None
    assert f.evaluate({"A": 1, "B": 0}) is None
    assert parse("min(A, B)").evaluate({"A": 1, "B": None}) is None
    assert parse("A * 1e15 * 1e15 * 1e15 * 1e15 * 1e15 * 1e15").evaluate({"A": 1e300}) is None


def test_errors_carry_the_position_and_are_422_problems() -> None:
    with pytest.raises(FormulaError) as info:
        parse("A + * B")
    err = info.value
    assert isinstance(err, ValidationFailed) and err.status == 422
    assert err.position == 4
    assert err.errors == [
        {"field": "formula", "position": 4, "message": err.errors[0]["message"]}  # type: ignore[index]
    ]
    assert "第 5 个字符" in err.detail
    with pytest.raises(FormulaError) as info:
        parse("(A + B", field="indicators[2].formula")
    assert info.value.position == 0
    assert info.value.errors[0]["field"] == "indicators[2].formula"  # type: ignore[index]
    for text, pos in [("", 0), ("A B", 2), ("A +", 3), ("2A", 1), ("()", 1), ("min()", 4)]:
        with pytest.raises(FormulaError) as info:
            parse(text)
        assert info.value.position == pos, text


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('ls')",
        "A.__class__",
        "A.__class__.__mro__",
        "os.system('rm -rf /')",
        "eval('1')",
        "exec('1')",
        "open('/etc/passwd')",
        "getattr(A, 'x')",
        "lambda: 1",
        "[x for x in ()]",
        "A if B else C",
        "A; B",
        "'abc'",
        '"abc"',
        "A == B",
        "A < B",
        "A and B",
        "A @ B",
        "A % B",
        "A // B",
        "2 ** 999999",
        "9 ^ 9 ^ 9",
        "pow(9, 99999)",
        "1e999",
        "1" + "0" * 20,
        "１２",  # full-width digits
        "A²",
        "\x00",
        "A = 1",
        "{A}",
        "A,B",
    ],
)
def test_escapes_are_rejected(text: str) -> None:
    with pytest.raises(FormulaError):
        parse(text)


def test_nesting_length_and_complexity_limits() -> None:
    ok = "(" * fm.MAX_DEPTH + "A" + ")" * fm.MAX_DEPTH
    assert parse(ok).evaluate({"A": 2}) == 2.0
    deep = "(" * (fm.MAX_DEPTH + 1) + "A" + ")" * (fm.MAX_DEPTH + 1)
    with pytest.raises(FormulaError, match="嵌套"):
        parse(deep)
    with pytest.raises(FormulaError, match="嵌套"):
        parse("-" * 900 + "1")  # no RecursionError, a clear problem
    with pytest.raises(FormulaError, match="嵌套"):
        parse("abs(" * 40 + "1" + ")" * 40)
    with pytest.raises(FormulaError, match="过长"):
        parse("A+" * 600 + "A")
    with pytest.raises(FormulaError, match="复杂"):
        parse("+".join(["A"] * 100))
    longest = parse("+".join(["A"] * fm.MAX_HEIGHT))
    assert longest.evaluate({"A": 1}) == float(fm.MAX_HEIGHT)
    with pytest.raises(FormulaError, match="参数"):
        parse("max(" + ",".join(["1"] * 20) + ")")


def test_normalized_text_and_equality() -> None:
    assert parse("A+B*2").normalized() == "(A + (B * 2))"
    assert parse("A + B * 2") == parse("(A)+(B*2)")
    assert parse("[C-05]") == parse("C-05")


def test_cycles_and_evaluation_order() -> None:
    assert find_cycle({"A": {"B"}, "B": {"C"}, "C": set()}) is None
    assert find_cycle({"A": {"A"}}) == ["A", "A"]
    cycle = find_cycle({"A": {"B", "X"}, "B": {"C"}, "C": {"A"}})
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"A", "B", "C"}
    formulas = {"S": parse("R * 2"), "R": parse("A / B"), "T": parse("S + R")}
    order = evaluation_order(formulas)
    assert order.index("R") < order.index("S") < order.index("T")
    with pytest.raises(FormulaError, match="循环"):
        evaluation_order({"A": parse("B + 1"), "B": parse("A - 1")})


# --- SQL: the same values, set-based, on both databases -----------------------------------


@pytest.fixture
def db(node_settings: NodeSettings) -> Iterator[Database]:
    url, schema = node_settings.database_for("indicator")
    database = Database(url, schema=schema, spatial=True)
    yield database
    database.dispose()


ROWS = [
    {"id": 1, "a": 3.0, "b": 12.0, "c": 2.0},
    {"id": 2, "a": 1.0, "b": 0.0, "c": -5.0},  # division by zero → NULL
    {"id": 3, "a": None, "b": 4.0, "c": 1.0},  # missing input → NULL
    {"id": 4, "a": 7.0, "b": 3.0, "c": None},
    {"id": 5, "a": 0.1, "b": 0.2, "c": 0.3},
    {"id": 6, "a": 5.0, "b": 2.0, "c": 9.0},
]
FORMULAS = [
    "H-01 / H-11 * 100",
    "H-01 + H-11 * C",
    "-(H-01 - H-11) / (C - 1)",
    "min(H-01, H-11, C)",
    "max(H-01, H-11, C)",  # same shape as the line above: must not reuse its cached SQL
    "max(H-01, H-11) - abs(C)",
    "min(max(H-01, 1), abs(-H-11)) / 3",
    "5 / 2",  # integers never divide as integers
    "H-01 / 0",
]


def test_to_sql_matches_evaluate_on_both_databases(db: Database) -> None:
    meta = sa.MetaData()
    table = sa.Table(
        "formula_probe",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a", sa.Float),
        sa.Column("b", sa.Float),
        sa.Column("c", sa.Float),
        prefixes=["TEMPORARY"],
    )
    columns = {"H-01": table.c.a, "H-11": table.c.b, "C": table.c.c}
    with db.engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(table.insert(), ROWS)
        for text in FORMULAS:
            f = parse(text)
            got = dict(
                conn.execute(
                    sa.select(table.c.id, f.to_sql(lambda code: columns[code])).order_by(table.c.id)
                ).all()
            )
            for row in ROWS:
                values = {"H-01": row["a"], "H-11": row["b"], "C": row["c"]}
                want = f.evaluate(values)
                have = got[row["id"]]
                if want is None:
                    assert have is None, (text, row)
                else:
                    assert have is not None and math.isclose(have, want, rel_tol=1e-12), (
                        text,
                        row,
                        have,
                        want,
                    )


def test_to_sql_of_the_longest_formula_compiles(db: Database) -> None:
    f = parse("+".join(["A"] * fm.MAX_HEIGHT) + " / A")
    with db.engine.connect() as conn:
        value = conn.execute(sa.select(f.to_sql(lambda _: sa.literal(2.0, sa.Float)))).scalar()
    assert value == pytest.approx(2.0 * (fm.MAX_HEIGHT - 1) + 1.0)


def test_min_and_max_never_share_cached_sql(db: Database) -> None:
    one = sa.literal(1.0, sa.Float)
    with db.engine.connect() as conn:
        got = [
            conn.execute(sa.select(parse(t).to_sql(lambda _: one))).scalar()
            for t in ("min(A, 5)", "max(A, 5)", "min(A, 5)", "max(A, 5)")
        ]
    assert got == [1.0, 5.0, 1.0, 5.0]
