"""Questionnaire endpoints: design, versions, release, import and export."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from services.survey.common import limited_body
from services.survey.questionnaires import service
from services.survey.questionnaires.schemas import (
    EventOut,
    QuestionnaireOut,
    QuestionnairePage,
    QuestionnaireSummary,
    TargetOut,
)
from shared.db import DbSession
from shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/questionnaires", tags=["questionnaires 问卷"])

MAX_IMPORT_BYTES = 5 * 1024 * 1024


@router.post("", status_code=201, response_model=QuestionnaireOut, summary="新建问卷 (create)")
def create_questionnaire(
    session: DbSession,
    identity: CurrentIdentity,
    definition: Annotated[dict[str, Any], Body(description="问卷定义 JSON (definition)")],
) -> QuestionnaireOut:
    """Create a draft questionnaire (next version when its code exists)."""
    q = service.create_questionnaire(session, definition, identity)
    return QuestionnaireOut.model_validate(q)


@router.post(
    "/import",
    status_code=201,
    response_model=QuestionnaireOut,
    summary="导入问卷 JSON 或 XLSForm (import)",
)
def import_questionnaire(
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    body: Annotated[bytes, Depends(limited_body(MAX_IMPORT_BYTES))],
    region_code: str | None = None,
    year: int | None = None,
    code: str | None = None,
) -> QuestionnaireOut:
    """Import a JSON definition or an XLSForm workbook as a new draft."""
    ctype = request.headers.get("content-type", "")
    overrides = {"region_code": region_code, "year": year, "code": code}
    q = service.import_questionnaire(session, body, ctype, identity, overrides)
    return QuestionnaireOut.model_validate(q)


@router.get("", response_model=QuestionnairePage, summary="问卷列表 (list)")
def list_questionnaires(
    session: DbSession,
    identity: CurrentIdentity,
    region_code: str | None = None,
    year: int | None = None,
    state: Literal["draft", "released", "retired"] | None = None,
    cursor: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> QuestionnairePage:
    """Questionnaires in the caller's scope, cursor-paginated by id."""
    rows = service.list_questionnaires(
        session,
        identity,
        region_code=region_code,
        year=year,
        state=state,
        cursor=cursor,
        limit=limit,
    )
    return QuestionnairePage(
        items=[QuestionnaireSummary.model_validate(r) for r in rows],
        next_cursor=str(rows[-1].id) if len(rows) == limit else None,
    )


@router.get("/{questionnaire_id}", response_model=QuestionnaireOut, summary="问卷详情 (one)")
def get_questionnaire(
    questionnaire_id: int, session: DbSession, identity: CurrentIdentity
) -> QuestionnaireOut:
    """One questionnaire with its definition."""
    return QuestionnaireOut.model_validate(
        service.get_questionnaire(session, questionnaire_id, identity)
    )


@router.put("/{questionnaire_id}", response_model=QuestionnaireOut, summary="修改草稿 (update)")
def update_questionnaire(
    questionnaire_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    definition: Annotated[dict[str, Any], Body()],
) -> QuestionnaireOut:
    """Replace a draft's definition (409 once released)."""
    q = service.update_questionnaire(session, questionnaire_id, definition, identity)
    return QuestionnaireOut.model_validate(q)


@router.post(
    "/{questionnaire_id}/release", response_model=QuestionnaireOut, summary="发布并锁定 (release)"
)
def release_questionnaire(
    questionnaire_id: int, session: DbSession, identity: CurrentIdentity
) -> QuestionnaireOut:
    """Release a draft; from then on it is locked."""
    q = service.release_questionnaire(session, questionnaire_id, identity)
    return QuestionnaireOut.model_validate(q)


@router.post(
    "/{questionnaire_id}/versions",
    status_code=201,
    response_model=QuestionnaireOut,
    summary="新建版本 (new version)",
)
def new_version(
    questionnaire_id: int, session: DbSession, identity: CurrentIdentity
) -> QuestionnaireOut:
    """A new draft version copying this one."""
    return QuestionnaireOut.model_validate(service.new_version(session, questionnaire_id, identity))


@router.get("/{questionnaire_id}/targets", response_model=list[TargetOut], summary="结果口径")
def targets(
    questionnaire_id: int, session: DbSession, identity: CurrentIdentity
) -> list[TargetOut]:
    """What results are reported on: overall, each scored question, each dimension."""
    q = service.get_questionnaire(session, questionnaire_id, identity)
    return [TargetOut.model_validate(t) for t in service.targets_of(session, q.id)]


@router.get("/{questionnaire_id}/events", response_model=list[EventOut], summary="操作记录")
def events(questionnaire_id: int, session: DbSession, identity: CurrentIdentity) -> list[EventOut]:
    """The audit trail of a questionnaire."""
    q = service.get_questionnaire(session, questionnaire_id, identity)
    return [EventOut.model_validate(e) for e in service.questionnaire_events(session, q)]


@router.get(
    "/{questionnaire_id}/export",
    summary="导出 JSON 或 XLSForm (export)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "application/vnd.ms-excel": {}}}},
)
def export_questionnaire(
    questionnaire_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    format: Literal["json", "xlsform"] = "json",
) -> Response:
    """The questionnaire as JSON or as an XLSForm workbook for ODK / KoboToolbox."""
    q = service.get_questionnaire(session, questionnaire_id, identity)
    body, media, filename = service.export_questionnaire(q, format)
    return Response(
        body,
        media_type=media,
        headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )
