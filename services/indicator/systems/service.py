"""Indicator systems: validation, states and versions, import/export, the starter system."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Table, and_, delete, func, insert, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from services.indicator.evaluation.method import parse_index_method
from services.indicator.regions.models import Region
from services.indicator.sync.outgoing import publish_system_release
from services.indicator.systems.formula import FormulaError, find_cycle, parse
from services.indicator.systems.models import Indicator, IndicatorSystem, SubItem, SystemEvent
from services.indicator.systems.schemas import (
    ExtendIn,
    IndicatorDoc,
    IndicatorPatch,
    NewVersionIn,
    SubItemDoc,
    SubItemPatch,
    SystemCreate,
    SystemDocument,
    SystemOut,
    SystemPatch,
    SystemSummary,
)
from shared.dbtypes import utcnow
from shared.errors import Conflict, Forbidden, Locked, NotFound, ValidationFailed
from shared.identity import Identity, Role
from shared.regions import contains, is_valid_code, parent_of, prefix_of, related

__all__ = [
    "STARTER_FILE",
    "STARTER_PATH",
    "Actor",
    "Problem",
    "add_indicator",
    "add_sub_item",
    "canonical_json",
    "check_write",
    "checksum_of",
    "create_system",
    "delete_system",
    "document_of",
    "document_problems",
    "extend_system",
    "get_indicator",
    "get_system",
    "import_document",
    "indicator_doc",
    "indicators_by_code",
    "list_events",
    "list_systems",
    "load_starter_system",
    "new_version",
    "pydantic_errors",
    "read_system",
    "release_system",
    "remove_indicator",
    "remove_sub_item",
    "retire_system",
    "starter_document",
    "summary_of",
    "system_out",
    "update_indicator",
    "update_sub_item",
    "update_system",
]

STARTER_PATH = Path(__file__).parent / "data" / "starter.json"
STARTER_FILE = STARTER_PATH  # the name the CLI and demo use
MAX_ERRORS = 200


@dataclass(frozen=True)
class Actor:
    """Who writes, and the node whose scope bounds every write."""

    identity: Identity
    node_region: str
    node_id: str

    @property
    def name(self) -> str:
        return self.identity.subject

    @property
    def node(self) -> str:
        return self.identity.node or self.node_id


@dataclass(frozen=True)
class Problem:
    """One validation problem of a document: indicator position, attribute, message."""

    index: int | None  # position of the indicator in the document; None = the system itself
    attr: str
    message: str
    sub_index: int | None = None
    position: int | None = None  # character offset inside a formula


FieldOf = Callable[[Problem], dict[str, Any]]


# --- validation ---------------------------------------------------------------------------


def _threshold_problems(i: int, ind: IndicatorDoc) -> list[Problem]:
    out: list[Problem] = []
    std, warn = ind.standard_value, ind.warning_value
    low, high, wlow, whigh = ind.band_low, ind.band_high, ind.warning_low, ind.warning_high
    if ind.direction in ("higher", "lower"):
        for attr in ("band_low", "band_high", "warning_low", "warning_high"):
            if getattr(ind, attr) is not None:
                out.append(
                    Problem(
                        i, attr, "只有“区间达标”方向使用区间及区间预警值 (only for direction band)"
                    )
                )
        if warn is not None and std is None:
            out.append(
                Problem(i, "warning_value", "有预警值时必须有标准值 (warning needs a standard)")
            )
        elif std is not None and warn is not None:
            if ind.direction == "higher" and warn > std:
                out.append(
                    Problem(
                        i,
                        "warning_value",
                        "越高越好时预警值应不大于标准值 (warning ≤ standard, higher is better)",
                    )
                )
            if ind.direction == "lower" and warn < std:
                out.append(
                    Problem(
                        i,
                        "warning_value",
                        "越低越好时预警值应不小于标准值 (warning ≥ standard, lower is better)",
                    )
                )
        has_standard = std is not None
    else:
        for attr in ("standard_value", "warning_value"):
            if getattr(ind, attr) is not None:
                out.append(
                    Problem(
                        i, attr, "区间达标方向请用区间下限/上限 (band indicators use band_low/high)"
                    )
                )
        if low is not None and high is not None and low > high:
            out.append(Problem(i, "band_high", "区间上限应不小于下限 (band_high ≥ band_low)"))
        if (wlow is not None or whigh is not None) and low is None and high is None:
            out.append(
                Problem(i, "warning_low", "有预警区间时必须有达标区间 (warning band needs a band)")
            )
        if wlow is not None and low is not None and wlow > low:
            out.append(
                Problem(i, "warning_low", "预警下限应不大于区间下限 (warning_low ≤ band_low)")
            )
        if whigh is not None and high is not None and whigh < high:
            out.append(
                Problem(i, "warning_high", "预警上限应不小于区间上限 (warning_high ≥ band_high)")
            )
        has_standard = low is not None or high is not None
    if has_standard and not ind.standard_source.strip():
        out.append(
            Problem(
                i,
                "standard_source",
                "设定了标准值，必须注明标准来源 (a standard needs its source); 无依据请留空标准值",
            )
        )
    if ind.min_value is not None and ind.max_value is not None and ind.min_value > ind.max_value:
        out.append(Problem(i, "max_value", "最大值应不小于最小值 (max_value ≥ min_value)"))
    return out


def document_problems(
    indicators: Sequence[IndicatorDoc], index_method: Mapping[str, Any] | None
) -> list[Problem]:
    """Every cross-field problem of a system: codes, thresholds, formulas, cycles, index method."""
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for i, ind in enumerate(indicators):
        if ind.code in first:
            problems.append(
                Problem(
                    i,
                    "code",
                    f"指标编码重复 (duplicate code) {ind.code}，同第 {first[ind.code] + 1} 个指标",
                )
            )
        else:
            first[ind.code] = i
        sub_first: dict[str, int] = {}
        for j, sub in enumerate(ind.sub_items):
            if sub.code in sub_first:
                problems.append(
                    Problem(i, "code", f"分项编码重复 (duplicate sub-item code) {sub.code}", j)
                )
            sub_first.setdefault(sub.code, j)
        problems.extend(_threshold_problems(i, ind))
        if ind.compute == "sub_items" and not ind.sub_items:
            problems.append(
                Problem(
                    i,
                    "sub_items",
                    "计算方式为分项检查汇总时至少需要一个分项 (compute sub_items needs sub-items)",
                )
            )

    formulas: dict[str, set[str]] = {}
    for i, ind in enumerate(indicators):
        if ind.compute != "formula":
            if ind.formula:
                problems.append(
                    Problem(
                        i,
                        "compute",
                        "填了公式但计算方式不是公式计算 (formula given, compute is not formula)",
                    )
                )
            continue
        if not ind.formula:
            problems.append(
                Problem(
                    i, "formula", "计算方式为公式计算时必须填写公式 (formula required for compute)"
                )
            )
            continue
        try:
            parsed = parse(ind.formula)
        except FormulaError as exc:
            problems.append(Problem(i, "formula", exc.message, position=exc.position))
            continue
        unknown = sorted(parsed.codes - set(first))
        if unknown:
            problems.append(
                Problem(
                    i,
                    "formula",
                    f"公式引用了体系中不存在的指标 (unknown indicator codes): {', '.join(unknown)}",
                )
            )
        elif first.get(ind.code) == i:
            formulas[ind.code] = set(parsed.codes)
    cycle = find_cycle(formulas)
    if cycle:
        problems.append(
            Problem(
                first[cycle[0]],
                "formula",
                f"公式循环引用 (circular formulas): {' → '.join(cycle)}",
            )
        )

    if index_method is not None:
        dims = sorted({ind.dimension for ind in indicators})
        try:
            parse_index_method(index_method, dims)
        except ValidationFailed as exc:
            for err in exc.errors or []:
                problems.append(Problem(None, str(err.get("field")), str(err.get("message"))))
    return problems


def json_field(p: Problem) -> dict[str, Any]:
    """Error entry naming a JSON path, e.g. indicators[3].formula."""
    if p.index is None:
        name = p.attr
    elif p.sub_index is not None:
        name = f"indicators[{p.index}].sub_items[{p.sub_index}].{p.attr}"
    else:
        name = f"indicators[{p.index}].{p.attr}"
    return _entry(name, p)


def _entry(name: str, p: Problem) -> dict[str, Any]:
    out: dict[str, Any] = {"field": name, "message": p.message}
    if p.position is not None:
        out["position"] = p.position
    return out


def _raise_problems(problems: Sequence[Problem], field_of: FieldOf) -> None:
    if not problems:
        return
    errors = [field_of(p) for p in problems[:MAX_ERRORS]]
    first = errors[0]
    where = first.get("field") or first.get("row")
    raise ValidationFailed(
        f"指标体系校验未通过，共 {len(problems)} 处 (invalid indicator system): "
        f"{where}: {first['message']}",
        errors=errors,
        slug="invalid-indicator-system",
    )


def pydantic_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    """Pydantic errors as problem entries with JSON-path field names."""
    out = []
    for err in exc.errors()[:MAX_ERRORS]:
        name = prefix
        for part in err.get("loc", ()):
            name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
        out.append({"field": name or "body", "message": err.get("msg", "")})
    return out


def _normalise_index_method(method: Mapping[str, Any]) -> dict[str, Any]:
    # {} and a missing key both mean "equal weights"; the evaluation parser wants it absent.
    out = dict(method)
    if out.get("dimension_weights") == {}:
        del out["dimension_weights"]
    return out


# --- documents ----------------------------------------------------------------------------


def _sorted_items(ind: Indicator) -> list[SubItem]:
    return sorted(ind.sub_items, key=lambda s: (s.sort_order, s.code))


def indicator_doc(ind: Indicator) -> IndicatorDoc:
    """One stored indicator as its document."""
    data = {name: getattr(ind, name) for name in IndicatorDoc.model_fields if name != "sub_items"}
    data["sub_items"] = [
        SubItemDoc(code=s.code, name=s.name, sort_order=s.sort_order) for s in _sorted_items(ind)
    ]
    return IndicatorDoc.model_validate(data)


def _indicator_docs(system: IndicatorSystem) -> list[IndicatorDoc]:
    ordered = sorted(system.indicators, key=lambda i: (i.sort_order, i.code))
    return [indicator_doc(i) for i in ordered]


def document_of(system: IndicatorSystem, *, with_status: bool = True) -> SystemDocument:
    """The canonical document of a stored system (content + informational status)."""
    status = None
    if with_status:
        status = {
            "id": system.id,
            "state": system.state,
            "checksum": system.checksum,
            "created_by": system.created_by,
            "created_at": system.created_at.isoformat() if system.created_at else None,
            "released_by": system.released_by,
            "released_at": system.released_at.isoformat() if system.released_at else None,
            "retired_by": system.retired_by,
            "retired_at": system.retired_at.isoformat() if system.retired_at else None,
            "based_on_id": system.based_on_id,
            "parent_system_id": system.parent_system_id,
        }
    return SystemDocument(
        code=system.code,
        name=system.name,
        year=system.year,
        version=system.version,
        region_code=system.region_code,
        description=system.description,
        index_method=dict(system.index_method or {}),
        indicators=_indicator_docs(system),
        status=status,
    )


def canonical_json(doc: SystemDocument) -> bytes:
    """The content of a document as canonical JSON (sorted keys, no spaces, UTF-8)."""
    content = doc.model_dump(mode="json", exclude={"status"})
    return json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def checksum_of(doc: SystemDocument) -> str:
    """SHA-256 (hex) of the canonical JSON content."""
    return hashlib.sha256(canonical_json(doc)).hexdigest()


# --- reading ------------------------------------------------------------------------------


def get_system(session: Session, system_id: int) -> IndicatorSystem:
    """The system with this id, or a 404 problem."""
    system = session.get(IndicatorSystem, system_id)
    if system is None:
        raise NotFound(
            f"指标体系不存在 (unknown indicator system): {system_id}", slug="unknown-system"
        )
    return system


def indicators_by_code(session: Session, system_id: int) -> dict[str, Indicator]:
    """The system's indicators (with sub-items loaded) keyed by code, in display order."""
    get_system(session, system_id)
    rows = session.scalars(
        select(Indicator)
        .options(selectinload(Indicator.sub_items))
        .where(Indicator.system_id == system_id)
        .order_by(Indicator.sort_order, Indicator.code)
    )
    return {ind.code: ind for ind in rows}


