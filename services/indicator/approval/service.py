"""Approval of a region's values for one system and period: the state machine.

draft → submitted → approved | rejected; rejected → submitted again; approved → draft
only by a reviewer's unlock with a reason. Values under a submitted or approved
submission (its region and every region below it) are frozen. Every transition is a
submission_events row: who, from which region, why, when.

Across tiers (docs/federation.md §11): the node owning the region's data runs this state
machine and sends each state up; upper nodes keep a mirror (``origin_node`` set) and
review it: the direct parent approves what the owner approved (→ reviewed, or accepted
at a province), the province accepts a county's only after its city reviewed it; a
rejection reopens the owner's submission with the reason. Decisions go down to the owner
and apply there; reviewed and accepted data stays frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.indicator.approval.models import Submission, SubmissionEvent
from services.indicator.regions.service import get_region
from services.indicator.sync.outgoing import bound_node
from services.indicator.sync.submissions import publish_review, record_submission
from services.indicator.systems.models import IndicatorSystem
from services.indicator.values.bulk import LockedScope
from services.indicator.values.dialect import bulk_dialect
from services.indicator.values.models import IndicatorValue
from shared.dbtypes import utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.identity import Identity
from shared.regions import prefix_of, tier_of

__all__ = [
    "ACTIONS",
    "FROZEN_STATES",
    "SubmissionView",
    "apply_review",
    "list_submissions",
    "locked_scopes",
    "mirror_state",
    "submission_view",
    "transition",
]

FROZEN_STATES = ("submitted", "approved", "reviewed", "accepted")
STATE_NAMES = {
    "draft": "草稿",
    "submitted": "已提交",
    "approved": "已审核通过",
    "rejected": "已退回",
    "reviewed": "上级已审核",
    "accepted": "省级已验收",
}
_TIER_RANK = {"province": 0, "city": 1, "county": 2}
_TIER_ZH = {"province": "省级", "city": "市级", "county": "县级"}


@dataclass(frozen=True)
class Action:
    name: str
    from_states: tuple[str, ...]
    to_state: str
    roles: tuple[str, ...]
    reason_required: bool
    title: str


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "submit", ("draft", "rejected"), "submitted", ("data_entry", "admin"), False, "提交"
        ),
        Action("approve", ("submitted",), "approved", ("reviewer",), False, "审核通过"),
        Action("reject", ("submitted",), "rejected", ("reviewer",), True, "退回"),
        Action("unlock", ("approved",), "draft", ("reviewer",), True, "解锁"),
    )
}


@dataclass
class SubmissionView:
    """A submission's state (draft when never touched), its events and what it covers."""

    submission: Submission | None
    system_id: int
    region_code: str
    period: str
    events: list[SubmissionEvent]
    values: int
    flagged: int


def locked_scopes(session: Session, system_id: int, period: str) -> list[LockedScope]:
    """Submissions whose values are frozen (submitted or approved) for a system and period."""
    subs = session.scalars(
        select(Submission).where(
            Submission.system_id == system_id,
            Submission.period == period,
            Submission.state.in_(FROZEN_STATES),
        )
    )
    return [LockedScope(s.id, s.region_code, prefix_of(s.region_code), s.state) for s in subs]


def _check_key(session: Session, system_id: int, region_code: str, period: str) -> IndicatorSystem:
    from services.indicator.values.service import check_period

    system = session.get(IndicatorSystem, system_id)
    if system is None:
        raise NotFound(
            f"指标体系 {system_id} 不存在 (unknown indicator system)", slug="unknown-system"
        )
    get_region(session, region_code)
    check_period(period)
    return system


def _find(session: Session, system_id: int, region_code: str, period: str) -> Submission | None:
    return session.scalars(
        select(Submission).where(
            Submission.system_id == system_id,
            Submission.region_code == region_code,
            Submission.period == period,
        )
    ).first()


def _counts(session: Session, system_id: int, region_code: str, period: str) -> tuple[int, int]:
    from services.indicator.values.service import flagged_filter

    in_scope = (
        (IndicatorValue.system_id == system_id)
        & (IndicatorValue.period == period)
        & IndicatorValue.region_code.startswith(prefix_of(region_code))
    )
    values = session.scalar(select(func.count()).where(in_scope)) or 0
    flagged = session.scalar(select(func.count()).where(in_scope & flagged_filter())) or 0
    return int(values), int(flagged)


def _events(session: Session, submission: Submission | None) -> list[SubmissionEvent]:
    if submission is None:
        return []
    return list(
        session.scalars(
            select(SubmissionEvent)
            .where(SubmissionEvent.submission_id == submission.id)
            .order_by(SubmissionEvent.id)
        )
    )


def submission_view(
    session: Session, identity: Identity, system_id: int, region_code: str, period: str
) -> SubmissionView:
    """The state of one region's submission (draft if never submitted) with its events."""
    _check_key(session, system_id, region_code, period)
    identity.check_read(region_code)
    sub = _find(session, system_id, region_code, period)
    values, flagged = _counts(session, system_id, region_code, period)
    return SubmissionView(
        sub, system_id, region_code, period, _events(session, sub), values, flagged
    )


