"""Rectification tasks through HTTP, on both databases: life cycle, colours, refusals, audit."""

from __future__ import annotations

from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.report.conftest import EVIDENCE, as_, days, make_problem, make_unit, today


def test_task_life_cycle_closes_only_after_reinspection_and_can_reopen(
    report_client: TestClient,
) -> None:
    problem_id = make_problem(report_client)
    unit_id = make_unit(report_client)
    r = report_client.post(
        "/api/v1/tasks",
        json={
            "problem_id": problem_id,
            "unit_id": unit_id,
            "deadline": days(120),
            "plan": {
                "measures": "更换老化立管",
                "milestones": [{"due": days(60), "percent": 50, "title": "完成一半楼栋"}],
            },
        },
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["status"] == "in_progress" and task["colour"] == "green"
    assert task["unit"]["name"] == "南昌县住建局"
    assert report_client.get(f"/api/v1/problems/{problem_id}").json()["status"] == "assigned"

    # Progress needs evidence.
    r = report_client.post(
        f"/api/v1/tasks/{task['id']}/progress",
        json={"percent": 40, "note": "已完成3栋", "evidence": []},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"].endswith("evidence")
    r = report_client.post(
        f"/api/v1/tasks/{task['id']}/progress",
        json={"percent": 100, "note": "全部更换完成", "evidence": EVIDENCE},
    )
    assert r.status_code == 200 and r.json()["progress"] == 100

    # Closing without a re-inspection is refused, and nothing changes.
    r = report_client.post(f"/api/v1/tasks/{task['id']}/close")
    assert r.status_code == 409
    assert r.json()["type"].endswith("/reinspection-required")
    assert report_client.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "in_progress"

    # A failed re-inspection does not allow closing either.
    failed = {
        "inspector": "复查组王工",
        "inspected_on": days(0),
        "passed": False,
        "findings": "2号楼立管未更换",
        "evidence": EVIDENCE,
    }
    assert (
        report_client.post(f"/api/v1/tasks/{task['id']}/reinspections", json=failed).status_code
        == 201
    )
    r = report_client.post(f"/api/v1/tasks/{task['id']}/close")
    assert r.status_code == 409 and "未通过" in r.json()["detail"]

    passed = {**failed, "passed": True, "findings": "全部合格"}
    assert (
        report_client.post(f"/api/v1/tasks/{task['id']}/reinspections", json=passed).status_code
        == 201
    )
    # A progress report after the inspection makes that inspection stale.
    report_client.post(
        f"/api/v1/tasks/{task['id']}/progress",
        json={"percent": 100, "note": "补充材料", "evidence": EVIDENCE},
    )
    assert report_client.post(f"/api/v1/tasks/{task['id']}/close").status_code == 409
    assert (
        report_client.post(f"/api/v1/tasks/{task['id']}/reinspections", json=passed).status_code
        == 201
    )
    r = report_client.post(f"/api/v1/tasks/{task['id']}/close", json={"note": "闭环销号"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed"
    assert report_client.get(f"/api/v1/problems/{problem_id}").json()["status"] == "closed"
    assert (
        report_client.post(
            f"/api/v1/tasks/{task['id']}/progress",
            json={"percent": 90, "note": "x", "evidence": EVIDENCE},
        ).status_code
        == 409
    )

    # Reopen: back in progress, needs a new re-inspection to close.
    r = report_client.post(
        f"/api/v1/tasks/{task['id']}/reopen", json={"reason": "居民反映仍有漏气"}
    )
    assert r.status_code == 200 and r.json()["status"] == "in_progress"
    assert r.json()["reopen_count"] == 1
    assert report_client.post(f"/api/v1/tasks/{task['id']}/close").status_code == 409

    detail = report_client.get(f"/api/v1/tasks/{task['id']}").json()
    actions = [e["action"] for e in detail["events"]]
    assert actions == [
        "create",
        "progress",
        "reinspect",
        "reinspect",
        "progress",
        "reinspect",
        "close",
        "reopen",
    ]
    assert all(e["actor"] == "tester" and e["at"] for e in detail["events"])
    assert detail["events"][1]["detail"]["evidence"][0]["title"] == "整改前后照片"
    assert len(detail["reinspections"]) == 3


def test_refusals_name_the_field_and_store_nothing(report_client: TestClient) -> None:
    problem_id = make_problem(report_client)
    unit_id = make_unit(report_client)
    r = report_client.post(
        "/api/v1/tasks", json={"problem_id": problem_id, "unit_id": unit_id, "deadline": days(-1)}
    )
    assert r.status_code == 422
    assert r.json()["type"].endswith("/deadline-in-past")
    assert r.json()["errors"][0]["field"] == "deadline"
    r = report_client.post(
        "/api/v1/tasks", json={"problem_id": problem_id, "unit_id": 9999, "deadline": days(30)}
    )
    assert r.status_code == 422
    assert r.json()["type"].endswith("/unknown-unit")
    assert r.json()["errors"][0]["field"] == "unit_id"
    r = report_client.post(
        "/api/v1/tasks",
        json={
            "problem_id": problem_id,
            "unit_id": unit_id,
            "deadline": days(30),
            "plan": {"milestones": [{"due": days(90), "percent": 50}]},
        },
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "plan.milestones.0.due"
    assert report_client.get("/api/v1/tasks").json()["items"] == []
    assert report_client.get(f"/api/v1/problems/{problem_id}").json()["status"] == "open"


def test_colours_follow_the_documented_rule_and_are_configurable(report_client: TestClient) -> None:
    unit_id = make_unit(report_client)
    # Started 50 days ago, 100-day plan: 50 % expected today.
    behind = report_client.post(
        "/api/v1/tasks",
        json={
            "problem_id": make_problem(report_client, title="甲"),
            "unit_id": unit_id,
            "start_date": days(-50),
            "deadline": days(50),
        },
    ).json()
    near = report_client.post(
        "/api/v1/tasks",
        json={
            "problem_id": make_problem(report_client, title="乙"),
            "unit_id": unit_id,
            "start_date": days(-5),
            "deadline": days(5),
        },
    ).json()
    on_time = report_client.post(
        "/api/v1/tasks",
        json={
            "problem_id": make_problem(report_client, title="丙"),
            "unit_id": unit_id,
            "deadline": days(200),
        },
    ).json()
    report_client.post(
        f"/api/v1/tasks/{near['id']}/progress",
        json={"percent": 60, "note": "进展", "evidence": EVIDENCE},
    )
    got = {t["id"]: t for t in report_client.get("/api/v1/tasks").json()["items"]}
    assert got[behind["id"]]["colour"] == "red"  # 50 points behind ≥ 30
    assert got[behind["id"]]["expected_progress"] == 50.0
    assert got[near["id"]]["colour"] == "yellow"  # 5 days left ≤ 15
    assert "临近" in got[near["id"]]["colour_reason"]
    assert got[on_time["id"]]["colour"] == "green"
    # Ten days later the second task is overdue (the third still on schedule).
    later = report_client.get("/api/v1/tasks", params={"as_of": days(10), "colour": "red"}).json()
    assert {t["id"] for t in later["items"]} == {behind["id"], near["id"]}

    r = report_client.put(
        "/api/v1/tasks/colour-rule", json={"red_lag_points": 60, "yellow_lag_points": 20}
    )
    assert r.status_code == 200 and r.json()["version"] == 1
    got = {t["id"]: t for t in report_client.get("/api/v1/tasks").json()["items"]}
    assert got[behind["id"]]["colour"] == "yellow"  # 50 behind is now below 60
    bad = report_client.put(
        "/api/v1/tasks/colour-rule", json={"red_lag_points": 5, "yellow_lag_points": 20}
    )
    assert bad.status_code == 422

    summary = report_client.get("/api/v1/tasks/summary", params={"group_by": "unit"}).json()
    assert summary["total"] == 3
    assert summary["by_colour"] == {"green": 1, "yellow": 2, "red": 0}
    assert summary["rows"][0]["name"] == "南昌县住建局"
    by_region = report_client.get("/api/v1/tasks/summary").json()
    assert [r["key"] for r in by_region["rows"]] == ["360121001"]


def test_reassignment_is_audited_and_scope_is_enforced(
    report_client: TestClient, node_settings: NodeSettings
) -> None:
    problem_id = make_problem(report_client)
    first = make_unit(report_client)
    second = make_unit(report_client, code="NCX-LHJ", name="莲塘镇人民政府")
    task = report_client.post(
        "/api/v1/tasks", json={"problem_id": problem_id, "unit_id": first, "deadline": days(90)}
    ).json()
    r = report_client.post(
        f"/api/v1/tasks/{task['id']}/reassign",
        json={"unit_id": second, "reason": "属地管理", "deadline": days(100)},
    )
    assert r.status_code == 200
    assert r.json()["unit"]["name"] == "莲塘镇人民政府" and r.json()["deadline"] == days(100)
    event = report_client.get(f"/api/v1/tasks/{task['id']}").json()["events"][-1]
    assert event["action"] == "reassign"
    assert event["detail"]["from_unit"] == "南昌县住建局"
    assert event["detail"]["to_deadline"] == days(100)

    # Another county can neither read nor change it; a viewer of this county cannot write.
    other = as_(node_settings, "360122", "admin")
    assert report_client.get(f"/api/v1/tasks/{task['id']}", headers=other).status_code == 403
    viewer = as_(node_settings, "360121", "viewer")
    assert report_client.get(f"/api/v1/tasks/{task['id']}", headers=viewer).status_code == 200
    r = report_client.post(
        f"/api/v1/tasks/{task['id']}/progress",
        json={"percent": 10, "note": "x", "evidence": EVIDENCE},
        headers=viewer,
    )
    assert r.status_code == 403
    # The city above reads it in its summary.
    city = as_(node_settings, "360100", "viewer")
    summary = report_client.get(
        "/api/v1/tasks/summary", params={"region_code": "360100"}, headers=city
    ).json()
    assert summary["rows"][0]["key"] == "360121" and summary["total"] == 1
    assert today().isoformat() == summary["as_of"]
