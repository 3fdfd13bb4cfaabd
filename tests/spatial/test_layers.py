"""Layers out: GeoJSON with filters, OGC API – Features, GeoPackage and Shapefile exports."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyogrio
import shapefile
import shapely
from fastapi.testclient import TestClient

from shared.db import Database
from tests.spatial.conftest import C1, C2, COMMUNITY, CSV, create_system, csv_bytes, seed_objects


def _facilities(client: TestClient) -> None:
    rows: list[list[object]] = [
        ["K1", "幼儿园甲", "kindergarten", COMMUNITY, C1[0], C1[1] + 0.001],
        ["S1", "小学甲", "primary_school", COMMUNITY, C2[0], C2[1] + 0.001],
        [
            "P1",
            "公园甲",
            "park",
            COMMUNITY,
            "",
            "",
            "POLYGON((115.95 28.54, 115.951 28.54, 115.951 28.541, 115.95 28.541, 115.95 28.54))",
        ],
    ]
    header = ["code", "name", "facility_type", "region_code", "lon", "lat", "wkt"]
    r = client.post("/api/v1/facilities/import", content=csv_bytes(header, rows), headers=CSV)
    assert r.status_code == 200, r.text


def test_geojson_layers_filter_by_bbox_properties_and_scope(indicator_client: TestClient) -> None:
    seed_objects(indicator_client)
    _facilities(indicator_client)
    layers = {la["name"] for la in indicator_client.get("/api/v1/layers").json()}
    assert layers == {"compounds", "buildings", "facilities"}
    r = indicator_client.get(
        "/api/v1/layers/buildings",
        params={"bbox": f"{C1[0] - 0.01},{C1[1] - 0.01},{C1[0] + 0.005},{C1[1] + 0.01}"},
    )
    assert r.headers["content-type"].startswith("application/geo+json")
    assert sorted(f["properties"]["code"] for f in r.json()["features"]) == ["B1", "B2"]
    r = indicator_client.get("/api/v1/layers/facilities", params={"facility_type": "park"})
    assert [f["properties"]["code"] for f in r.json()["features"]] == ["P1"]
    assert r.json()["features"][0]["geometry"]["type"] == "Polygon"
    r = indicator_client.get("/api/v1/layers/buildings", params={"compound_code": "C2"})
    assert [f["properties"]["code"] for f in r.json()["features"]] == ["B3"]
    page = indicator_client.get("/api/v1/layers/buildings", params={"limit": 2}).json()
    assert page["numberReturned"] == 2 and page["next_cursor"] is not None
    rest = indicator_client.get(
        "/api/v1/layers/buildings", params={"limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert [f["properties"]["code"] for f in rest["features"]] == ["B3"]
    assert indicator_client.get("/api/v1/layers/roads").status_code == 404
    bad = indicator_client.get("/api/v1/layers/buildings", params={"bbox": "1,2,3"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "bbox"
    r = indicator_client.get("/api/v1/layers/compounds", params={"region_code": "360102"})
    assert r.status_code == 403


def test_deficient_buildings_layer_for_one_indicator(
    indicator_client: TestClient, indicator_db: Database
) -> None:
    system_id = create_system(indicator_db)
    seed_objects(indicator_client)
    r = indicator_client.post(
        "/api/v1/inspections",
        json={
            "system_id": system_id,
            "period": "2025",
            "unit_code": "B2",
            "inspector": "李工",
            "inspected_at": "2025-05-01T09:00:00+08:00",
            "results": [{"sub_item_code": "GAS-1", "outcome": "fail"}],
        },
    )
    assert r.status_code == 200
    params = {
        "system_id": system_id,
        "period": "2025",
        "indicator_code": "GAS",
        "outcome": "deficient",
    }
    r = indicator_client.get("/api/v1/layers/buildings", params=params)
    assert [f["properties"]["code"] for f in r.json()["features"]] == ["B2"]


def test_ogc_api_features(indicator_client: TestClient) -> None:
    seed_objects(indicator_client)
    _facilities(indicator_client)
    landing = indicator_client.get("/api/v1/ogc").json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    conf = indicator_client.get("/api/v1/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    cols = indicator_client.get("/api/v1/ogc/collections").json()["collections"]
    by_id = {c["id"]: c for c in cols}
    assert set(by_id) == {"compounds", "buildings", "facilities"}
    minx, miny, maxx, maxy = by_id["compounds"]["extent"]["spatial"]["bbox"][0]
    assert minx < C1[0] < C2[0] < maxx and miny < C1[1] < maxy
    items = indicator_client.get("/api/v1/ogc/collections/buildings/items", params={"limit": 2})
    assert items.headers["content-type"].startswith("application/geo+json")
    doc = items.json()
    assert doc["type"] == "FeatureCollection" and doc["numberReturned"] == 2
    nxt = next(link["href"] for link in doc["links"] if link["rel"] == "next")
    rest = indicator_client.get(nxt).json()
    assert rest["numberReturned"] == 1 and not any(lk["rel"] == "next" for lk in rest["links"])
    fid = rest["features"][0]["id"]
    one = indicator_client.get(f"/api/v1/ogc/collections/buildings/items/{fid}").json()
    assert one["properties"]["code"] == "B3"
    assert indicator_client.get("/api/v1/ogc/collections/buildings/items/999999").status_code == 404
    kg = indicator_client.get(
        "/api/v1/ogc/collections/facilities/items", params={"facility_type": "kindergarten"}
    ).json()
    assert [f["properties"]["code"] for f in kg["features"]] == ["K1"]


def test_exports_read_back_with_gdal(indicator_client: TestClient, tmp_path: Path) -> None:
    seed_objects(indicator_client)
    _facilities(indicator_client)
    r = indicator_client.get("/api/v1/layers/buildings/export", params={"format": "gpkg"})
    assert r.status_code == 200
    path = tmp_path / "b.gpkg"
    path.write_bytes(r.content)
    info = pyogrio.read_info(path)
    assert info["crs"] == "EPSG:4490" and info["features"] == 3
    meta, _fids, geoms, fields = pyogrio.raw.read(path)
    codes = list(fields[list(meta["fields"]).index("code")])
    assert sorted(codes) == ["B1", "B2", "B3"]
    b1 = shapely.from_wkb(geoms[codes.index("B1")])
    assert b1.equals_exact(shapely.Point(C1[0] - 0.001, C1[1]), 1e-9)
    r = indicator_client.get("/api/v1/layers/facilities/export", params={"format": "shapefile"})
    zpath = tmp_path / "f.zip"
    zpath.write_bytes(r.content)
    names = set(zipfile.ZipFile(zpath).namelist())
    assert {"facilities_point.shp", "facilities_polygon.shp", "facilities_point.prj"} <= names
    meta, _fids, geoms, fields = pyogrio.raw.read(f"/vsizip/{zpath}/facilities_point.shp")
    assert meta["crs"] == "EPSG:4490"
    names_idx = list(meta["fields"])
    assert sorted(fields[names_idx.index("name")]) == ["小学甲", "幼儿园甲"]
    assert sorted(fields[names_idx.index("ftype")]) == ["kindergarten", "primary_school"]
    # And with a second, pure-Python reader.
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(tmp_path / "shp")
    reader = shapefile.Reader(str(tmp_path / "shp" / "facilities_polygon"), encoding="utf-8")
    assert [rec["code"] for rec in reader.records()] == ["P1"]
    assert reader.shape(0).shapeType == shapefile.POLYGON
    # An export limited to a bbox holds only what the map showed.
    r = indicator_client.get(
        "/api/v1/layers/compounds/export",
        params={
            "format": "gpkg",
            "bbox": f"{C1[0] - 0.01},{C1[1] - 0.01},{C1[0] + 0.005},{C1[1] + 0.01}",
        },
    )
    path2 = tmp_path / "c.gpkg"
    path2.write_bytes(r.content)
    assert pyogrio.read_info(path2)["features"] == 1


def test_shapefile_and_geopackage_imports(indicator_client: TestClient, tmp_path: Path) -> None:
    """Files written by GDAL are read back by the importer, CRS checked."""
    import numpy as np

    geoms = np.array(
        [
            shapely.to_wkb(shapely.Point(C1[0] + 0.0005, C1[1])),
            shapely.to_wkb(shapely.Point(C1[0], C1[1] + 0.0005)),
        ],
        dtype=object,
    )
    fields = [np.array(["SB1", "SB2"], dtype=object), np.array(["C1", "C1"], dtype=object)]
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    seed_objects(indicator_client)
    pyogrio.raw.write(
        shp_dir / "b.shp",
        geoms,
        fields,
        ["code", "compound"],
        geometry_type="Point",
        crs="EPSG:4490",
        driver="ESRI Shapefile",
        encoding="UTF-8",
    )
    zpath = tmp_path / "b.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in shp_dir.iterdir():
            zf.write(f, f.name)
    r = indicator_client.post(
        "/api/v1/units/import",
        params={"kind": "building"},
        content=zpath.read_bytes(),
        headers={"content-type": "application/zip"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
    gpkg = tmp_path / "f.gpkg"
    pyogrio.raw.write(
        gpkg,
        geoms,
        [
            np.array(["G1", "G2"], dtype=object),
            np.array(["park", "clinic"], dtype=object),
            np.array([COMMUNITY, COMMUNITY], dtype=object),
        ],
        ["code", "facility_type", "region_code"],
        geometry_type="Point",
        crs="EPSG:3857",
        driver="GPKG",
    )
    r = indicator_client.post(
        "/api/v1/facilities/import",
        content=gpkg.read_bytes(),
        headers={"content-type": "application/geopackage+sqlite3"},
    )
    assert r.status_code == 422 and r.json()["type"].endswith("/wrong-crs")
    gpkg.unlink()
    pyogrio.raw.write(
        gpkg,
        geoms,
        [
            np.array(["G1", "G2"], dtype=object),
            np.array(["park", "clinic"], dtype=object),
            np.array([COMMUNITY, COMMUNITY], dtype=object),
        ],
        ["code", "facility_type", "region_code"],
        geometry_type="Point",
        crs="EPSG:4490",
        driver="GPKG",
    )
    r = indicator_client.post(
        "/api/v1/facilities/import",
        content=gpkg.read_bytes(),
        headers={"content-type": "application/geopackage+sqlite3"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