def _get_or_create(session: Session, system_id: int, region_code: str, period: str) -> Submission:
    found = session.scalars(
        select(Submission)
        .where(
            Submission.system_id == system_id,
            Submission.region_code == region_code,
            Submission.period == period,
        )
        .with_for_update()
    ).first()
    if found is not None:
        return found
    sub = Submission(
        system_id=system_id, region_code=region_code, period=period, state="draft", locked=False
    )
    try:
        with session.begin_nested():
            session.add(sub)
    except IntegrityError:
        # Someone else created it at the same moment: take theirs.
        again = _find(session, system_id, region_code, period)
        assert again is not None
        return again
    return sub


def transition(
    session: Session,
    identity: Identity,
    system_id: int,
    region_code: str,
    period: str,
    action_name: str,
    reason: str | None,
) -> SubmissionView:
    """Apply one action (submit/approve/reject/unlock) and record it as an event."""
    action = ACTIONS[action_name]
    identity.check_write(region_code, *action.roles)
    # Same lock as value writers (taken before any read): an import checking locks and a
    # submit cannot interleave.
    bulk_dialect(session).lock_period(session, system_id, period)
    system = _check_key(session, system_id, region_code, period)
    reason = (reason or "").strip() or None
    if action.reason_required and not reason:
        raise ValidationFailed(
            f"{action.title}必须填写原因 (a reason is required to {action.name})",
            errors=[{"field": "reason", "message": "required"}],
        )
    sub = _get_or_create(session, system_id, region_code, period)
    if sub.origin_node is not None:
        return _review_from_above(session, identity, system, sub, action, reason)
    if sub.state not in action.from_states:
        raise Conflict(
            f"填报当前状态为“{STATE_NAMES.get(sub.state, sub.state)}”，不能{action.title} "
            f"(cannot {action.name} a submission in state {sub.state})",
            slug="invalid-transition",
            state=sub.state,
            submission_id=sub.id,
        )
    if action.name == "submit":
        if system.state != "released":
            raise Conflict(
                f"指标体系 {system_id} 未发布，不能提交 (the system is not released)",
                slug="system-not-released",
            )
        values, _flagged = _counts(session, system_id, region_code, period)
        if values == 0:
            raise Conflict(
                f"区划 {region_code} 在 {period} 没有任何指标数据，无可提交 (no values to submit)",
                slug="empty-submission",
            )
    from_state = sub.state
    now = utcnow()
    sub.state = action.to_state
    sub.locked = action.to_state in FROZEN_STATES
    sub.reason = reason
    sub.updated_by = identity.subject
    sub.updated_at = now
    session.add(
        SubmissionEvent(
            submission_id=sub.id,
            action=action.name,
            from_state=from_state,
            to_state=action.to_state,
            reason=reason,
            actor=identity.subject,
            actor_region=identity.region,
            at=now,
        )
    )
    # The owner's new state goes to the parent in the same transaction.
    record_submission(
        session,
        code=system.code,
        year=system.year,
        version=system.version,
        region_code=region_code,
        period=period,
        state=sub.state,
        action=action.name,
        reason=reason,
        actor=identity.subject,
        actor_region=identity.region,
    )
    session.flush()
    values, flagged = _counts(session, system_id, region_code, period)
    return SubmissionView(
        sub, system_id, region_code, period, _events(session, sub), values, flagged
    )


def _set_state(
    session: Session,
    sub: Submission,
    *,
    action: str,
    state: str,
    reason: str | None,
    actor: str,
    actor_region: str,
) -> None:
    from_state = sub.state
    now = utcnow()
    sub.state = state
    sub.locked = state in FROZEN_STATES
    sub.reason = reason
    sub.updated_by = actor
    sub.updated_at = now
    session.add(
        SubmissionEvent(
            submission_id=sub.id,
            action=action,
            from_state=from_state,
            to_state=state,
            reason=reason,
            actor=actor,
            actor_region=actor_region,
            at=now,
        )
    )
    session.flush()


