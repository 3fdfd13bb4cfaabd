"""Reports: outline templates, generation jobs, versions, artifacts and finalisation."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.report.audit import audit, publish
from services.report.models import Report, ReportArtifact, ReportJob, ReportTemplate, ReportVersion
from services.report.reports import gather
from services.report.reports.document import build_document
from services.report.reports.outline import (
    KINDS,
    Outline,
    default_outline_text,
    parse_outline,
)
from services.report.reports.render import FORMATS, document_bytes, render
from services.report.reports.samples import sample_context
from services.report.reports.schemas import JobIn
from services.report.sources import SiblingData
from shared.db import Database
from shared.dbtypes import utcnow
from shared.errors import Conflict, NotFound, ProblemError, ValidationFailed
from shared.identity import Identity
from shared.peers import Peers
from shared.regions import contains, is_valid_code, level_of

__all__ = [
    "ArtifactCorrupt",
    "claim_next",
    "create_job",
    "delete_draft",
    "effective_outline",
    "finalize",
    "get_job",
    "get_report",
    "list_reports",
    "read_artifact",
    "run_job",
    "save_template",
]

log = logging.getLogger("checkup.report.jobs")
PERIOD_RE = {"annual": r"^\d{4}$", "province": r"^\d{4}$", "bulletin": r"^\d{4}Q[1-4]$"}
WRITE_ROLES = ("admin", "data_entry", "reviewer")
STALE_AFTER = timedelta(minutes=10)


class ArtifactCorrupt(ProblemError):
    status = 500
    slug = "artifact-corrupt"
    title = "报告文件校验失败 (stored artifact failed its checksum)"


class ReportFinal(Conflict):
    slug = "report-final"
    title = "报告已定稿，不可更改 (final report is immutable)"


# --- outline templates ---------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValidationFailed(
            f"未知的报告类型 {kind} (unknown report kind)",
            errors=[{"field": "kind", "message": f"one of {', '.join(KINDS)}"}],
        )


def effective_outline(
    session: Session, kind: str, region_code: str
) -> tuple[Outline, dict[str, Any]]:
    """The outline in force for a region: nearest ancestor-or-self's latest, else the default."""
    _check_kind(kind)
    rows = [
        t
        for t in session.scalars(select(ReportTemplate).where(ReportTemplate.kind == kind))
        if contains(t.region_code, region_code)
    ]
    if rows:
        best = max(rows, key=lambda t: (len(t.region_code.rstrip("0")), t.version))
        outline = parse_outline(best.text, kind=kind)
        return outline, {
            "source": "configured",
            "region_code": best.region_code,
            "version": best.version,
            "sha256": best.sha256,
        }
    outline = parse_outline(default_outline_text(kind), kind=kind)
    return outline, {
        "source": "default",
        "region_code": None,
        "version": 0,
        "sha256": outline.sha256,
    }


def validate_template(kind: str, text: str) -> Outline:
    """Parse and dry-run an outline; errors name the template line."""
    _check_kind(kind)
    return parse_outline(text, kind=kind, sample=sample_context(kind))


def save_template(
    session: Session, identity: Identity, node: str, kind: str, region_code: str, text: str
) -> ReportTemplate:
    """Store a new version of a region's outline for a report kind (validated first)."""
    identity.check_write(region_code, "admin")
    outline = validate_template(kind, text)
    last = session.scalar(
        select(func.max(ReportTemplate.version)).where(
            ReportTemplate.kind == kind, ReportTemplate.region_code == region_code
        )
    )
    row = ReportTemplate(
        kind=kind,
        region_code=region_code,
        version=(last or 0) + 1,
        text=text,
        sha256=outline.sha256,
        created_by=identity.subject,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        "template",
        row.id,
        "save",
        identity,
        node,
        {"kind": kind, "version": row.version, "sha256": row.sha256},
    )
    return row


# --- jobs ------------------------------------------------------------------------------------


def _report_key(kind: str, region_code: str, period: str, system_id: int) -> Any:
    return select(Report).where(
        Report.kind == kind,
        Report.region_code == region_code,
        Report.period == period,
        Report.system_id == system_id,
    )


