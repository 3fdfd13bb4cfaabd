"""upsert_values: the set-based write other domains call (roll-ups)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.indicator.values.bulk import _KEY_JOIN
from services.indicator.values.dialect import bulk_dialect
from services.indicator.values.models import IndicatorValue, ValueHistory
from services.indicator.values.service import upsert_values
from shared.errors import Conflict, ValidationFailed
from shared.settings import NodeSettings
from tests.indicator.values_builders import (
    COMMUNITIES,
    create_system,
    node_session,
    system_id,
    values_of,
)

__all__ = ["system_id"]


def test_upsert_creates_updates_and_counts_unchanged(
    node_settings: NodeSettings, system_id: int
) -> None:
    rows = [("C01", COMMUNITIES[0], 3.0, None), ("C02", COMMUNITIES[0], 1.5, "实测")]
    with node_session(node_settings) as s:
        r = upsert_values(
            s, system_id=system_id, period="2025", source="self_checkup", rows=rows, actor="rollup"
        )
    assert (r.created, r.updated, r.unchanged) == (2, 0, 0)
    # The formula F01 = C01 / C02 is derived for the same region and source.
    assert r.derived == 1
    stored = values_of(node_settings, system_id)
    assert stored[("F01", COMMUNITIES[0], "self_checkup")] == 2.0
    with node_session(node_settings) as s:
        r = upsert_values(
            s,
            system_id=system_id,
            period="2025",
            source="self_checkup",
            rows=[("C01", COMMUNITIES[0], 6.0, None), ("C02", COMMUNITIES[0], 1.5, None)],
            actor="rollup",
        )
    assert (r.created, r.updated, r.unchanged, r.derived) == (0, 1, 1, 1)
    stored = values_of(node_settings, system_id)
    assert stored[("C01", COMMUNITIES[0], "self_checkup")] == 6.0
    assert stored[("F01", COMMUNITIES[0], "self_checkup")] == 4.0
    with node_session(node_settings) as s:
        c01 = s.query(IndicatorValue).filter_by(indicator_code="C01").one()
        assert c01.revision == 2
        hist = s.query(ValueHistory).filter_by(value_id=c01.id).order_by(ValueHistory.id).all()
        assert [(h.action, h.old_value, h.new_value) for h in hist] == [
            ("create", None, 3.0),
            ("update", 3.0, 6.0),
        ]
        assert hist[1].changed_by == "rollup"
        note = s.query(IndicatorValue).filter_by(indicator_code="C02").one().note
        assert note == "实测"  # an empty note keeps the stored one


def test_upsert_refuses_bad_rows_and_draft_systems(node_settings: NodeSettings) -> None:
    with node_session(node_settings) as s:
        released = create_system(s)
        draft = create_system(s, state="draft", version=2)
    with node_session(node_settings) as s, pytest.raises(ValidationFailed) as exc:
        upsert_values(
            s,
            system_id=released,
            period="2025",
            source="self_checkup",
            rows=[("C01", COMMUNITIES[0], 1.0, None), ("NOPE", COMMUNITIES[1], 1.0, None)],
            actor="rollup",
        )
    assert exc.value.errors and exc.value.errors[0]["row"] == 2
    assert exc.value.errors[0]["field"] == "indicator_code"
    assert values_of(node_settings, released) == {}
    with node_session(node_settings) as s, pytest.raises(Conflict):
        upsert_values(
            s,
            system_id=draft,
            period="2025",
            source="self_checkup",
            rows=[("C01", COMMUNITIES[0], 1.0, None)],
            actor="rollup",
        )


def test_one_write_takes_rows_of_several_sources_each_checked(
    node_settings: NodeSettings, system_id: int
) -> None:
    rows = [
        ("C01", COMMUNITIES[0], 3.0, None, "self_checkup"),
        ("C01", COMMUNITIES[0], 4.0, None, "third_party"),
        ("C02", COMMUNITIES[1], 2.0, None, "department"),
    ]
    with node_session(node_settings) as s:
        r = upsert_values(
            s, system_id=system_id, period="2025", source=None, rows=rows, actor="node-360121"
        )
        batch_source = s.execute(text("SELECT source FROM import_batches")).scalar_one()
    assert (r.created, r.updated, r.unchanged) == (3, 0, 0)
    assert batch_source is None  # the write's batch names no single source
    stored = values_of(node_settings, system_id)
    assert stored[("C01", COMMUNITIES[0], "self_checkup")] == 3.0
    assert stored[("C01", COMMUNITIES[0], "third_party")] == 4.0
    assert stored[("C02", COMMUNITIES[1], "department")] == 2.0

    # A row's own source is checked like the rest of it: the write is refused whole.
    bad = [
        ("C01", COMMUNITIES[2], 1.0, None, "self_checkup"),
        ("C01", COMMUNITIES[2], 1.0, None, "gossip"),
    ]
    with node_session(node_settings) as s, pytest.raises(ValidationFailed) as exc:
        upsert_values(
            s, system_id=system_id, period="2025", source=None, rows=bad, actor="node-360121"
        )
    assert [(e["row"], e["field"]) for e in exc.value.errors] == [(2, "source")]
    assert (  # nothing of the refused write is stored
        "C01",
        COMMUNITIES[2],
        "self_checkup",
    ) not in values_of(node_settings, system_id)


def test_chained_formulas_follow_their_inputs(node_settings: NodeSettings) -> None:
    indicators = [
        {"code": "A1", "name_zh": "输入一", "level": "community"},
        {"code": "A2", "name_zh": "输入二", "level": "community"},
        # Declared before the formula it reads: evaluation order comes from dependencies.
        {"code": "F2", "name_zh": "二级公式", "level": "community", "compute": "formula",
         "formula": "F1 * 100 + A1"},
        {"code": "F1", "name_zh": "一级公式", "level": "community", "compute": "formula",
         "formula": "A1 / A2"},
    ]  # fmt: skip
    with node_session(node_settings) as s:
        sid = create_system(s, indicators=indicators)
    region = COMMUNITIES[2]
    with node_session(node_settings) as s:
        r = upsert_values(
            s,
            system_id=sid,
            period="2025",
            source="department",
            rows=[("A1", region, 3.0, None), ("A2", region, 4.0, None)],
            actor="rollup",
        )
    assert r.derived == 2
    stored = values_of(node_settings, sid)
    assert stored[("F1", region, "department")] == 0.75
    assert stored[("F2", region, "department")] == 78.0
    # A division by zero gives no number; the derived values keep a history of it.
    with node_session(node_settings) as s:
        upsert_values(
            s,
            system_id=sid,
            period="2025",
            source="department",
            rows=[("A2", region, 0.0, None)],
            actor="rollup",
        )
    stored = values_of(node_settings, sid)
    assert stored[("F1", region, "department")] is None
    assert stored[("F2", region, "department")] is None
    with node_session(node_settings) as s:
        f2 = s.query(IndicatorValue).filter_by(indicator_code="F2").one()
        hist = s.query(ValueHistory).filter_by(value_id=f2.id).order_by(ValueHistory.id).all()
        assert [(h.action, h.old_value, h.new_value) for h in hist] == [
            ("create", None, 78.0),
            ("update", 78.0, None),
        ]
        assert hist[1].reason == "公式计算 (derived by formula)"


@pytest.mark.parametrize("analysed", [True, False])
def test_key_lookups_probe_the_index_while_a_period_is_new_to_the_statistics(
    backend: str, node_settings: NodeSettings, system_id: int, analysed: bool
) -> None:
    """Loading a period in batches: each batch looks its keys up one by one through an
    index, never by hashing every value already stored in the period (PostgreSQL's
    statistics, taken before the period existed, expect it to be empty) — whether the
    batch's own table was analysed (a large import) or not (up to ANALYZE_ABOVE_ROWS
    rows, a sync batch)."""
    if backend != "postgres":
        pytest.skip("planner statistics are PostgreSQL's")
    fill = """
        INSERT INTO indicator_values (system_id, indicator_code, region_code, period, source,
            value, on_behalf, revision, updated_by, updated_at)
        SELECT :sid, 'C0' || (g % 3 + 1), '360121' || lpad((g / 3)::text, 6, '0'), :period,
               'self_checkup', g, false, 1, 'test', now()
        FROM generate_series(0, 29999) g
    """
    with node_session(node_settings) as s:
        s.execute(text(fill), {"sid": system_id, "period": "2024"})
        s.execute(text("ANALYZE indicator_values"))
        s.execute(text(fill), {"sid": system_id, "period": "2025"})
        s.execute(
            text(
                "CREATE TEMP TABLE batch AS SELECT 'C01'::text AS indicator_code, "
                "'360121' || lpad(g::text, 6, '0') AS region_code, 'self_checkup'::text AS source "
                "FROM generate_series(0, 499) g"
            )
        )
        if analysed:
            s.execute(text("ANALYZE batch"))
        join = bulk_dialect(s).join_values("v", _KEY_JOIN.format(v="v", a="w"), left=True)
        plan = "\n".join(
            r[0]
            for r in s.execute(
                text(f"EXPLAIN SELECT w.region_code, v.id FROM batch w {join}"),
                {"sid": system_id, "period": "2025"},
            )
        )
        found = s.execute(
            text(f"SELECT count(v.id) FROM batch w {join}"), {"sid": system_id, "period": "2025"}
        ).scalar_one()
    assert "Hash" not in plan and "Seq Scan on indicator_values" not in plan, plan
    assert "Index Scan" in plan, plan
    assert found == 500
