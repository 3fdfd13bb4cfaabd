"""The public submission path: limits, idempotency, validation, screening, storage."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.survey.campaigns.schemas import CampaignSettings
from services.survey.campaigns.service import accepting, campaign_settings
from services.survey.common import dialect_of
from services.survey.models import (
    Campaign,
    Profile,
    Questionnaire,
    Response,
    Score,
    ScoreTarget,
    TextAnswer,
)
from services.survey.questionnaires.definition import (
    Definition,
    checked_answers,
    score_answers,
)
from services.survey.responses.screening import screen
from services.survey.results.sums import add_response
from shared.dbtypes import utcnow
from shared.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    ValidationFailed,
)

__all__ = [
    "AttemptLimiter",
    "FormCache",
    "Receipt",
    "client_address",
    "keyed_hash",
    "public_form",
    "submit_response",
]

HARD_BODY_LIMIT = 256 * 1024
PROFILE_REGION_DIGITS = 9


def client_address(request: Request) -> str:
    """The respondent's address: the hop the gateway appended to x-forwarded-for."""
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded:
        return forwarded.split(",")[-1].strip()
    return request.client.host if request.client else ""


def keyed_hash(secret: str, value: str) -> str:
    """A keyed hash: equal inputs compare equal, the raw address is not kept."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


class AttemptLimiter:
    """Sliding one-minute window of attempts per (campaign, address), in this process.

    It protects the service from floods of rejected submissions, which the stored
    per-address limits cannot see; the gateway limits the node as a whole.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._hits: dict[tuple[int, str], deque[float]] = {}
        self._lock = threading.Lock()
        self.max_keys = max_keys

    def allow(self, campaign_id: int, addr: str, per_minute: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        key = (campaign_id, addr)
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._prune(now)
                hits = self._hits[key] = deque()
            while hits and now - hits[0] >= 60.0:
                hits.popleft()
            if len(hits) >= per_minute:
                return False
            hits.append(now)
            return True

    def _prune(self, now: float) -> None:
        stale = [k for k, v in self._hits.items() if not v or now - v[-1] >= 60.0]
        for k in stale:
            del self._hits[k]
        if len(self._hits) >= self.max_keys:
            self._hits.clear()


@dataclass(frozen=True)
class Form:
    """A released questionnaire ready for intake: parsed once, immutable."""

    definition: Definition
    target_ids: dict[tuple[str, str], int]
    community: str
    demographics: dict[str, str]
    text_questions: tuple[str, ...]


class FormCache:
    """Per-process memory of what never changes once written: released questionnaires
    (parsed) and profile ids (profiles are only ever added)."""

    def __init__(self) -> None:
        self._forms: dict[tuple[int, str], Form] = {}
        self._by_id: dict[int, Form] = {}
        self.profiles: dict[tuple[int, tuple[str, ...]], int] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, questionnaire_id: int) -> Form:
        cached = self._by_id.get(questionnaire_id)
        if cached is not None:
            return cached
        q = session.get(Questionnaire, questionnaire_id)
        if q is None or q.state != "released" or q.checksum is None:
            raise NotFound("问卷不可用 (questionnaire unavailable)")
        key = (q.id, q.checksum)
        form = self._forms.get(key)
        if form is not None:
            return form
        defn = Definition.model_validate(q.definition)
        targets = {
            (t.kind, t.code): t.id
            for t in session.scalars(
                select(ScoreTarget).where(ScoreTarget.questionnaire_id == q.id)
            )
        }
        community = defn.demographic_question("community")
        demographics = {
            kind: found.code
            for kind in ("age_band", "sex", "tenure", "residence")
            if (found := defn.demographic_question(kind)) is not None
        }
        form = Form(
            definition=defn,
            target_ids=targets,
            community=community.code if community else "",
            demographics=demographics,
            text_questions=tuple(q.code for q in defn.questions() if q.type == "text"),
        )
        with self._lock:
            if len(self._forms) > 256:
                self._forms.clear()
                self._by_id.clear()
            self._forms[key] = form
            self._by_id[q.id] = form
        return form


class SubmissionMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    form_session: str | None = Field(default=None, max_length=200)
    duration_s: float | None = Field(default=None, ge=0, le=30 * 86400)
    device: str | None = Field(default=None, max_length=200)
    located_region: str | None = Field(default=None, max_length=12)


class Submission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{8,64}$")
    answers: dict[str, Any]
    meta: SubmissionMeta = Field(default_factory=SubmissionMeta)


class Receipt(BaseModel):
    response_id: int
    client_id: str
    status: str = "accepted"
    received_at: datetime


def _campaign_by_token(session: Session, token: str) -> Campaign:
    c = session.scalar(select(Campaign).where(Campaign.token == token))
    if c is None:
        raise NotFound("调查链接无效 (unknown campaign link)", slug="unknown-campaign")
    return c