def create_job(session: Session, identity: Identity, data: JobIn) -> ReportJob:
    """Queue the generation of a report; the worker picks it up."""
    _check_kind(data.kind)
    errors = []
    if not is_valid_code(data.region_code) or len(data.region_code) != 6:
        errors.append({"field": "region_code", "message": "a 6-digit province/city/county code"})
    if not re.match(PERIOD_RE[data.kind], data.period):
        want = "YYYYQn (e.g. 2026Q3)" if data.kind == "bulletin" else "YYYY"
        errors.append({"field": "period", "message": f"{data.kind} period must be {want}"})
    if data.kind != "bulletin" and not data.system_id:
        errors.append({"field": "system_id", "message": "required for annual/province reports"})
    if errors:
        raise ValidationFailed(
            f"报告生成参数有误: {errors[0]['field']} (invalid report request)", errors=errors
        )
    if data.kind == "province" and level_of(data.region_code).value != "province":
        raise ValidationFailed(
            "省级综合报告只能按省生成 (province reports are for provinces)",
            errors=[{"field": "region_code", "message": "not a province"}],
        )
    if data.kind == "bulletin":
        identity.check_read(data.region_code)  # anyone with access may issue a bulletin
    else:
        identity.check_write(data.region_code, *WRITE_ROLES)
    system_id = 0 if data.kind == "bulletin" else int(data.system_id or 0)
    report = session.scalars(
        _report_key(data.kind, data.region_code, data.period, system_id)
    ).first()
    if report is not None and report.state == "final":
        raise ReportFinal(
            f"报告 #{report.id} 已定稿（第 {report.final_version} 版），不能重新生成 "
            "(the report is final)"
        )
    job = ReportJob(
        kind=data.kind,
        region_code=data.region_code,
        period=data.period,
        system_id=system_id,
        formats=list(dict.fromkeys(["json", *data.formats])),
        status="queued",
        progress=0,
        step="排队中 (queued)",
        requester=identity.as_claims(),
        created_by=identity.subject,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, identity: Identity, job_id: int) -> ReportJob:
    job = session.get(ReportJob, job_id)
    if job is None:
        raise NotFound(f"报告任务不存在: {job_id} (unknown job)", slug="unknown-job")
    identity.check_read(job.region_code)
    return job


def list_jobs(
    session: Session, identity: Identity, region_code: str | None, status: str | None, limit: int
) -> list[ReportJob]:
    region = region_code or identity.region
    identity.check_read(region)
    stmt = select(ReportJob).where(ReportJob.region_code == region)
    if status:
        stmt = stmt.where(ReportJob.status == status)
    return list(session.scalars(stmt.order_by(ReportJob.id.desc()).limit(limit)))


def claim_next(db: Database) -> int | None:
    """Atomically take the oldest queued job (safe with several workers or replicas)."""
    with db.session(write=True) as session:
        for job_id in session.scalars(
            select(ReportJob.id).where(ReportJob.status == "queued").order_by(ReportJob.id).limit(5)
        ).all():
            taken = session.execute(
                update(ReportJob)
                .where(ReportJob.id == job_id, ReportJob.status == "queued")
                .values(status="running", started_at=utcnow(), step="开始 (started)", progress=1)
            ).rowcount  # type: ignore[attr-defined]
            if taken:
                return int(job_id)
    return None


def requeue_interrupted(db: Database, stale_after: timedelta = STALE_AFTER) -> int:
    """Jobs left running by a stopped process go back to the queue.

    Only jobs running for longer than ``stale_after``: another replica may still be working
    on a younger one (no report takes that long; see benchmarks/reports.py).
    """
    with db.session(write=True) as session:
        return int(
            session.execute(
                update(ReportJob)
                .where(ReportJob.status == "running", ReportJob.started_at < utcnow() - stale_after)
                .values(status="queued", step="重新排队 (requeued after restart)", progress=0)
            ).rowcount  # type: ignore[attr-defined]
        )


def _progress(db: Database, job_id: int, progress: int, step: str) -> None:
    # Own short transaction: the status endpoint sees progress while the job runs.
    with db.session(write=True) as session:
        session.execute(
            update(ReportJob).where(ReportJob.id == job_id).values(progress=progress, step=step)
        )


def _identity(claims: dict[str, Any]) -> Identity:
    return Identity(
        subject=claims["sub"],
        kind=claims["kind"],
        roles=frozenset(claims["roles"]),
        region=claims["region"],
        name=claims.get("name", ""),
        node=claims.get("node", ""),
        extra=claims.get("extra") or {},
    )


