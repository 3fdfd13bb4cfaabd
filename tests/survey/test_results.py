"""Weighted results: post-stratification and raking, CIs against a per-respondent computation,
suppression, trimming, exclusions, and open-text themes."""

from __future__ import annotations

import math
import random
from typing import Any

from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.survey.helpers import (
    AGES,
    make_campaign,
    population_rows,
    small_definition,
    submit,
)

A, B = "360121001001", "360124100001"  # communities in 南昌县 and 进贤县
Z = 1.959963984540054


def _respondents(
    client: TestClient,
    settings: NodeSettings,
    token: str,
    region: str,
    count: int,
    rng: random.Random,
    high: float,
) -> list[dict[str, Any]]:
    """``count`` respondents in a community; each answer is 4–5 with probability ``high``."""
    out = []
    for _ in range(count):
        answers = {
            "C1": region,
            "AGE": rng.choice(AGES),
            "SEX": rng.choice(["M", "F"]),
            "Q1": rng.choice([4, 5]) if rng.random() < high else rng.choice([1, 2, 3]),
            "Q2": rng.choice([4, 5]) if rng.random() < high else rng.choice([1, 2, 3]),
        }
        r = submit(
            client,
            settings,
            token,
            answers,
            addr=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.1",
        )
        assert r.status_code == 201, r.text
        out.append(answers)
    return out


def _wilson(p: float, n_star: float) -> tuple[float, float]:
    z2 = Z * Z
    d = 1 + z2 / n_star
    c = (p + z2 / (2 * n_star)) / d
    h = Z * math.sqrt(p * (1 - p) / n_star + z2 / (4 * n_star * n_star)) / d
    return c - h, c + h


def _expected(people: list[tuple[float, list[int]]]) -> dict[str, float]:
    """Rate, mean and CIs straight from respondents: (weight, [likert answers])."""
    n = len(people)
    wk = sum(w * len(ans) for w, ans in people)
    t = [sum(1 for a in ans if a >= 4) for _, ans in people]
    s = [sum((a - 1) * 25.0 for a in ans) for _, ans in people]
    p = sum(w * ti for (w, _), ti in zip(people, t, strict=True)) / wk
    m = sum(w * si for (w, _), si in zip(people, s, strict=True)) / wk
    vp = (
        n
        / (n - 1)
        * sum((w * (ti - p * len(ans))) ** 2 for (w, ans), ti in zip(people, t, strict=True))
        / wk**2
    )
    vm = (
        n
        / (n - 1)
        * sum((w * (si - m * len(ans))) ** 2 for (w, ans), si in zip(people, s, strict=True))
        / wk**2
    )
    lo, hi = _wilson(p, p * (1 - p) / vp)
    return {
        "rate": 100 * p,
        "rate_lo": 100 * lo,
        "rate_hi": 100 * hi,
        "mean": m,
        "mean_lo": m - Z * math.sqrt(vm),
        "mean_hi": m + Z * math.sqrt(vm),
    }


def _cell(items: list[dict[str, Any]], breakdown: str, group: str, target: str) -> dict[str, Any]:
    return next(
        i
        for i in items
        if i["breakdown"] == breakdown and i["group"] == group and i["target"]["code"] == target
    )


def _close(got: dict[str, Any], want: dict[str, float]) -> None:
    assert math.isclose(got["rate"], want["rate"], rel_tol=1e-9)
    assert math.isclose(got["mean"], want["mean"], rel_tol=1e-9)
    assert math.isclose(got["rate_ci"][0], want["rate_lo"], rel_tol=1e-7)
    assert math.isclose(got["rate_ci"][1], want["rate_hi"], rel_tol=1e-7)
    assert math.isclose(got["mean_ci"][0], want["mean_lo"], rel_tol=1e-7)
    assert math.isclose(got["mean_ci"][1], want["mean_hi"], rel_tol=1e-7)


