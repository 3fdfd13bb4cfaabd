"""Campaigns: the public link, its dates and settings, population margins, quotas, progress."""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
from collections import defaultdict
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.orm import Session

from services.survey.campaigns.schemas import (
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    CampaignSettings,
    PlanIn,
    Progress,
    ProgressCell,
)
from services.survey.common import DESIGN_ROLES, audit
from services.survey.models import (
    AuditEvent,
    Campaign,
    PopulationCell,
    Profile,
    Questionnaire,
    QuotaTarget,
    Response,
)
from services.survey.questionnaires.definition import DEMOGRAPHICS, Definition
from shared.dbtypes import utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.identity import Identity
from shared.regions import contains, is_valid_code

__all__ = [
    "accepting",
    "campaign_events",
    "campaign_out",
    "campaign_settings",
    "create_campaign",
    "get_campaign",
    "list_campaigns",
    "open_or_close",
    "patch_campaign",
    "progress",
    "quota_targets",
    "set_plan",
    "set_population",
]

PUBLIC_PREFIX = "/api/v1/public/campaigns/"
AGE_BANDS = [c for c, _ in DEMOGRAPHICS["age_band"]]
SEXES = [c for c, _ in DEMOGRAPHICS["sex"]]


def accepting(c: Campaign, now: datetime | None = None) -> bool:
    """Whether the public link takes submissions right now."""
    now = now or utcnow()
    return c.state == "open" and c.opens_at <= now < c.closes_at


def campaign_settings(c: Campaign) -> CampaignSettings:
    """The campaign's settings with defaults filled in."""
    return CampaignSettings.model_validate(c.settings or {})


def campaign_out(c: Campaign) -> CampaignOut:
    """The wire form of a campaign, with its public link path."""
    return CampaignOut(
        id=c.id,
        token=c.token,
        link=PUBLIC_PREFIX + c.token,
        name=c.name,
        questionnaire_id=c.questionnaire_id,
        region_code=c.region_code,
        period=c.period,
        system_id=c.system_id,
        state=c.state,
        accepting=accepting(c),
        opens_at=c.opens_at,
        closes_at=c.closes_at,
        settings=campaign_settings(c).model_dump(mode="json"),
        margin_level=c.margin_level,
        created_by=c.created_by,
        created_at=c.created_at,
    )


def get_campaign(session: Session, campaign_id: int, identity: Identity) -> Campaign:
    """One campaign the caller may read."""
    c = session.get(Campaign, campaign_id)
    if c is None:
        raise NotFound(f"调查活动 {campaign_id} 不存在 (campaign not found)")
    identity.check_read(c.region_code)
    return c


def list_campaigns(
    session: Session, identity: Identity, *, period: str | None, cursor: int | None, limit: int
) -> list[Campaign]:
    """Campaigns in the caller's scope, by id."""
    stmt = select(Campaign).order_by(Campaign.id).limit(limit)
    if period:
        stmt = stmt.where(Campaign.period == period)
    if cursor:
        stmt = stmt.where(Campaign.id > cursor)
    return [c for c in session.scalars(stmt) if identity.can_read(c.region_code)]


def _require_weighting_questions(defn: Definition) -> None:
    errors = []
    for kind, label in (("community", "所在社区"), ("age_band", "年龄段"), ("sex", "性别")):
        q = defn.demographic_question(kind)
        if q is None or not q.required or q.show_if is not None:
            errors.append(
                {
                    "field": "questionnaire_id",
                    "message": f"问卷须含必答的{label}题 (required {kind} question for weighting)",
                }
            )
    if errors:
        raise ValidationFailed(
            "问卷缺少加权所需的题目 (questionnaire lacks the questions weighting needs)",
            errors=errors,
        )


