"""Reports, generation jobs and bulletins: JSON first, then HTML, DOCX and PDF downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse

from services.report.deps import NodeId
from services.report.models import Report
from services.report.reports import service
from services.report.reports.document import document_json_schema
from services.report.reports.render import MEDIA_TYPES, render
from services.report.reports.schemas import (
    ArtifactOut,
    BulletinIn,
    FinalizeIn,
    JobIn,
    JobOut,
    ReportOut,
    TemplateOut,
    VersionOut,
)
from shared.db import DbSession
from shared.errors import ValidationFailed
from shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/reports", tags=["reports 报告"])
jobs_router = APIRouter(prefix="/api/v1/report-jobs", tags=["reports 报告"])
bulletins_router = APIRouter(prefix="/api/v1/bulletins", tags=["reports 报告"])

YAML_BODY = Body(media_type="text/yaml", description="提纲模板 YAML 文本")


def _data_dir(request: Request) -> Path:
    path: Path = request.app.state.settings.data_dir
    return path


def _wake(request: Request) -> None:
    worker = getattr(request.app.state, "report_worker", None)
    if worker is not None:
        worker.wake()


def _report_out(session: DbSession, report: Report) -> ReportOut:
    versions = [
        VersionOut(
            version=v.version,
            sha256=v.sha256,
            template_ref=v.template_ref,
            job_id=v.job_id,
            created_by=v.created_by,
            created_at=v.created_at,
            artifacts=[
                ArtifactOut(
                    format=a.format,
                    sha256=a.sha256,
                    size=a.size,
                    url=f"/api/v1/reports/{report.id}/download?format={a.format}&version={v.version}",
                )
                for a in arts
            ],
        )
        for v, arts in service.versions(session, report.id)
    ]
    return ReportOut(
        id=report.id,
        kind=report.kind,
        region_code=report.region_code,
        period=report.period,
        system_id=report.system_id,
        title=report.title,
        state=report.state,
        latest_version=report.latest_version,
        final_version=report.final_version,
        finalized_by=report.finalized_by,
        finalized_at=report.finalized_at,
        created_by=report.created_by,
        created_at=report.created_at,
        versions=versions,
    )


async def _body_text(request: Request) -> str:
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            "模板须为 UTF-8 文本 (template must be UTF-8 text)",
            errors=[{"field": "body", "line": None, "message": str(exc)}],
        ) from exc


# --- templates, schema, stateless rendering -------------------------------------------------


@router.get("/schema", summary="报告文档 JSON Schema (document schema)")
def schema() -> dict[str, Any]:
    """JSON Schema of the report document every format is rendered from."""
    return document_json_schema()


@router.get("/templates/{kind}", response_model=TemplateOut, summary="报告提纲模板 (outline)")
def get_template(
    kind: str, session: DbSession, identity: CurrentIdentity, region_code: str | None = None
) -> TemplateOut:
    """The outline in force for a region (its own, an ancestor's, or the platform default)."""
    region = region_code or identity.region
    identity.check_read(region)
    outline, ref = service.effective_outline(session, kind, region)
    return TemplateOut(
        kind=kind,
        region_code=ref["region_code"],
        version=ref["version"],
        source=ref["source"],
        sha256=ref["sha256"],
        text=outline.text,
    )


@router.put(
    "/templates/{kind}",
    response_model=TemplateOut,
    summary="修改报告提纲模板 (set outline)",
    openapi_extra={"requestBody": {"content": {"text/yaml": {"schema": {"type": "string"}}}}},
)
async def put_template(
    kind: str,
    request: Request,
    identity: CurrentIdentity,
    session: DbSession,
    node: NodeId,
    region_code: str | None = None,
) -> TemplateOut:
    """Store a new outline version for the region; errors name the template line (422)."""
    text = await _body_text(request)
    region = region_code or identity.region
    row = service.save_template(session, identity, node, kind, region, text)
    return TemplateOut(
        kind=kind,
        region_code=row.region_code,
        version=row.version,
        source="configured",
        sha256=row.sha256,
        text=row.text,
    )


@router.post(
    "/templates/{kind}/validate",
    summary="校验报告提纲模板 (validate outline)",
    openapi_extra={"requestBody": {"content": {"text/yaml": {"schema": {"type": "string"}}}}},
)
async def validate_template(
    kind: str, request: Request, _identity: CurrentIdentity
) -> dict[str, Any]:
    """Check an outline without storing it; errors name the template line (422)."""
    outline = service.validate_template(kind, await _body_text(request))
    return {
        "ok": True,
        "sha256": outline.sha256,
        "sections": [s.type for s in outline.spec.sections],
    }


@router.post("/render", summary="渲染报告文档 (render a document)")
def render_document(
    document: Annotated[dict[str, Any], Body()],
    _identity: CurrentIdentity,
    format: Annotated[str, Query(pattern="^(json|html|docx|pdf)$")] = "html",
) -> Response:
    """Render a report JSON document (e.g. a downloaded one) to HTML, DOCX or PDF."""
    missing = [
        k
        for k in ("schema", "kind", "title", "region", "period", "facts", "sections")
        if k not in document
    ]
    if missing:
        raise ValidationFailed(
            f"报告文档缺少字段: {', '.join(missing)} (document fields missing)",
            errors=[{"field": m, "message": "required"} for m in missing],
        )
    data = render(document, [format])[format]
    return Response(data, media_type=MEDIA_TYPES[format])


# --- reports ---------------------------------------------------------------------------------


@router.get("", response_model=list[ReportOut], summary="报告列表 (list reports)")
def list_reports(
    session: DbSession,
    identity: CurrentIdentity,
    region_code: str | None = None,
    kind: str | None = None,
    period: str | None = None,
    state: str | None = None,
) -> list[ReportOut]:
    """Reports of a region with their versions and downloadable files."""
    rows = service.list_reports(session, identity, region_code, kind, period, state)
    return [_report_out(session, r) for r in rows]


@router.get("/{report_id}", response_model=ReportOut, summary="报告详情 (one report)")
def get_report(report_id: int, session: DbSession, identity: CurrentIdentity) -> ReportOut:
    """One report with every version, its checksum and files."""
    return _report_out(session, service.get_report(session, identity, report_id))


@router.get("/{report_id}/document", summary="报告 JSON 文档 (the JSON document)")
def get_document(
    report_id: int, session: DbSession, identity: CurrentIdentity, version: int | None = None
) -> JSONResponse:
    """The JSON document of a version (default: the final, else the latest)."""
    report = service.get_report(session, identity, report_id)
    row = service.get_version(session, report, version)
    return JSONResponse(
        row.document,
        headers={"ETag": f'"{row.sha256}"', "X-Report-Version": str(row.version)},
    )


@router.get("/{report_id}/download", summary="下载报告 (download JSON/HTML/DOCX/PDF)")
def download(
    report_id: int,
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    format: Annotated[str, Query(pattern="^(json|html|docx|pdf)$")] = "pdf",
    version: int | None = None,
) -> Response:
    """A stored file of a version, verified against its SHA-256 before it is sent."""
    report = service.get_report(session, identity, report_id)
    data, art, row = service.read_artifact(session, _data_dir(request), report, version, format)
    name = f"{report.title}-v{row.version}.{format}"
    return Response(
        data,
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": (
                f'attachment; filename="report-{report.id}-v{row.version}.{format}"; '
                f"filename*=UTF-8''{quote(name)}"
            ),
            "ETag": f'"{art.sha256}"',
            "X-Checksum-SHA256": art.sha256,
            "X-Report-Version": str(row.version),
            "X-Report-State": report.state,
        },
    )