def test_post_stratified_estimates_match_a_per_respondent_computation(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    c = make_campaign(
        survey_client,
        small_definition(),
        population=population_rows({"360121": 100_000, "360124": 300_000}),
        settings={"weighting": {"margins": [["region"]], "min_n": 10}},
    )
    rng = random.Random(30)
    in_a = _respondents(survey_client, node_settings, c["token"], A, 60, rng, high=0.8)
    in_b = _respondents(survey_client, node_settings, c["token"], B, 30, rng, high=0.3)
    r = survey_client.post(f"/api/v1/campaigns/{c['id']}/results")
    assert r.status_code == 201, r.text
    run = r.json()
    rep = run["weighting"]
    assert rep["matched_respondents"] == 90 and rep["converged"]
    w_a, w_b = 100_000 / 60, 300_000 / 30
    weights = survey_client.get(f"/api/v1/campaigns/{c['id']}/weights").json()["cells"]
    assert {round(x["weight"], 6) for x in weights if x["region_code"] == "360121"} == {
        round(w_a, 6)
    }
    assert {round(x["weight"], 6) for x in weights if x["region_code"] == "360124"} == {
        round(w_b, 6)
    }
    # Kish design effect of the whole sample.
    sw = 60 * w_a + 30 * w_b
    sw2 = 60 * w_a**2 + 30 * w_b**2
    assert math.isclose(rep["deff"], 90 * sw2 / sw**2, rel_tol=1e-9)
    assert math.isclose(rep["n_eff"], sw**2 / sw2, rel_tol=1e-9)

    items = survey_client.get(f"/api/v1/campaigns/{c['id']}/results").json()["items"]
    people_q1 = [(w_a, [a["Q1"]]) for a in in_a] + [(w_b, [a["Q1"]]) for a in in_b]
    got = _cell(items, "overall", "", "Q1")
    assert got["n"] == 90 and not got["suppressed"]
    _close(got, _expected(people_q1))
    # The weighted rate is pulled towards the larger county, unlike the raw share.
    raw = 100 * sum(1 for _, a in people_q1 if a[0] >= 4) / 90
    assert got["rate"] < raw
    # A dimension pools its items; respondents are the clusters of the variance.
    people_dim = [(w_a, [a["Q1"], a["Q2"]]) for a in in_a] + [
        (w_b, [a["Q1"], a["Q2"]]) for a in in_b
    ]
    dim = _cell(items, "overall", "", "社区")
    assert dim["items"] == 180
    _close(dim, _expected(people_dim))
    _close(_cell(items, "overall", "", "*"), _expected(people_dim))
    # Within one county the weight is constant: the estimate is the plain share there.
    in_county = _cell(items, "region", "360124", "Q2")
    assert in_county["n"] == 30
    assert math.isclose(in_county["rate"], 100 * sum(1 for a in in_b if a["Q2"] >= 4) / 30)
    assert math.isclose(in_county["deff"], 1.0)
    # Every group breakdown exists, with n adding up.
    for breakdown in ("sex", "age_band", "age_sex", "street"):
        cells = [i for i in items if i["breakdown"] == breakdown and i["target"]["code"] == "Q1"]
        assert sum(i["n"] for i in cells) == 90, breakdown
    # Small groups are suppressed, not shown as precise.
    small = [i for i in items if i["breakdown"] == "age_sex" and i["n"] < 10]
    assert small and all(
        i["suppressed"] and i["rate"] is None and i["rate_ci"] is None for i in small
    )


def _margin_totals(cells: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    by_region: dict[str, float] = {}
    by_cell: dict[str, float] = {}
    for x in cells:
        by_region[x["region_code"]] = by_region.get(x["region_code"], 0) + x["n"] * x["weight"]
        key = f"{x['age_band']}|{x['sex']}"
        by_cell[key] = by_cell.get(key, 0) + x["n"] * x["weight"]
    return by_region, by_cell


def test_raking_meets_both_margins_then_trims_honestly(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    pop = []
    targets_region = {"360121": 200_000.0, "360124": 100_000.0}
    targets_cell: dict[str, float] = {}
    for region, total in targets_region.items():
        for i, age in enumerate(AGES):
            for sex, share in (("M", 0.45), ("F", 0.55)):
                people = total * (i + 1) / 21 * share
                pop.append(
                    {"region_code": region, "age_band": age, "sex": sex, "population": people}
                )
                targets_cell[f"{age}|{sex}"] = targets_cell.get(f"{age}|{sex}", 0) + people
    c = make_campaign(
        survey_client,
        small_definition(),
        population=pop,
        settings={"weighting": {"trim_low": 0.05, "trim_high": 20, "min_n": 5}},
    )
    rng = random.Random(31)
    _respondents(survey_client, node_settings, c["token"], A, 70, rng, high=0.6)
    _respondents(survey_client, node_settings, c["token"], B, 70, rng, high=0.4)
    assert survey_client.post(f"/api/v1/campaigns/{c['id']}/results").status_code == 201
    w = survey_client.get(f"/api/v1/campaigns/{c['id']}/weights").json()
    rep, cells = w["run"]["weighting"], w["cells"]
    assert rep["converged"] and rep["trimmed_cells"] == 0 and rep["max_margin_error"] < 1e-6
    by_region, by_cell = _margin_totals(cells)
    for key, total in targets_region.items():
        assert math.isclose(by_region[key], total, rel_tol=1e-6)
    for key, total in targets_cell.items():
        assert math.isclose(by_cell[key], total, rel_tol=1e-6)
    n = sum(x["n"] for x in cells)
    sw = sum(x["n"] * x["weight"] for x in cells)
    sw2 = sum(x["n"] * x["weight"] ** 2 for x in cells)
    assert math.isclose(rep["deff"], n * sw2 / sw**2, rel_tol=1e-9) and rep["deff"] > 1
    assert math.isclose(rep["n_eff"], n / rep["deff"], rel_tol=1e-9)
    spread = rep["weight_max"] / rep["weight_min"]

    # Tight bounds: weights stay inside them; the margins give way, and the report says so.
    survey_client.patch(
        f"/api/v1/campaigns/{c['id']}",
        json={"settings": {"weighting": {"trim_low": 0.5, "trim_high": 2.0}}},
    )
    assert survey_client.post(f"/api/v1/campaigns/{c['id']}/results").status_code == 201
    w = survey_client.get(f"/api/v1/campaigns/{c['id']}/weights").json()
    rep, cells = w["run"]["weighting"], w["cells"]
    mean_w = 300_000 / n
    assert math.isclose(rep["weight_mean"], mean_w)
    assert rep["trimmed_cells"] > 0
    assert max(x["weight"] for x in cells) <= 2.0 * mean_w * (1 + 1e-9)
    assert min(x["weight"] for x in cells) >= 0.5 * mean_w * (1 - 1e-9)
    assert rep["weight_max"] / rep["weight_min"] < spread
    by_region, by_cell = _margin_totals(cells)
    worst = max(
        [abs(by_region[k] / t - 1) for k, t in targets_region.items()]
        + [abs(by_cell[k] / t - 1) for k, t in targets_cell.items()]
    )
    assert math.isclose(rep["max_margin_error"], worst, rel_tol=1e-6)
    assert rep["converged"] is (worst < 1e-3)
    assert rep["deff"] < n * sw2 / sw**2  # trimming buys precision


def test_trimming_reported_and_exclusions_and_unmatched(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    c = make_campaign(
        survey_client,
        small_definition(communities=[A, B, "360123100001"]),
        # 安义县 (360123) has no margins: its respondents cannot be weighted.
        population=population_rows({"360121": 900_000, "360124": 100_000}),
        settings={"weighting": {"margins": [["region"]], "trim_high": 3.0, "min_n": 5}},
    )
    rng = random.Random(32)
    _respondents(survey_client, node_settings, c["token"], A, 5, rng, high=0.5)
    _respondents(survey_client, node_settings, c["token"], B, 50, rng, high=0.5)
    _respondents(survey_client, node_settings, c["token"], "360123100001", 4, rng, high=0.5)
    flagged = submit(
        survey_client,
        node_settings,
        c["token"],
        {"C1": B, "AGE": "70+", "SEX": "F", "Q1": 5, "Q2": 5},
        meta={"duration_s": 0.5},
        addr="10.9.9.9",
    ).json()["response_id"]
    run = survey_client.post(f"/api/v1/campaigns/{c['id']}/results").json()
    rep = run["weighting"]
    assert rep["unmatched_respondents"] == 4 and rep["matched_respondents"] == 55
    assert rep["trimmed_cells"] >= 1 and rep["weight_max"] <= 3.0 + 1e-9
    items = survey_client.get(
        f"/api/v1/campaigns/{c['id']}/results", params={"target": "Q1", "breakdown": "overall"}
    ).json()["items"]
    assert [i["n"] for i in items] == [55]
    # Reinstating the speeder brings it into the next run.
    survey_client.post(
        f"/api/v1/campaigns/{c['id']}/responses/{flagged}/reinstate", json={"note": "复核属实"}
    )
    run2 = survey_client.post(f"/api/v1/campaigns/{c['id']}/results").json()
    assert run2["id"] != run["id"] and run2["weighting"]["matched_respondents"] == 56
    latest = survey_client.get(
        f"/api/v1/campaigns/{c['id']}/results", params={"target": "Q1", "breakdown": "overall"}
    ).json()
    assert latest["run"]["id"] == run2["id"] and latest["items"][0]["n"] == 56
    old = survey_client.get(
        f"/api/v1/campaigns/{c['id']}/results",
        params={"target": "Q1", "breakdown": "overall", "run_id": run["id"]},
    ).json()
    assert old["items"][0]["n"] == 55
    region_a = survey_client.get(
        f"/api/v1/campaigns/{c['id']}/results", params={"breakdown": "region", "group": "360121"}
    ).json()["items"]
    assert region_a and all(i["suppressed"] is False for i in region_a)


def test_results_need_margins_and_a_run(survey_client: TestClient) -> None:
    c = make_campaign(survey_client, small_definition())
    r = survey_client.get(f"/api/v1/campaigns/{c['id']}/results")
    assert r.status_code == 404 and r.json()["type"].endswith("/no-results")
    r = survey_client.post(f"/api/v1/campaigns/{c['id']}/results")
    assert r.status_code == 409 and r.json()["type"].endswith("/population-missing")


def test_open_text_themes_per_region(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    from tests.survey.helpers import example_answers

    c = make_campaign(survey_client)
    rng = random.Random(33)
    texts = [
        ("360121001001", "小区停车位太少，晚上经常乱停"),
        ("360121001001", "希望加装电梯，老人爬楼太辛苦"),
        ("360121100001", "雨天门口积水严重，下水道经常堵塞"),
        ("360124100001", "停车难，另外广场舞噪音扰民"),
        ("360124100001", "环境不错"),
    ]
    for i, (community, text) in enumerate(texts):
        a = example_answers(rng, C1=community, P2=text)
        assert (
            submit(survey_client, node_settings, c["token"], a, addr=f"10.3.0.{i}").status_code
            == 201
        )
    # An excluded response's text is not counted.
    a = example_answers(rng, C1="360124100001", P2="停车停车停车")
    submit(survey_client, node_settings, c["token"], a, addr="10.3.1.1", meta={"duration_s": 1})
    out = survey_client.get(f"/api/v1/campaigns/{c['id']}/themes").json()
    assert out["answers"] == 5
    totals = {t["theme"]: t["count"] for t in out["themes"]}
    assert totals["parking"] == 2 and totals["elevator"] == 1 and totals["noise"] == 1
    assert totals["drainage"] == 1 and totals["garbage"] == 0
    parking = next(t for t in out["themes"] if t["theme"] == "parking")
    assert parking["examples"] == ["小区停车位太少，晚上经常乱停", "停车难，另外广场舞噪音扰民"]
    items = {(i["region_code"], i["theme"]): i for i in out["items"]}
    assert items[("360121", "parking")]["count"] == 1
    assert items[("360121", "parking")]["share"] == round(100 / 3, 1)
    assert items[("360124", "noise")]["count"] == 1
    # A campaign's own dictionary replaces the shipped one.
    r = survey_client.patch(
        f"/api/v1/campaigns/{c['id']}",
        json={"settings": {"themes": {"env": {"label": "环境", "keywords": ["环境"]}}}},
    )
    assert r.status_code == 200
    out = survey_client.get(f"/api/v1/campaigns/{c['id']}/themes").json()
    assert [(t["theme"], t["count"]) for t in out["themes"]] == [("env", 1)]
    r = survey_client.patch(
        f"/api/v1/campaigns/{c['id']}", json={"settings": {"themes": {"bad": {"label": "x"}}}}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("settings.themes")


def test_running_sums_equal_a_rebuild_from_every_score_row(
    survey_client: TestClient, node_settings: NodeSettings
) -> None:
    from tests.survey.helpers import example_answers, example_definition

    c = make_campaign(
        survey_client,
        example_definition(),
        population=population_rows({code: 50_000 for code in ("360102", "360121", "360124")}),
        settings={"weighting": {"min_n": 5}},
    )
    rng = random.Random(34)
    ids = []
    for i in range(40):
        community = rng.choice(["360102002001", "360121001001", "360124100001"])
        meta = {"duration_s": 2} if i % 9 == 0 else {}
        r = submit(
            survey_client,
            node_settings,
            c["token"],
            example_answers(rng, C1=community),
            addr=f"10.7.{i}.1",
            meta=meta,
        )
        assert r.status_code == 201
        ids.append(r.json()["response_id"])
    url = f"/api/v1/campaigns/{c['id']}"
    # Reviews move responses in and out: the running sums must follow.
    survey_client.post(f"{url}/responses/{ids[0]}/reinstate", json={"note": "ok"})
    survey_client.post(f"{url}/responses/{ids[5]}/exclude", json={"note": "dup"})
    survey_client.post(f"{url}/responses/{ids[6]}/exclude", json={"note": "dup"})
    survey_client.post(f"{url}/responses/{ids[6]}/reinstate", json={"note": "ok after all"})
    kept = survey_client.post(f"{url}/results").json()
    rebuilt = survey_client.post(f"{url}/results", params={"rebuild": "true"}).json()
    assert rebuilt["weighting"]["timings_s"]["rebuild"] > 0

    def figures(run_id: int) -> list[tuple[Any, ...]]:
        items = survey_client.get(f"{url}/results", params={"run_id": run_id}).json()["items"]
        # Sums added in another order may differ in the last bit: compare to 1e-9.
        return sorted(
            (
                i["breakdown"],
                i["group"],
                i["target"]["code"],
                i["n"],
                i["items"],
                None if i["rate"] is None else round(i["rate"], 9),
                None if i["mean"] is None else round(i["mean"], 9),
            )
            for i in items
        )

    a, b = figures(kept["id"]), figures(rebuilt["id"])
    assert a == b and len(a) > 100
    overall = next(x for x in a if x[0] == "overall" and x[2] == "*")
    assert overall[3] == 40 - 5 + 1 - 1  # 5 speeders (one reinstated), one excluded by hand
