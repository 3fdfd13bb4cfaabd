"""HTTP endpoints of the indicator service's systems domain (指标体系)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from services.indicator.systems import service
from services.indicator.systems.excel import XLSX_MEDIA_TYPE, read_workbook, write_workbook
from services.indicator.systems.schemas import (
    EventOut,
    ExtendIn,
    IndicatorDoc,
    IndicatorPatch,
    NewVersionIn,
    SubItemDoc,
    SubItemPatch,
    SystemCreate,
    SystemDocument,
    SystemOut,
    SystemPage,
    SystemPatch,
)
from shared.db import DbSession
from shared.errors import PayloadTooLarge, ProblemError, ValidationFailed
from shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/systems", tags=["systems 指标体系"])

MAX_IMPORT_BYTES = 16 * 1024 * 1024


class UnsupportedMediaType(ProblemError):
    status = 415
    slug = "unsupported-media-type"
    title = "不支持的内容类型 (unsupported media type)"


def get_actor(request: Request, identity: CurrentIdentity) -> service.Actor:
    """The caller together with the node whose region bounds every write."""
    settings = request.app.state.settings
    return service.Actor(identity, settings.region_code, settings.node_id)


ActorDep = Annotated[service.Actor, Depends(get_actor)]


async def import_payload(request: Request) -> tuple[str, bytes]:
    """(kind, bytes) of an import body: JSON, a raw xlsx body, or a multipart file upload."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationFailed(
                "请在字段 file 中上传文件 (upload the file in form field 'file')",
                errors=[{"field": "file", "message": "missing"}],
            )
        data = await upload.read(MAX_IMPORT_BYTES + 1)
        name = (upload.filename or "").lower()
        kind = "json" if name.endswith(".json") or upload.content_type == "application/json" else ""
        kind = kind or ("xlsx" if data[:2] == b"PK" else "")
    else:
        data = await request.body()
        kind = {"application/json": "json", XLSX_MEDIA_TYPE: "xlsx"}.get(ctype, "")
        if not kind and ctype == "application/octet-stream" and data[:2] == b"PK":
            kind = "xlsx"
    if len(data) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"导入文件超过 {MAX_IMPORT_BYTES // 1048576} MB (file too large)")
    if not kind:
        raise UnsupportedMediaType(
            f"请以 application/json 或 {XLSX_MEDIA_TYPE} 提交 (send JSON or xlsx), 收到 {ctype!r}"
        )
    return kind, data


@router.get("", response_model=SystemPage, summary="指标体系列表 (list systems)")
def list_systems(
    session: DbSession,
    identity: CurrentIdentity,
    year: int | None = None,
    state: Literal["draft", "released", "retired"] | None = None,
    code: str | None = None,
    region_code: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[int | None, Query(description="上一页的 next_cursor")] = None,
) -> SystemPage:
    """Systems of the caller's region, below it and above it; filter by year, state, code."""
    rows, next_cursor = service.list_systems(
        session,
        identity,
        year=year,
        state=state,
        code=code,
        region_code=region_code,
        limit=limit,
        cursor=cursor,
    )
    return SystemPage(
        items=[service.summary_of(s, n) for s, n in rows],
        next_cursor=str(next_cursor) if next_cursor is not None else None,
    )


@router.post("", response_model=SystemOut, status_code=201, summary="新建草稿体系 (create a draft)")
def create_system(session: DbSession, actor: ActorDep, body: SystemCreate) -> SystemOut:
    """Create a draft system (optionally with indicators) published by a region in scope."""
    return service.system_out(service.create_system(session, actor, body))


