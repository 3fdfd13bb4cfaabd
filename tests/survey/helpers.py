"""Builders for survey tests: questionnaires, campaigns, answers, anonymous submissions."""

from __future__ import annotations

import copy
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from shared.identity import Identity, sign_identity
from shared.settings import NodeSettings

DATA = Path(__file__).resolve().parents[2] / "services" / "survey" / "data"
AGES = ["18-29", "30-39", "40-49", "50-59", "60-69", "70+"]


def example_definition(**overrides: Any) -> dict[str, Any]:
    """The shipped example questionnaire (Nanchang, 2026), optionally changed."""
    d: dict[str, Any] = json.loads((DATA / "example-questionnaire.json").read_text("utf-8"))
    d.update(overrides)
    return d


def small_definition(
    *,
    communities: list[str] | None = None,
    likert: int = 2,
    code: str = "T-SMALL",
    region_code: str = "360100",
    indicators: bool = True,
) -> dict[str, Any]:
    """Region, age, sex, and ``likert`` satisfaction questions in one dimension."""
    communities = communities or ["360121001001", "360124100001"]
    questions = []
    for i in range(1, likert + 1):
        q: dict[str, Any] = {"code": f"Q{i}", "type": "likert5", "text": f"满意度问题{i}"}
        if indicators:
            q["indicator_code"] = f"SAT-Q{i}"
        questions.append(q)
    return {
        "code": code,
        "title": "测试问卷",
        "year": 2026,
        "region_code": region_code,
        "sections": [
            {
                "code": "S0",
                "title": "基本情况",
                "questions": [
                    {
                        "code": "C1",
                        "type": "community",
                        "text": "所在社区",
                        "options": [{"code": c, "label": c} for c in communities],
                    },
                    {
                        "code": "AGE",
                        "type": "demographic",
                        "demographic": "age_band",
                        "text": "年龄",
                    },
                    {"code": "SEX", "type": "demographic", "demographic": "sex", "text": "性别"},
                ],
            },
            {"code": "S1", "title": "社区", "dimension": "社区", "questions": questions},
        ],
    }


def released_questionnaire(client: TestClient, definition: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/v1/questionnaires", json=definition)
    assert r.status_code == 201, r.text
    q = r.json()
    r = client.post(f"/api/v1/questionnaires/{q['id']}/release")
    assert r.status_code == 200, r.text
    return dict(r.json())


def population_rows(
    counts: dict[str, float], ages: list[str] | None = None
) -> list[dict[str, Any]]:
    """Population cells: each region's count split evenly over age bands and sexes."""
    ages = ages or AGES
    rows = []
    for region, total in counts.items():
        for age in ages:
            for sex in ("M", "F"):
                rows.append(
                    {
                        "region_code": region,
                        "age_band": age,
                        "sex": sex,
                        "population": total / (2 * len(ages)),
                    }
                )
    return rows


def make_campaign(
    client: TestClient,
    definition: dict[str, Any] | None = None,
    *,
    region_code: str = "360100",
    population: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    open_now: bool = True,
    system_id: int | None = None,
) -> dict[str, Any]:
    """A released questionnaire, a campaign on it, margins uploaded, link opened."""
    q = released_questionnaire(client, definition or example_definition())
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "name": "2026年居民满意度调查",
        "questionnaire_id": q["id"],
        "region_code": region_code,
        "period": "2026",
        "opens_at": (now - timedelta(days=1)).isoformat(),
        "closes_at": (now + timedelta(days=30)).isoformat(),
        "settings": settings or {},
    }
    if system_id is not None:
        body["system_id"] = system_id
    r = client.post("/api/v1/campaigns", json=body)
    assert r.status_code == 201, r.text
    c = dict(r.json())
    if population is not None:
        r = client.put(f"/api/v1/campaigns/{c['id']}/population", json={"rows": population})
        assert r.status_code == 200, r.text
    if open_now:
        r = client.post(f"/api/v1/campaigns/{c['id']}/open")
        assert r.status_code == 200, r.text
        c = dict(r.json())
    c["questionnaire"] = q
    return c


def anon_headers(settings: NodeSettings, addr: str = "203.0.113.7") -> dict[str, str]:
    """What the gateway sends for an anonymous public request from ``addr``."""
    identity = Identity(subject="anonymous", kind="anonymous", roles=frozenset(), region="")
    return {
        "x-checkup-identity": sign_identity(identity, settings.internal_secret.get_secret_value()),
        "x-forwarded-for": addr,
    }


def example_answers(rng: random.Random, **fixed: Any) -> dict[str, Any]:
    """A plausible, varied answer set for the example questionnaire."""
    d = example_definition()
    communities = [o["code"] for o in d["sections"][0]["questions"][0]["options"]]
    a: dict[str, Any] = {
        "C1": rng.choice(communities),
        "D_AGE": rng.choice(AGES),
        "D_SEX": rng.choice(["M", "F"]),
        "D_RES": rng.choice(["lt1", "1-5", "5-10", "10+"]),
        "D_TEN": rng.choice(["own", "rent", "public", "other"]),
        "A1": 4,
        "M4": rng.choice(["yes", "no"]),
        "T3": rng.randint(3, 10),
        "P1": rng.sample(["parking", "elevator", "waste", "elderly", "green", "drainage"], 2),
    }
    for code in ("H1", "H2", "H3", "M1", "M2", "M3", "M6", "B1", "B2", "T1", "T2"):
        a[code] = rng.randint(1, 5)
    if a["M4"] == "yes":
        a["M5"] = rng.randint(1, 5)
    a.update(fixed)
    return {k: v for k, v in a.items() if v is not None}


def submit(
    client: TestClient,
    settings: NodeSettings,
    token: str,
    answers: dict[str, Any],
    *,
    client_id: str | None = None,
    addr: str = "203.0.113.7",
    meta: dict[str, Any] | None = None,
) -> Any:
    body = {
        "client_id": client_id or uuid.uuid4().hex,
        "answers": answers,
        "meta": {"duration_s": 600, **(meta or {})},
    }
    return client.post(
        f"/api/v1/public/campaigns/{token}/responses",
        json=body,
        headers=anon_headers(settings, addr),
    )


def with_changes(definition: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    """A deep copy of ``definition`` with one nested item replaced."""
    d = copy.deepcopy(definition)
    node: Any = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return d