@router.post("/{report_id}/finalize", response_model=ReportOut, summary="定稿 (make final)")
def finalize(
    report_id: int,
    session: DbSession,
    identity: CurrentIdentity,
    node: NodeId,
    data: FinalizeIn | None = None,
) -> ReportOut:
    """Make a version final: immutable afterwards and queued for the parent node."""
    report = service.finalize(session, identity, node, report_id, data.version if data else None)
    return _report_out(session, report)


@router.delete("/{report_id}", status_code=204, summary="删除草稿报告 (delete a draft)")
def delete_report(
    report_id: int, request: Request, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> Response:
    """Delete a draft report and its files; a final report is immutable (409)."""
    service.delete_draft(session, identity, node, _data_dir(request), report_id)
    return Response(status_code=204)


# --- jobs ------------------------------------------------------------------------------------


@jobs_router.post("", response_model=JobOut, status_code=202, summary="生成报告 (queue a job)")
def create_job(
    data: JobIn, request: Request, session: DbSession, identity: CurrentIdentity
) -> JobOut:
    """Queue the generation of an annual, provincial or bulletin report."""
    job = service.create_job(session, identity, data)
    session.commit()  # the worker must see the job as soon as it is woken
    _wake(request)
    return JobOut.model_validate(job)


@jobs_router.get("", response_model=list[JobOut], summary="报告任务列表 (list jobs)")
def list_jobs(
    session: DbSession,
    identity: CurrentIdentity,
    region_code: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[JobOut]:
    """Recent generation jobs of a region."""
    return [
        JobOut.model_validate(j)
        for j in service.list_jobs(session, identity, region_code, status, limit)
    ]


@jobs_router.get("/{job_id}", response_model=JobOut, summary="报告任务状态 (job status)")
def get_job(job_id: int, session: DbSession, identity: CurrentIdentity) -> JobOut:
    """Status and progress (0–100) of a generation job; the report id once it succeeded."""
    return JobOut.model_validate(service.get_job(session, identity, job_id))


# --- bulletins -------------------------------------------------------------------------------


@bulletins_router.post("", response_model=JobOut, status_code=202, summary="生成季度通报")
def create_bulletin(
    data: BulletinIn, request: Request, session: DbSession, identity: CurrentIdentity
) -> JobOut:
    """Queue the quarterly rectification bulletin (通报) of a region (any reader may)."""
    job = service.create_job(
        session,
        identity,
        JobIn(
            kind="bulletin",
            region_code=data.region_code,
            period=data.period,
            system_id=None,
            formats=data.formats,
        ),
    )
    session.commit()
    _wake(request)
    return JobOut.model_validate(job)


@bulletins_router.get("", response_model=list[ReportOut], summary="季度通报列表 (bulletins)")
def list_bulletins(
    session: DbSession, identity: CurrentIdentity, region_code: str | None = None
) -> list[ReportOut]:
    """The bulletins issued for a region."""
    rows = service.list_reports(session, identity, region_code, "bulletin", None, None)
    return [_report_out(session, r) for r in rows]