def _load_full(session: Session, system_id: int) -> IndicatorSystem:
    system = session.scalar(
        select(IndicatorSystem)
        .options(selectinload(IndicatorSystem.indicators).selectinload(Indicator.sub_items))
        .where(IndicatorSystem.id == system_id)
        .execution_options(populate_existing=True)
    )
    if system is None:
        raise NotFound(
            f"指标体系不存在 (unknown indicator system): {system_id}", slug="unknown-system"
        )
    return system


def _ancestors(code: str) -> list[str]:
    out: list[str] = []
    parent = parent_of(code)
    while parent:
        out.append(parent)
        parent = parent_of(parent)
    return out


def _visible(identity: Identity, region_code: str) -> bool:
    # A system is the catalog of its region and everything below it: readable by callers
    # inside that region (it applies to them) and by callers above it (they supervise).
    if not is_valid_code(identity.region):
        return False
    return identity.can_read(region_code) or contains(region_code, identity.region)


def _check_read(identity: Identity, system: IndicatorSystem) -> None:
    if not _visible(identity, system.region_code):
        identity.check_read(system.region_code)


def check_write(actor: Actor, region_code: str) -> None:
    """Admin of the region, and the region inside this node's scope (else 403)."""
    actor.identity.check_write(region_code, Role.admin)
    if not contains(actor.node_region, region_code):
        raise Forbidden(
            f"区划 {region_code} 不在本节点 {actor.node_region} 的范围内 "
            f"(region is outside this node's scope)",
            slug="out-of-scope",
        )


def read_system(session: Session, identity: Identity, system_id: int) -> IndicatorSystem:
    """A system with indicators and sub-items, after the caller's scope check."""
    system = _load_full(session, system_id)
    _check_read(identity, system)
    return system


def get_indicator(session: Session, identity: Identity, system_id: int, code: str) -> IndicatorDoc:
    """One indicator of a readable system."""
    system = read_system(session, identity, system_id)
    return indicator_doc(_find(system, code))


def list_systems(
    session: Session,
    identity: Identity,
    *,
    year: int | None = None,
    state: str | None = None,
    code: str | None = None,
    region_code: str | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> tuple[list[tuple[IndicatorSystem, int]], int | None]:
    """Systems the caller may read, filtered; with their indicator counts; id-cursor pages."""
    if not is_valid_code(identity.region):
        return [], None
    count = (
        select(func.count(Indicator.id))
        .where(Indicator.system_id == IndicatorSystem.id)
        .correlate(IndicatorSystem)
        .scalar_subquery()
    )
    stmt = select(IndicatorSystem, count).where(
        or_(
            IndicatorSystem.region_code.startswith(prefix_of(identity.region)),
            IndicatorSystem.region_code.in_(_ancestors(identity.region)),
        )
    )
    if year is not None:
        stmt = stmt.where(IndicatorSystem.year == year)
    if state is not None:
        stmt = stmt.where(IndicatorSystem.state == state)
    if code is not None:
        stmt = stmt.where(IndicatorSystem.code == code)
    if region_code is not None:
        stmt = stmt.where(IndicatorSystem.region_code == region_code)
    if cursor is not None:
        stmt = stmt.where(IndicatorSystem.id > cursor)
    rows = [(s, int(n)) for s, n in session.execute(stmt.order_by(IndicatorSystem.id).limit(limit))]
    next_cursor = rows[-1][0].id if len(rows) == limit else None
    return rows, next_cursor


def list_events(session: Session, identity: Identity, system_id: int) -> list[SystemEvent]:
    """The audit trail of a system, oldest first."""
    _check_read(identity, get_system(session, system_id))
    return list(
        session.scalars(
            select(SystemEvent).where(SystemEvent.system_id == system_id).order_by(SystemEvent.id)
        )
    )


def summary_of(system: IndicatorSystem, indicator_count: int) -> SystemSummary:
    """The list entry of a system."""
    out = SystemSummary.model_validate(system)
    out.indicator_count = indicator_count
    return out


def system_out(system: IndicatorSystem) -> SystemOut:
    """A system with its indicators in display order."""
    docs = _indicator_docs(system)
    summary = summary_of(system, len(docs))
    return SystemOut(
        **summary.model_dump(), index_method=dict(system.index_method or {}), indicators=docs
    )


# --- writing ------------------------------------------------------------------------------


def _event(
    session: Session, system_id: int, action: str, actor: str, node: str, **detail: Any
) -> None:
    session.add(
        SystemEvent(
            system_id=system_id, action=action, actor=actor, node=node, at=utcnow(), detail=detail
        )
    )


def _require_draft(system: IndicatorSystem) -> None:
    if system.state != "draft":
        raise Locked(
            f"指标体系 {system.code} {system.year} v{system.version} 已{_STATE_ZH[system.state]}，"
            f"不能修改；请创建新版本 (only drafts change; create a new version)",
            errors=[{"field": "state", "message": f"state is {system.state}"}],
        )


_STATE_ZH = {"draft": "为草稿", "released": "发布", "retired": "停用"}


def _writable(session: Session, actor: Actor, system_id: int) -> IndicatorSystem:
    system = _load_full(session, system_id)
    _check_read(actor.identity, system)
    check_write(actor, system.region_code)
    _require_draft(system)
    return system


def _check_region_exists(session: Session, region_code: str, field: str = "region_code") -> None:
    if session.get(Region, region_code) is None:
        raise ValidationFailed(
            f"区划代码不存在 (unknown region): {region_code}",
            errors=[{"field": field, "message": f"unknown region {region_code}"}],
        )


def _next_version(session: Session, code: str, year: int) -> int:
    current = session.scalar(
        select(func.max(IndicatorSystem.version)).where(
            IndicatorSystem.code == code, IndicatorSystem.year == year
        )
    )
    return int(current or 0) + 1


def _version_taken(session: Session, code: str, year: int, version: int) -> bool:
    return (
        session.scalar(
            select(IndicatorSystem.id).where(
                IndicatorSystem.code == code,
                IndicatorSystem.year == year,
                IndicatorSystem.version == version,
            )
        )
        is not None
    )


def _with_positions(indicators: Sequence[IndicatorDoc]) -> list[IndicatorDoc]:
    # Rows without an explicit order keep the order in which they were given.
    out = []
    for i, ind in enumerate(indicators):
        update: dict[str, Any] = {}
        if "sort_order" not in ind.model_fields_set:
            update["sort_order"] = i + 1
        if any("sort_order" not in s.model_fields_set for s in ind.sub_items):
            update["sub_items"] = [
                s
                if "sort_order" in s.model_fields_set
                else s.model_copy(update={"sort_order": j + 1})
                for j, s in enumerate(ind.sub_items)
            ]
        out.append(ind.model_copy(update=update) if update else ind)
    return out


def _bulk_insert(session: Session, system_id: int, indicators: Sequence[IndicatorDoc]) -> None:
    """Indicators and sub-items in two multi-row statements (never one ORM object per row)."""
    if not indicators:
        return
    rows = [{**ind.model_dump(exclude={"sub_items"}), "system_id": system_id} for ind in indicators]
    ids = {
        code: ind_id
        for ind_id, code in session.execute(
            insert(Indicator).returning(Indicator.id, Indicator.code), rows
        )
    }
    subs = [
        {"indicator_id": ids[ind.code], **s.model_dump()}
        for ind in indicators
        for s in ind.sub_items
    ]
    if subs:
        session.execute(insert(SubItem), subs)


def _create_from_document(
    session: Session,
    *,
    doc: SystemDocument,
    region_code: str,
    version: int | None,
    created_by: str,
    node: str,
    action: str,
    field_of: FieldOf = json_field,
    detail: dict[str, Any] | None = None,
) -> IndicatorSystem:
    _check_region_exists(session, region_code)
    indicators = _with_positions(doc.indicators)
    method = _normalise_index_method(doc.index_method)
    _raise_problems(document_problems(indicators, method), field_of)
    if version is None:
        version = _next_version(session, doc.code, doc.year)
    elif _version_taken(session, doc.code, doc.year, version):
        raise Conflict(
            f"指标体系 {doc.code} {doc.year} 已有版本 v{version} (version exists); "
            f"可用 next_version=true 另存为新版本",
            errors=[{"field": "version", "message": f"{doc.code}/{doc.year}/v{version} exists"}],
            slug="version-exists",
        )
    system = IndicatorSystem(
        code=doc.code,
        name=doc.name,
        year=doc.year,
        version=version,
        state="draft",
        region_code=region_code,
        description=doc.description,
        index_method=method,
        created_by=created_by,
        created_at=utcnow(),
    )
    session.add(system)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # a concurrent writer took the same version
        raise Conflict(
            f"指标体系版本冲突 (version conflict): {doc.code} {doc.year} v{version}",
            errors=[{"field": "version", "message": "taken concurrently"}],
            slug="version-exists",
        ) from exc
    _bulk_insert(session, system.id, indicators)
    _event(
        session,
        system.id,
        action,
        created_by,
        node,
        indicators=len(indicators),
        version=version,
        **(detail or {}),
    )
    session.flush()
    return _load_full(session, system.id)


def create_system(session: Session, actor: Actor, data: SystemCreate) -> IndicatorSystem:
    """A new draft (metadata and optional indicators) published by a region in scope."""
    region = data.region_code or actor.node_region
    check_write(actor, region)
    doc = SystemDocument(
        code=data.code,
        name=data.name,
        year=data.year,
        version=data.version or 1,
        region_code=region,
        description=data.description,
        index_method=data.index_method,
        indicators=data.indicators,
    )
    return _create_from_document(
        session,
        doc=doc,
        region_code=region,
        version=data.version,
        created_by=actor.name,
        node=actor.node,
        action="created",
    )


def update_system(
    session: Session, actor: Actor, system_id: int, patch: SystemPatch
) -> IndicatorSystem:
    """Change a draft's name, description or index method."""
    system = _writable(session, actor, system_id)
    changed = sorted(patch.model_fields_set)
    for name in ("name", "description"):
        if name in patch.model_fields_set and getattr(patch, name) is None:
            raise ValidationFailed(
                f"{name} 不能为空 (cannot be null)", errors=[{"field": name, "message": "null"}]
            )
    if patch.index_method is not None:
        method = _normalise_index_method(patch.index_method)
        docs = _indicator_docs(system)
        _raise_problems([p for p in document_problems(docs, method) if p.index is None], json_field)
        system.index_method = method
    if patch.name is not None:
        system.name = patch.name
    if patch.description is not None:
        system.description = patch.description
    _event(session, system.id, "updated", actor.name, actor.node, fields=changed)
    session.flush()
    return system


def delete_system(session: Session, actor: Actor, system_id: int) -> None:
    """Delete a draft that nothing references yet (its audit trail stays)."""
    system = _writable(session, actor, system_id)
    ind_ids = select(Indicator.id).where(Indicator.system_id == system_id)
    try:
        with session.begin_nested():
            session.execute(delete(SubItem).where(SubItem.indicator_id.in_(ind_ids)))
            session.execute(delete(Indicator).where(Indicator.system_id == system_id))
            session.execute(delete(IndicatorSystem).where(IndicatorSystem.id == system_id))
    except IntegrityError as exc:
        raise Conflict(
            "已有数据引用此指标体系，不能删除 (values or batches reference this system)",
            slug="system-in-use",
        ) from exc
    session.expunge(system)
    _event(
        session,
        system_id,
        "deleted",
        actor.name,
        actor.node,
        code=system.code,
        year=system.year,
        version=system.version,
    )
    session.flush()


def _find(system: IndicatorSystem, code: str) -> Indicator:
    for ind in system.indicators:
        if ind.code == code:
            return ind
    raise NotFound(
        f"指标体系 {system.id} 中没有指标 {code} (unknown indicator)", slug="unknown-indicator"
    )


def _own(system: IndicatorSystem, code: str) -> Indicator:
    """An indicator this draft may change (inherited ones belong to the parent system)."""
    ind = _find(system, code)
    if ind.inherited:
        raise Conflict(
            f"指标 {code} 继承自上级体系，只读；请在上级体系修订 "
            f"(inherited from the parent system; read-only)",
            errors=[{"field": "inherited", "message": "read-only"}],
            slug="inherited-indicator",
        )
    return ind


def _single_field_of(target: int | None, codes: Sequence[str]) -> FieldOf:
    """Errors of the indicator being written name plain fields; others name their code."""

    def field_of(p: Problem) -> dict[str, Any]:
        if p.index is None:
            name = p.attr
        else:
            base = "" if p.index == target else f"indicators[{codes[p.index]}]."
            if p.sub_index is not None:
                base += f"sub_items[{p.sub_index}]."
            name = base + p.attr
        return _entry(name, p)

    return field_of


def _validate_replacement(
    system: IndicatorSystem, docs: list[IndicatorDoc], target: int | None
) -> None:
    problems = [
        p for p in document_problems(docs, system.index_method or {}) if p.index is not None
    ]
    _raise_problems(problems, _single_field_of(target, [d.code for d in docs]))


def _apply(session: Session, ind: Indicator, doc: IndicatorDoc, *, sub_items: bool) -> None:
    for name, value in doc.model_dump(exclude={"sub_items"}).items():
        setattr(ind, name, value)
    if not sub_items:
        return
    if ind.id is not None:
        # The unit of work inserts before it deletes, so a checklist that keeps a code would
        # collide with itself: drop the old rows first, outside the ORM's bookkeeping.
        for old in list(ind.sub_items):
            session.expunge(old)
        set_committed_value(ind, "sub_items", [])
        session.execute(delete(SubItem).where(SubItem.indicator_id == ind.id))
    ind.sub_items = [SubItem(**s.model_dump()) for s in doc.sub_items]


def add_indicator(session: Session, actor: Actor, system_id: int, data: IndicatorDoc) -> Indicator:
    """Add an indicator (with its sub-items) to a draft."""
    system = _writable(session, actor, system_id)
    docs = _indicator_docs(system)
    update: dict[str, Any] = {"inherited": False}
    if "sort_order" not in data.model_fields_set:
        update["sort_order"] = max((d.sort_order for d in docs), default=0) + 1
    data = _with_positions([data.model_copy(update=update)])[0]
    _validate_replacement(system, [*docs, data], len(docs))
    ind = Indicator(system_id=system.id)
    _apply(session, ind, data, sub_items=True)
    session.add(ind)
    _event(session, system.id, "indicator_added", actor.name, actor.node, code=data.code)
    session.flush()
    return ind


def _replace_indicator(
    session: Session,
    actor: Actor,
    system: IndicatorSystem,
    code: str,
    new: IndicatorDoc,
    *,
    sub_items: bool,
    action: str,
    detail: dict[str, Any],
) -> Indicator:
    ind = _find(system, code)
    docs = _indicator_docs(system)
    target = next(i for i, d in enumerate(docs) if d.code == code)
    docs[target] = new
    _validate_replacement(system, docs, target)
    _apply(session, ind, new, sub_items=sub_items)
    _event(session, system.id, action, actor.name, actor.node, code=code, **detail)
    session.flush()
    return ind


def _revalidate(data: dict[str, Any], prefix: str = "") -> IndicatorDoc:
    try:
        return IndicatorDoc.model_validate(data)
    except ValidationError as exc:
        errors = pydantic_errors(exc, prefix)
        raise ValidationFailed(
            f"指标字段无效 (invalid fields): {', '.join(e['field'] for e in errors[:5])}",
            errors=errors,
        ) from exc


def update_indicator(
    session: Session, actor: Actor, system_id: int, code: str, patch: IndicatorPatch
) -> Indicator:
    """Change fields of a draft indicator (a rename is checked against every formula)."""
    system = _writable(session, actor, system_id)
    current = indicator_doc(_own(system, code))
    fields = patch.model_fields_set
    data = current.model_dump()
    for name in fields:
        value = getattr(patch, name)
        data[name] = (
            [s.model_dump(exclude_unset=True) for s in value]
            if name == "sub_items" and value
            else value
        )
    if "formula" in fields and "compute" not in fields and patch.formula:
        data["compute"] = "formula"  # setting a formula means computing by it
    new = _revalidate(data)
    if "sub_items" in fields:
        new = _with_positions([new])[0]
    return _replace_indicator(
        session,
        actor,
        system,
        code,
        new,
        sub_items="sub_items" in fields,
        action="indicator_updated",
        detail={"fields": sorted(fields)},
    )


def remove_indicator(session: Session, actor: Actor, system_id: int, code: str) -> None:
    """Remove an indicator from a draft unless a formula still reads it."""
    system = _writable(session, actor, system_id)
    ind = _own(system, code)
    docs = [d for d in _indicator_docs(system) if d.code != code]
    _validate_replacement(system, docs, None)
    system.indicators.remove(ind)
    _event(session, system.id, "indicator_removed", actor.name, actor.node, code=code)
    session.flush()


def add_sub_item(
    session: Session, actor: Actor, system_id: int, code: str, data: SubItemDoc
) -> IndicatorDoc:
    """Append a check to an indicator's checklist."""
    system = _writable(session, actor, system_id)
    current = indicator_doc(_own(system, code))
    if "sort_order" not in data.model_fields_set:
        top = max((s.sort_order for s in current.sub_items), default=0)
        data = data.model_copy(update={"sort_order": top + 1})
    new = current.model_copy(update={"sub_items": [*current.sub_items, data]})
    ind = _replace_indicator(
        session,
        actor,
        system,
        code,
        new,
        sub_items=True,
        action="sub_item_added",
        detail={"sub_item": data.code},
    )
    return indicator_doc(ind)


def _sub_index(doc: IndicatorDoc, sub_code: str) -> int:
    for j, s in enumerate(doc.sub_items):
        if s.code == sub_code:
            return j
    raise NotFound(
        f"指标 {doc.code} 没有分项 {sub_code} (unknown sub-item)", slug="unknown-sub-item"
    )


def update_sub_item(
    session: Session, actor: Actor, system_id: int, code: str, sub_code: str, patch: SubItemPatch
) -> IndicatorDoc:
    """Change one check of an indicator's checklist."""
    system = _writable(session, actor, system_id)
    current = indicator_doc(_own(system, code))
    j = _sub_index(current, sub_code)
    data = current.sub_items[j].model_dump()
    for name in patch.model_fields_set:
        value = getattr(patch, name)
        if value is None:
            raise ValidationFailed(
                f"{name} 不能为空 (cannot be null)", errors=[{"field": name, "message": "null"}]
            )
        data[name] = value
    subs = list(current.sub_items)
    try:
        subs[j] = SubItemDoc.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            "分项字段无效 (invalid sub-item fields)", errors=pydantic_errors(exc)
        ) from exc
    new = current.model_copy(update={"sub_items": subs})
    ind = _replace_indicator(
        session,
        actor,
        system,
        code,
        new,
        sub_items=True,
        action="sub_item_updated",
        detail={"sub_item": sub_code, "fields": sorted(patch.model_fields_set)},
    )
    return indicator_doc(ind)


