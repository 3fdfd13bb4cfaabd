"""HTTP endpoints of the indicator service's values domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from services.indicator.values import service
from services.indicator.values.config import values_settings
from services.indicator.values.parsers import XLSX_TYPE, format_of, parser_for
from services.indicator.values.schemas import (
    BatchOut,
    BatchPage,
    HistoryOut,
    ImportOut,
    Mode,
    Source,
    ValueDetail,
    ValueIn,
    ValueOut,
    ValuePage,
)
from services.indicator.values.template import build_template
from shared.db import DbSession
from shared.errors import PROBLEM_JSON, TYPE_BASE, PayloadTooLarge, ValidationFailed
from shared.identity import CurrentIdentity
from shared.regions import RegionLevel

router = APIRouter(tags=["values 指标数据"])


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it exceeds the configured limit."""
    limit = values_settings().max_import_bytes
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(
        f"请求体超过上限 {limit} 字节，请拆分文件 (body larger than {limit} bytes)",
        limit=limit,
    )
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


ImportBody = Annotated[bytes, Depends(read_body)]


@router.post(
    "/api/v1/values/import",
    response_model=ImportOut,
    summary="批量导入指标数据 (bulk import: CSV, JSON lines, xlsx template)",
    responses={
        207: {"model": ImportOut, "description": "部分行被拒收 (per_row: some rows rejected)"},
        413: {"description": "请求体过大 (body too large)"},
        415: {"description": "不支持的内容类型 (unsupported content type)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "表头 indicator_code,region_code,value[,unit,note,source]；"
            "或每行一个 JSON 对象；或平台生成的 xlsx 填报模板",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
                XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
def import_values(
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    body: ImportBody,
    system_id: Annotated[int, Query(description="已发布的指标体系 (a released system)")],
    period: Annotated[str, Query(max_length=10, description="期间，如 2025")],
    source: Source = "self_checkup",
    mode: Mode = "per_row",
) -> JSONResponse:
    """Import values: 200 applied, 207 some rows rejected (per_row), 422 nothing applied."""
    identity.check_write(identity.region)
    fmt = format_of(request.headers.get("content-type"))
    parser = parser_for(fmt, body, default_source=source, system_id=system_id, period=period)
    outcome = service.import_values(
        session, identity, system_id=system_id, period=period, source=source, mode=mode,
        parser=parser,
    )  # fmt: skip
    payload = ImportOut.model_validate(outcome.as_dict()).model_dump(mode="json")
    if outcome.status == "applied":
        return JSONResponse(payload, status_code=200)
    if mode == "per_row" and outcome.status == "partial":
        return JSONResponse(payload, status_code=207)
    # Nothing applied: a problem document that still carries the batch and its row errors.
    problem = {
        "type": TYPE_BASE + "import-rejected",
        "title": ValidationFailed.title,
        "detail": (
            f"{outcome.rows_rejected} 行未通过校验，未导入任何数据 "
            f"({outcome.rows_rejected} rows rejected; nothing applied)"
        ),
        "instance": request.url.path,
        **payload,
        "import_status": payload["status"],
        "status": 422,
    }
    return JSONResponse(problem, status_code=422, media_type=PROBLEM_JSON)


@router.put(
    "/api/v1/values",
    response_model=ValueOut,
    summary="填报或修改一个指标值 (enter or change one value)",
    responses={201: {"model": ValueOut, "description": "新建 (created)"}},
)
def put_value(data: ValueIn, session: DbSession, identity: CurrentIdentity) -> JSONResponse:
    """Enter one value; 201 when created, 200 when changed or unchanged; 409 when locked."""
    value, created = service.put_value(
        session,
        identity,
        system_id=data.system_id,
        indicator_code=data.indicator_code,
        region_code=data.region_code,
        period=data.period,
        source=data.source,
        value=data.value,
        unit=data.unit,
        note=data.note,
        expected_revision=data.expected_revision,
        reason=data.reason,
    )
    body = ValueOut.model_validate(value).model_dump(mode="json")
    return JSONResponse(body, status_code=201 if created else 200)


@router.get("/api/v1/values", response_model=ValuePage, summary="查询指标数据 (list values)")
def list_values(
    session: DbSession,
    identity: CurrentIdentity,
    system_id: int | None = None,
    period: Annotated[str | None, Query(max_length=10)] = None,
    region_code: Annotated[
        str | None, Query(description="区划及其下级 (this region and everything below it)")
    ] = None,
    exact_region: Annotated[bool, Query(description="仅此区划本级 (only this region)")] = False,
    indicator_code: str | None = None,
    source: Source | None = None,
    flagged: Annotated[
        bool | None, Query(description="仅有/无校验标记的值 (with / without check flags)")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ValuePage:
    """Values in the caller's scope, filtered, cursor-paginated by id."""
    rows, next_cursor = service.list_values(
        session,
        identity,
        system_id=system_id,
        period=period,
        region_code=region_code,
        exact_region=exact_region,
        indicator_code=indicator_code,
        source=source,
        flagged=flagged,
        cursor=cursor,
        limit=limit,
    )
    return ValuePage(items=[ValueOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/api/v1/values/template",
    summary="下载填报模板 (download the xlsx entry template)",
    response_class=Response,
    responses={200: {"content": {XLSX_TYPE: {}}, "description": "填报模板 (xlsx)"}},
)
def download_template(
    session: DbSession,
    identity: CurrentIdentity,
    system_id: int,
    period: Annotated[str, Query(max_length=10)],
    region_code: str,
    level: Annotated[
        RegionLevel | None,
        Query(description="展开到此层级的下级区划 (expand to regions at this level)"),
    ] = None,
    source: Source = "self_checkup",
) -> Response:
    """The 填报模板 of a region: one row per entered indicator × region, codes locked."""
    content, filename = build_template(
        session,
        identity,
        system_id=system_id,
        period=period,
        region_code=region_code,
        level=level,
        source=source,
    )
    return Response(
        content,
        media_type=XLSX_TYPE,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/api/v1/values/{value_id}", response_model=ValueDetail, summary="指标值详情 (one value)"
)
def get_value(value_id: int, session: DbSession, identity: CurrentIdentity) -> ValueDetail:
    """One value with its flags and, when frozen, the submission that froze it."""
    value, locked_by = service.get_value(session, identity, value_id)
    out = ValueDetail.model_validate(value)
    out.locked_by_submission = locked_by
    return out


@router.get(
    "/api/v1/values/{value_id}/history",
    response_model=list[HistoryOut],
    summary="指标值修改历史 (history of a value)",
)
def value_history(value_id: int, session: DbSession, identity: CurrentIdentity) -> list[HistoryOut]:
    """Who changed the value, when, old → new; readable after deletion."""
    return [
        HistoryOut.model_validate(h) for h in service.value_history(session, identity, value_id)
    ]


@router.delete(
    "/api/v1/values/{value_id}", status_code=204, summary="删除指标值 (delete one value)"
)
def delete_value(
    value_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    expected_revision: int | None = None,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Delete a value; its history keeps a delete entry. 409 when locked."""
    service.delete_value(
        session, identity, value_id, expected_revision=expected_revision, reason=reason
    )
    return Response(status_code=204)


@router.get(
    "/api/v1/imports/{batch_id}", response_model=BatchOut, summary="导入批次 (one import batch)"
)
def get_batch(batch_id: int, session: DbSession, identity: CurrentIdentity) -> BatchOut:
    """One batch: who, when, counts and its row errors (first 1000)."""
    return BatchOut.model_validate(service.get_batch(session, identity, batch_id))


@router.get("/api/v1/imports", response_model=BatchPage, summary="导入批次列表 (import batches)")
def list_batches(
    session: DbSession,
    identity: CurrentIdentity,
    system_id: int | None = None,
    period: Annotated[str | None, Query(max_length=10)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> BatchPage:
    """Batches run within the caller's scope, newest first."""
    rows, next_cursor = service.list_batches(
        session, identity, system_id=system_id, period=period, cursor=cursor, limit=limit
    )
    return BatchPage(items=[BatchOut.model_validate(b) for b in rows], next_cursor=next_cursor)
