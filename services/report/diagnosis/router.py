"""Diagnosis (诊断): rules in force and runs that produce the problem list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from starlette.concurrency import run_in_threadpool

from services.report.configs import effective_config, save_config
from services.report.deps import NodeId
from services.report.diagnosis import service
from services.report.diagnosis.rules import DiagnosisConfig
from services.report.diagnosis.schemas import DiagnosisRunIn, DiagnosisRunOut
from services.report.reports.gather import diagnosis_input
from services.report.sources import SiblingData
from shared.db import DbSession
from shared.identity import CurrentIdentity

router = APIRouter(prefix="/api/v1/diagnosis", tags=["diagnosis 诊断"])


@router.get("/rules", summary="诊断规则 (rules in force)")
def get_rules(
    session: DbSession, identity: CurrentIdentity, region_code: str | None = None
) -> dict[str, Any]:
    """The diagnosis rules in force for a region and where they were set."""
    region = region_code or identity.region
    identity.check_read(region)
    cfg, source = effective_config(session, "diagnosis", region, DiagnosisConfig)
    return {"rules": cfg.model_dump(), "source": source}


@router.put("/rules", summary="设置诊断规则 (set rules)")
def put_rules(
    body: Annotated[dict[str, Any], Body()],
    session: DbSession,
    identity: CurrentIdentity,
    node: NodeId,
    region_code: str | None = None,
) -> dict[str, Any]:
    """Store a new version of the region's diagnosis rules (applies to its whole area)."""
    region = region_code or identity.region
    identity.check_write(region, "admin")
    cfg, version = save_config(session, "diagnosis", region, body, DiagnosisConfig, identity, node)
    return {"rules": cfg.model_dump(), "version": version}


@router.post("/run", response_model=DiagnosisRunOut, summary="运行诊断 (run diagnosis)")
async def run(
    data: DiagnosisRunIn,
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    node: NodeId,
) -> DiagnosisRunOut:
    """Read evaluations and survey results, apply the rules, merge into the problem list."""
    region = data.region_code or identity.region
    identity.check_write(region, "admin", "data_entry")
    async with SiblingData(request.app.state.peers, identity) as src:
        inp = await diagnosis_input(src, session, region, data.period, data.system_id)
        notes = list(src.notes)
    result = await run_in_threadpool(service.run_diagnosis, session, identity, node, inp, notes)
    return DiagnosisRunOut.model_validate(result)
