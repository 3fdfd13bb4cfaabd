"""Importing compounds, buildings and facilities: formats, validation, scope, audit."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from shared.db import Database
from tests.spatial.conftest import (
    C1,
    COMMUNITY,
    CSV,
    GJ,
    OTHER_COUNTY_COMMUNITY,
    csv_bytes,
    feature,
    geojson,
    seed_objects,
    square,
)


def test_geojson_import_stores_objects_with_geometry_and_audit(
    indicator_client: TestClient, indicator_db: Database
) -> None:
    seed_objects(indicator_client)
    layer = indicator_client.get("/api/v1/layers/buildings").json()
    by_code = {f["properties"]["code"]: f for f in layer["features"]}
    assert set(by_code) == {"B1", "B2", "B3"}
    assert by_code["B1"]["geometry"] == {"type": "Point", "coordinates": [C1[0] - 0.001, C1[1]]}
    assert by_code["B3"]["geometry"]["type"] == "Polygon"
    assert by_code["B1"]["properties"]["compound_code"] == "C1"
    assert by_code["B1"]["properties"]["region_code"] == COMMUNITY  # inherited from compound
    unit = indicator_client.get(f"/api/v1/units/{by_code['B3']['id']}").json()
    assert unit["kind"] == "building" and unit["floors"] == 18
    assert abs(unit["lon"] - 115.96) < 1e-3 and unit["updated_by"] == "tester"
    with indicator_db.session() as s:
        events = s.execute(
            text("SELECT action, actor, COUNT(*) FROM spatial_events GROUP BY action, actor")
        ).all()
        assert [tuple(e) for e in events] == [("create", "tester", 5)]
        srid = s.execute(text("SELECT DISTINCT ST_SRID(geom) FROM spatial_units")).scalars().all()
        assert srid == [4490]


def test_reimport_updates_in_place_and_logs_updates(
    indicator_client: TestClient, indicator_db: Database
) -> None:
    seed_objects(indicator_client)
    r = indicator_client.post(
        "/api/v1/units/import",
        params={"kind": "compound"},
        content=geojson(
            feature(
                square(*C1),
                code="C1",
                name="莲塘一小区（改）",
                region_code=COMMUNITY,
                residents=950,
                物业="有",
            ),
        ),
        headers=GJ,
    )
    assert r.json() | {"errors": []} == {
        "batch_id": r.json()["batch_id"],
        "status": "applied",
        "rows_total": 1,
        "rows_applied": 1,
        "rows_rejected": 0,
        "created": 0,
        "updated": 1,
        "errors": [],
    }
    compounds = indicator_client.get("/api/v1/layers/compounds", params={"code": "C1"}).json()
    assert compounds["features"][0]["properties"]["name"] == "莲塘一小区（改）"
    assert compounds["features"][0]["properties"]["residents"] == 950
    with indicator_db.session() as s:
        n = s.execute(text("SELECT COUNT(*) FROM spatial_units WHERE kind = 'compound'")).scalar()
        assert n == 2
        attrs = s.execute(text("SELECT attrs FROM spatial_units WHERE code = 'C1'")).scalar()
        assert (attrs if isinstance(attrs, dict) else __import__("json").loads(attrs)) == {
            "物业": "有"
        }


def test_bad_rows_are_rejected_with_reasons_and_good_rows_kept(
    indicator_client: TestClient, indicator_db: Database
) -> None:
    seed_objects(indicator_client)
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[115.94, 28.54], [115.95, 28.55], [115.95, 28.54], [115.94, 28.55], [115.94, 28.54]]
        ],
    }
    body = geojson(
        feature(square(115.945, 28.56), code="OK1", region_code=COMMUNITY),  # 1 good
        feature(bowtie, code="BAD-SELF", region_code=COMMUNITY),  # 2 self-intersecting
        feature(square(12_900_000, 3_320_000, 100), code="BAD-CRS", region_code=COMMUNITY),
        feature(square(116.9, 29.5), code="BAD-EXT", region_code=OTHER_COUNTY_COMMUNITY),  # 4
        feature(square(110.0, 28.0), code="BAD-BOX", region_code=COMMUNITY),  # 5 outside JX
        feature(
            {"type": "Point", "coordinates": [115.9, 28.5]}, code="BAD-TYPE", region_code=COMMUNITY
        ),  # 6 point for a compound
        feature(square(115.9, 28.5), code="BAD-REG", region_code="360121999999"),  # 7
        feature(square(115.9, 28.5), code="OK1", region_code=COMMUNITY),  # 8 duplicate
        feature(square(115.9, 28.5), code="B1", region_code=COMMUNITY),  # 9 code of a building
        feature(None, code="NO-GEOM", region_code=COMMUNITY),  # 10
    )
    r = indicator_client.post(
        "/api/v1/units/import", params={"kind": "compound"}, content=body, headers=GJ
    )
    assert r.status_code == 207
    report = r.json()
    assert report["status"] == "partial"
    assert (report["rows_total"], report["rows_applied"], report["rows_rejected"]) == (10, 1, 9)
    by_row = {e["row"]: e for e in report["errors"]}
    assert set(by_row) == set(range(2, 11))
    assert "Self-intersection" in by_row[2]["message"]
    assert by_row[3]["field"] == "geometry" and "投影" in by_row[3]["message"]
    assert by_row[4]["field"] == "region_code" and "管辖范围" in by_row[4]["message"]
    assert "超出区划 360000" in by_row[5]["message"]
    assert "Polygon" in by_row[6]["message"]
    assert "不存在" in by_row[7]["message"]
    assert "重复" in by_row[8]["message"]
    assert "楼栋" in by_row[9]["message"]
    assert by_row[10]["field"] == "geometry"
    assert all(e["message"].startswith(f"第 {e['row']} 个要素") for e in report["errors"])
    with indicator_db.session() as s:
        codes = set(s.execute(text("SELECT code FROM spatial_units")).scalars())
        assert codes == {"C1", "C2", "B1", "B2", "B3", "OK1"}


def test_all_or_nothing_rejects_the_file_and_keeps_what_was_stored(
    indicator_client: TestClient, indicator_db: Database
) -> None:
    seed_objects(indicator_client)
    body = geojson(
        feature(square(115.945, 28.56), code="NEW1", region_code=COMMUNITY),
        feature(square(115.945, 28.56), code="C1", region_code="36012100100"),
    )
    r = indicator_client.post(
        "/api/v1/units/import",
        params={"kind": "compound", "mode": "all_or_nothing"},
        content=body,
        headers=GJ,
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 422 and problem["rows_applied"] == 0
    assert problem["errors"][0]["row"] == 2 and problem["errors"][0]["field"] == "region_code"
    with indicator_db.session() as s:
        assert s.execute(text("SELECT COUNT(*) FROM spatial_units")).scalar() == 5
        name = s.execute(text("SELECT name FROM spatial_units WHERE code = 'C1'")).scalar()
        assert name == "莲塘一小区"
        status = s.execute(
            text("SELECT status FROM spatial_batches ORDER BY id DESC LIMIT 1")
        ).scalar()
        assert status == "rejected"


def test_building_outside_its_compound_and_unknown_compound_are_rejected(
    indicator_client: TestClient,
) -> None:
    seed_objects(indicator_client)
    body = geojson(
        feature(
            {"type": "Point", "coordinates": [C1[0] + 0.01, C1[1]]}, code="B9", compound_code="C1"
        ),
        feature({"type": "Point", "coordinates": [C1[0], C1[1]]}, code="B10", compound_code="NOPE"),
    )
    r = indicator_client.post(
        "/api/v1/units/import", params={"kind": "building"}, content=body, headers=GJ
    )
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert [e["row"] for e in errors] == [1, 2]
    assert "不在所属小区" in errors[0]["message"]
    assert errors[1]["field"] == "compound_code"


def test_csv_with_coordinates_and_chinese_headers(indicator_client: TestClient) -> None:
    body = csv_bytes(
        ["编码", "名称", "设施类型", "区划代码", "经度", "纬度", "学位数"],
        [
            ["F1", "莲塘幼儿园", "幼儿园", "360121", "115.941", "28.551", "270"],
            ["F2", "莲塘小学", "primary_school", COMMUNITY, "115.95", "28.56", "abc"],
            ["F3", "无名", "飞机场", COMMUNITY, "115.95", "28.56", ""],
            ["F4", "莲塘中学", "中学", COMMUNITY, "", "", ""],
        ],
    )
    r = indicator_client.post("/api/v1/facilities/import", content=body, headers=CSV)
    assert r.status_code == 207, r.text
    errors = {e["row"]: e for e in r.json()["errors"]}
    assert errors[2]["field"] == "capacity"
    assert "文件第 3 行" in errors[2]["message"]
    assert errors[3]["field"] == "facility_type"
    assert errors[4]["field"] == "geometry"
    fac = indicator_client.get("/api/v1/layers/facilities").json()["features"]
    assert [(f["properties"]["code"], f["properties"]["facility_type"]) for f in fac] == [
        ("F1", "kindergarten")
    ]
    assert fac[0]["properties"]["capacity"] == 270


def test_broken_files_and_wrong_crs_are_refused_whole(indicator_client: TestClient) -> None:
    r = indicator_client.post(
        "/api/v1/units/import", params={"kind": "compound"}, content=b"{not json", headers=GJ
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "file"
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
        "features": [feature(square(*C1), code="X", region_code=COMMUNITY)],
    }
    r = indicator_client.post(
        "/api/v1/units/import",
        params={"kind": "compound"},
        content=__import__("json").dumps(doc).encode(),
        headers=GJ,
    )
    assert r.status_code == 422
    assert r.json()["type"].endswith("/wrong-crs") and r.json()["errors"][0]["field"] == "crs"
    r = indicator_client.post(
        "/api/v1/units/import",
        params={"kind": "compound"},
        content=b"PK\x03\x04garbage",
        headers={"content-type": "application/zip"},
    )
    assert r.status_code == 422 and r.json()["type"].endswith("/broken-file")
    r = indicator_client.post(
        "/api/v1/units/import",
        params={"kind": "compound"},
        content=b"a,b\n1,2\n",
        headers={"content-type": "application/pdf"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "content-type"


def test_a_viewer_cannot_import_and_other_counties_are_invisible(
    indicator_client: TestClient, node_settings: object
) -> None:
    from tests.conftest import identity_headers

    seed_objects(indicator_client)
    viewer = identity_headers(node_settings, "360121", "viewer")  # type: ignore[arg-type]
    r = indicator_client.post(
        "/api/v1/units/import",
        params={"kind": "compound"},
        content=geojson(feature(square(*C1), code="Z", region_code=COMMUNITY)),
        headers={**GJ, **viewer},
    )
    assert r.status_code == 403
    other = identity_headers(node_settings, "360102", "admin")  # type: ignore[arg-type]
    assert indicator_client.get("/api/v1/layers/compounds", headers=other).json()["features"] == []
    unit_id = indicator_client.get("/api/v1/layers/compounds").json()["features"][0]["id"]
    assert indicator_client.get(f"/api/v1/units/{unit_id}", headers=other).status_code == 403