def create_campaign(session: Session, data: CampaignIn, identity: Identity) -> Campaign:
    """A draft campaign on a released questionnaire, with a fresh link token."""
    if not is_valid_code(data.region_code):
        raise ValidationFailed(
            "区划代码无效 (invalid region code)",
            errors=[{"field": "region_code", "message": "不是区划代码"}],
        )
    identity.check_write(data.region_code, *DESIGN_ROLES)
    q = session.get(Questionnaire, data.questionnaire_id)
    if q is None or not identity.can_read(q.region_code):
        raise ValidationFailed(
            "问卷不存在或不可用 (questionnaire not found)",
            errors=[{"field": "questionnaire_id", "message": "问卷不存在或不在管辖范围内"}],
        )
    if q.state != "released":
        raise Conflict(
            "问卷尚未发布，不能用于调查 (release the questionnaire first)",
            slug="questionnaire-not-released",
        )
    _require_weighting_questions(Definition.model_validate(q.definition))
    c = Campaign(
        token=secrets.token_urlsafe(16),
        name=data.name,
        questionnaire_id=q.id,
        region_code=data.region_code,
        period=data.period,
        system_id=data.system_id,
        state="draft",
        opens_at=data.opens_at,
        closes_at=data.closes_at,
        settings=data.settings.model_dump(mode="json"),
        created_by=identity.subject,
    )
    session.add(c)
    session.flush()
    audit(session, identity, "campaign", c.id, "create", campaign_id=c.id, name=c.name)
    return c


def patch_campaign(
    session: Session, campaign_id: int, patch: CampaignPatch, identity: Identity
) -> Campaign:
    """Change dates, name, target indicator system or settings (validated as a whole)."""
    c = get_campaign(session, campaign_id, identity)
    identity.check_write(c.region_code, *DESIGN_ROLES)
    before = {"opens_at": c.opens_at.isoformat(), "closes_at": c.closes_at.isoformat()}
    if patch.settings is not None:
        merged = _deep_merge(c.settings or {}, patch.settings)
        try:
            c.settings = CampaignSettings.model_validate(merged).model_dump(mode="json")
        except ValidationError as exc:
            raise ValidationFailed(
                "调查设置无效 (invalid settings)",
                errors=[
                    {
                        "field": "settings." + ".".join(str(p) for p in e["loc"]),
                        "message": e["msg"],
                    }
                    for e in exc.errors()
                ],
            ) from exc
    if patch.name is not None:
        c.name = patch.name
    if patch.system_id is not None:
        c.system_id = patch.system_id
    opens = patch.opens_at or c.opens_at
    closes = patch.closes_at or c.closes_at
    if closes <= opens:
        raise ValidationFailed(
            "截止时间须晚于开始时间 (closes_at must be after opens_at)",
            errors=[{"field": "closes_at", "message": "须晚于 opens_at"}],
        )
    c.opens_at, c.closes_at = opens, closes
    session.flush()
    audit(
        session,
        identity,
        "campaign",
        c.id,
        "update",
        campaign_id=c.id,
        before=before,
        changes=patch.model_dump(mode="json", exclude_none=True),
    )
    return c


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def open_or_close(session: Session, campaign_id: int, action: str, identity: Identity) -> Campaign:
    """Open the link for submissions or close it (closing keeps every response)."""
    c = get_campaign(session, campaign_id, identity)
    identity.check_write(c.region_code, *DESIGN_ROLES)
    if action == "open":
        if c.state == "open":
            return c
        if c.closes_at <= utcnow():
            raise Conflict(
                "截止时间已过，请先修改截止时间 (closes_at has passed: change it first)",
                slug="campaign-ended",
            )
        c.state = "open"
    else:
        if c.state == "closed":
            return c
        c.state = "closed"
    session.flush()
    audit(session, identity, "campaign", c.id, action, campaign_id=c.id)
    return c


# --- population margins ------------------------------------------------------------------


def _population_rows(body: bytes, content_type: str) -> list[tuple[int, dict[str, Any]]]:
    if "csv" in content_type:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationFailed(
                "CSV 须为 UTF-8 编码 (CSV must be UTF-8)",
                errors=[{"field": "body", "message": str(exc)}],
            ) from exc
        reader = csv.DictReader(io.StringIO(text))
        missing = {"region_code", "age_band", "sex", "population"} - set(reader.fieldnames or [])
        if missing:
            raise ValidationFailed(
                f"CSV 缺少列 (missing columns): {sorted(missing)}",
                errors=[{"field": "header", "message": f"缺少列 {sorted(missing)}"}],
            )
        # Data row n is file line n + 1 (after the header).
        return [(i, dict(r)) for i, r in enumerate(reader, start=1)]
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValidationFailed(
            "JSON 无法解析 (malformed JSON)", errors=[{"field": "body", "message": str(exc)}]
        ) from exc
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not rows:
        raise ValidationFailed(
            "须为 {rows: [...]} 或行数组 (rows expected)",
            errors=[{"field": "rows", "message": "须为非空数组"}],
        )
    return [(i, r if isinstance(r, dict) else {}) for i, r in enumerate(rows, start=1)]