@router.post(
    "/import",
    response_model=SystemOut,
    status_code=201,
    summary="导入体系为新草稿 (import JSON or xlsx as a new draft)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SystemDocument"}},
                XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    },
)
def import_system(
    session: DbSession,
    actor: ActorDep,
    payload: Annotated[tuple[str, bytes], Depends(import_payload)],
    region_code: Annotated[
        str | None, Query(pattern=r"^\d{6}$", description="发布区划，缺省取文件中的或本节点的")
    ] = None,
    next_version: Annotated[bool, Query(description="版本号已被占用时另存为下一个版本")] = False,
) -> SystemOut:
    """Create a new draft from an exported JSON document or Excel workbook."""
    kind, data = payload
    if kind == "xlsx":
        doc, layout = read_workbook(data)
        system = service.import_document(
            session,
            actor,
            doc,
            region_code=region_code,
            next_version=next_version,
            field_of=layout.field_of,
            source="xlsx",
        )
    else:
        try:
            doc = SystemDocument.model_validate_json(data)
        except ValidationError as exc:
            errors = service.pydantic_errors(exc)
            raise ValidationFailed(
                f"JSON 文档无效 (invalid JSON document): {errors[0]['field']}: "
                f"{errors[0]['message']}",
                errors=errors,
                slug="invalid-indicator-system",
            ) from exc
        system = service.import_document(
            session, actor, doc, region_code=region_code, next_version=next_version
        )
    return service.system_out(system)


@router.post(
    "/starter",
    response_model=SystemOut,
    summary="载入内置起始体系 (load the shipped starter system)",
)
def load_starter(
    session: DbSession,
    actor: ActorDep,
    region_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
) -> SystemOut:
    """Load and release the starter system (2023+ four-level base set) once; idempotent."""
    region = region_code or actor.node_region
    service.check_write(actor, region)
    return service.system_out(service.load_starter_system(session, region, actor.name))


@router.get("/{system_id}", response_model=SystemOut, summary="体系详情 (one system)")
def get_system(system_id: int, session: DbSession, identity: CurrentIdentity) -> SystemOut:
    """One system with its indicators and sub-item checklists."""
    return service.system_out(service.read_system(session, identity, system_id))


@router.patch("/{system_id}", response_model=SystemOut, summary="修改草稿 (change a draft)")
def update_system(
    system_id: int, session: DbSession, actor: ActorDep, body: SystemPatch
) -> SystemOut:
    """Change the name, description or index method of a draft."""
    return service.system_out(service.update_system(session, actor, system_id, body))


