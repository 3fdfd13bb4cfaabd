"""Derived values: a system's formula indicators recomputed where their inputs changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.indicator.systems.formula import Formula, evaluation_order, parse
from services.indicator.systems.models import Indicator
from services.indicator.values import bulk
from services.indicator.values.config import values_settings
from services.indicator.values.dialect import BulkDialect
from services.indicator.values.models import IndicatorValue

__all__ = ["DERIVED_REASON", "derive_formulas"]

KEYS = "values_derive_keys"
DERIVED_REASON = "公式计算 (derived by formula)"


def _formulas(session: Session, system_id: int) -> dict[str, Formula]:
    rows = session.execute(
        sa.select(Indicator.code, Indicator.formula).where(
            Indicator.system_id == system_id,
            Indicator.compute == "formula",
            Indicator.formula.is_not(None),
        )
    )
    return {code: parse(text) for code, text in rows if text}


def derive_formulas(
    session: Session,
    dialect: BulkDialect,
    *,
    system_id: int,
    period: str,
    batch_id: int,
    actor: str,
    now: datetime,
    keys: Sequence[tuple[str, str]] | None = None,
) -> int:
    """Recompute formula indicators for the region × source pairs just written.

    The pairs are those the last apply created or changed unless ``keys`` are
    given. Formulas run in dependency order, each as one INSERT … SELECT over a pivot
    of its inputs, and are written through the same apply step (history, revision,
    flags) as entered values. A derived value is created only where the formula gives
    a number; an existing one is updated, to NULL when an input went missing.
    Returns the number of derived values created or changed.
    """
    formulas = _formulas(session, system_id)
    if not formulas:
        return 0
    cfg = values_settings()
    if keys is None:
        dialect.create_temp_as(
            session,
            KEYS,
            f"SELECT DISTINCT region_code, source FROM {bulk.APPLY} "
            "WHERE action IN ('create', 'update')",
            {},
        )
    else:
        dialect.create_temp(session, KEYS, "region_code TEXT, source TEXT")
        dialect.load(session, KEYS, ("region_code", "source"), keys)
        dialect.analyze(session, KEYS)
    v = IndicatorValue.__table__
    k = sa.table(KEYS, sa.column("region_code"), sa.column("source"))
    work = sa.table(
        bulk.STAGE,
        sa.column("rn"),
        sa.column("indicator_code"),
        sa.column("region_code"),
        sa.column("source"),
        sa.column("value"),
        sa.column("note"),
    )
    changed = 0
    for code in evaluation_order(formulas):
        formula = formulas[code]
        inputs = sorted(formula.codes)
        slot = {c: f"c{i}" for i, c in enumerate(inputs)}
        pivot = (
            sa.select(
                k.c.region_code,
                k.c.source,
                *(
                    sa.func.max(sa.case((v.c.indicator_code == c, v.c.value))).label(slot[c])
                    for c in inputs
                ),
            )
            .select_from(k)
            .join(
                v,
                sa.and_(
                    v.c.system_id == system_id,
                    v.c.period == period,
                    v.c.region_code == k.c.region_code,
                    v.c.source == k.c.source,
                    v.c.indicator_code.in_(inputs),
                ),
                isouter=True,
            )
            .group_by(k.c.region_code, k.c.source)
            .subquery("p")
        )
        expr = formula.to_sql(lambda c, p=pivot, s=slot: p.c[s[c]])  # type: ignore[misc]
        existing = (
            sa.select(sa.literal(1))
            .select_from(v)
            .where(
                v.c.system_id == system_id,
                v.c.period == period,
                v.c.indicator_code == code,
                v.c.region_code == pivot.c.region_code,
                v.c.source == pivot.c.source,
            )
            .exists()
        )
        computed = sa.select(
            sa.literal(0).label("rn"),
            sa.literal(code).label("indicator_code"),
            pivot.c.region_code,
            pivot.c.source,
            expr.label("value"),
            sa.literal("").label("note"),
        ).where(sa.or_(expr.is_not(None), existing))
        dialect.create_temp(session, bulk.STAGE, bulk.STAGE_DDL)
        session.execute(
            sa.insert(work).from_select(
                ["rn", "indicator_code", "region_code", "source", "value", "note"], computed
            )
        )
        dialect.analyze(session, bulk.STAGE)
        dialect.create_temp(session, bulk.ERR, "rn INTEGER, field TEXT, code TEXT, ref INTEGER")
        counts = bulk.apply_staged(
            session,
            dialect,
            system_id=system_id,
            period=period,
            batch_id=batch_id,
            actor=actor,
            now=now,
            on_behalf=False,
            actor_region=None,
            reason=DERIVED_REASON,
        )
        changed += counts.created + counts.updated
        if counts.created or counts.updated:
            bulk.compute_flags(
                session,
                dialect,
                system_id=system_id,
                period=period,
                tolerance=cfg.source_tolerance,
                outlier_z=cfg.outlier_z,
                min_history=cfg.outlier_min_history,
            )
    dialect.drop_temp(session, KEYS)
    return changed