def remove_sub_item(
    session: Session, actor: Actor, system_id: int, code: str, sub_code: str
) -> IndicatorDoc:
    """Remove one check from an indicator's checklist."""
    system = _writable(session, actor, system_id)
    current = indicator_doc(_own(system, code))
    j = _sub_index(current, sub_code)
    subs = [s for k, s in enumerate(current.sub_items) if k != j]
    new = current.model_copy(update={"sub_items": subs})
    ind = _replace_indicator(
        session,
        actor,
        system,
        code,
        new,
        sub_items=True,
        action="sub_item_removed",
        detail={"sub_item": sub_code},
    )
    return indicator_doc(ind)


# --- states and versions ------------------------------------------------------------------


def _release(session: Session, system: IndicatorSystem, actor: str, node: str) -> None:
    if not system.indicators:
        raise Conflict(
            "没有指标的体系不能发布 (a system without indicators cannot be released)",
            slug="empty-system",
        )
    docs = _indicator_docs(system)
    _raise_problems(document_problems(docs, system.index_method or {}), json_field)
    doc = document_of(system, with_status=False)
    system.checksum = checksum_of(doc)
    system.state = "released"
    system.released_by = actor
    system.released_at = utcnow()
    _event(session, system.id, "released", actor, node, checksum=system.checksum)
    # Children receive the release by pull (same transaction: no release without it).
    publish_system_release(session, system)
    session.flush()