@router.delete("/{system_id}", status_code=204, summary="删除草稿 (delete a draft)")
def delete_system(system_id: int, session: DbSession, actor: ActorDep) -> Response:
    """Delete a draft nothing references yet; its audit trail is kept."""
    service.delete_system(session, actor, system_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{system_id}/events", response_model=list[EventOut], summary="审计记录 (audit)")
def list_events(system_id: int, session: DbSession, identity: CurrentIdentity) -> list[EventOut]:
    """Every write to the system: who, when, from which node, what."""
    return [EventOut.model_validate(e) for e in service.list_events(session, identity, system_id)]


@router.get(
    "/{system_id}/export",
    response_model=SystemDocument,
    summary="导出体系 (export as JSON or xlsx)",
    responses={
        200: {"content": {XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
    },
)
def export_system(
    system_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    format: Literal["json", "xlsx"] = "json",
) -> Response:
    """The system as its canonical JSON document or as an Excel workbook (指标/分项/说明)."""
    system = service.read_system(session, identity, system_id)
    doc = service.document_of(system)
    stem = f"indicator-system-{system.code}-{system.year}-v{system.version}"
    if format == "xlsx":
        return Response(
            write_workbook(doc),
            media_type=XLSX_MEDIA_TYPE,
            headers={"content-disposition": f'attachment; filename="{stem}.xlsx"'},
        )
    return Response(
        doc.model_dump_json(indent=2),
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="{stem}.json"'},
    )


@router.post("/{system_id}/release", response_model=SystemOut, summary="发布并锁定 (release)")
def release_system(system_id: int, session: DbSession, actor: ActorDep) -> SystemOut:
    """Release a draft: it is locked and its SHA-256 checksum recorded."""
    return service.system_out(service.release_system(session, actor, system_id))


@router.post("/{system_id}/retire", response_model=SystemOut, summary="停用 (retire)")
def retire_system(system_id: int, session: DbSession, actor: ActorDep) -> SystemOut:
    """Retire a released system."""
    return service.system_out(service.retire_system(session, actor, system_id))


@router.post(
    "/{system_id}/versions",
    response_model=SystemOut,
    status_code=201,
    summary="基于已发布版本创建新版本 (new draft version)",
)
def new_version(
    system_id: int,
    session: DbSession,
    actor: ActorDep,
    body: NewVersionIn | None = None,
) -> SystemOut:
    """Copy a released (or retired) version into a new draft: changes make a new version."""
    data = body or NewVersionIn()
    return service.system_out(service.new_version(session, actor, system_id, data))


@router.post(
    "/{system_id}/extend",
    response_model=SystemOut,
    status_code=201,
    summary="在上级体系上扩展本级体系 (extend an upper-level system)",
)
def extend_system(system_id: int, session: DbSession, actor: ActorDep, body: ExtendIn) -> SystemOut:
    """A lower region's draft on a released parent: its indicators inherited and read-only."""
    return service.system_out(service.extend_system(session, actor, system_id, body))


@router.get(
    "/{system_id}/indicators", response_model=list[IndicatorDoc], summary="指标列表 (indicators)"
)
def list_indicators(
    system_id: int, session: DbSession, identity: CurrentIdentity
) -> list[IndicatorDoc]:
    """The system's indicators in display order."""
    return service.system_out(service.read_system(session, identity, system_id)).indicators


@router.post(
    "/{system_id}/indicators",
    response_model=IndicatorDoc,
    status_code=201,
    summary="新增指标 (add an indicator)",
)
def add_indicator(
    system_id: int, session: DbSession, actor: ActorDep, body: IndicatorDoc
) -> IndicatorDoc:
    """Add an indicator (with its sub-items) to a draft."""
    return service.indicator_doc(service.add_indicator(session, actor, system_id, body))


@router.get(
    "/{system_id}/indicators/{code}", response_model=IndicatorDoc, summary="指标详情 (indicator)"
)
def get_indicator(
    system_id: int, code: str, session: DbSession, identity: CurrentIdentity
) -> IndicatorDoc:
    """One indicator with its sub-items."""
    return service.get_indicator(session, identity, system_id, code)


@router.patch(
    "/{system_id}/indicators/{code}", response_model=IndicatorDoc, summary="修改指标 (change)"
)
def update_indicator(
    system_id: int, code: str, session: DbSession, actor: ActorDep, body: IndicatorPatch
) -> IndicatorDoc:
    """Change fields of a draft indicator; only the fields sent change."""
    return service.indicator_doc(service.update_indicator(session, actor, system_id, code, body))


@router.delete(
    "/{system_id}/indicators/{code}", status_code=204, summary="删除指标 (remove an indicator)"
)
def remove_indicator(system_id: int, code: str, session: DbSession, actor: ActorDep) -> Response:
    """Remove an indicator from a draft unless a formula reads it."""
    service.remove_indicator(session, actor, system_id, code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{system_id}/indicators/{code}/sub-items",
    response_model=IndicatorDoc,
    status_code=201,
    summary="新增分项 (add a sub-item)",
)
def add_sub_item(
    system_id: int, code: str, session: DbSession, actor: ActorDep, body: SubItemDoc
) -> IndicatorDoc:
    """Append a check to an indicator's checklist."""
    return service.add_sub_item(session, actor, system_id, code, body)


@router.patch(
    "/{system_id}/indicators/{code}/sub-items/{sub_code}",
    response_model=IndicatorDoc,
    summary="修改分项 (change a sub-item)",
)
def update_sub_item(
    system_id: int,
    code: str,
    sub_code: str,
    session: DbSession,
    actor: ActorDep,
    body: SubItemPatch,
) -> IndicatorDoc:
    """Change one check of an indicator's checklist."""
    return service.update_sub_item(session, actor, system_id, code, sub_code, body)


@router.delete(
    "/{system_id}/indicators/{code}/sub-items/{sub_code}",
    response_model=IndicatorDoc,
    summary="删除分项 (remove a sub-item)",
)
def remove_sub_item(
    system_id: int, code: str, sub_code: str, session: DbSession, actor: ActorDep
) -> IndicatorDoc:
    """Remove one check from an indicator's checklist."""
    return service.remove_sub_item(session, actor, system_id, code, sub_code)
