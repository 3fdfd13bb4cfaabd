"""Indicator values: bulk import, single entry, reads, history, and the roll-up entry point."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy import delete as sa_delete
from sqlalchemy.orm import Session

from services.indicator.approval.service import locked_scopes
from services.indicator.evaluation.models import Evaluation
from services.indicator.sync.values import record_value_delete, record_value_writes
from services.indicator.systems.models import Indicator, IndicatorSystem
from services.indicator.values import bulk
from services.indicator.values.config import values_settings
from services.indicator.values.derive import derive_formulas
from services.indicator.values.dialect import BulkDialect, bulk_dialect
from services.indicator.values.messages import row_error_dicts
from services.indicator.values.models import SOURCES, ImportBatch, IndicatorValue, ValueHistory
from services.indicator.values.parsers import BodyParser
from shared.dbtypes import utcnow
from shared.errors import Conflict, Forbidden, Locked, NotFound, ValidationFailed
from shared.identity import Identity
from shared.regions import prefix_of

__all__ = [
    "WRITERS",
    "ImportOutcome",
    "UpsertResult",
    "ValueRow",
    "check_period",
    "check_source",
    "delete_value",
    "get_batch",
    "get_value",
    "import_values",
    "list_batches",
    "list_values",
    "put_value",
    "released_system",
    "upsert_values",
    "value_history",
]

PERIOD_RE = re.compile(r"^\d{4}(-(Q[1-4]|H[12]|0[1-9]|1[0-2]))?$")
MODES = ("per_row", "all_or_nothing")
# A value to write: (indicator_code, region_code, value, note), or with its source as well.
ValueRow = (
    tuple[str, str, float | None, str | None] | tuple[str, str, float | None, str | None, str]
)


@dataclass
class UpsertResult:
    """What one write of values did."""

    batch_id: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    outliers: int = 0
    disagreements: int = 0
    derived: int = 0
    flagged_ids: list[int] = field(default_factory=list)


@dataclass
class ImportOutcome:
    """The response of a bulk import (the batch and its capped error list)."""

    batch_id: int
    status: str
    rows_total: int
    rows_applied: int
    rows_unchanged: int
    rows_rejected: int
    errors: list[dict[str, Any]]
    errors_total: int
    rows_created: int = 0
    rows_updated: int = 0
    rows_skipped: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    derived: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- common checks -------------------------------------------------------------------


def released_system(session: Session, system_id: int) -> IndicatorSystem:
    """The system values may be written against: it must exist and be released."""
    system = session.get(IndicatorSystem, system_id)
    if system is None:
        raise NotFound(
            f"指标体系 {system_id} 不存在 (unknown indicator system)", slug="unknown-system"
        )
    if system.state != "released":
        raise Conflict(
            f"指标体系 {system_id} 的状态为 {system.state}，只能向已发布的指标体系填报 "
            "(values are accepted only against a released system)",
            slug="system-not-released",
        )
    return system


def check_period(period: str) -> str:
    """A year (2025) or an ISO-like sub-period (2025-Q1, 2025-H1, 2025-06)."""
    if not PERIOD_RE.match(period):
        raise ValidationFailed(
            f"期间格式错误: {period} (period must look like 2025, 2025-Q1, 2025-H1 or 2025-06)",
            errors=[{"field": "period", "message": "yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm"}],
        )
    return period


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ValidationFailed(
            f"数据来源无效: {source}，应为 {'/'.join(SOURCES)} (unknown source)",
            errors=[{"field": "source", "message": f"one of {', '.join(SOURCES)}"}],
        )
    return source


def split_value(value: float | None) -> tuple[float | None, str]:
    """(number, '') for a finite number or None, (None, text) for anything else."""
    if value is None:
        return None, ""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None, str(value)
    if not math.isfinite(x):
        return None, str(value)
    return x, ""


def _new_batch(
    session: Session,
    *,
    system_id: int,
    period: str,
    fmt: str,
    mode: str,
    actor: str,
    actor_region: str | None,
    source: str | None,
) -> ImportBatch:
    batch = ImportBatch(
        system_id=system_id,
        period=period,
        format=fmt,
        mode=mode,
        status="running",
        errors=[],
        created_by=actor,
        actor_region=actor_region,
        source=source,
    )
    session.add(batch)
    session.flush()
    return batch


# --- the pipeline --------------------------------------------------------------------


def _apply_and_flag(
    session: Session,
    dialect: BulkDialect,
    *,
    system: IndicatorSystem,
    period: str,
    batch_id: int,
    actor: str,
    on_behalf: bool,
    actor_region: str | None,
    reason: str | None = None,
    n_good: int | None = None,
    derive: bool = True,
) -> UpsertResult:
    cfg = values_settings()
    now = utcnow()
    counts = bulk.apply_staged(
        session,
        dialect,
        system_id=system.id,
        period=period,
        batch_id=batch_id,
        actor=actor,
        now=now,
        on_behalf=on_behalf,
        actor_region=actor_region,
        reason=reason,
        n_good=n_good,
    )
    flags = bulk.compute_flags(
        session,
        dialect,
        system_id=system.id,
        period=period,
        tolerance=cfg.source_tolerance,
        outlier_z=cfg.outlier_z,
        min_history=cfg.outlier_min_history,
    )
    derived = 0
    if derive and (counts.created or counts.updated):
        derived = derive_formulas(
            session,
            dialect,
            system_id=system.id,
            period=period,
            batch_id=batch_id,
            actor=actor,
            now=now,
        )
    # Same transaction: every value this write created or changed goes to the parent.
    record_value_writes(session, batch_id=batch_id)
    return UpsertResult(
        batch_id=batch_id,
        created=counts.created,
        updated=counts.updated,
        unchanged=counts.unchanged,
        outliers=flags.outliers,
        disagreements=flags.disagreements,
        derived=derived,
        flagged_ids=flags.flagged_ids,
    )


def _raise_for_errors(
    session: Session, n_errors: int, system_id: int, fmt: str, scope: str | None
) -> None:
    """All-or-nothing callers: 409 locked when only locks stand in the way, else 422."""
    errors = bulk.collect_errors(
        session, bulk_dialect(session), system_id, values_settings().max_errors_returned
    )
    dicts = row_error_dicts(errors, fmt, system_id, scope)
    if all(e.code == "locked" for e in errors) and len(errors) == n_errors:
        subs = sorted({e.ref for e in errors if e.ref is not None})
        raise Locked(
            f"数据所属填报（编号 {', '.join(map(str, subs))}）已提交或已审核，数据已锁定 "
            f"(locked by submission {', '.join(map(str, subs))})",
            errors=dicts,
            submission_ids=subs,
        )
    raise ValidationFailed(
        f"{n_errors} 处数据校验未通过 ({n_errors} row errors)",
        errors=dicts,
        errors_total=n_errors,
    )


def upsert_values(
    session: Session,
    *,
    system_id: int,
    period: str,
    source: str | None,
    rows: Iterable[ValueRow],
    actor: str,
    batch_id: int | None = None,
    on_behalf: bool = False,
    owner_derived: bool = False,
) -> UpsertResult:
    """Write already-validated values set-based (staging + INSERT … SELECT), with history.

    For callers inside the service (spatial roll-ups, values received from a child). Rows
    are (indicator_code, region_code, value, note) of ``source``, or, with ``source``
    None, (indicator_code, region_code, value, note, source): one write for values of
    several sources (a child's batch mixes them). Still refuses, all or nothing: a system
    that is not released (409), rows in a submitted/approved submission (409 locked), and
    rows that fail the checks (422 naming the row by its position from 1).
    ``owner_derived``: the rows include formula values as their owner node derived them;
    they are stored as received and nothing is derived here.
    """
    # The lock comes before any read: on SQLite a transaction that read first cannot
    # always upgrade to a writer once another writer has committed.
    dialect = bulk_dialect(session)
    dialect.lock_period(session, system_id, period)
    system = released_system(session, system_id)
    check_period(period)
    if source is not None:
        check_source(source)
    if batch_id is None:
        batch = _new_batch(
            session,
            system_id=system_id,
            period=period,
            fmt="internal",
            mode="all_or_nothing",
            actor=actor,
            actor_region=None,
            source=source,
        )
    else:
        found = session.get(ImportBatch, batch_id)
        if found is None:
            raise NotFound(f"导入批次 {batch_id} 不存在 (unknown batch)", slug="unknown-batch")
        batch = found

    def staged() -> Iterator[bulk.StageRow]:
        # A row's own source is checked with the others (validate_staged), as in imports.
        for i, row in enumerate(rows, 1):
            code, region, value, note = row[:4]
            own = row[4] if len(row) > 4 else source
            number, bad = split_value(value)
            yield (i, i, code or "", region or "", own or "", number, bad, "", note or "", "")

    n = bulk.stage(session, dialect, staged())
    n_errors, _n_rows = bulk.validate_staged(
        session,
        dialect,
        system_id=system_id,
        scope_prefix=None,
        locked=locked_scopes(session, system_id, period),
        max_note=values_settings().max_note_chars,
        allow_formula=owner_derived,
    )
    if n_errors:
        _raise_for_errors(session, n_errors, system_id, "internal", None)
    result = _apply_and_flag(
        session,
        dialect,
        system=system,
        period=period,
        batch_id=batch.id,
        actor=actor,
        on_behalf=on_behalf,
        actor_region=None,
        n_good=n,
        derive=not owner_derived,
    )
    bulk.cleanup(session, dialect)
    if batch_id is None:
        _close_batch(batch, result, rows_total=n)
    session.flush()
    session.expire_all()
    return result


def _close_batch(
    batch: ImportBatch,
    result: UpsertResult,
    *,
    rows_total: int,
    status: str = "applied",
    rows_rejected: int = 0,
    errors: list[dict[str, Any]] | None = None,
    errors_total: int = 0,
) -> None:
    """Record a write's outcome on its batch: row counts, errors, and the summary."""
    batch.status = status
    batch.rows_total = rows_total
    batch.rows_applied = result.created + result.updated
    batch.rows_unchanged = result.unchanged
    batch.rows_rejected = rows_rejected
    if errors is not None:
        batch.errors = errors
    batch.summary = {
        "created": result.created,
        "updated": result.updated,
        "outliers": result.outliers,
        "disagreements": result.disagreements,
        "derived": result.derived,
        "errors_total": errors_total,
    }


# --- bulk import ---------------------------------------------------------------------


def import_values(
    session: Session,
    identity: Identity,
    *,
    system_id: int,
    period: str,
    source: str,
    mode: str,
    parser: BodyParser,
) -> ImportOutcome:
    """Stage, check and apply one import body; per-row or all-or-nothing."""
    fmt = parser.fmt
    identity.check_write(identity.region, *WRITERS)
    dialect = bulk_dialect(session)
    dialect.lock_period(session, system_id, period)  # before any read, see upsert_values
    system = released_system(session, system_id)
    check_period(period)
    check_source(source)
    cfg = values_settings()
    batch = _new_batch(
        session,
        system_id=system_id,
        period=period,
        fmt=fmt,
        mode=mode,
        actor=identity.subject,
        actor_region=identity.region,
        source=source,
    )
    n = bulk.stage(session, dialect, parser.rows())
    if n == 0:
        raise ValidationFailed(
            "文件中没有数据行 (the body has no data rows)",
            errors=[{"field": "body", "message": "no data rows"}],
        )
    n_errors, n_rejected = bulk.validate_staged(
        session,
        dialect,
        system_id=system_id,
        scope_prefix=prefix_of(identity.region),
        locked=locked_scopes(session, system_id, period),
        max_note=cfg.max_note_chars,
    )
    errors = row_error_dicts(
        bulk.collect_errors(session, bulk_dialect(session), system_id, cfg.max_errors_returned),
        fmt,
        system_id,
        identity.region,
    )
    result = UpsertResult(batch_id=batch.id)
    if n_rejected == 0 or (mode == "per_row" and n_rejected < n):
        result = _apply_and_flag(
            session,
            dialect,
            system=system,
            period=period,
            batch_id=batch.id,
            actor=identity.subject,
            on_behalf=False,
            actor_region=identity.region,
            n_good=n - n_rejected,
        )
    bulk.cleanup(session, dialect)
    applied = result.created + result.updated
    if n_rejected == 0:
        status = "applied"
    elif applied + result.unchanged == 0:
        status = "rejected"
    else:
        status = "partial"
    _close_batch(
        batch,
        result,
        rows_total=n,
        status=status,
        rows_rejected=n_rejected,
        errors=errors,
        errors_total=n_errors,
    )
    session.flush()
    session.expire_all()
    return ImportOutcome(
        batch_id=batch.id,
        status=status,
        rows_total=n,
        rows_applied=applied,
        rows_unchanged=result.unchanged,
        rows_rejected=n_rejected,
        errors=errors,
        errors_total=n_errors,
        rows_created=result.created,
        rows_updated=result.updated,
        flags={"outliers": result.outliers, "disagreements": result.disagreements},
        rows_skipped=parser.skipped,
        derived=result.derived,
    )


def flagged_filter() -> Any:
    """Values with at least one check flag (SQL NULL or JSON null both mean clean)."""
    return (IndicatorValue.flags.is_not(None)) & (cast(IndicatorValue.flags, Text) != "null")


# --- single values -------------------------------------------------------------------

WRITERS = ("admin", "data_entry", "system", "node")


def _key_filter(
    system_id: int, indicator_code: str, region_code: str, period: str, source: str
) -> Any:
    return (
        (IndicatorValue.system_id == system_id)
        & (IndicatorValue.indicator_code == indicator_code)
        & (IndicatorValue.region_code == region_code)
        & (IndicatorValue.period == period)
        & (IndicatorValue.source == source)
    )


def _check_revision(current: int, expected: int | None) -> None:
    if expected is not None and expected != current:
        raise Conflict(
            f"数据已被他人修改：当前修订号 {current}，提交时基于 {expected}，请刷新后重试 "
            f"(revision mismatch: current {current}, expected {expected})",
            slug="revision-mismatch",
            current_revision=current,
        )


def put_value(
    session: Session,
    identity: Identity,
    *,
    system_id: int,
    indicator_code: str,
    region_code: str,
    period: str,
    source: str,
    value: float | None,
    unit: str | None = None,
    note: str | None = None,
    expected_revision: int | None = None,
    reason: str | None = None,
) -> tuple[IndicatorValue, bool]:
    """Create or change one value through the same checks as an import; (value, created)."""
    identity.check_write(region_code, *WRITERS)
    dialect = bulk_dialect(session)
    dialect.lock_period(session, system_id, period)  # before any read, see upsert_values
    system = released_system(session, system_id)
    check_period(period)
    check_source(source)
    key = _key_filter(system_id, indicator_code, region_code, period, source)
    existing = session.scalars(select(IndicatorValue).where(key).with_for_update()).first()
    _check_revision(existing.revision if existing else 0, expected_revision)
    batch = _new_batch(
        session,
        system_id=system_id,
        period=period,
        fmt="single",
        mode="all_or_nothing",
        actor=identity.subject,
        actor_region=identity.region,
        source=source,
    )
    number, bad = split_value(value)
    bulk.stage(
        session,
        dialect,
        [(1, 1, indicator_code, region_code, source, number, bad, unit or "", note or "", "")],
    )
    n_errors, _rows = bulk.validate_staged(
        session,
        dialect,
        system_id=system_id,
        scope_prefix=prefix_of(identity.region),
        locked=locked_scopes(session, system_id, period),
        max_note=values_settings().max_note_chars,
    )
    if n_errors:
        _raise_for_errors(session, n_errors, system_id, "single", identity.region)
    result = _apply_and_flag(
        session,
        dialect,
        system=system,
        period=period,
        batch_id=batch.id,
        actor=identity.subject,
        on_behalf=False,
        actor_region=identity.region,
        reason=reason,
        n_good=1,
    )
    bulk.cleanup(session, dialect)
    _close_batch(batch, result, rows_total=1)
    session.flush()
    session.expire_all()
    stored = session.scalars(select(IndicatorValue).where(key)).one()
    return stored, bool(result.created)


def _lock_of(session: Session, value: IndicatorValue) -> bulk.LockedScope | None:
    for lock in locked_scopes(session, value.system_id, value.period):
        if value.region_code.startswith(lock.prefix):
            return lock
    return None


def get_value(
    session: Session, identity: Identity, value_id: int
) -> tuple[IndicatorValue, int | None]:
    """One value in the caller's scope, and the submission that freezes it (if any)."""
    value = session.get(IndicatorValue, value_id)
    if value is None:
        raise NotFound(f"指标数据 {value_id} 不存在 (unknown value)", slug="unknown-value")
    identity.check_read(value.region_code)
    lock = _lock_of(session, value)
    return value, lock.submission_id if lock else None


def list_values(
    session: Session,
    identity: Identity,
    *,
    system_id: int | None = None,
    period: str | None = None,
    region_code: str | None = None,
    exact_region: bool = False,
    indicator_code: str | None = None,
    source: str | None = None,
    flagged: bool | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[IndicatorValue], str | None]:
    """Values in the caller's scope (a region and everything below it), by id."""
    scope = identity.read_scope(region_code)
    stmt = select(IndicatorValue)
    if exact_region:
        stmt = stmt.where(IndicatorValue.region_code == scope)
    else:
        stmt = stmt.where(IndicatorValue.region_code.startswith(prefix_of(scope)))
    if system_id is not None:
        stmt = stmt.where(IndicatorValue.system_id == system_id)
    if period:
        stmt = stmt.where(IndicatorValue.period == period)
    if indicator_code:
        stmt = stmt.where(IndicatorValue.indicator_code == indicator_code)
    if source:
        stmt = stmt.where(IndicatorValue.source == source)
    if flagged is True:
        stmt = stmt.where(flagged_filter())
    elif flagged is False:
        stmt = stmt.where(~flagged_filter() | IndicatorValue.flags.is_(None))
    if cursor:
        if not cursor.isdigit():
            raise ValidationFailed(
                "游标无效 (invalid cursor)", errors=[{"field": "cursor", "message": "invalid"}]
            )
        stmt = stmt.where(IndicatorValue.id > int(cursor))
    rows = list(session.scalars(stmt.order_by(IndicatorValue.id).limit(limit)))
    return rows, (str(rows[-1].id) if len(rows) == limit else None)


def _creation_entry(value: IndicatorValue) -> ValueHistory:
    """The creation of a value as its row records it (before its first change)."""
    return ValueHistory(
        value_id=value.id,
        old_value=None,
        new_value=value.value,
        action="create",
        batch_id=value.batch_id,
        changed_by=value.updated_by,
        changed_at=value.updated_at,
        reason=None,
        system_id=value.system_id,
        indicator_code=value.indicator_code,
        region_code=value.region_code,
        period=value.period,
        source=value.source,
        old_note=None,
        new_note=value.note,
        revision=1,
        on_behalf=value.on_behalf,
    )


def value_history(session: Session, identity: Identity, value_id: int) -> list[ValueHistory]:
    """Every change of a value, oldest first (also after the value was deleted)."""
    value = session.get(IndicatorValue, value_id)
    rows = list(
        session.scalars(
            select(ValueHistory).where(ValueHistory.value_id == value_id).order_by(ValueHistory.id)
        )
    )
    region = value.region_code if value is not None else (rows[0].region_code if rows else None)
    if region is None:
        raise NotFound(f"指标数据 {value_id} 不存在 (unknown value)", slug="unknown-value")
    identity.check_read(region)
    if value is not None and value.revision == 1 and not any(r.action == "create" for r in rows):
        rows.insert(0, _creation_entry(value))
    return rows


def delete_value(
    session: Session,
    identity: Identity,
    value_id: int,
    *,
    expected_revision: int | None = None,
    reason: str | None = None,
) -> None:
    """Delete one value, keeping its history (action delete) and refreshing what depended on it."""
    dialect = bulk_dialect(session)
    dialect.claim_writer(session)
    value = session.get(IndicatorValue, value_id)
    if value is None:
        raise NotFound(f"指标数据 {value_id} 不存在 (unknown value)", slug="unknown-value")
    identity.check_write(value.region_code, *WRITERS)
    system = released_system(session, value.system_id)
    dialect.lock_period(session, value.system_id, value.period)
    session.refresh(value)
    _check_revision(value.revision, expected_revision)
    lock = _lock_of(session, value)
    if lock is not None:
        raise Locked(
            f"区划 {value.region_code} 的数据所属填报（编号 {lock.submission_id}）已提交或已审核，"
            f"数据已锁定 (locked by submission {lock.submission_id})",
            submission_ids=[lock.submission_id],
        )
    derived = session.scalar(
        select(Indicator.compute).where(
            Indicator.system_id == value.system_id, Indicator.code == value.indicator_code
        )
    )
    if derived == "formula":
        raise Conflict(
            f"指标 {value.indicator_code} 由公式计算，不能删除，请修改其输入指标 "
            "(derived values follow their inputs and cannot be deleted)",
            slug="derived-value",
        )
    batch = _new_batch(
        session,
        system_id=value.system_id,
        period=value.period,
        fmt="single",
        mode="delete",
        actor=identity.subject,
        actor_region=identity.region,
        source=value.source,
    )
    if value.revision == 1:
        session.add(_creation_entry(value))
    session.add(
        ValueHistory(
            value_id=value.id,
            old_value=value.value,
            new_value=None,
            action="delete",
            batch_id=batch.id,
            changed_by=identity.subject,
            changed_at=utcnow(),
            reason=reason,
            system_id=value.system_id,
            indicator_code=value.indicator_code,
            region_code=value.region_code,
            period=value.period,
            source=value.source,
            old_note=value.note,
            new_note=None,
            revision=value.revision + 1,
            on_behalf=not value.region_code.startswith(identity.region),
        )
    )
    counterparts = list(
        session.scalars(
            select(IndicatorValue.id).where(
                IndicatorValue.system_id == value.system_id,
                IndicatorValue.indicator_code == value.indicator_code,
                IndicatorValue.region_code == value.region_code,
                IndicatorValue.period == value.period,
                IndicatorValue.source != value.source,
                IndicatorValue.flags.is_not(None),
            )
        )
    )
    # A grade of a value that no longer exists would keep showing on dashboards.
    session.execute(sa_delete(Evaluation).where(Evaluation.value_id == value.id))
    system_id, period = value.system_id, value.period
    region_code, source = value.region_code, value.source
    record_value_delete(session, value, system)
    session.delete(value)
    session.flush()
    cfg = values_settings()
    bulk.recheck_flags(
        session,
        dialect,
        counterparts,
        system_id=system_id,
        period=period,
        tolerance=cfg.source_tolerance,
        outlier_z=cfg.outlier_z,
        min_history=cfg.outlier_min_history,
    )
    derived_n = derive_formulas(
        session,
        dialect,
        system_id=system_id,
        period=period,
        batch_id=batch.id,
        actor=identity.subject,
        now=utcnow(),
        keys=[(region_code, source)],
    )
    bulk.cleanup(session, dialect)
    batch.status = "applied"
    batch.rows_total = 1
    batch.rows_applied = 1
    batch.summary = {"deleted": 1, "derived": derived_n, "errors_total": 0}
    session.flush()
    session.expire_all()


# --- batches -------------------------------------------------------------------------


def get_batch(session: Session, identity: Identity, batch_id: int) -> ImportBatch:
    """One import batch with its (capped) row errors."""
    batch = session.get(ImportBatch, batch_id)
    if batch is None:
        raise NotFound(f"导入批次 {batch_id} 不存在 (unknown batch)", slug="unknown-batch")
    _check_batch_read(identity, batch)
    return batch


def _check_batch_read(identity: Identity, batch: ImportBatch) -> None:
    if batch.actor_region:
        identity.check_read(batch.actor_region)
    elif not identity.has("admin", "system"):
        raise Forbidden(
            "内部批次仅管理员可查看 (internal batches are visible to administrators)",
            slug="role-required",
        )


def list_batches(
    session: Session,
    identity: Identity,
    *,
    system_id: int | None = None,
    period: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ImportBatch], str | None]:
    """Batches run by identities inside the caller's scope, newest first."""
    stmt = select(ImportBatch).where(
        ImportBatch.actor_region.startswith(prefix_of(identity.region))
    )
    if system_id is not None:
        stmt = stmt.where(ImportBatch.system_id == system_id)
    if period:
        stmt = stmt.where(ImportBatch.period == period)
    if cursor:
        if not cursor.isdigit():
            raise ValidationFailed(
                "游标无效 (invalid cursor)", errors=[{"field": "cursor", "message": "invalid"}]
            )
        stmt = stmt.where(ImportBatch.id < int(cursor))
    rows = list(session.scalars(stmt.order_by(ImportBatch.id.desc()).limit(limit)))
    return rows, (str(rows[-1].id) if len(rows) == limit else None)
