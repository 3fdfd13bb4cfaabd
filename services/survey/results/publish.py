"""Publishing satisfaction indicators into the indicator service; subjective–objective checks."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.survey.campaigns.service import campaign_settings
from services.survey.common import DESIGN_ROLES, audit
from services.survey.models import Campaign, Disagreement, Publication, ResultCell, ScoreTarget
from services.survey.results.service import latest_run
from services.survey.sync.recording import record_publication
from shared.errors import Conflict, ProblemError, ValidationFailed
from shared.identity import Identity
from shared.peers import Peers

__all__ = ["disagreements_of", "indicator_rows", "publish_results"]

SOURCE = "survey"


class IndicatorRejected(ProblemError):
    status = 502
    slug = "indicator-import-failed"
    title = "指标服务拒绝了数据 (indicator service refused the values)"


def indicator_rows(session: Session, c: Campaign, run_id: int) -> list[dict[str, Any]]:
    """The values to publish: each mapped target, campaign-wide and per region, not suppressed."""
    stmt = (
        select(ResultCell, ScoreTarget)
        .join(ScoreTarget, ScoreTarget.id == ResultCell.target_id)
        .where(
            ResultCell.run_id == run_id,
            ResultCell.breakdown.in_(("overall", "region")),
            ScoreTarget.indicator_code.is_not(None),
            ResultCell.suppressed.is_(False),
        )
        .order_by(ScoreTarget.sort_order, ResultCell.breakdown, ResultCell.group_key)
    )
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for cell, tgt in session.execute(stmt):
        region = c.region_code if cell.breakdown == "overall" else cell.group_key
        if (tgt.indicator_code or "", region) in seen:
            continue  # a one-region campaign: the region row is the overall row
        seen.add((tgt.indicator_code or "", region))
        if tgt.indicator_measure == "mean":
            value, lo, hi, what = cell.mean, cell.mean_lo, cell.mean_hi, "平均分"
        else:
            value, lo, hi, what = cell.rate, cell.rate_lo, cell.rate_hi, "满意率(前两项)"
        if value is None:
            continue
        rows.append(
            {
                "indicator_code": tgt.indicator_code,
                "region_code": region,
                "value": round(value, 2),
                "unit": "分" if tgt.indicator_measure == "mean" else "%",
                "note": (
                    f"满意度调查《{c.name}》加权{what} {value:.1f}，95%置信区间 "
                    f"[{lo:.1f}, {hi:.1f}]，样本 n={cell.n}（结果批次 {run_id}）"
                ),
                "_target": tgt.code,
                "_rate": cell.rate,
                "_rate_lo": cell.rate_lo,
                "_rate_hi": cell.rate_hi,
                "_n": cell.n,
                "_objective": list(tgt.objective_indicators or []),
            }
        )
    return rows


async def _fetch_grades(
    client: httpx.AsyncClient, system_id: int, period: str, indicator: str
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):  # bounded paging
        params: dict[str, Any] = {
            "system_id": system_id,
            "period": period,
            "indicator_code": indicator,
            "limit": 1000,
        }
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/api/v1/evaluations", params=params)
        r.raise_for_status()
        page = r.json()
        items.extend(page.get("items", []))
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return items


async def publish_results(
    session: Session,
    c: Campaign,
    identity: Identity,
    peers: Peers,
    *,
    run_id: int | None = None,
    system_id: int | None = None,
) -> Publication:
    """Write mapped satisfaction indicators as survey values; list disagreements with grades."""
    identity.check_write(c.region_code, *DESIGN_ROLES)
    run = latest_run(session, c, run_id)
    system = system_id or c.system_id
    if not system:
        raise ValidationFailed(
            "未指定指标体系 (no indicator system: set system_id)",
            errors=[{"field": "system_id", "message": "调查活动或请求须给出 system_id"}],
        )
    rows = indicator_rows(session, c, run.id)
    if not rows:
        raise Conflict(
            "没有可发布的满意度指标：问卷未对应指标，或各项样本不足 "
            "(no mapped targets with enough respondents)",
            slug="nothing-to-publish",
        )
    body = "\n".join(
        json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, ensure_ascii=False)
        for r in rows
    ).encode()
    async with peers.client("indicator", identity) as client:
        try:
            resp = await client.post(
                "/api/v1/values/import",
                params={
                    "system_id": system,
                    "period": c.period,
                    "source": SOURCE,
                    "mode": "per_row",
                },
                content=body,
                headers={"content-type": "application/x-ndjson"},
            )
        except httpx.HTTPError as exc:
            raise IndicatorRejected(
                f"指标服务不可达 (indicator service unreachable): {exc}"
            ) from exc
        batch = _batch_of(resp)
        grades: dict[tuple[str, str], list[dict[str, Any]]] = {}
        evaluations_note = "ok"
        objective = sorted({o for r in rows for o in r["_objective"]})
        for code in objective:
            try:
                for item in await _fetch_grades(client, system, c.period, code):
                    key = (code, str(item.get("region_code")))
                    grades.setdefault(key, []).append(item)
            except (httpx.HTTPError, ValueError) as exc:
                evaluations_note = f"unavailable: {str(exc)[:200]}"
                break

    pub = Publication(
        campaign_id=c.id,
        run_id=run.id,
        system_id=system,
        period=c.period,
        status=str(batch.get("status", "applied")),
        rows_sent=len(rows),
        batch={**batch, "evaluations": evaluations_note},
        published_by=identity.subject,
    )
    session.add(pub)
    session.flush()
    found = _disagreements(c, pub.id, rows, grades)
    if found:
        session.execute(insert(Disagreement), found)
    session.flush()
    # The parent (if any) gets the published figures in this same transaction.
    record_publication(session, c, run, pub)
    audit(
        session,
        identity,
        "campaign",
        c.id,
        "publish",
        campaign_id=c.id,
        run_id=run.id,
        system_id=system,
        batch_id=batch.get("batch_id"),
        status=pub.status,
        rows=len(rows),
        disagreements=len(found),
    )
    return pub


def _batch_of(resp: httpx.Response) -> dict[str, Any]:
    """The import outcome; a whole-batch rejection (422 with its rows) is an outcome too."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    if resp.status_code in (200, 207) and isinstance(data, dict):
        return data
    if resp.status_code == 422 and isinstance(data, dict) and "rows_rejected" in data:
        return {**data, "status": data.get("import_status", "rejected")}
    raise IndicatorRejected(
        f"指标服务返回 {resp.status_code}: {_problem_detail(resp)}",
        upstream_status=resp.status_code,
    )