def set_population(
    session: Session, campaign_id: int, body: bytes, content_type: str, identity: Identity
) -> dict[str, Any]:
    """Replace the campaign's population margins (region × age band × sex); all rows or none."""
    c = get_campaign(session, campaign_id, identity)
    identity.check_write(c.region_code, *DESIGN_ROLES)
    rows = _population_rows(body, content_type)
    errors: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    clean: list[dict[str, Any]] = []
    lengths: set[int] = set()
    where = (
        "（CSV 第 {n} 行数据，即文件第 {line} 行）" if "csv" in content_type else "（第 {n} 行）"
    )
    for n, r in rows:
        loc = where.format(n=n, line=n + 1)

        def err(field: str, message: str, n: int = n, loc: str = loc) -> None:
            errors.append({"row": n, "field": field, "message": message + loc})

        region = str(r.get("region_code", "")).strip()
        age = str(r.get("age_band", "")).strip()
        sex = str(r.get("sex", "")).strip()
        raw = r.get("population")
        if not is_valid_code(region) or not contains(c.region_code, region):
            err("region_code", f"区划 {region!r} 无效或不在调查区划 {c.region_code} 内")
            continue
        if len(region) > 9:
            err("region_code", "人口边际须按区县或街道给出 (county or street level)")
            continue
        if age not in AGE_BANDS:
            err("age_band", f"年龄段 {age!r} 无效，应为 {AGE_BANDS}")
            continue
        if sex not in SEXES:
            err("sex", f"性别 {sex!r} 无效，应为 {SEXES}")
            continue
        try:
            pop = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            err("population", f"人口数 {raw!r} 不是数字 (not a number)")
            continue
        if not math.isfinite(pop) or pop < 0:
            err("population", f"人口数 {raw!r} 须为非负数 (must be ≥ 0)")
            continue
        key = (region, age, sex)
        if key in seen:
            err("region_code", "与前面的行重复 (duplicate cell)")
            continue
        seen.add(key)
        lengths.add(len(region))
        clean.append(
            {
                "campaign_id": c.id,
                "region_code": region,
                "age_band": age,
                "sex": sex,
                "population": pop,
            }
        )
    if not errors and len(lengths) > 1:
        errors.append(
            {"row": 0, "field": "region_code", "message": "所有行的区划须为同一级 (one level only)"}
        )
    if errors:
        raise ValidationFailed(
            f"人口边际有 {len(errors)} 行无效，未作任何修改 (no rows stored)", errors=errors
        )
    session.execute(delete(PopulationCell).where(PopulationCell.campaign_id == c.id))
    session.execute(insert(PopulationCell), clean)
    c.margin_level = lengths.pop()
    session.flush()
    total = sum(r["population"] for r in clean)
    audit(
        session,
        identity,
        "campaign",
        c.id,
        "population",
        campaign_id=c.id,
        cells=len(clean),
        total=total,
    )
    return population_summary(session, c)


def population_summary(session: Session, c: Campaign) -> dict[str, Any]:
    """Totals of the stored margins by region and by age × sex."""
    regions: dict[str, float] = defaultdict(float)
    age_sex: dict[str, float] = defaultdict(float)
    cells = 0
    for region, age, sex, pop in session.execute(
        select(
            PopulationCell.region_code,
            PopulationCell.age_band,
            PopulationCell.sex,
            PopulationCell.population,
        ).where(PopulationCell.campaign_id == c.id)
    ):
        cells += 1
        regions[region] += pop
        age_sex[f"{age}|{sex}"] += pop
    return {
        "campaign_id": c.id,
        "margin_level": c.margin_level,
        "cells": cells,
        "total": sum(regions.values()),
        "regions": dict(sorted(regions.items())),
        "age_sex": dict(sorted(age_sex.items())),
    }


