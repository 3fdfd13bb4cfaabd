"""Population margins, quota plans (proportional with a floor) and live progress."""

from __future__ import annotations

import csv
import random

from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.survey.helpers import DATA, example_answers, make_campaign, submit

SYNTHETIC = DATA / "population-nanchang-synthetic.csv"


def test_population_upload_csv_and_json_errors(survey_client: TestClient) -> None:
    c = make_campaign(survey_client, open_now=False)
    url = f"/api/v1/campaigns/{c['id']}/population"
    body = SYNTHETIC.read_bytes()
    r = survey_client.put(url, content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    with SYNTHETIC.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert r.json()["cells"] == len(rows) == 108
    assert r.json()["total"] == sum(float(x["population"]) for x in rows)
    assert r.json()["margin_level"] == 6
    assert r.json()["regions"]["360121"] == sum(
        float(x["population"]) for x in rows if x["region_code"] == "360121"
    )
    # A bad file is rejected whole, naming rows; the stored margins stay.
    bad = (
        "region_code,age_band,sex,population\n"
        "360121,18-29,M,100\n"
        "440100,18-29,F,100\n"  # outside the campaign
        "360121,17-20,M,100\n"  # not an age band
        "360121,30-39,X,100\n"  # not a sex
        "360121,30-39,M,-5\n"  # negative
        "360121,18-29,M,100\n"  # duplicate of data row 1
    )
    r = survey_client.put(url, content=bad.encode(), headers={"content-type": "text/csv"})
    assert r.status_code == 422
    errs = r.json()["errors"]
    assert [(e["row"], e["field"]) for e in errs] == [
        (2, "region_code"),
        (3, "age_band"),
        (4, "sex"),
        (5, "population"),
        (6, "region_code"),
    ]
    assert "文件第 3 行" in errs[0]["message"]
    assert survey_client.get(url).json()["cells"] == 108
    r = survey_client.put(url, json={"rows": [{"region_code": "360121", "age_band": "18-29"}]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "sex"
    r = survey_client.put(
        url,
        json={
            "rows": [
                {"region_code": "360121", "age_band": "18-29", "sex": "M", "population": 5},
                {"region_code": "360121001", "age_band": "18-29", "sex": "F", "population": 5},
            ]
        },
    )
    assert r.status_code == 422  # one level only
    r = survey_client.put(url, content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert survey_client.get(url).json()["cells"] == 108


def test_plan_proportional_with_floor(survey_client: TestClient) -> None:
    c = make_campaign(survey_client, open_now=False)
    url = f"/api/v1/campaigns/{c['id']}"
    r = survey_client.put(f"{url}/plan", json={"total": 1000, "floor": 80})
    assert r.status_code == 409  # no population yet
    survey_client.put(
        f"{url}/population", content=SYNTHETIC.read_bytes(), headers={"content-type": "text/csv"}
    )
    pops = survey_client.get(f"{url}/population").json()["regions"]
    r = survey_client.put(f"{url}/plan", json={"total": 1000, "floor": 80})
    assert r.status_code == 200, r.text
    regions = {t["region_code"]: t["target"] for t in r.json() if t["kind"] == "region"}
    cells = {(t["age_band"], t["sex"]): t["target"] for t in r.json() if t["kind"] == "age_sex"}
    assert sum(regions.values()) == 1000 and sum(cells.values()) == 1000
    # 安义县 and 青云谱区 are below their proportional share of 80: they get the floor…
    floored = {k for k, v in regions.items() if v == 80}
    assert floored == {"360123", "360104"}
    total_pop = sum(pops.values())
    assert all(1000 * pops[k] / total_pop < 80 for k in floored)
    # …and the others share the rest in proportion to population (within rounding).
    rest = {k: v for k, v in regions.items() if k not in floored}
    mass = sum(pops[k] for k in rest)
    for k, v in rest.items():
        assert abs(v - (1000 - 80 * len(floored)) * pops[k] / mass) < 1
        assert v > 80
    assert len(cells) == 12
    r = survey_client.put(f"{url}/plan", json={"total": 500, "floor": 80})
    assert r.status_code == 422  # 9 counties × 80 > 500
    r = survey_client.put(f"{url}/plan", json={"total": 10, "targets": []})
    assert r.status_code == 422
    r = survey_client.put(
        f"{url}/plan",
        json={
            "targets": [
                {"region_code": "360121", "target": 50},
                {"region_code": "360124", "target": 40},
                {"age_band": "70+", "sex": "F", "target": 10},
                {"region_code": "440100", "target": 5},
            ]
        },
    )
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == 4
    assert len(survey_client.get(f"{url}/plan").json()) == 9 + 12


def test_progress_counts_and_shortfalls(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    c = make_campaign(survey_client)
    url = f"/api/v1/campaigns/{c['id']}"
    r = survey_client.put(
        f"{url}/plan",
        json={
            "targets": [
                {"region_code": "360121", "target": 5},
                {"region_code": "360124", "target": 4},
                {"age_band": "30-39", "sex": "F", "target": 3},
            ]
        },
    )
    assert r.status_code == 200
    rng = random.Random(20)
    for i in range(3):
        a = example_answers(rng, C1="360121001001", D_AGE="30-39", D_SEX="F")
        assert (
            submit(survey_client, node_settings, c["token"], a, addr=f"10.0.0.{i}").status_code
            == 201
        )
    a = example_answers(rng, C1="360124100001", D_AGE="60-69", D_SEX="M")
    submit(survey_client, node_settings, c["token"], a, addr="10.0.1.1")
    # A speeder in 360124 is received but does not count towards the quota.
    a = example_answers(rng, C1="360124100001")
    submit(survey_client, node_settings, c["token"], a, addr="10.0.1.2", meta={"duration_s": 3})
    p = survey_client.get(f"{url}/progress").json()
    assert (p["received"], p["collected"], p["excluded"], p["target"], p["shortfall"]) == (
        5,
        4,
        1,
        9,
        5,
    )
    regions = {x["key"]: x for x in p["regions"]}
    assert (regions["360121"]["collected"], regions["360121"]["shortfall"]) == (3, 2)
    assert (regions["360124"]["collected"], regions["360124"]["excluded"]) == (1, 1)
    assert regions["360124"]["shortfall"] == 3 and regions["360124"]["done"] == 25.0
    cells = {x["key"]: x for x in p["age_sex"]}
    assert cells["30-39|F"]["shortfall"] == 0 and cells["30-39|F"]["done"] == 100.0
    assert cells["60-69|M"]["target"] is None and cells["60-69|M"]["collected"] == 1
