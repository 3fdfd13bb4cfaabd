"""Renewal projects (项目清单) and pushing problems/tasks/reports up the tiers, both databases."""

from __future__ import annotations

from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.report.conftest import as_, days, make_problem, make_unit

PROJECT = {
    "region_code": "360121",
    "code": "A01",
    "category": "设施提升工程",
    "sector": "补齐便民设施短板",
    "need_description": "合理选址，增设电动自行车集中停放场所",
    "need_level": "紧迫",
    "name": "澄湖小区电动自行车集中充电场所建设项目",
    "location": "澄湖小区3栋旁空地",
    "content": "新增电动自行车充电停放车位120个",
    "total_investment": 85,
    "fiscal_investment": 50,
    "social_investment": 35,
    "start_month": "2025-04",
    "end_month": "2025-10",
    "year_ratio": 100,
    "responsible_department": "莲塘镇人民政府",
}


def test_project_list_checks_funding_and_audits_changes(report_client: TestClient) -> None:
    bad = {**PROJECT, "social_investment": 30}
    r = report_client.post("/api/v1/projects", json=bad)
    assert r.status_code == 422
    assert "财政资金 50 + 社会资金 30 ≠ 项目总投资 85" in r.json()["errors"][0]["message"]
    r = report_client.post("/api/v1/projects", json={**PROJECT, "end_month": "2025-13"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.end_month"
    assert report_client.get("/api/v1/projects").json()["items"] == []

    project = report_client.post("/api/v1/projects", json=PROJECT).json()
    assert project["total_investment"] == 85.0 and project["need_level"] == "紧迫"
    r = report_client.patch(
        f"/api/v1/projects/{project['id']}", json={"total_investment": 90, "reason": "增加雨棚"}
    )
    assert r.status_code == 422  # 50 + 35 ≠ 90
    r = report_client.patch(
        f"/api/v1/projects/{project['id']}",
        json={"total_investment": 90, "social_investment": 40, "reason": "增加雨棚"},
    )
    assert r.status_code == 200 and r.json()["total_investment"] == 90.0

    task = report_client.post(
        "/api/v1/tasks",
        json={
            "problem_id": make_problem(report_client),
            "unit_id": make_unit(report_client),
            "deadline": days(90),
        },
    ).json()
    r = report_client.put(f"/api/v1/projects/{project['id']}/tasks/{task['id']}")
    assert r.status_code == 200 and r.json()["task_ids"] == [task["id"]]
    assert (
        report_client.put(f"/api/v1/projects/{project['id']}/tasks/{task['id']}").status_code == 409
    )
    assert report_client.get(f"/api/v1/tasks/{task['id']}").json()["project_ids"] == [project["id"]]
    assert [
        p["id"]
        for p in report_client.get("/api/v1/projects", params={"year": 2025}).json()["items"]
    ] == [project["id"]]
    assert report_client.get("/api/v1/projects", params={"year": 2027}).json()["items"] == []


def test_child_batches_apply_once_in_order_and_bad_batches_are_refused_whole(
    report_client: TestClient, node_settings: NodeSettings
) -> None:
    # This node (county 360121) produces changes...
    problem_id = make_problem(report_client)
    outbox = report_client.get(
        "/api/v1/reports/federation/outbox", headers=as_(node_settings, "360121", "node")
    ).json()
    assert [(o["origin_node"], o["seq"], o["entity"]) for o in outbox["items"]] == [
        ("node-360121", 1, "problem")
    ]
    assert outbox["items"][0]["payload"]["id"] == problem_id
    assert (
        report_client.get(
            "/api/v1/reports/federation/outbox", headers=as_(node_settings, "360121", "viewer")
        ).status_code
        == 403
    )

    # ...and receives from a street-level node below it (as a parent would).
    child = as_(node_settings, "360121100", "node", subject="node-360121100")

    def rec(seq: int, region: str = "360121100") -> dict[str, object]:
        return {
            "seq": seq,
            "entity": "problem",
            "entity_key": f"node-360121100:problem:{seq}",
            "payload": {
                "region_code": region,
                "period": "2025",
                "title": f"问题{seq}",
                "status": "open",
            },
        }

    def push(*records: dict[str, object]) -> dict[str, object]:
        r = report_client.post(
            "/api/v1/reports/federation/inbox",
            headers=child,
            json={"origin_node": "node-360121100", "records": list(records)},
        )
        assert r.status_code in (200, 422), r.text
        return dict(r.json())

    assert push(rec(1), rec(2))["acked_seq"] == 2
    again = push(rec(2), rec(1))
    assert (again["applied"], again["skipped"], again["acked_seq"]) == (0, 2, 2)
    gap = push(rec(4))
    assert (gap["applied"], gap["acked_seq"]) == (0, 2)  # waits for 3
    assert push(rec(3), rec(4))["acked_seq"] == 4
    bad = push(rec(5), rec(6, region="360122100"))
    assert bad["status"] == 422 and bad["errors"][0]["row"] == 2
    assert push(rec(5))["acked_seq"] == 5  # nothing of the bad batch had been applied

    relayed = report_client.get(
        "/api/v1/reports/federation/outbox",
        headers=as_(node_settings, "360121", "node"),
        params={"after": outbox["next_after"]},
    ).json()["items"]
    assert [(o["origin_node"], o["seq"]) for o in relayed] == [
        ("node-360121100", s) for s in range(1, 6)
    ]