# --- sampling plan -------------------------------------------------------------------------


def allocate(total: int, sizes: dict[str, float], floor: int = 0) -> dict[str, int]:
    """Split ``total`` in proportion to ``sizes``, ``floor`` at least each (largest remainder)."""
    keys = [k for k in sizes if sizes[k] > 0]
    if floor * len(keys) > total:
        raise ValidationFailed(
            f"样本总量 {total} 不足以给 {len(keys)} 个区划各 {floor} 份 (total below floors)",
            errors=[{"field": "total", "message": f"至少需要 {floor * len(keys)}"}],
        )
    fixed: set[str] = set()
    while True:
        free = [k for k in keys if k not in fixed]
        rest = total - floor * len(fixed)
        mass = sum(sizes[k] for k in free)
        share = {k: rest * sizes[k] / mass for k in free} if mass else {}
        low = {k for k, v in share.items() if v < floor}
        if not low:
            break
        fixed |= low
    out = {k: floor for k in fixed}
    base = {k: math.floor(v) for k, v in share.items()}
    left = rest - sum(base.values())
    by_remainder = sorted(share, key=lambda k: (-(share[k] - base[k]), k))
    for k in by_remainder[:left]:
        base[k] += 1
    out.update(base)
    return dict(sorted(out.items()))


def set_plan(
    session: Session, campaign_id: int, plan: PlanIn, identity: Identity
) -> list[QuotaTarget]:
    """Store quota targets per region and per age × sex, computed or given."""
    c = get_campaign(session, campaign_id, identity)
    identity.check_write(c.region_code, *DESIGN_ROLES)
    rows: list[dict[str, Any]] = []
    if plan.total is not None:
        pops = list(
            session.execute(
                select(
                    PopulationCell.region_code,
                    PopulationCell.age_band,
                    PopulationCell.sex,
                    PopulationCell.population,
                ).where(PopulationCell.campaign_id == c.id)
            )
        )
        if not pops:
            raise Conflict(
                "请先上传人口边际，才能按人口比例分配样本 (upload population margins first)",
                slug="population-missing",
            )
        by_region: dict[str, float] = defaultdict(float)
        by_cell: dict[str, float] = defaultdict(float)
        for region, age, sex, pop in pops:
            by_region[region] += pop
            by_cell[f"{age}|{sex}"] += pop
        for region, n in allocate(plan.total, by_region, plan.floor).items():
            rows.append({"kind": "region", "region_code": region, "target": n})
        for cell, n in allocate(plan.total, by_cell).items():
            age, sex = cell.split("|")
            rows.append({"kind": "age_sex", "age_band": age, "sex": sex, "target": n})
    else:
        rows = _explicit_targets(c, plan.targets or [])
    session.execute(delete(QuotaTarget).where(QuotaTarget.campaign_id == c.id))
    session.execute(
        insert(QuotaTarget),
        [
            {
                "campaign_id": c.id,
                "kind": r["kind"],
                "region_code": r.get("region_code", ""),
                "age_band": r.get("age_band", ""),
                "sex": r.get("sex", ""),
                "target": r["target"],
            }
            for r in rows
        ],
    )
    session.flush()
    audit(
        session,
        identity,
        "campaign",
        c.id,
        "plan",
        campaign_id=c.id,
        total=plan.total,
        floor=plan.floor,
        targets=len(rows),
    )
    return quota_targets(session, c)