def _ensure_accepting(c: Campaign) -> None:
    if accepting(c):
        return
    now = utcnow()
    if c.state == "open" and now < c.opens_at:
        raise Conflict(
            f"调查将于 {c.opens_at.isoformat()} 开始 (campaign not open yet)",
            slug="campaign-not-open",
            title="调查尚未开始 (campaign not open)",
        )
    raise Conflict(
        "调查已结束或未开放 (campaign closed)",
        slug="campaign-closed",
        title="调查已关闭 (campaign closed)",
    )


def _session_mac(secret: str, token: str, started: int) -> str:
    return keyed_hash(secret, f"form:{token}:{started}")[:22]


def public_form(session: Session, token: str, secret: str, forms: FormCache) -> dict[str, Any]:
    """What a phone needs to render the form, plus a signed start time for timing."""
    c = _campaign_by_token(session, token)
    _ensure_accepting(c)
    form = forms.get(session, c.questionnaire_id)
    started = int(time.time())
    return {
        "campaign": {
            "name": c.name,
            "region_code": c.region_code,
            "period": c.period,
            "closes_at": c.closes_at.isoformat(),
        },
        "questionnaire": form.definition.model_dump(mode="json"),
        "form_session": f"{started}.{_session_mac(secret, token, started)}",
    }


def _duration(
    meta: SubmissionMeta, token: str, secret: str, now: float
) -> tuple[float | None, str]:
    if meta.form_session:
        started_s, _, mac = meta.form_session.partition(".")
        if not started_s.isdigit() or not hmac.compare_digest(
            mac, _session_mac(secret, token, int(started_s))
        ):
            raise ValidationFailed(
                "form_session 无效 (invalid form session)",
                errors=[{"field": "meta.form_session", "message": "签名无效或不属于本调查"}],
            )
        return max(0.0, now - int(started_s)), "server"
    if meta.duration_s is not None:
        return meta.duration_s, "client"
    return None, "none"


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _replay(
    session: Session, campaign_id: int, client_id: str, content_hash: str
) -> Receipt | None:
    row = session.execute(
        select(Response.id, Response.content_hash, Response.received_at).where(
            Response.campaign_id == campaign_id, Response.client_id == client_id
        )
    ).first()
    if row is None:
        return None
    if row.content_hash != content_hash:
        raise Conflict(
            f"编号 {client_id} 的答卷已提交过且内容不同 "
            "(this client_id was already used with different content)",
            slug="client-id-reused",
        )
    return Receipt(response_id=row.id, client_id=client_id, received_at=row.received_at)


def _profile_id(session: Session, campaign_id: int, attrs: dict[str, str], forms: FormCache) -> int:
    key = (campaign_id, tuple(attrs[k] for k in sorted(attrs)))
    cached = forms.profiles.get(key)
    if cached is not None:
        return cached
    cond = [Profile.campaign_id == campaign_id] + [
        getattr(Profile, k) == v for k, v in attrs.items()
    ]
    found = session.scalar(select(Profile.id).where(*cond))
    if found is not None:
        # Only rows that were there before this transaction: a row inserted below could
        # still be rolled back, so it is not remembered.
        if len(forms.profiles) > 500_000:
            forms.profiles.clear()
        forms.profiles[key] = found
        return found
    stmt = dialect_of(session).insert_ignore_stmt(
        Profile.__table__,  # type: ignore[arg-type]
        ["campaign_id", "region_code", "age_band", "sex", "tenure", "residence"],
    )
    session.execute(stmt, [{"campaign_id": campaign_id, **attrs}])
    return int(session.scalar(select(Profile.id).where(*cond)))  # type: ignore[arg-type]


def _check_source(
    session: Session,
    c: Campaign,
    settings: CampaignSettings,
    addr_hash: str,
    device_hash: str | None,
    answers_hash: str,
) -> int | None:
    """Enforce the stored per-address and per-device limits; the first identical response.

    One round trip: three indexed lookups as scalar subqueries.
    """
    since = utcnow() - timedelta(hours=1)
    from_addr = (
        select(func.count())
        .select_from(Response)
        .where(
            Response.campaign_id == c.id,
            Response.addr_hash == addr_hash,
            Response.received_at >= since,
        )
        .scalar_subquery()
    )
    from_device = (
        select(func.count())
        .select_from(Response)
        .where(Response.campaign_id == c.id, Response.device_hash == device_hash)
        .scalar_subquery()
    )
    same_source = [Response.addr_hash == addr_hash]
    if device_hash:
        same_source.append(Response.device_hash == device_hash)
    duplicate_of = (
        select(func.min(Response.id))
        .where(
            Response.campaign_id == c.id,
            Response.answers_hash == answers_hash,
            or_(*same_source),
        )
        .scalar_subquery()
    )
    row = session.execute(select(from_addr, from_device, duplicate_of)).one()
    if (row[0] or 0) >= settings.limits.per_address_per_hour:
        raise TooManyRequests(
            "同一网络地址一小时内提交过多，请稍后再试 (too many responses from this address)",
            retry_after=600,
        )
    if device_hash and (row[1] or 0) >= settings.limits.per_device:
        raise TooManyRequests(
            "本设备提交次数已达上限 (too many responses from this device)", retry_after=3600
        )
    return row[2] if settings.screening.duplicates else None


