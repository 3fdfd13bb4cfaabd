"""Questionnaires: create, revise while draft, release (lock), version, import and export."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.survey.common import DESIGN_ROLES, audit
from services.survey.models import AuditEvent, Questionnaire, ScoreTarget
from services.survey.questionnaires.definition import (
    Definition,
    definition_checksum,
    parse_definition,
)
from services.survey.questionnaires.xlsform import from_xlsform, to_xlsform
from shared.dbtypes import utcnow
from shared.errors import Locked, NotFound, ValidationFailed
from shared.identity import Identity

__all__ = [
    "create_questionnaire",
    "definition_of",
    "export_questionnaire",
    "get_questionnaire",
    "import_questionnaire",
    "list_questionnaires",
    "new_version",
    "questionnaire_events",
    "release_questionnaire",
    "targets_of",
    "update_questionnaire",
]


def get_questionnaire(session: Session, questionnaire_id: int, identity: Identity) -> Questionnaire:
    """One questionnaire the caller may read (404 / 403 otherwise)."""
    q = session.get(Questionnaire, questionnaire_id)
    if q is None:
        raise NotFound(f"问卷 {questionnaire_id} 不存在 (questionnaire not found)")
    identity.check_read(q.region_code)
    return q


def definition_of(q: Questionnaire) -> Definition:
    """The parsed definition of a stored questionnaire."""
    return Definition.model_validate(q.definition)


def list_questionnaires(
    session: Session,
    identity: Identity,
    *,
    region_code: str | None,
    year: int | None,
    state: str | None,
    cursor: int | None,
    limit: int,
) -> list[Questionnaire]:
    """Questionnaires of the caller's scope, newest id last, after ``cursor``."""
    stmt = select(Questionnaire).order_by(Questionnaire.id).limit(limit)
    if region_code:
        identity.check_read(region_code)
        stmt = stmt.where(Questionnaire.region_code == region_code)
    if year:
        stmt = stmt.where(Questionnaire.year == year)
    if state:
        stmt = stmt.where(Questionnaire.state == state)
    if cursor:
        stmt = stmt.where(Questionnaire.id > cursor)
    # Scope filter in Python keeps the code-prefix rule in one place (Identity.can_read).
    rows = [q for q in session.scalars(stmt) if identity.can_read(q.region_code)]
    return rows


def _store(session: Session, defn: Definition, identity: Identity, action: str) -> Questionnaire:
    identity.check_write(defn.region_code, *DESIGN_ROLES)
    latest = session.scalar(
        select(func.max(Questionnaire.version)).where(Questionnaire.code == defn.code)
    )
    if latest is not None:
        first = session.scalar(
            select(Questionnaire).where(Questionnaire.code == defn.code).limit(1)
        )
        if first is not None and first.region_code != defn.region_code:
            raise ValidationFailed(
                f"问卷代码 {defn.code} 已被区划 {first.region_code} 使用 (code taken)",
                errors=[{"field": "definition.code", "message": "问卷代码已被其他区划使用"}],
            )
    q = Questionnaire(
        code=defn.code,
        version=(latest or 0) + 1,
        title=defn.title,
        year=defn.year,
        region_code=defn.region_code,
        state="draft",
        definition=defn.model_dump(mode="json"),
        created_by=identity.subject,
    )
    session.add(q)
    session.flush()
    audit(session, identity, "questionnaire", q.id, action, version=q.version, code=q.code)
    return q


def create_questionnaire(session: Session, data: Any, identity: Identity) -> Questionnaire:
    """A new draft (the next version when the code exists)."""
    return _store(session, parse_definition(data), identity, "create")


def import_questionnaire(
    session: Session,
    body: bytes,
    content_type: str,
    identity: Identity,
    overrides: dict[str, Any],
) -> Questionnaire:
    """A new draft from an uploaded JSON definition or XLSForm workbook."""
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ValidationFailed(
                "JSON 无法解析 (malformed JSON)", errors=[{"field": "body", "message": str(exc)}]
            ) from exc
        if not isinstance(data, dict):
            raise ValidationFailed(
                "须为问卷定义对象 (object expected)",
                errors=[{"field": "body", "message": "须为对象"}],
            )
    else:
        data = from_xlsform(body, overrides)
    for key, value in overrides.items():
        if value is not None and not data.get(key):
            data[key] = value
    return _store(session, parse_definition(data), identity, "import")


