"""Field inspections going up: recorded set-based with each write, kept above as copies.

One change per visit (entity ``inspection``). A visit is what the county calls one
inspection: an object, a system and period, an inspector and a time. Its key is that
natural key, ``<unit code>/<inspected_at>/<code@year@version>/<period>/<inspector>``
(inspection time in UTC to the second), never a local id, so it is the same at every
tier. When the same visit was recorded more than once (a sheet imported twice, or split
over two sheets) the change carries the union of its sub-items, the later record of a
sub-item winning; the parent keeps the latest change per (origin, key).

Evidence files stay at the county: only their number and file references travel.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    distinct,
    exists,
    func,
    select,
)
from sqlalchemy.orm import Session

from services.indicator.spatial.models import (
    Inspection,
    InspectionEvidence,
    InspectionResult,
    ReceivedInspection,
    SpatialUnit,
)
from services.indicator.sync.tables import SYNC
from services.indicator.systems.models import IndicatorSystem
from shared.dbtypes import utcnow
from shared.sync import Change, bulk_insert, json_object, record_changes_from_select
from shared.sync.dialect import json_array_agg, utc_iso
from shared.sync.node import records_upward
from shared.sync.tables import KEY_LEN

__all__ = [
    "INSPECTION_ENTITY",
    "InspectionPayload",
    "apply_inspection_changes",
    "record_inspection_writes",
]

INSPECTION_ENTITY = "inspection"
_RECEIVED: Table = ReceivedInspection.__table__  # type: ignore[assignment]
# Deletes per statement when replacing copies (bounded parameter lists).
_CHUNK = 1000


class InspectionResultPayload(BaseModel):
    indicator_code: str = Field(max_length=40)
    sub_item_code: str = Field(max_length=40)
    outcome: str = Field(pattern=r"^(pass|fail|na)$")
    note: str | None = None


class InspectionPayload(BaseModel):
    """One visit as it travels up (its latest state at the origin)."""

    system: str = Field(max_length=64, pattern=r"^.+@\d{4}@\d+$", description="code@year@version")
    period: str = Field(max_length=10)
    unit_code: str = Field(min_length=1, max_length=64)
    unit_kind: str = Field(max_length=10)
    unit_name: str | None = Field(None, max_length=200)
    region_code: str = Field(min_length=2, max_length=12)
    lon: float | None = None
    lat: float | None = None
    inspector: str = Field(min_length=1, max_length=100)
    inspected_at: datetime
    note: str | None = None
    results: list[InspectionResultPayload] = Field(min_length=1)
    failed: int = Field(ge=0)
    evidence_count: int = Field(ge=0)
    evidence: list[str] | None = None  # file references (the files stay at the origin)


def _sep(*parts: Any) -> Any:
    out = parts[0]
    for p in parts[1:]:
        out = out + "/" + p
    return out


def record_inspection_writes(session: Session, *, batch_id: int) -> int:
    """Record every visit the inspection write ``batch_id`` touched (one INSERT … SELECT)."""
    # As for values: only a node with a parent records, and received changes are relayed
    # by the receiver itself with their own origin.
    if not records_upward(session):
        return 0
    b = Inspection.__table__.alias("b")  # the visits of this write
    i = Inspection.__table__.alias("i")  # every record of the same visit
    r = InspectionResult.__table__.c
    later_r = InspectionResult.__table__.alias("r2")
    later_i = Inspection.__table__.alias("i2")
    ev = InspectionEvidence.__table__.c
    ev_i = Inspection.__table__.alias("i3")
    u = SpatialUnit.__table__.c
    s = IndicatorSystem.__table__.c

    def same_visit(other: Any) -> Any:
        return and_(
            other.c.unit_id == b.c.unit_id,
            other.c.system_id == b.c.system_id,
            other.c.period == b.c.period,
            other.c.inspected_at == b.c.inspected_at,
            other.c.inspector == b.c.inspector,
        )

    skey = s.code + "@" + cast(s.year, String) + "@" + cast(s.version, String)
    # A sub-item recorded again for the same visit: the later record stands.
    superseded = exists().where(
        later_r.c.system_id == r.system_id,
        later_r.c.period == r.period,
        later_r.c.unit_id == r.unit_id,
        later_r.c.indicator_code == r.indicator_code,
        later_r.c.sub_item_code == r.sub_item_code,
        later_r.c.inspected_at == r.inspected_at,
        later_r.c.inspection_id > r.inspection_id,
        later_i.c.id == later_r.c.inspection_id,
        later_i.c.inspector == b.c.inspector,
    )
    evidence = (
        select(json_array_agg(ev.file_ref, distinct=True))
        .select_from(InspectionEvidence.__table__.join(ev_i, ev_i.c.id == ev.inspection_id))
        .where(same_visit(ev_i))
        .scalar_subquery()
    )
    evidence_count = (
        select(func.count(distinct(ev.file_ref)))
        .select_from(InspectionEvidence.__table__.join(ev_i, ev_i.c.id == ev.inspection_id))
        .where(same_visit(ev_i))
        .scalar_subquery()
    )
    source = (
        select(
            func.substr(
                _sep(u.code, utc_iso(b.c.inspected_at), skey, b.c.period, b.c.inspector),
                1,
                KEY_LEN,
            ).label("key"),
            json_object(
                system=skey,
                period=b.c.period,
                unit_code=u.code,
                unit_kind=u.kind,
                unit_name=u.name,
                region_code=u.region_code,
                lon=func.ST_X(u.point),
                lat=func.ST_Y(u.point),
                inspector=b.c.inspector,
                inspected_at=utc_iso(b.c.inspected_at),
                note=func.max(i.c.note),
                results=json_array_agg(
                    json_object(
                        indicator_code=r.indicator_code,
                        sub_item_code=r.sub_item_code,
                        outcome=r.outcome,
                        note=r.note,
                    )
                ),
                failed=func.sum(case((r.outcome == "fail", 1), else_=0)),
                evidence_count=evidence_count,
                evidence=evidence,
            ).label("payload"),
        )
        .select_from(
            b.join(i, same_visit(i))
            .join(InspectionResult.__table__, r.inspection_id == i.c.id)
            .join(SpatialUnit.__table__, u.id == b.c.unit_id)
            .join(IndicatorSystem.__table__, s.id == b.c.system_id)
        )
        .where(b.c.batch_id == batch_id, ~superseded)
        # One visit per row of this write: its primary keys decide every other column.
        .group_by(b.c.id, u.id, s.id)
    )
    first, last = record_changes_from_select(
        session, SYNC, source, entity=INSPECTION_ENTITY, op="upsert"
    )
    return 0 if first == 0 else last - first + 1


def _row(change: Change, now: datetime) -> dict[str, Any]:
    p = InspectionPayload.model_validate(change.payload)
    results = sorted(
        (x.model_dump() for x in p.results),
        key=lambda x: (x["indicator_code"], x["sub_item_code"]),
    )
    return {
        "origin_node": change.origin,
        "entity_key": change.key,
        "seq": change.seq,
        "region_code": p.region_code,
        "unit_code": p.unit_code,
        "unit_kind": p.unit_kind,
        "unit_name": p.unit_name or "",
        "lon": p.lon,
        "lat": p.lat,
        "system": p.system,
        "period": p.period,
        "inspector": p.inspector,
        "inspected_at": p.inspected_at,
        "note": p.note,
        "results": results,
        "items": len(results),
        "failed": p.failed,
        "evidence_count": p.evidence_count,
        "evidence": sorted(p.evidence or []),
        "received_at": now,
    }


def apply_inspection_changes(session: Session, changes: list[Change]) -> None:
    """Keep the latest copy per (origin, key): one delete per origin and one bulk insert.

    The copies name the system by its key only: a county's own (local) system does not
    need to exist here for its inspections to be kept.
    """
    latest: dict[tuple[str, str], Change] = {}
    for change in changes:  # seq order: a later change of the same key wins
        latest.pop((change.origin, change.key), None)
        latest[(change.origin, change.key)] = change
    if not latest:
        return
    now = utcnow()
    rows = [_row(c, now) for c in latest.values()]
    keys: dict[str, list[str]] = {}
    for origin, key in latest:
        keys.setdefault(origin, []).append(key)
    t = _RECEIVED
    for origin, origin_keys in keys.items():
        for n in range(0, len(origin_keys), _CHUNK):
            session.execute(
                delete(t).where(
                    t.c.origin_node == origin,
                    t.c.entity_key.in_(origin_keys[n : n + _CHUNK]),
                )
            )
    bulk_insert(session, t, rows)
