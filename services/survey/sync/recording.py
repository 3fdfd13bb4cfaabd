"""Recording this node's published results for its parent, in the publication's transaction."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.survey.campaigns.service import campaign_settings
from services.survey.models import (
    Campaign,
    Publication,
    Questionnaire,
    ResultCell,
    ResultRun,
    ScoreTarget,
)
from services.survey.sync.tables import SYNC
from shared.sync import record_change
from shared.sync.node import node_of, records_upward

__all__ = [
    "ENTITIES",
    "RECORDED_STATUSES",
    "RESULT_ENTITY",
    "publication_payload",
    "record_publication",
    "result_key",
]

# What goes up: one change per publication, keyed "<origin node>:<campaign id>:<publication
# id>" (the same at every tier). A later publication of the campaign supersedes it.
RESULT_ENTITY = "survey_result"
ENTITIES = (RESULT_ENTITY,)
# A publication whose import the indicator service refused whole published nothing.
RECORDED_STATUSES = frozenset({"applied", "partial"})
# The figures a reviewer above needs: campaign-wide, and per region of the margins' level.
BREAKDOWNS = ("overall", "region")


def result_key(origin: str, campaign_id: int, publication_id: int) -> str:
    """The key of a publication's change: stable across tiers."""
    return f"{origin}:{campaign_id}:{publication_id}"


def record_publication(session: Session, c: Campaign, run: ResultRun, pub: Publication) -> int:
    """Queue a publication's figures for the parent (only on a node that has one); its seq."""
    # Without a parent nobody drains the outbox (it is only pruned after an ack).
    if not records_upward(session):
        return 0
    if pub.status not in RECORDED_STATUSES:
        return 0
    origin = node_of(session).node_id
    return record_change(
        session,
        SYNC,
        entity=RESULT_ENTITY,
        key=result_key(origin, c.id, pub.id),
        op="upsert",
        payload=publication_payload(session, c, run, pub),
    )


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _num(x: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int | float) and math.isfinite(x) else None


def _figure(cell: ResultCell, tgt: ScoreTarget, region: str, breakdown: str) -> dict[str, Any]:
    rate, mean = _num(cell.rate), _num(cell.mean)
    return {
        "breakdown": breakdown,
        "region_code": region,
        "target": {
            "kind": tgt.kind,
            "code": tgt.code,
            "label": tgt.label,
            "dimension": tgt.dimension,
            "indicator_code": tgt.indicator_code,
            "measure": tgt.indicator_measure,
        },
        "n": cell.n,
        "items": cell.items,
        "n_eff": _num(cell.n_eff),
        "deff": _num(cell.deff),
        "suppressed": cell.suppressed,
        "rate": rate,
        "rate_ci": None if rate is None else [_num(cell.rate_lo), _num(cell.rate_hi)],
        "mean": mean,
        "mean_ci": None if mean is None else [_num(cell.mean_lo), _num(cell.mean_hi)],
    }


def publication_payload(
    session: Session, c: Campaign, run: ResultRun, pub: Publication
) -> dict[str, Any]:
    """The published figures as the parent keeps them: campaign, sample, weighting, estimates.

    Every target (overall '*', each dimension, each question) campaign-wide, and per region
    of the margins' level when the campaign spans several; each with n, Kish deff / n_eff,
    the weighted satisfaction rate (top-two box, %) and mean score (0–100) with their 95%
    CIs, or ``suppressed`` below the campaign's ``min_n``.
    """
    q = session.get(Questionnaire, c.questionnaire_id)
    stmt = (
        select(ResultCell, ScoreTarget)
        .join(ScoreTarget, ScoreTarget.id == ResultCell.target_id)
        .where(ResultCell.run_id == run.id, ResultCell.breakdown.in_(BREAKDOWNS))
        .order_by(
            ResultCell.breakdown, ResultCell.group_key, ScoreTarget.sort_order, ScoreTarget.id
        )
    )
    figures: list[dict[str, Any]] = []
    overall: dict[str, Any] | None = None
    for cell, tgt in session.execute(stmt):
        if cell.breakdown == "overall":
            fig = _figure(cell, tgt, c.region_code, "overall")
            if tgt.kind == "overall":
                overall = fig
        elif cell.group_key == c.region_code:
            continue  # a one-region campaign: the region row is the overall row
        else:
            fig = _figure(cell, tgt, cell.group_key, "region")
        figures.append(fig)
    report = run.weighting or {}
    rules = campaign_settings(c).weighting
    batch = pub.batch or {}
    return {
        "region_code": c.region_code,
        "period": c.period,
        "campaign": {
            "id": c.id,
            "name": c.name,
            "region_code": c.region_code,
            "period": c.period,
            "opens_at": _iso(c.opens_at),
            "closes_at": _iso(c.closes_at),
        },
        "questionnaire": {
            "code": q.code if q else None,
            "version": q.version if q else None,
            "title": q.title if q else None,
            "year": q.year if q else None,
            "checksum": q.checksum if q else None,
        },
        "publication": {
            "id": pub.id,
            "run_id": run.id,
            "published_at": _iso(pub.published_at),
            "published_by": pub.published_by,
            "import_status": pub.status,
            "rows_sent": pub.rows_sent,
            "rows_applied": _int(batch.get("rows_applied")),
            "rows_unchanged": _int(batch.get("rows_unchanged")),
            "rows_rejected": _int(batch.get("rows_rejected")),
        },
        "sample": {
            # Included (accepted) respondents when the run was computed, and those of them
            # whose weighting cell has a population margin (the figures' base).
            "accepted": _int(report.get("respondents")),
            "matched": _int(report.get("matched_respondents")),
            "unmatched": _int(report.get("unmatched_respondents")),
            "n_eff": _num(report.get("n_eff")),
            "deff": _num(report.get("deff")),
        },
        "weighting": {
            "method": "raking",
            "margins": [list(m) for m in report.get("margins", rules.margins)],
            "margin_level": report.get("margin_level", c.margin_level),
            "trim_bounds": [rules.trim_low, rules.trim_high],
            "min_n": report.get("min_n", rules.min_n),
            "converged": report.get("converged"),
            "iterations": _int(report.get("iterations")),
            "max_margin_error": _num(report.get("max_margin_error")),
            "trimmed_cells": _int(report.get("trimmed_cells")),
            "weight_min": _num(report.get("weight_min")),
            "weight_max": _num(report.get("weight_max")),
            "population_total": _num(report.get("population_total")),
            "computed_at": _iso(run.computed_at),
            "computed_by": run.computed_by,
        },
        "overall": overall,
        "figures": figures,
    }