def submit_response(
    session: Session,
    *,
    token: str,
    body: bytes,
    addr: str,
    secret: str,
    forms: FormCache,
    limiter: AttemptLimiter,
) -> tuple[Receipt, bool]:
    """Accept one submission; (receipt, created). A replay returns the original receipt."""
    c = _campaign_by_token(session, token)
    _ensure_accepting(c)
    settings = campaign_settings(c)
    addr_hash = keyed_hash(secret, f"addr:{addr}")
    if not limiter.allow(c.id, addr_hash, settings.limits.attempts_per_minute):
        raise TooManyRequests(
            "提交过于频繁，请一分钟后再试 (too many attempts: retry in a minute)", retry_after=60
        )
    if len(body) > settings.limits.max_body_bytes:
        raise PayloadTooLarge(
            f"答卷超过 {settings.limits.max_body_bytes} 字节 (submission too large)"
        )
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(
            "请求体不是有效的 JSON (malformed JSON body)",
            slug="malformed-body",
            errors=[{"field": "body", "message": str(exc)[:200]}],
        ) from exc
    try:
        sub = Submission.model_validate(raw)
    except ValidationError as exc:
        raise ValidationFailed(
            "答卷格式无效 (invalid submission)",
            errors=[
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from exc
    content_hash = hashlib.sha256(_canonical(raw).encode()).hexdigest()
    replay = _replay(session, c.id, sub.client_id, content_hash)
    if replay is not None:
        return replay, False

    form = forms.get(session, c.questionnaire_id)
    defn = form.definition
    answers = checked_answers(defn, sub.answers)
    now = time.time()
    duration, timing = _duration(sub.meta, token, secret, now)
    device_hash = keyed_hash(secret, f"dev:{sub.meta.device}") if sub.meta.device else None
    answers_hash = hashlib.sha256(_canonical(answers).encode()).hexdigest()[:32]
    first = _check_source(session, c, settings, addr_hash, device_hash, answers_hash)

    picked = str(answers[form.community])
    attrs = {
        # Profiles stop at the street: nothing is weighted or broken down below it, and a
        # coarser profile keeps the per-profile aggregation of results small.
        "region_code": picked[:PROFILE_REGION_DIGITS],
        "age_band": str(answers.get(form.demographics.get("age_band", ""), "")),
        "sex": str(answers.get(form.demographics.get("sex", ""), "")),
        "tenure": str(answers.get(form.demographics.get("tenure", ""), "")),
        "residence": str(answers.get(form.demographics.get("residence", ""), "")),
    }
    flags = screen(
        defn,
        answers,
        duration_s=duration,
        campaign_region=c.region_code,
        picked_region=picked,
        located_region=sub.meta.located_region,
        rules=settings.screening,
    )
    if first is not None:
        flags.append({"code": "duplicate", "detail": {"of": first}})
    status = "excluded" if flags else "included"

    try:
        with session.begin_nested():
            profile_id = _profile_id(session, c.id, attrs, forms)
            resp = Response(
                campaign_id=c.id,
                client_id=sub.client_id,
                content_hash=content_hash,
                received_at=utcnow(),
                duration_s=duration,
                timing=timing,
                region_code=picked,
                profile_id=profile_id,
                addr_hash=addr_hash,
                device_hash=device_hash,
                answers_hash=answers_hash,
                located_region=sub.meta.located_region,
                answers=answers,
                status=status,
                flags=flags,
            )
            session.add(resp)
            session.flush()
    except IntegrityError:
        # A concurrent request with the same client_id won the race.
        replay = _replay(session, c.id, sub.client_id, content_hash)
        if replay is None:
            raise
        return replay, False

    included = status == "included"
    score_rows = [
        {
            "response_id": resp.id,
            "target_id": form.target_ids[(item.kind, item.code)],
            "campaign_id": c.id,
            "profile_id": profile_id,
            "included": included,
            "k": item.k,
            "s": item.s,
            "t": item.t,
        }
        for item in score_answers(defn, answers)
    ]
    if score_rows:
        session.execute(insert(Score), score_rows)
        if included:
            add_response(session, resp.id)
    texts = [
        {
            "response_id": resp.id,
            "campaign_id": c.id,
            "question_code": code,
            "region_code": picked,
            "included": included,
            "text": answers[code],
        }
        for code in form.text_questions
        if isinstance(answers.get(code), str) and answers[code].strip()
    ]
    if texts:
        session.execute(insert(TextAnswer), texts)
    session.flush()
    return Receipt(response_id=resp.id, client_id=sub.client_id, received_at=resp.received_at), True