def _problem_detail(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300]
    return str(data.get("detail") or data.get("title") or data)[:300]


def _disagreements(
    c: Campaign,
    publication_id: int,
    rows: list[dict[str, Any]],
    grades: dict[tuple[str, str], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    rule = campaign_settings(c).disagreement
    out = []
    for r in rows:
        rate = r["_rate"]
        if rate is None:
            continue
        for code in r["_objective"]:
            for g in grades.get((code, r["region_code"]), []):
                if g.get("source") == SOURCE:
                    continue
                grade = g.get("grade")
                if rate >= rule.high_rate and grade == "red":
                    kind = "satisfied_but_red"
                elif rate < rule.low_rate and grade == "green":
                    kind = "dissatisfied_but_green"
                else:
                    continue
                out.append(
                    {
                        "publication_id": publication_id,
                        "campaign_id": c.id,
                        "region_code": r["region_code"],
                        "target_code": r["_target"],
                        "satisfaction_indicator": r["indicator_code"],
                        "rate": rate,
                        "rate_lo": r["_rate_lo"],
                        "rate_hi": r["_rate_hi"],
                        "n": r["_n"],
                        "objective_indicator": code,
                        "objective_source": str(g.get("source", "")),
                        "objective_value": g.get("value"),
                        "grade": grade,
                        "kind": kind,
                    }
                )
    return out


def disagreements_of(
    session: Session, c: Campaign
) -> tuple[Publication | None, list[Disagreement]]:
    """The latest publication of a campaign and the disagreements it found."""
    pub = session.scalar(
        select(Publication)
        .where(Publication.campaign_id == c.id)
        .order_by(Publication.id.desc())
        .limit(1)
    )
    if pub is None:
        return None, []
    found = session.scalars(
        select(Disagreement)
        .where(Disagreement.publication_id == pub.id)
        .order_by(Disagreement.region_code, Disagreement.target_code)
    )
    return pub, list(found)