def _explicit_targets(c: Campaign, targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str, str]] = set()
    for n, t in enumerate(targets, start=1):
        region = str(t.get("region_code") or "")
        age, sex = str(t.get("age_band") or ""), str(t.get("sex") or "")
        target = t.get("target")
        if isinstance(target, bool) or not isinstance(target, int) or target < 0:
            errors.append({"row": n, "field": "target", "message": "目标数须为非负整数"})
            continue
        if region:
            if not contains(c.region_code, region):
                errors.append({"row": n, "field": "region_code", "message": "区划不在调查范围内"})
                continue
            kind = "region"
            if age or sex:
                errors.append(
                    {"row": n, "field": "age_band", "message": "区划目标与年龄性别目标须分行给出"}
                )
                continue
        else:
            kind = "age_sex"
            if age not in AGE_BANDS or sex not in SEXES:
                errors.append(
                    {"row": n, "field": "age_band", "message": "须给出区划，或有效的年龄段和性别"}
                )
                continue
        key = (kind, region, age, sex)
        if key in seen:
            errors.append({"row": n, "field": "region_code", "message": "重复的目标"})
            continue
        seen.add(key)
        rows.append(
            {"kind": kind, "region_code": region, "age_band": age, "sex": sex, "target": target}
        )
    region_lengths = {len(r["region_code"]) for r in rows if r["kind"] == "region"}
    if len(region_lengths) > 1:
        errors.append({"row": 0, "field": "region_code", "message": "区划目标须为同一级"})
    if errors or not rows:
        raise ValidationFailed(
            "抽样目标无效，未作任何修改 (invalid targets, nothing stored)",
            errors=errors or [{"field": "targets", "message": "不能为空"}],
        )
    return rows


def quota_targets(session: Session, c: Campaign) -> list[QuotaTarget]:
    """The stored sampling plan of a campaign."""
    return list(
        session.scalars(
            select(QuotaTarget)
            .where(QuotaTarget.campaign_id == c.id)
            .order_by(
                QuotaTarget.kind, QuotaTarget.region_code, QuotaTarget.age_band, QuotaTarget.sex
            )
        )
    )


def progress(session: Session, c: Campaign) -> Progress:
    """Live counts against the quotas: collected (included), excluded, shortfall."""
    targets = quota_targets(session, c)
    region_targets = {t.region_code: t.target for t in targets if t.kind == "region"}
    cell_targets = {f"{t.age_band}|{t.sex}": t.target for t in targets if t.kind == "age_sex"}
    level = (
        len(next(iter(region_targets)))
        if region_targets
        else (c.margin_level or len(c.region_code))
    )
    region_expr = func.substr(Profile.region_code, 1, level)
    included = func.sum(case((Response.status == "included", 1), else_=0))
    excluded = func.sum(case((Response.status == "excluded", 1), else_=0))
    by_region: dict[str, tuple[int, int]] = {}
    by_cell: dict[str, tuple[int, int]] = {}
    stmt = (
        select(region_expr, Profile.age_band, Profile.sex, included, excluded)
        .select_from(Response)
        .join(Profile, Profile.id == Response.profile_id)
        .where(Response.campaign_id == c.id)
        .group_by(region_expr, Profile.age_band, Profile.sex)
    )
    for region, age, sex, inc, exc in session.execute(stmt):
        a, b = by_region.get(region, (0, 0))
        by_region[region] = (a + int(inc), b + int(exc))
        key = f"{age}|{sex}"
        a, b = by_cell.get(key, (0, 0))
        by_cell[key] = (a + int(inc), b + int(exc))

    def cells(counts: dict[str, tuple[int, int]], goals: dict[str, int]) -> list[ProgressCell]:
        out = []
        for key in sorted(set(counts) | set(goals)):
            inc, exc = counts.get(key, (0, 0))
            goal = goals.get(key)
            out.append(
                ProgressCell(
                    key=key,
                    target=goal,
                    collected=inc,
                    excluded=exc,
                    shortfall=None if goal is None else max(0, goal - inc),
                    done=None if not goal else round(100.0 * inc / goal, 1),
                )
            )
        return out

    collected = sum(v[0] for v in by_region.values())
    excluded_n = sum(v[1] for v in by_region.values())
    total_target = sum(region_targets.values()) if region_targets else None
    return Progress(
        campaign_id=c.id,
        state=c.state,
        accepting=accepting(c),
        received=collected + excluded_n,
        collected=collected,
        excluded=excluded_n,
        target=total_target,
        shortfall=None if total_target is None else max(0, total_target - collected),
        regions=cells(by_region, region_targets),
        age_sex=cells(by_cell, cell_targets),
        as_of=utcnow(),
    )


def campaign_events(session: Session, c: Campaign, limit: int = 500) -> list[AuditEvent]:
    """The audit trail of a campaign and everything in it."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.campaign_id == c.id)
            .order_by(AuditEvent.id)
            .limit(limit)
        )
    )