def update_questionnaire(
    session: Session, questionnaire_id: int, data: Any, identity: Identity
) -> Questionnaire:
    """Replace a draft's definition; released versions are locked."""
    q = get_questionnaire(session, questionnaire_id, identity)
    identity.check_write(q.region_code, *DESIGN_ROLES)
    _ensure_draft(q)
    defn = parse_definition(data)
    if defn.code != q.code or defn.region_code != q.region_code:
        raise ValidationFailed(
            "修改不能改变问卷代码或区划 (code and region are fixed)",
            errors=[{"field": "definition.code", "message": "须与原问卷相同"}],
        )
    q.definition = defn.model_dump(mode="json")
    q.title = defn.title
    q.year = defn.year
    session.flush()
    audit(session, identity, "questionnaire", q.id, "update", version=q.version)
    return q


def _ensure_draft(q: Questionnaire) -> None:
    if q.state != "draft":
        raise Locked(
            f"问卷 {q.code} 第 {q.version} 版已发布，不能修改；请创建新版本 "
            "(released versions are locked: create a new version)"
        )


def release_questionnaire(
    session: Session, questionnaire_id: int, identity: Identity
) -> Questionnaire:
    """Lock a draft: fix its checksum and the targets results are reported on."""
    q = get_questionnaire(session, questionnaire_id, identity)
    identity.check_write(q.region_code, *DESIGN_ROLES)
    _ensure_draft(q)
    defn = definition_of(q)
    q.state = "released"
    q.checksum = definition_checksum(defn)
    q.released_by = identity.subject
    q.released_at = utcnow()
    session.add_all(_targets(q.id, defn))
    session.flush()
    audit(session, identity, "questionnaire", q.id, "release", checksum=q.checksum)
    return q


def _targets(questionnaire_id: int, defn: Definition) -> list[ScoreTarget]:
    out: list[ScoreTarget] = []
    dims: dict[str, ScoreTarget] = {}
    order = 0
    for section in defn.sections:
        for q in section.questions:
            if not q.scored:
                continue
            order += 1
            out.append(
                ScoreTarget(
                    questionnaire_id=questionnaire_id,
                    kind="question",
                    code=q.code,
                    label=q.text,
                    dimension=section.dimension_key,
                    level=section.level or "",
                    indicator_code=q.indicator_code,
                    indicator_measure=q.indicator_measure,
                    objective_indicators=list(q.objective_indicators),
                    sort_order=order,
                )
            )
            key = section.dimension_key
            if key not in dims:
                dims[key] = ScoreTarget(
                    questionnaire_id=questionnaire_id,
                    kind="dimension",
                    code=key,
                    label=key,
                    dimension=key,
                    level=section.level or "",
                    indicator_code=None,
                    indicator_measure="rate",
                    objective_indicators=[],
                    sort_order=1000 + len(dims),
                )
            dim = dims[key]
            if section.indicator_code and not dim.indicator_code:
                dim.indicator_code = section.indicator_code
                dim.indicator_measure = section.indicator_measure
                dim.objective_indicators = list(section.objective_indicators)
    overall = ScoreTarget(
        questionnaire_id=questionnaire_id,
        kind="overall",
        code="*",
        label="总体满意度",
        dimension="",
        level="",
        indicator_code=None,
        indicator_measure="rate",
        objective_indicators=[],
        sort_order=0,
    )
    return [overall, *out, *dims.values()]


def targets_of(session: Session, questionnaire_id: int) -> list[ScoreTarget]:
    """The result targets of a released questionnaire, in reporting order."""
    return list(
        session.scalars(
            select(ScoreTarget)
            .where(ScoreTarget.questionnaire_id == questionnaire_id)
            .order_by(ScoreTarget.sort_order, ScoreTarget.id)
        )
    )


def new_version(session: Session, questionnaire_id: int, identity: Identity) -> Questionnaire:
    """A new draft version copying this questionnaire's definition."""
    q = get_questionnaire(session, questionnaire_id, identity)
    return _store(session, definition_of(q), identity, "new_version")


def export_questionnaire(q: Questionnaire, fmt: str) -> tuple[bytes, str, str]:
    """(body, media type, file name) of the questionnaire as JSON or XLSForm."""
    defn = definition_of(q)
    if fmt == "xlsform":
        return (
            to_xlsform(defn, q.version),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            f"{q.code}-v{q.version}.xlsx",
        )
    body = json.dumps(defn.model_dump(mode="json"), ensure_ascii=False, indent=2).encode()
    return body, "application/json", f"{q.code}-v{q.version}.json"


def questionnaire_events(session: Session, q: Questionnaire) -> list[AuditEvent]:
    """The audit trail of one questionnaire."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.object_type == "questionnaire", AuditEvent.object_id == q.id)
            .order_by(AuditEvent.id)
        )
    )