def release_system(session: Session, actor: Actor, system_id: int) -> IndicatorSystem:
    """Lock a draft: it becomes released, with the SHA-256 of its canonical JSON."""
    system = _writable(session, actor, system_id)
    _release(session, system, actor.name, actor.node)
    return system


def retire_system(session: Session, actor: Actor, system_id: int) -> IndicatorSystem:
    """Retire a released system (it stays readable; no new work should use it)."""
    system = _load_full(session, system_id)
    _check_read(actor.identity, system)
    check_write(actor, system.region_code)
    if system.state != "released":
        raise Conflict(
            f"只有已发布的体系可以停用，当前状态 {system.state} (only released systems retire)",
            errors=[{"field": "state", "message": system.state}],
            slug="invalid-state",
        )
    system.state = "retired"
    system.retired_by = actor.name
    system.retired_at = utcnow()
    _event(session, system.id, "retired", actor.name, actor.node)
    session.flush()
    return system


def new_version(
    session: Session, actor: Actor, system_id: int, data: NewVersionIn
) -> IndicatorSystem:
    """A new draft copied from a released (or retired) version, set-based."""
    source = _load_full(session, system_id)
    _check_read(actor.identity, source)
    check_write(actor, source.region_code)
    if source.state == "draft":
        raise Conflict(
            "草稿可直接修改；新版本只能基于已发布的版本创建 (copy released versions only)",
            errors=[{"field": "state", "message": "draft"}],
            slug="invalid-state",
        )
    year = data.year or source.year
    version = _next_version(session, source.code, year)
    system = IndicatorSystem(
        code=source.code,
        name=data.name or source.name,
        year=year,
        version=version,
        state="draft",
        region_code=source.region_code,
        parent_system_id=source.parent_system_id,
        based_on_id=source.id,
        description=source.description,
        index_method=dict(source.index_method or {}),
        created_by=actor.name,
        created_at=utcnow(),
    )
    session.add(system)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"指标体系版本冲突 (version conflict): {source.code} {year} v{version}",
            slug="version-exists",
        ) from exc
    _copy_indicators(session, source.id, system.id)
    _event(
        session,
        system.id,
        "version_created",
        actor.name,
        actor.node,
        based_on=source.id,
        based_on_version=source.version,
    )
    session.flush()
    return _load_full(session, system.id)