def _review_from_above(
    session: Session,
    identity: Identity,
    system: IndicatorSystem,
    sub: Submission,
    action: Action,
    reason: str | None,
) -> SubmissionView:
    """An upper node reviews a lower node's submission; the decision goes down to the owner."""
    node = bound_node(session)
    if action.name not in ("approve", "reject") or node is None:
        raise Conflict(
            f"区划 {sub.region_code} 的数据由下级节点 {sub.origin_node} 填报，"
            "本级只能审核通过或退回 "
            f"(owned by node {sub.origin_node}: only approve or reject here)",
            slug="owned-below",
            state=sub.state,
        )
    mine = tier_of(node.region)
    owner = tier_of(sub.region_code[:6])
    direct = _TIER_RANK[owner] == _TIER_RANK[mine] + 1
    if action.name == "approve":
        need = "approved" if direct else "reviewed"
        to_state = "accepted" if mine == "province" else "reviewed"
        if sub.state != need:
            below = _TIER_ZH[owner] if direct else _TIER_ZH[tier_of(sub.region_code[:4] + "00")]
            raise Conflict(
                f"填报当前状态为“{STATE_NAMES.get(sub.state, sub.state)}”，须待{below}审核通过后"
                f"才能{_TIER_ZH[mine]}审核 (the {'owner' if direct else 'city'} must approve "
                f"first; state {sub.state})",
                slug="invalid-transition",
                state=sub.state,
                submission_id=sub.id,
            )
    else:
        to_state = "rejected"
        if sub.state not in ("approved", "reviewed"):
            raise Conflict(
                f"填报当前状态为“{STATE_NAMES.get(sub.state, sub.state)}”，不能退回 "
                f"(cannot reject a submission in state {sub.state})",
                slug="invalid-transition",
                state=sub.state,
                submission_id=sub.id,
            )
    publish_review(
        session,
        code=system.code,
        year=system.year,
        version=system.version,
        region_code=sub.region_code,
        period=sub.period,
        action=action.name,
        to_state=to_state,
        reason=reason,
        actor=identity.subject,
        actor_region=identity.region,
    )
    # The mirror shows the decision at once; the owner's state, when it comes back up,
    # is what stands.
    _set_state(
        session,
        sub,
        action=action.name,
        state=to_state,
        reason=reason,
        actor=identity.subject,
        actor_region=identity.region,
    )
    values, flagged = _counts(session, system.id, sub.region_code, sub.period)
    return SubmissionView(
        sub, system.id, sub.region_code, sub.period, _events(session, sub), values, flagged
    )


def mirror_state(
    session: Session,
    *,
    system_id: int,
    region_code: str,
    period: str,
    state: str,
    action: str,
    reason: str | None,
    actor: str,
    actor_region: str,
    origin_node: str,
) -> None:
    """Parent: take the state a lower node's submission reached there (with an event)."""
    bulk_dialect(session).lock_period(session, system_id, period)
    sub = _get_or_create(session, system_id, region_code, period)
    sub.origin_node = origin_node
    _set_state(
        session,
        sub,
        action=action,
        state=state,
        reason=reason,
        actor=actor,
        actor_region=actor_region,
    )


_REVIEW_FROM = {
    "reviewed": ("approved",),
    "accepted": ("reviewed", "approved"),
    "rejected": ("approved", "reviewed"),
}


def apply_review(
    session: Session,
    *,
    system_id: int,
    region_code: str,
    period: str,
    action: str,
    to_state: str,
    reason: str | None,
    actor: str,
    actor_region: str,
) -> None:
    """Owner: apply an upper tier's decision; a mirror here passes it on untouched."""
    bulk_dialect(session).lock_period(session, system_id, period)
    sub = _find(session, system_id, region_code, period)
    if sub is None or sub.origin_node is not None:
        return  # not owned here: the puller relays it to the child that owns it
    if sub.state in _REVIEW_FROM.get(to_state, ()):
        _set_state(
            session,
            sub,
            action=action,
            state=to_state,
            reason=reason,
            actor=actor,
            actor_region=actor_region,
        )
    else:
        # The owner moved on meanwhile (e.g. unlocked): the decision is kept as an event,
        # and the owner's real state goes up again to correct the mirrors.
        _set_state(
            session,
            sub,
            action="ignored",
            state=sub.state,
            reason=f"上级决定（{action} → {to_state}）未生效：当前状态为“"
            f"{STATE_NAMES.get(sub.state, sub.state)}” (decision not applicable)",
            actor=actor,
            actor_region=actor_region,
        )
    system = session.get(IndicatorSystem, system_id)
    assert system is not None
    record_submission(
        session,
        code=system.code,
        year=system.year,
        version=system.version,
        region_code=region_code,
        period=period,
        state=sub.state,
        action=action if sub.state == to_state else "ignored",
        reason=sub.reason,
        actor=actor,
        actor_region=actor_region,
    )


def list_submissions(
    session: Session,
    identity: Identity,
    *,
    system_id: int | None = None,
    period: str | None = None,
    state: str | None = None,
    region_code: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[Submission], str | None]:
    """Submissions in the caller's scope (e.g. a reviewer's queue with state=submitted)."""
    scope = identity.read_scope(region_code)
    stmt = select(Submission).where(Submission.region_code.startswith(prefix_of(scope)))
    if system_id is not None:
        stmt = stmt.where(Submission.system_id == system_id)
    if period:
        stmt = stmt.where(Submission.period == period)
    if state:
        stmt = stmt.where(Submission.state == state)
    if cursor:
        if not cursor.isdigit():
            raise ValidationFailed(
                "游标无效 (invalid cursor)", errors=[{"field": "cursor", "message": "invalid"}]
            )
        stmt = stmt.where(Submission.id > int(cursor))
    rows = list(session.scalars(stmt.order_by(Submission.id).limit(limit)))
    return rows, (str(rows[-1].id) if len(rows) == limit else None)
