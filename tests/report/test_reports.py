"""Diagnosis and reports against the real indicator service, on both databases."""

from __future__ import annotations

import hashlib
import io

from docx import Document
from fastapi.testclient import TestClient

from services.report.sync.tables import SYNC
from shared.db import Database
from shared.settings import NodeSettings
from shared.sync import read_stream
from shared.sync.node import mark_upward
from tests.report.conftest import EVIDENCE, as_, days, seed_indicator, wait_job

Node = tuple[TestClient, TestClient, NodeSettings]


def _county(settings: NodeSettings, *roles: str) -> dict[str, str]:
    return as_(settings, "360121", *(roles or ("admin",)), subject="ncx-admin")


def test_diagnosis_merges_findings_and_does_not_duplicate_on_rerun(node: Node) -> None:
    ic, rc, settings = node
    system_id = seed_indicator(ic)
    county = _county(settings)
    r = rc.post(
        "/api/v1/diagnosis/run", json={"system_id": system_id, "period": "2025"}, headers=county
    )
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["created"] == 2 and run["unchanged"] == 0
    found = {f["dedupe_key"]: f for f in run["findings"]}
    # Red self-checkup value and the survey value that contradicts it: one problem, two rules.
    sewage = found["indicator:D-06"]
    assert sewage["severity"] == "high"
    assert sorted(sewage["rules"]) == ["disagreement", "indicator_grade"]
    assert sewage["title"] == "城市生活污水集中收集率不达标"
    cluster = found["indicator:H-08"]
    assert cluster["region_code"] == "360121100" and cluster["rules"] == ["object_cluster"]

    again = rc.post(
        "/api/v1/diagnosis/run", json={"system_id": system_id, "period": "2025"}, headers=county
    ).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    problems = rc.get("/api/v1/problems", params={"period": "2025"}, headers=county).json()
    assert len(problems["items"]) == 2
    p = next(p for p in problems["items"] if p["indicator_code"] == "D-06")
    kinds = {e["kind"] for e in p["evidence"]}
    assert kinds == {"evaluation", "disagreement"}
    assert p["region_code"] == "360121" and p["status"] == "open"

    # Stricter rules raise the cluster to high severity: updated, not duplicated.
    r = rc.put(
        "/api/v1/diagnosis/rules",
        json={"object_cluster": {"min_count": 10, "high_at": 20}},
        headers=county,
    )
    assert r.status_code == 200
    third = rc.post(
        "/api/v1/diagnosis/run", json={"system_id": system_id, "period": "2025"}, headers=county
    ).json()
    assert (third["created"], third["updated"]) == (0, 1)
    # Another county cannot run diagnosis for Nanchang County.
    r = rc.post(
        "/api/v1/diagnosis/run",
        json={"system_id": system_id, "period": "2025", "region_code": "360121"},
        headers=as_(settings, "360123", "admin"),
    )
    assert r.status_code == 403