def extend_system(
    session: Session, actor: Actor, system_id: int, data: ExtendIn
) -> IndicatorSystem:
    """A lower region's draft built on a released upper-level system (inherited, read-only)."""
    parent = _load_full(session, system_id)
    _check_read(actor.identity, parent)
    region = data.region_code or actor.node_region
    check_write(actor, region)
    if parent.state != "released":
        raise Conflict(
            "只能在已发布的上级体系上扩展 (extend released systems only)",
            errors=[{"field": "state", "message": parent.state}],
            slug="invalid-state",
        )
    if region == parent.region_code or not contains(parent.region_code, region):
        raise ValidationFailed(
            f"扩展体系的区划须在上级体系区划 {parent.region_code} 之下 "
            f"(the extending region must lie below the parent's)",
            errors=[{"field": "region_code", "message": f"not below {parent.region_code}"}],
        )
    year = data.year or parent.year
    version = _next_version(session, data.code, year)
    system = IndicatorSystem(
        code=data.code,
        name=data.name,
        year=year,
        version=version,
        state="draft",
        region_code=region,
        parent_system_id=parent.id,
        description=data.description,
        index_method=dict(parent.index_method or {}),
        created_by=actor.name,
        created_at=utcnow(),
    )
    session.add(system)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"指标体系版本冲突 (version conflict): {data.code} {year} v{version}",
            slug="version-exists",
        ) from exc
    _copy_indicators(session, parent.id, system.id, inherited=True)
    _event(
        session,
        system.id,
        "extended",
        actor.name,
        actor.node,
        parent=parent.id,
        parent_checksum=parent.checksum,
    )
    session.flush()
    return _load_full(session, system.id)


