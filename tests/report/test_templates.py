"""Report outline templates a province edits without code; errors carry the template line."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.report.reports.outline import default_outline_text
from shared.settings import NodeSettings
from tests.report.conftest import as_, seed_indicator, wait_job

Node = tuple[TestClient, TestClient, NodeSettings]
YAML = {"content-type": "text/yaml; charset=utf-8"}

CUSTOM = """\
# 江西省定制提纲
kind: annual
title: "{{ region.name }}{{ period }}年城市体检简报"
sections:
  - type: cover
  - type: text
    title: 一、说明
    text: |
      本简报由{{ region.name }}根据省定提纲生成，
      共列出 {{ facts.problems | length }} 项问题。
  - type: problems
    title: 二、问题清单
"""


def _put(rc: TestClient, text: str, headers: dict[str, str] | None = None) -> object:
    return rc.put(
        "/api/v1/reports/templates/annual",
        params={"region_code": "360000"},
        content=text.encode("utf-8"),
        headers={**YAML, **(headers or {})},
    )


def test_errors_name_the_template_line_and_store_nothing(node: Node) -> None:
    _ic, rc, _ = node
    cases = [
        # YAML syntax: the unclosed quote on line 3.
        (
            CUSTOM.replace(
                'title: "{{ region.name }}{{ period }}年城市体检简报"', 'title: "{{ region.name }}'
            ),
            3,
            "template",
        ),
        # Jinja2 syntax inside a block scalar: the second text line is line 10.
        (
            CUSTOM.replace("{{ facts.problems | length }}", "{{ facts.problems | length }"),
            10,
            "sections[1].text",
        ),
        # Unknown section type on line 11.
        (CUSTOM.replace("type: problems", "type: probelms"), 11, "sections[2].type"),
        # Unknown name, caught by the dry run against the sample document.
        (CUSTOM.replace("facts.problems", "facts.problemz"), 10, "sections[1].text"),
        # Wrong kind on line 2.
        (CUSTOM.replace("kind: annual", "kind: bulletin"), 2, "kind"),
    ]
    for text, line, field in cases:
        r = rc.post(
            "/api/v1/reports/templates/annual/validate", content=text.encode(), headers=YAML
        )
        assert r.status_code == 422, (field, r.text)
        body = r.json()
        assert body["type"].endswith("/template-invalid")
        assert body["errors"][0]["line"] == line, (field, body)
        assert body["errors"][0]["field"] == field, body
        assert f"第 {line} 行" in body["detail"]
        r = _put(rc, text)
        assert r.status_code == 422
    current = rc.get("/api/v1/reports/templates/annual").json()
    assert current["source"] == "default" and current["text"] == default_outline_text("annual")


def test_a_province_outline_applies_to_its_cities_and_counties(node: Node) -> None:
    ic, rc, settings = node
    system_id = seed_indicator(ic)
    county = as_(settings, "360121", "admin")
    assert _put(rc, CUSTOM, county).status_code == 403  # only for its own area
    r = _put(rc, CUSTOM)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1
    got = rc.get("/api/v1/reports/templates/annual", params={"region_code": "360121"}).json()
    assert (got["source"], got["region_code"], got["version"]) == ("configured", "360000", 1)

    rc.post(
        "/api/v1/diagnosis/run", json={"system_id": system_id, "period": "2025"}, headers=county
    )
    job = wait_job(
        rc,
        rc.post(
            "/api/v1/report-jobs",
            headers=county,
            json={
                "kind": "annual",
                "region_code": "360121",
                "period": "2025",
                "system_id": system_id,
                "formats": ["json", "html"],
            },
        ).json()["id"],
    )
    assert job["status"] == "succeeded", job
    doc = rc.get(f"/api/v1/reports/{job['report_id']}/document", headers=county).json()
    assert doc["title"] == "南昌县2025年城市体检简报"
    assert [s["type"] for s in doc["sections"]] == ["cover", "text", "problems"]
    assert doc["sections"][1]["text"] == "本简报由南昌县根据省定提纲生成，\n共列出 2 项问题。"
    assert doc["template"] == {
        "source": "configured",
        "region_code": "360000",
        "version": 1,
        "sha256": got["sha256"],
    }
