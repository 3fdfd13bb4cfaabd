"""Diagnosis runs: read the evidence, apply the region's rules, store the merged problems."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.report.configs import effective_config
from services.report.diagnosis.rules import DiagnosisConfig, DiagnosisInput, diagnose
from services.report.problems.service import apply_findings
from shared.identity import Identity

__all__ = ["run_diagnosis"]


def run_diagnosis(
    session: Session,
    identity: Identity,
    node: str,
    inp: DiagnosisInput,
    notes: list[str],
) -> dict[str, Any]:
    """Diagnose the gathered evidence and merge the findings into the problem list."""
    identity.check_write(inp.region_code, "admin", "data_entry")
    cfg, source = effective_config(session, "diagnosis", inp.region_code, DiagnosisConfig)
    findings = diagnose(cfg, inp)
    result = apply_findings(
        session,
        identity,
        node,
        region_code=inp.region_code,
        period=inp.period,
        system_id=inp.system_id,
        findings=findings,
    )
    return {
        "region_code": inp.region_code,
        "period": inp.period,
        "system_id": inp.system_id,
        "evaluations_read": len(inp.evaluations),
        "satisfaction_items_read": len(inp.satisfaction),
        "open_answers_read": len(inp.texts)
        + sum(
            {
                str(t.get("region_code")): int(t.get("answers") or 0) for t in inp.theme_counts
            }.values()
        ),
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "problem_ids": result.problem_ids,
        "findings": [
            {
                "region_code": f.region_code,
                "dedupe_key": f.dedupe_key,
                "category": f.category,
                "title": f.title,
                "severity": f.severity,
                "rules": f.rules,
            }
            for f in findings
        ],
        "config": source,
        "notes": notes,
    }