def _copy_indicators(
    session: Session, source_id: int, target_id: int, *, inherited: bool | None = None
) -> None:
    """INSERT … SELECT of indicators, then of sub-items matched by indicator code."""
    table = cast(Table, Indicator.__table__)
    cols = [c for c in table.c if c.name not in ("id", "system_id")]
    selected: list[Any] = [
        literal(inherited).label("inherited")
        if c.name == "inherited" and inherited is not None
        else c
        for c in cols
    ]
    session.execute(
        insert(table).from_select(
            ["system_id", *[c.name for c in cols]],
            select(literal(target_id).label("system_id"), *selected).where(
                table.c.system_id == source_id
            ),
        )
    )
    old, new, sub = aliased(Indicator), aliased(Indicator), cast(Table, SubItem.__table__)
    session.execute(
        insert(sub).from_select(
            ["indicator_id", "code", "name", "sort_order"],
            select(new.id, sub.c.code, sub.c.name, sub.c.sort_order)
            .select_from(sub)
            .join(old, sub.c.indicator_id == old.id)
            .join(new, and_(new.code == old.code, new.system_id == target_id))
            .where(old.system_id == source_id),
        )
    )


# --- import / export / starter ------------------------------------------------------------


def import_document(
    session: Session,
    actor: Actor,
    doc: SystemDocument,
    *,
    region_code: str | None = None,
    next_version: bool = False,
    field_of: FieldOf = json_field,
    source: str = "json",
) -> IndicatorSystem:
    """Create a new draft from a document (JSON or a parsed workbook)."""
    region = region_code or doc.region_code or actor.node_region
    check_write(actor, region)
    return _create_from_document(
        session,
        doc=doc,
        region_code=region,
        version=None if next_version else doc.version,
        created_by=actor.name,
        node=actor.node,
        action="imported",
        field_of=field_of,
        detail={"format": source},
    )


@cache
def _starter_text() -> str:
    return STARTER_PATH.read_text(encoding="utf-8")


def starter_document() -> SystemDocument:
    """The shipped starter system as a document (validated like any import)."""
    return SystemDocument.model_validate_json(_starter_text())


def load_starter_system(session: Session, region_code: str, created_by: str) -> IndicatorSystem:
    """Load (once) and release the shipped starter system for a region; idempotent."""
    doc = starter_document()
    existing = session.scalar(
        select(IndicatorSystem.id).where(
            IndicatorSystem.code == doc.code,
            IndicatorSystem.year == doc.year,
            IndicatorSystem.version == doc.version,
        )
    )
    if existing is not None:
        system = _load_full(session, existing)
        if not related(system.region_code, region_code):
            raise Conflict(
                f"起始指标体系已由区划 {system.region_code} 载入 (starter already loaded for "
                f"another region)",
                slug="version-exists",
            )
        return system
    system = _create_from_document(
        session,
        doc=doc,
        region_code=region_code,
        version=doc.version,
        created_by=created_by,
        node="",
        action="starter_loaded",
    )
    _release(session, system, created_by, "")
    return system