def test_annual_report_in_four_formats_with_checksums_then_final_and_immutable(node: Node) -> None:
    ic, rc, settings = node
    # Record as a node with a parent does, to see every change of the flow queued upward.
    db: Database = rc.app.state.db  # type: ignore[attr-defined]
    mark_upward(db.sessionmaker)
    system_id = seed_indicator(ic)
    county = _county(settings)
    rc.post(
        "/api/v1/diagnosis/run", json={"system_id": system_id, "period": "2025"}, headers=county
    )
    problem = rc.get("/api/v1/problems", params={"indicator_code": "D-06"}, headers=county).json()
    unit = rc.post(
        "/api/v1/tasks/responsible-units",
        json={"code": "NCX-SW", "name": "南昌县水务局", "region_code": "360121"},
        headers=county,
    ).json()
    task = rc.post(
        "/api/v1/tasks",
        json={
            "problem_id": problem["items"][0]["id"],
            "unit_id": unit["id"],
            "deadline": days(180),
        },
        headers=county,
    ).json()
    project = rc.post(
        "/api/v1/projects",
        headers=county,
        json={
            "region_code": "360121",
            "name": "莲塘污水管网补短板工程",
            "location": "莲塘镇",
            "content": "新建污水管网12公里",
            "total_investment": 3200,
            "fiscal_investment": 2000,
            "social_investment": 1200,
            "start_month": "2025-03",
            "end_month": "2026-06",
            "responsible_department": "南昌县水务局",
        },
    )
    assert project.status_code == 201, project.text
    assert (
        rc.put(
            f"/api/v1/projects/{project.json()['id']}/tasks/{task['id']}", headers=county
        ).status_code
        == 200
    )

    r = rc.post(
        "/api/v1/report-jobs",
        headers=county,
        json={"kind": "annual", "region_code": "360121", "period": "2025", "system_id": system_id},
    )
    assert r.status_code == 202, r.text
    job = wait_job(rc, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"] == 100 and job["report_id"] and job["version"] == 1

    doc = rc.get(f"/api/v1/reports/{job['report_id']}/document", headers=county).json()
    assert doc["schema"] == "checkup-report-document/1"
    assert doc["title"] == "南昌县2025年度城市体检报告"
    summary = ic.get(
        "/api/v1/dashboard/summary",
        params={"region_code": "360121", "period": "2025", "system_id": system_id},
    ).json()
    facts = doc["facts"]
    assert facts["index"]["score"] == summary["index"]
    assert (facts["index"]["rank"], facts["index"]["rank_of"]) == (
        summary["rank"],
        summary["rank_of"],
    )
    assert {i["code"]: i["grade"] for i in facts["indicators"]}["D-06"] == "red"
    assert facts["problems"][0]["title"] == "城市生活污水集中收集率不达标"
    assert facts["rectification"]["total"] == 1
    assert facts["projects"][0]["name"] == "莲塘污水管网补短板工程"
    assert facts["projects"][0]["task_ids"] == [task["id"]]
    assert any(r["basis"] for r in facts["recommendations"])
    assert {c["code"] for c in facts["children"]} >= {"360121001", "360121100"}

    report = rc.get(f"/api/v1/reports/{job['report_id']}", headers=county).json()
    arts = {a["format"]: a for a in report["versions"][0]["artifacts"]}
    assert set(arts) == {"json", "html", "docx", "pdf"}
    for art in arts.values():
        got = rc.get(art["url"], headers=county)
        assert got.status_code == 200
        assert (
            hashlib.sha256(got.content).hexdigest()
            == art["sha256"]
            == got.headers["x-checksum-sha256"]
        )
        assert got.headers["x-report-version"] == "1"
    pdf = rc.get(arts["pdf"]["url"], headers=county).content
    assert pdf.startswith(b"%PDF")
    docx = Document(io.BytesIO(rc.get(arts["docx"]["url"], headers=county).content))
    assert "南昌县2025年度城市体检报告" in "\n".join(p.text for p in docx.paragraphs)

    # A second generation is version 2; then version 1 is made final.
    job2 = wait_job(
        rc,
        rc.post(
            "/api/v1/report-jobs",
            headers=county,
            json={
                "kind": "annual",
                "region_code": "360121",
                "period": "2025",
                "system_id": system_id,
                "formats": ["json", "pdf"],
            },
        ).json()["id"],
    )
    assert job2["version"] == 2 and job2["report_id"] == job["report_id"]
    viewer = _county(settings, "viewer")
    assert (
        rc.post(
            f"/api/v1/reports/{job['report_id']}/finalize", json={"version": 1}, headers=viewer
        ).status_code
        == 403
    )
    r = rc.post(f"/api/v1/reports/{job['report_id']}/finalize", json={"version": 1}, headers=county)
    assert r.status_code == 200 and r.json()["state"] == "final" and r.json()["final_version"] == 1
    # Immutable: no new version, no deletion, no second finalisation.
    r = rc.post(
        "/api/v1/report-jobs",
        headers=county,
        json={"kind": "annual", "region_code": "360121", "period": "2025", "system_id": system_id},
    )
    assert r.status_code == 409 and r.json()["type"].endswith("/report-final")
    assert rc.delete(f"/api/v1/reports/{job['report_id']}", headers=county).status_code == 409
    assert (
        rc.post(f"/api/v1/reports/{job['report_id']}/finalize", headers=county).status_code == 409
    )
    # The final version is what the document endpoint serves by default.
    assert (
        rc.get(f"/api/v1/reports/{job['report_id']}/document", headers=county).headers[
            "x-report-version"
        ]
        == "1"
    )
    # It is queued to go up the tiers with its checksum.
    with db.session() as session:
        outbox = read_stream(session, SYNC, "up", settings.node_id, 0, 1000)
    final = [o for o in outbox if o.entity == "report"]
    assert len(final) == 1 and final[0].payload["version"] == 1
    assert final[0].payload["sha256"] == report["versions"][0]["sha256"]
    assert {o.entity for o in outbox} == {"problem", "task", "project", "report"}
    seqs = [o.seq for o in outbox]
    assert seqs == list(range(1, len(seqs) + 1))


def test_tampered_artifact_is_refused(node: Node) -> None:
    _ic, rc, settings = node
    r = rc.post(
        "/api/v1/bulletins",
        json={"region_code": "360000", "period": "2025Q4", "formats": ["json", "html"]},
    )
    job = wait_job(rc, r.json()["id"])
    report = rc.get(f"/api/v1/reports/{job['report_id']}").json()
    html = settings.data_dir / "reports" / str(job["report_id"]) / "v1.html"
    html.write_bytes(html.read_bytes() + b"<!-- changed -->")
    got = rc.get(f"/api/v1/reports/{job['report_id']}/download", params={"format": "html"})
    assert got.status_code == 500 and got.json()["type"].endswith("/artifact-corrupt")
    assert report["versions"][0]["artifacts"][0]["format"] == "html"


def test_period_without_data_says_so_instead_of_failing(node: Node) -> None:
    ic, rc, settings = node
    system_id = seed_indicator(ic)
    r = rc.post(
        "/api/v1/report-jobs",
        headers=_county(settings),
        json={
            "kind": "annual",
            "region_code": "360121",
            "period": "2019",
            "system_id": system_id,
            "formats": ["json", "html"],
        },
    )
    job = wait_job(rc, r.json()["id"])
    assert job["status"] == "succeeded", job
    doc = rc.get(f"/api/v1/reports/{job['report_id']}/document").json()
    assert doc["data_available"] is False
    assert "暂无评价数据" in doc["notes"][0]
    assert "尚无指标评价数据" in doc["sections"][1]["text"]
    html = rc.get(f"/api/v1/reports/{job['report_id']}/download", params={"format": "html"}).text
    assert "本期暂无指标评价数据" in html


def test_province_report_compares_every_city(node: Node) -> None:
    ic, rc, _settings = node
    system_id = seed_indicator(ic)
    r = rc.post(
        "/api/v1/report-jobs",
        json={
            "kind": "province",
            "region_code": "360000",
            "period": "2025",
            "system_id": system_id,
            "formats": ["json", "html"],
        },
    )
    job = wait_job(rc, r.json()["id"])
    assert job["status"] == "succeeded", job
    doc = rc.get(f"/api/v1/reports/{job['report_id']}/document").json()
    assert doc["title"] == "江西省2025年度城市体检综合报告"
    cities = doc["facts"]["cities"]
    assert len(cities) == 11
    children = ic.get(
        "/api/v1/dashboard/children",
        params={"region_code": "360000", "period": "2025", "system_id": system_id},
    ).json()
    expected = sorted(
        (c for c in children["children"] if c["index"] is not None), key=lambda c: -c["index"]
    )
    scored = [c for c in cities if c["score"] is not None]
    assert [c["code"] for c in scored] == [c["region_code"] for c in expected]
    assert [c["name"] for c in scored] == [c["name"] for c in expected]
    assert [c["rank"] for c in scored] == [c["rank"] for c in expected]
    assert cities[-1]["score"] is None  # cities without data are listed, unranked
    counties = {c["code"]: c for c in doc["facts"]["counties"]}
    assert counties["360121"]["city_name"] == "南昌市"
    html = rc.get(f"/api/v1/reports/{job['report_id']}/download", params={"format": "html"}).text
    assert "各市城市健康指数排名" in html and "方格示意图" in html
    # A city cannot generate the provincial report.
    r = rc.post(
        "/api/v1/report-jobs",
        headers=as_(_settings, "360100", "admin"),
        json={
            "kind": "province",
            "region_code": "360100",
            "period": "2025",
            "system_id": system_id,
        },
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "region_code"


def test_bulletin_by_any_reader_counts_the_quarter(node: Node) -> None:
    _ic, rc, settings = node
    county = _county(settings)
    unit = make_unit_for(rc, county)
    problem = rc.post(
        "/api/v1/problems",
        headers=county,
        json={
            "region_code": "360121100",
            "period": "2025",
            "title": "莲塘镇积水点整治",
            "severity": "high",
            "evidence": [{"kind": "hotline", "count": 23}],
        },
    ).json()
    task = rc.post(
        "/api/v1/tasks",
        headers=county,
        json={
            "problem_id": problem["id"],
            "unit_id": unit,
            "deadline": days(3),
            "start_date": days(-60),
        },
    ).json()
    rc.post(
        f"/api/v1/tasks/{task['id']}/progress",
        headers=county,
        json={"percent": 20, "note": "已清淤", "evidence": EVIDENCE},
    )
    quarter = f"{days(0)[:4]}Q{(int(days(0)[5:7]) - 1) // 3 + 1}"
    viewer = as_(settings, "360100", "viewer", subject="city-viewer")
    r = rc.post(
        "/api/v1/bulletins", json={"region_code": "360100", "period": quarter}, headers=viewer
    )
    assert r.status_code == 202, r.text
    job = wait_job(rc, r.json()["id"])
    assert job["status"] == "succeeded", job
    doc = rc.get(f"/api/v1/reports/{job['report_id']}/document", headers=viewer).json()
    rect = doc["facts"]["rectification"]
    assert rect["total"] == 1 and rect["by_colour"]["red"] == 1
    assert rect["red_tasks"][0]["unit"] == "南昌县应急管理局"
    assert rect["by_region"][0]["name"] == "南昌县"
    assert doc["facts"]["quarter"]["new"] == 1
    assert "通报" in doc["title"]
    listed = rc.get("/api/v1/bulletins", params={"region_code": "360100"}, headers=viewer).json()
    assert [b["id"] for b in listed] == [job["report_id"]]
    # Another city's viewer cannot issue Nanchang's bulletin.
    r = rc.post(
        "/api/v1/bulletins",
        json={"region_code": "360100", "period": quarter},
        headers=as_(settings, "360200", "viewer"),
    )
    assert r.status_code == 403


def make_unit_for(rc: TestClient, headers: dict[str, str]) -> int:
    r = rc.post(
        "/api/v1/tasks/responsible-units",
        headers=headers,
        json={"code": "NCX-YJ", "name": "南昌县应急管理局", "region_code": "360121"},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_job_requests_are_checked(node: Node) -> None:
    _ic, rc, settings = node
    r = rc.post(
        "/api/v1/report-jobs", json={"kind": "annual", "region_code": "360121", "period": "2025年"}
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"period", "system_id"}
    r = rc.post(
        "/api/v1/report-jobs",
        json={"kind": "annual", "region_code": "360121", "period": "2025", "system_id": 1},
        headers=_county(settings, "viewer"),
    )
    assert r.status_code == 403
    assert rc.get("/api/v1/report-jobs", params={"region_code": "360121"}).json() == []