async def _gather(
    src: SiblingData, session: Session, identity: Identity, job: ReportJob, today: date
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    head = await gather.header(src, job.region_code, job.system_id)
    if job.kind == "annual":
        facts, available = await gather.annual_facts(
            src, session, identity, job.region_code, job.period, job.system_id, today
        )
    elif job.kind == "province":
        facts, available = await gather.province_facts(
            src, session, identity, job.region_code, job.period, job.system_id, today
        )
    else:
        facts, available = await gather.bulletin_facts(
            src, session, identity, job.region_code, job.period, today
        )
    return head, facts, available


async def _document(
    session: Session,
    peers: Peers,
    identity: Identity,
    node: str,
    job: ReportJob,
    today: date | None,
) -> dict[str, Any]:
    outline, ref = effective_outline(session, job.kind, job.region_code)
    async with SiblingData(peers, identity) as src:
        head, facts, available = await _gather(
            src, session, identity, job, today or datetime.now(UTC).date()
        )
        notes = list(src.notes)
    return build_document(
        kind=job.kind,
        outline=outline,
        template_ref=ref,
        region=head["region"],
        period=job.period,
        system=head["system"],
        facts=facts,
        data_available=available,
        notes=notes,
        node=node,
        generated_by=identity.subject,
    )


def _artifact_dir(data_dir: Path, report_id: int) -> Path:
    path = data_dir / "reports" / str(report_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def store_version(
    session: Session,
    identity: Identity,
    node: str,
    data_dir: Path,
    doc: dict[str, Any],
    files: dict[str, bytes],
    job_id: int | None = None,
    system_id: int = 0,
) -> tuple[Report, ReportVersion]:
    """Save a new version of the report (document + files with SHA-256); refuses final ones."""
    kind, region, period = doc["kind"], doc["region"]["code"], doc["period"]
    report = session.scalars(_report_key(kind, region, period, system_id)).first()
    if report is None:
        report = Report(
            kind=kind,
            region_code=region,
            period=period,
            system_id=system_id,
            title=doc["title"],
            state="draft",
            latest_version=0,
            origin_node=node,
            created_by=identity.subject,
        )
        session.add(report)
        session.flush()
    if report.state == "final":
        raise ReportFinal(f"报告 #{report.id} 已定稿，不能增加新版本 (the report is final)")
    report.latest_version += 1
    report.title = doc["title"]
    doc_bytes = files.get("json") or document_bytes(doc)
    version = ReportVersion(
        report_id=report.id,
        version=report.latest_version,
        document=doc,
        sha256=hashlib.sha256(doc_bytes).hexdigest(),
        template_ref=f"{doc['template'].get('source')}:{doc['template'].get('region_code') or ''}"
        f":v{doc['template'].get('version')}",
        job_id=job_id,
        created_by=identity.subject,
    )
    session.add(version)
    session.flush()
    folder = _artifact_dir(data_dir, report.id)
    for fmt, data in files.items():
        path = folder / f"v{version.version}.{fmt}"
        _write_atomic(path, data)
        session.add(
            ReportArtifact(
                version_id=version.id,
                format=fmt,
                path=str(path.relative_to(data_dir)),
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
            )
        )
    session.flush()
    audit(
        session,
        "report",
        report.id,
        "generate",
        identity,
        node,
        {"version": version.version, "sha256": version.sha256, "formats": sorted(files)},
    )
    return report, version


def run_job(db: Database, peers: Peers, node: str, data_dir: Path, job_id: int) -> None:
    """Run one claimed job to the end: gather, build, render every format, store."""
    with db.session() as session:
        job = session.get(ReportJob, job_id)
        assert job is not None
        identity = _identity(job.requester)
        formats = list(job.formats)
        snapshot = ReportJob(
            kind=job.kind, region_code=job.region_code, period=job.period, system_id=job.system_id
        )
    try:
        _progress(db, job_id, 10, "采集数据 (gathering data)")
        with db.session() as session:
            doc = asyncio.run(_document(session, peers, identity, node, snapshot, None))
        _progress(db, job_id, 40, "生成文档 (document built)")
        done = 0

        def on_format(fmt: str) -> None:
            nonlocal done
            _progress(db, job_id, 40 + int(50 * done / len(formats)), f"渲染 {fmt} (rendering)")
            done += 1

        files = render(doc, formats, on_format)
        _progress(db, job_id, 92, "保存 (storing)")
        with db.session(write=True) as session:
            report, version = store_version(
                session, identity, node, data_dir, doc, files, job_id, snapshot.system_id
            )
            session.execute(
                update(ReportJob)
                .where(ReportJob.id == job_id)
                .values(
                    status="succeeded",
                    progress=100,
                    step="完成 (done)",
                    report_id=report.id,
                    version=version.version,
                    finished_at=utcnow(),
                )
            )
    except Exception as exc:
        if isinstance(exc, ProblemError):
            error = exc.to_problem()
        else:
            log.exception("report job %s failed", job_id)
            error = {
                "type": "https://checkup.example.org/problems/internal-error",
                "title": "报告生成失败 (report generation failed)",
                "status": 500,
                "detail": f"{type(exc).__name__}: {exc}",
            }
        with db.session(write=True) as session:
            session.execute(
                update(ReportJob)
                .where(ReportJob.id == job_id)
                .values(status="failed", step="失败 (failed)", error=error, finished_at=utcnow())
            )


# --- reports, versions, artifacts ----------------------------------------------------------


def get_report(session: Session, identity: Identity, report_id: int) -> Report:
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound(f"报告不存在: {report_id} (unknown report)", slug="unknown-report")
    identity.check_read(report.region_code)
    return report


def list_reports(
    session: Session,
    identity: Identity,
    region_code: str | None,
    kind: str | None,
    period: str | None,
    state: str | None,
) -> list[Report]:
    region = region_code or identity.region
    identity.check_read(region)
    stmt = select(Report).where(Report.region_code == region)
    for column, value in ((Report.kind, kind), (Report.period, period), (Report.state, state)):
        if value:
            stmt = stmt.where(column == value)
    return list(session.scalars(stmt.order_by(Report.id)))


def versions(session: Session, report_id: int) -> list[tuple[ReportVersion, list[ReportArtifact]]]:
    rows = session.scalars(
        select(ReportVersion)
        .where(ReportVersion.report_id == report_id)
        .order_by(ReportVersion.version)
    ).all()
    arts: dict[int, list[ReportArtifact]] = {v.id: [] for v in rows}
    if rows:
        for a in session.scalars(
            select(ReportArtifact)
            .where(ReportArtifact.version_id.in_(list(arts)))
            .order_by(ReportArtifact.format)
        ):
            arts[a.version_id].append(a)
    return [(v, arts[v.id]) for v in rows]


def get_version(session: Session, report: Report, version: int | None) -> ReportVersion:
    number = version or report.final_version or report.latest_version
    row = session.scalars(
        select(ReportVersion).where(
            ReportVersion.report_id == report.id, ReportVersion.version == number
        )
    ).first()
    if row is None:
        raise NotFound(
            f"报告 #{report.id} 没有第 {number} 版 (no such version)", slug="unknown-version"
        )
    return row


def read_artifact(
    session: Session, data_dir: Path, report: Report, version: int | None, fmt: str
) -> tuple[bytes, ReportArtifact, ReportVersion]:
    """The stored file of a version in one format, verified against its SHA-256."""
    if fmt not in FORMATS:
        raise ValidationFailed(
            f"未知格式 {fmt} (unknown format)",
            errors=[{"field": "format", "message": f"one of {', '.join(FORMATS)}"}],
        )
    row = get_version(session, report, version)
    art = session.scalars(
        select(ReportArtifact).where(
            ReportArtifact.version_id == row.id, ReportArtifact.format == fmt
        )
    ).first()
    if art is None:
        raise NotFound(
            f"第 {row.version} 版没有 {fmt} 格式 (format not generated)", slug="no-artifact"
        )
    data = (data_dir / art.path).read_bytes()
    if hashlib.sha256(data).hexdigest() != art.sha256:
        raise ArtifactCorrupt(
            f"报告文件 {art.path} 与登记的校验值不符 (checksum mismatch): 请重新生成或从备份恢复"
        )
    return data, art, row


def delete_draft(
    session: Session, identity: Identity, node: str, data_dir: Path, report_id: int
) -> None:
    """Delete a draft report, its versions and files; final reports are immutable."""
    report = get_report(session, identity, report_id)
    identity.check_write(report.region_code, "admin")
    if report.state == "final":
        raise ReportFinal(f"报告 #{report.id} 已定稿，不能删除 (a final report cannot be deleted)")
    paths = []
    for v, arts in versions(session, report.id):
        for a in arts:
            paths.append(data_dir / a.path)
            session.delete(a)
        session.flush()
        session.delete(v)
    session.flush()
    audit(
        session,
        "report",
        report.id,
        "delete",
        identity,
        node,
        {"kind": report.kind, "period": report.period, "versions": report.latest_version},
    )
    session.delete(report)
    session.flush()
    for path in paths:
        path.unlink(missing_ok=True)


def finalize(
    session: Session, identity: Identity, node: str, report_id: int, version: int | None
) -> Report:
    """Make a version final: immutable from now on, and queued to go up the tiers."""
    report = get_report(session, identity, report_id)
    identity.check_write(report.region_code, "admin", "reviewer")
    if report.state == "final":
        raise ReportFinal(f"报告 #{report.id} 已于 {report.finalized_at} 定稿 (already final)")
    row = get_version(session, report, version)
    report.state = "final"
    report.final_version = row.version
    report.finalized_by = identity.subject
    report.finalized_at = utcnow()
    session.flush()
    arts = {
        a.format: {"sha256": a.sha256, "size": a.size}
        for v, al in versions(session, report.id)
        if v.id == row.id
        for a in al
    }
    audit(session, "report", report.id, "finalize", identity, node, {"version": row.version})
    publish(
        session,
        node,
        "report",
        f"{node}:report:{report.kind}:{report.region_code}:{report.period}:{report.system_id}",
        {
            "kind": report.kind,
            "region_code": report.region_code,
            "period": report.period,
            "system_id": report.system_id,
            "version": row.version,
            "sha256": row.sha256,
            "artifacts": arts,
            "finalized_by": identity.subject,
            "finalized_at": report.finalized_at.isoformat() if report.finalized_at else None,
            "document": row.document,
        },
    )
    return report
