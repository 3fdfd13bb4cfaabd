"""The problem list: storing diagnosis findings (merged, set-based), queries, manual entries."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.report.audit import audit, publish
from services.report.diagnosis.rules import Finding
from services.report.models import AuditEvent, Problem
from services.report.problems.schemas import ProblemIn
from shared.dbtypes import utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.identity import Identity
from shared.regions import is_valid_code, prefix_of

__all__ = [
    "ApplyResult",
    "apply_findings",
    "create_problem",
    "dismiss_problem",
    "get_problem",
    "list_problems",
    "problem_payload",
]

EDIT_ROLES = ("admin", "data_entry")


@dataclass
class ApplyResult:
    created: int
    updated: int
    unchanged: int
    problem_ids: list[int]


def problem_payload(p: Problem) -> dict[str, Any]:
    """The state of a problem as it goes up the tiers."""
    return {
        "id": p.id,
        "region_code": p.region_code,
        "period": p.period,
        "system_id": p.system_id,
        "dedupe_key": p.dedupe_key,
        "category": p.category,
        "title": p.title,
        "description": p.description,
        "indicator_code": p.indicator_code,
        "object_type": p.object_type,
        "object_id": p.object_id,
        "severity": p.severity,
        "rules": p.rules,
        "evidence": p.evidence,
        "status": p.status,
        "updated_at": p.updated_at.isoformat() if p.updated_at else None,
    }


def apply_findings(
    session: Session,
    identity: Identity,
    node: str,
    *,
    region_code: str,
    period: str,
    system_id: int | None,
    findings: Sequence[Finding],
) -> ApplyResult:
    """Merge findings into the stored problem list: new ones inserted in one statement,
    known ones (same region, period and key) updated in place, nothing duplicated."""
    identity.check_write(region_code, *EDIT_ROLES)
    existing = {
        (p.region_code, p.dedupe_key): p
        for p in session.scalars(
            select(Problem).where(
                Problem.period == period,
                Problem.region_code.startswith(prefix_of(region_code)),
            )
        )
    }
    now = utcnow()
    new_rows: list[dict[str, Any]] = []
    updated: list[Problem] = []
    unchanged = 0
    for f in findings:
        cur = existing.get((f.region_code, f.dedupe_key))
        if cur is None:
            new_rows.append(
                {
                    "region_code": f.region_code,
                    "period": period,
                    "system_id": system_id,
                    "dedupe_key": f.dedupe_key,
                    "category": f.category,
                    "title": f.title[:300],
                    "description": f.description,
                    "indicator_code": f.indicator_code,
                    "object_type": f.object_type,
                    "object_id": f.object_id,
                    "severity": f.severity,
                    "rules": f.rules,
                    "evidence": f.evidence,
                    "status": "open",
                    "origin_node": node,
                    "created_by": identity.subject,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            continue
        if (cur.evidence, cur.severity, sorted(cur.rules)) == (
            f.evidence,
            f.severity,
            sorted(f.rules),
        ):
            unchanged += 1
            continue
        before = {"severity": cur.severity, "rules": cur.rules}
        cur.title, cur.description, cur.category = f.title[:300], f.description, f.category
        cur.severity, cur.rules, cur.evidence = f.severity, f.rules, f.evidence
        cur.updated_at = now
        updated.append(cur)
        audit(
            session,
            "problem",
            cur.id,
            "rediagnose",
            identity,
            node,
            {"before": before, "after": {"severity": f.severity, "rules": f.rules}},
        )
    if new_rows:
        session.execute(insert(Problem), new_rows)
    session.flush()
    keys = {(r["region_code"], r["dedupe_key"]) for r in new_rows}
    created = (
        []
        if not keys
        else [
            p
            for p in session.scalars(
                select(Problem).where(
                    Problem.period == period,
                    Problem.region_code.startswith(prefix_of(region_code)),
                    Problem.dedupe_key.in_({k for _, k in keys}),
                )
            )
            if (p.region_code, p.dedupe_key) in keys
        ]
    )
    if created:
        session.execute(
            insert(AuditEvent),
            [
                {
                    "entity": "problem",
                    "entity_id": p.id,
                    "action": "diagnose",
                    "actor": identity.subject,
                    "actor_region": identity.region,
                    "node": node,
                    "at": now,
                    "detail": {"rules": p.rules, "severity": p.severity},
                }
                for p in created
            ],
        )
    for p in [*created, *updated]:
        publish(session, node, "problem", f"{node}:problem:{p.id}", problem_payload(p))
    ids = sorted(p.id for p in created) + [p.id for p in updated]
    return ApplyResult(len(created), len(updated), unchanged, ids)


def get_problem(session: Session, identity: Identity, problem_id: int) -> Problem:
    """One problem, if the caller may read its region."""
    problem = session.get(Problem, problem_id)
    if problem is None:
        raise NotFound(f"问题不存在: {problem_id} (unknown problem)", slug="unknown-problem")
    identity.check_read(problem.region_code)
    return problem


def list_problems(
    session: Session,
    identity: Identity,
    *,
    region_code: str | None = None,
    period: str | None = None,
    severity: str | None = None,
    status: str | None = None,
    category: str | None = None,
    indicator_code: str | None = None,
    cursor: int | None = None,
    limit: int = 100,
) -> list[Problem]:
    """Problems in a region's subtree, most severe first within the page order by id."""
    region = region_code or identity.region
    identity.check_read(region)
    stmt = select(Problem).where(Problem.region_code.startswith(prefix_of(region)))
    for column, value in (
        (Problem.period, period),
        (Problem.severity, severity),
        (Problem.status, status),
        (Problem.category, category),
        (Problem.indicator_code, indicator_code),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if cursor is not None:
        stmt = stmt.where(Problem.id > cursor)
    return list(session.scalars(stmt.order_by(Problem.id).limit(limit)))


def create_problem(session: Session, identity: Identity, node: str, data: ProblemIn) -> Problem:
    """Enter a problem by hand (with its evidence)."""
    if not is_valid_code(data.region_code):
        raise ValidationFailed(
            f"区划代码格式错误: {data.region_code}",
            errors=[{"field": "region_code", "message": "6, 9 or 12 digits"}],
        )
    identity.check_write(data.region_code, *EDIT_ROLES)
    digest = hashlib.sha256(f"{data.title}|{data.object_id or ''}".encode()).hexdigest()[:16]
    key = f"manual:{digest}"
    if session.scalar(
        select(Problem.id).where(
            Problem.region_code == data.region_code,
            Problem.period == data.period,
            Problem.dedupe_key == key,
        )
    ):
        raise Conflict("同一区划、同一期已有相同问题 (duplicate problem)", slug="duplicate-problem")
    problem = Problem(
        region_code=data.region_code,
        period=data.period,
        dedupe_key=key,
        category="manual",
        title=data.title,
        description=data.description,
        indicator_code=data.indicator_code,
        object_type=data.object_type,
        object_id=data.object_id,
        severity=data.severity,
        rules=["manual"],
        evidence=data.evidence,
        status="open",
        origin_node=node,
        created_by=identity.subject,
    )
    session.add(problem)
    session.flush()
    audit(session, "problem", problem.id, "create", identity, node, {"title": data.title})
    publish(session, node, "problem", f"{node}:problem:{problem.id}", problem_payload(problem))
    return problem


def dismiss_problem(
    session: Session, identity: Identity, node: str, problem_id: int, reason: str
) -> Problem:
    """Mark a problem as not to be rectified (with the reason); only while it has no task."""
    problem = get_problem(session, identity, problem_id)
    identity.check_write(problem.region_code, "admin", "reviewer")
    if problem.status != "open":
        raise Conflict(
            f"问题状态为 {problem.status}，只有待整改的问题可以撤销 (only open problems)",
            slug="problem-not-open",
        )
    problem.status = "dismissed"
    problem.updated_at = utcnow()
    audit(session, "problem", problem.id, "dismiss", identity, node, {"reason": reason})
    publish(session, node, "problem", f"{node}:problem:{problem.id}", problem_payload(problem))
    return problem
