"""Values going up: recorded set-based with each write, applied at the parent by stable key.

Keys never carry local ids: a value is ``code@year@version/indicator/region/period/source``
(the system as released at the top and received below), so the same value has the same
key at every tier.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, NotRequired

from pydantic import Field
from sqlalchemy import String, and_, cast, delete, select
from sqlalchemy.orm import Session
from typing_extensions import TypedDict

from services.indicator.sync.outgoing import system_key
from services.indicator.sync.tables import SYNC
from services.indicator.systems.models import IndicatorSystem
from services.indicator.values.models import IndicatorValue, ValueHistory
from shared.dbtypes import utcnow
from shared.errors import NotFound
from shared.regions import prefix_of
from shared.sync import (
    Change,
    MalformedBatch,
    json_object,
    record_change,
    record_changes_from_select,
)
from shared.sync.node import records_upward

__all__ = [
    "VALUE_ENTITY",
    "ValuePayload",
    "apply_value_changes",
    "record_value_delete",
    "record_value_writes",
    "record_values",
    "system_ids",
    "values_checksum",
]

VALUE_ENTITY = "indicator_value"


class ValuePayload(TypedDict):
    """One value as it travels up (the latest state after the change).

    A TypedDict, not a model: a batch validates thousands of these, and checking plain
    dicts is three times quicker than building a model of each (same rules, same errors).
    """

    system: Annotated[str, Field(description="code@year@version")]
    indicator_code: str
    region_code: str
    period: str
    source: str
    value: NotRequired[float | None]
    note: NotRequired[str | None]
    revision: NotRequired[int | None]
    updated_by: NotRequired[str]
    on_behalf: NotRequired[bool | int | None]


def _sep(*parts: Any) -> Any:
    out = parts[0]
    for p in parts[1:]:
        out = out + "/" + p
    return out


def record_values(session: Session, where: Any) -> int:
    """Record the current state of every value matching ``where`` (one INSERT … SELECT);
    the caller decides that this node records upward."""
    v = IndicatorValue.__table__.c
    s = IndicatorSystem.__table__.c
    skey = s.code + "@" + cast(s.year, String) + "@" + cast(s.version, String)
    source = (
        select(
            _sep(skey, v.indicator_code, v.region_code, v.period, v.source).label("key"),
            json_object(
                system=skey,
                indicator_code=v.indicator_code,
                region_code=v.region_code,
                period=v.period,
                source=v.source,
                value=v.value,
                note=v.note,
                revision=v.revision,
                updated_by=v.updated_by,
                on_behalf=v.on_behalf,
            ).label("payload"),
        )
        .select_from(IndicatorValue.__table__.join(IndicatorSystem.__table__, s.id == v.system_id))
        .where(where)
    )
    first, last = record_changes_from_select(
        session, SYNC, source, entity=VALUE_ENTITY, op="upsert"
    )
    return 0 if first == 0 else last - first + 1


def record_value_writes(session: Session, *, batch_id: int) -> int:
    """Record every value the write ``batch_id`` created or changed (one INSERT … SELECT).

    Derived (formula) values go up as the owner computed them: the parent stores them as
    received and derives nothing itself (only the owner changes its records).
    """
    # Only a node with a parent records its own writes (nothing else would drain them);
    # received changes are relayed by the receiver with their own origin.
    if not records_upward(session):
        return 0
    return record_values(session, IndicatorValue.__table__.c.batch_id == batch_id)


def record_value_delete(session: Session, value: IndicatorValue, system: IndicatorSystem) -> None:
    """Record the deletion of one value (caller's transaction)."""
    if not records_upward(session):
        return
    skey = system_key(system.code, system.year, system.version)
    record_change(
        session,
        SYNC,
        entity=VALUE_ENTITY,
        key="/".join((skey, value.indicator_code, value.region_code, value.period, value.source)),
        op="delete",
        payload={
            "system": skey,
            "indicator_code": value.indicator_code,
            "region_code": value.region_code,
            "period": value.period,
            "source": value.source,
            "revision": value.revision + 1,
        },
    )


def system_id_of(session: Session, key: str) -> int | None:
    """The local id of a system by its stable key ``code@year@version``, if it is here."""
    code, year, version = key.rsplit("@", 2)
    return session.scalar(
        select(IndicatorSystem.id).where(
            IndicatorSystem.code == code,
            IndicatorSystem.year == int(year),
            IndicatorSystem.version == int(version),
        )
    )


def system_ids(session: Session, keys: set[str]) -> dict[str, int]:
    """Local ids of systems by stable key; the whole batch is refused if one is missing."""
    found: dict[str, int] = {}
    for key in keys:
        sid = system_id_of(session, key)
        if sid is None:
            raise MalformedBatch(
                f"本节点没有指标体系 {key}：下级数据所依据的体系须由上级发布 "
                "(unknown indicator system here: values must use a system released above)"
            )
        found[key] = sid
    return found


def apply_value_changes(session: Session, changes: list[Change]) -> None:
    """Apply a run of value changes: latest per key, upserts set-based through upsert_values."""
    from services.indicator.values.service import ValueRow, upsert_values

    latest = {c.key: c for c in changes}  # in seq order: later wins
    if len(latest) < len(changes):  # a key changed more than once: written at its last
        latest = {}
        for change in changes:
            latest.pop(change.key, None)
            latest[change.key] = change
    ids = system_ids(session, {c.payload["system"] for c in latest.values()})
    # One write per system, period and origin, whatever the sources (the fixed cost of a
    # write is paid once per batch, not once per source in it).
    groups: dict[tuple[int, str, str], list[ValueRow]] = {}
    deletes: list[tuple[int, Change]] = []
    for change in latest.values():
        p = change.payload
        sid = ids[p["system"]]
        if change.op == "delete":
            deletes.append((sid, change))
            continue
        groups.setdefault((sid, p["period"], change.origin), []).append(
            (p["indicator_code"], p["region_code"], p.get("value"), p.get("note"), p["source"])
        )
    for (sid, period, origin), rows in groups.items():
        upsert_values(
            session,
            system_id=sid,
            period=period,
            source=None,
            rows=rows,
            actor=f"{origin}",
            owner_derived=True,
        )
    for sid, change in deletes:
        _delete(session, sid, change)


def _delete(session: Session, system_id: int, change: Change) -> None:
    p = change.payload
    v = IndicatorValue.__table__.c
    match = and_(
        v.system_id == system_id,
        v.indicator_code == p["indicator_code"],
        v.region_code == p["region_code"],
        v.period == p["period"],
        v.source == p["source"],
    )
    row = session.execute(select(v.id, v.value, v.note, v.revision).where(match)).first()
    if row is None:
        return  # never arrived here (deleted before it was sent) or deleted already
    session.add(
        ValueHistory(
            value_id=row.id,
            old_value=row.value,
            new_value=None,
            action="delete",
            changed_by=change.origin,
            changed_at=utcnow(),
            system_id=system_id,
            indicator_code=p["indicator_code"],
            region_code=p["region_code"],
            period=p["period"],
            source=p["source"],
            old_note=row.note,
            revision=row.revision + 1,
        )
    )
    session.execute(delete(IndicatorValue).where(match))


def values_checksum(
    session: Session, *, system: str, period: str, region_code: str
) -> dict[str, Any]:
    """Count and SHA-256 of the values of a system and period within a region (reconciliation).

    The digest runs over sorted lines ``indicator|region|source|value`` so two nodes holding
    the same values get the same answer whatever their local ids.
    """
    sid = system_id_of(session, system)
    if sid is None:
        raise NotFound(f"本节点没有指标体系 {system} (unknown system)", slug="unknown-system")
    v = IndicatorValue.__table__.c
    rows = session.execute(
        select(v.indicator_code, v.region_code, v.source, v.value)
        .where(
            v.system_id == sid,
            v.period == period,
            v.region_code.startswith(prefix_of(region_code), autoescape=True),
        )
        .order_by(v.region_code, v.indicator_code, v.source)
    )
    digest = hashlib.sha256()
    count = 0
    for r in rows:
        value = "" if r.value is None else repr(float(r.value))
        digest.update(f"{r.indicator_code}|{r.region_code}|{r.source}|{value}\n".encode())
        count += 1
    return {
        "system": system,
        "period": period,
        "region_code": region_code,
        "count": count,
        "checksum": digest.hexdigest(),
    }
