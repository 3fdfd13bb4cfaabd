"""Review of screened responses: list, read, reinstate or exclude, with an audit trail."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.survey.common import REVIEW_ROLES, audit
from services.survey.models import Campaign, Response, Score, TextAnswer
from services.survey.responses.screening import FLAG_LABELS
from services.survey.results.sums import add_response
from shared.dbtypes import utcnow
from shared.errors import Conflict, NotFound
from shared.identity import Identity

__all__ = ["get_response", "list_responses", "screening_summary", "set_status"]


def list_responses(
    session: Session,
    c: Campaign,
    *,
    status: str | None,
    flag: str | None,
    cursor: int | None,
    limit: int,
) -> list[Response]:
    """Responses of a campaign by id, optionally only one status or one flag."""
    stmt = select(Response).where(Response.campaign_id == c.id).order_by(Response.id)
    if status:
        stmt = stmt.where(Response.status == status)
    if cursor:
        stmt = stmt.where(Response.id > cursor)
    if not flag:
        return list(session.scalars(stmt.limit(limit)))
    # Flags are a short JSON list; filter while paging so that pages stay full.
    out: list[Response] = []
    for r in session.scalars(stmt.execution_options(yield_per=500)):
        if any(f.get("code") == flag for f in r.flags or []):
            out.append(r)
            if len(out) == limit:
                break
    return out


def get_response(session: Session, c: Campaign, response_id: int) -> Response:
    """One response of the campaign."""
    r = session.get(Response, response_id)
    if r is None or r.campaign_id != c.id:
        raise NotFound(f"答卷 {response_id} 不存在 (response not found)")
    return r


def set_status(
    session: Session,
    c: Campaign,
    response_id: int,
    action: str,
    note: str,
    identity: Identity,
) -> Response:
    """Reinstate a flagged response or exclude one by hand; its scores follow it."""
    identity.check_write(c.region_code, *REVIEW_ROLES)
    r = get_response(session, c, response_id)
    target = "included" if action == "reinstate" else "excluded"
    if r.status == target:
        raise Conflict(f"答卷已是 {target} 状态 (already {target})", slug="no-change")
    if action == "exclude":
        r.flags = [*(r.flags or []), {"code": "manual", "detail": {"by": identity.subject}}]
    before = r.status
    r.status = target
    r.reviewed_by = identity.subject
    r.reviewed_at = utcnow()
    r.review_note = note
    included = target == "included"
    session.execute(update(Score).where(Score.response_id == r.id).values(included=included))
    add_response(session, r.id, 1 if included else -1)
    session.execute(
        update(TextAnswer).where(TextAnswer.response_id == r.id).values(included=included)
    )
    session.flush()
    audit(
        session,
        identity,
        "response",
        r.id,
        action,
        campaign_id=c.id,
        before=before,
        after=target,
        note=note,
        flags=[f.get("code") for f in r.flags or []],
    )
    return r


def screening_summary(session: Session, c: Campaign) -> dict[str, Any]:
    """How many responses each screen flagged, and how many are in or out now."""
    counts: Counter[str] = Counter()
    status: Counter[str] = Counter()
    reinstated = 0
    stmt = select(Response.status, Response.flags, Response.reviewed_by).where(
        Response.campaign_id == c.id
    )
    for st, flags, reviewed_by in session.execute(stmt.execution_options(yield_per=2000)):
        status[st] += 1
        for code in {f.get("code") for f in flags or []}:
            counts[code] += 1
        if st == "included" and flags and reviewed_by:
            reinstated += 1
    return {
        "campaign_id": c.id,
        "received": sum(status.values()),
        "included": status["included"],
        "excluded": status["excluded"],
        "reinstated": reinstated,
        "flags": [
            {"code": code, "label": FLAG_LABELS.get(code, code), "responses": counts[code]}
            for code in FLAG_LABELS
            if counts[code]
        ],
    }
