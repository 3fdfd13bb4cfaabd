"""Open-text answers sorted into themes by a keyword dictionary, counted per region in SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.survey.campaigns.schemas import Theme
from services.survey.campaigns.service import campaign_settings
from services.survey.models import Campaign

__all__ = ["DEFAULT_THEMES", "theme_counts", "themes_of"]

# Keywords name the problem, not the topic, where a topic word alone would also
# match praise ("停车很方便"); a campaign can replace the whole dictionary.
DEFAULT_THEMES: dict[str, dict[str, Any]] = {
    "parking": {"label": "停车难", "keywords": ["停车", "车位", "乱停", "占道停"]},
    "elevator": {"label": "加装电梯", "keywords": ["电梯", "爬楼"]},
    "garbage": {"label": "垃圾分类与清运", "keywords": ["垃圾", "清运", "臭味", "异味"]},
    "noise": {"label": "噪声扰民", "keywords": ["噪音", "噪声", "扰民", "太吵", "广场舞"]},
    "drainage": {"label": "排水与内涝", "keywords": ["积水", "内涝", "下水道", "排水", "堵塞"]},
    "elderly": {"label": "养老服务", "keywords": ["养老", "老年人", "适老", "助餐", "日间照料"]},
    "childcare": {"label": "托育与入学", "keywords": ["托育", "幼儿园", "学位", "上学难"]},
    "green": {"label": "绿地与公园", "keywords": ["绿化", "公园", "绿地", "健身场地"]},
    "roads": {"label": "道路与照明", "keywords": ["路灯", "照明", "坑洼", "人行道", "路面"]},
    "property": {"label": "物业管理", "keywords": ["物业", "保安", "维修不及时"]},
    "ebike": {"label": "电动自行车充电", "keywords": ["充电", "电动车", "飞线"]},
    "safety": {"label": "燃气与消防安全", "keywords": ["燃气", "消防", "安全隐患", "通道堵"]},
    "water": {"label": "供水", "keywords": ["停水", "水压", "水质"]},
    "traffic": {"label": "交通出行", "keywords": ["堵车", "拥堵", "公交", "红绿灯"]},
}


def themes_of(c: Campaign) -> dict[str, Theme]:
    """The campaign's theme dictionary (its own, or the shipped one)."""
    own = campaign_settings(c).themes
    if own:
        return own
    return {code: Theme.model_validate(t) for code, t in DEFAULT_THEMES.items()}


def _like(keyword: str) -> str:
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def theme_counts(session: Session, c: Campaign, *, examples: int = 3) -> dict[str, Any]:
    """Per region and theme: answers mentioning it, their share, and a few examples."""
    themes = themes_of(c)
    level = c.margin_level or len(c.region_code)
    params: dict[str, Any] = {"c": c.id, "level": level}
    conditions: dict[str, str] = {}
    for i, (code, theme) in enumerate(themes.items()):
        ors = []
        for j, kw in enumerate(theme.keywords):
            params[f"k{i}_{j}"] = _like(kw)
            ors.append(f"text LIKE :k{i}_{j} ESCAPE '\\'")
        conditions[code] = " OR ".join(ors)
    cols = ", ".join(
        f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END) AS t{i}"
        for i, cond in enumerate(conditions.values())
    )
    sql = (
        f"SELECT substr(region_code, 1, :level) AS region, COUNT(*) AS total, {cols} "
        "FROM text_answers WHERE campaign_id = :c AND included "
        "GROUP BY substr(region_code, 1, :level) ORDER BY 1"
    )
    codes = list(themes)
    items: list[dict[str, Any]] = []
    totals: dict[str, int] = dict.fromkeys(codes, 0)
    answers = 0
    for row in session.execute(text(sql), params):
        region, total = row[0], int(row[1])
        answers += total
        for i, code in enumerate(codes):
            count = int(row[2 + i] or 0)
            totals[code] += count
            if count:
                items.append(
                    {
                        "region_code": region,
                        "theme": code,
                        "label": themes[code].label,
                        "count": count,
                        "share": round(100.0 * count / total, 1),
                        "answers": total,
                    }
                )
    items.sort(key=lambda x: (-x["count"], x["region_code"], x["theme"]))
    samples: dict[str, list[str]] = {}
    for code in codes:
        if not totals[code] or not examples:
            continue
        sample_params = {k: v for k, v in params.items() if k.startswith(f"k{codes.index(code)}_")}
        sample_params["c"] = c.id
        rows = session.execute(
            text(
                "SELECT text FROM text_answers WHERE campaign_id = :c AND included AND ("
                + conditions[code]
                + f") ORDER BY id LIMIT {int(examples)}"
            ),
            sample_params,
        )
        samples[code] = [r[0][:200] for r in rows]
    return {
        "campaign_id": c.id,
        "region_level": level,
        "answers": answers,
        "themes": [
            {
                "theme": code,
                "label": themes[code].label,
                "count": totals[code],
                "share": round(100.0 * totals[code] / answers, 1) if answers else 0.0,
                "examples": samples.get(code, []),
            }
            for code in sorted(codes, key=lambda k: -totals[k])
        ],
        "items": items,
    }
