"""HTTP endpoints of the spatial domain: units, facilities, inspections, layers, OGC API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from services.indicator.spatial import coverage, inspections, layers, received, rollup, service
from services.indicator.spatial.models import RegionExtent
from services.indicator.spatial.schemas import (
    CoveragePlanOut,
    CoverageRuleIn,
    CoverageRuleOut,
    CoverageRunIn,
    ExtentIn,
    ExtentOut,
    FacilityOut,
    ImportReportOut,
    InspectionIn,
    InspectionOut,
    ReceivedInspectionPage,
    ReceivedSummaryOut,
    RollupIn,
    RollupOut,
    UnitOut,
)
from services.indicator.spatial.service import ImportReport
from shared.db import DbSession
from shared.errors import PROBLEM_JSON, ValidationFailed
from shared.identity import CurrentIdentity

units_router = APIRouter(prefix="/api/v1/units", tags=["units 小区与楼栋"])
facilities_router = APIRouter(prefix="/api/v1/facilities", tags=["facilities 公共服务设施"])
inspections_router = APIRouter(prefix="/api/v1/inspections", tags=["inspections 实地检查"])
layers_router = APIRouter(prefix="/api/v1/layers", tags=["layers 图层"])
ogc_router = APIRouter(prefix="/api/v1/ogc", tags=["ogc OGC API – Features"])
spatial_router = APIRouter(prefix="/api/v1/spatial", tags=["spatial 下级空间数据"])

routers = [
    units_router,
    facilities_router,
    inspections_router,
    layers_router,
    ogc_router,
    spatial_router,
]

GEOJSON = "application/geo+json"
ImportMode = Literal["per_row", "all_or_nothing"]
FileFormat = Literal["geojson", "csv", "shapefile", "gpkg"]
_IMPORT_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/geo+json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "application/geopackage+sqlite3": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _report_response(report: ImportReport) -> JSONResponse:
    """200 applied, 207 partial, 422 problem+json when nothing was applied."""
    body = ImportReportOut(**asdict(report)).model_dump()
    if report.status == "rejected":
        problem = ValidationFailed(
            f"导入被拒绝：{len({e['row'] for e in report.errors})} 行有错误，未写入任何数据 "
            "(import rejected, nothing stored)",
            errors=report.errors[:1000],
        ).to_problem()
        # "status" is the HTTP status in problem+json; the import's own status moves aside.
        problem.update({k: v for k, v in body.items() if k not in ("errors", "status")})
        problem["import_status"] = report.status
        return JSONResponse(problem, status_code=422, media_type=PROBLEM_JSON)
    return JSONResponse(body, status_code=207 if report.status == "partial" else 200)


# --- units ---------------------------------------------------------------------------


@units_router.post(
    "/import",
    response_model=ImportReportOut,
    summary="导入小区或楼栋 (import compounds or buildings)",
    openapi_extra=_IMPORT_DOC,
)
async def import_units(
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    kind: Literal["compound", "building"],
    format: FileFormat | None = None,
    crs: str | None = Query(None, description="文件未声明坐标系时使用，默认 EPSG:4490"),
    mode: ImportMode = "per_row",
) -> JSONResponse:
    """Import compounds or buildings from GeoJSON, CSV, zipped Shapefile or GeoPackage."""
    body = await request.body()
    report = service.import_objects(
        session,
        identity,
        target=kind,
        body=body,
        content_type=request.headers.get("content-type"),
        fmt=format,
        crs=crs,
        mode=mode,
    )
    return _report_response(report)


@units_router.get("/extents", response_model=list[ExtentOut], summary="区划范围 (extents)")
def list_extents(session: DbSession, identity: CurrentIdentity) -> list[ExtentOut]:
    """Configured region extents that imported objects must lie in."""
    from sqlalchemy import select

    return [
        _extent_out(e)
        for e in session.scalars(select(RegionExtent).order_by(RegionExtent.region_code))
    ]


@units_router.put(
    "/extents/{region_code}", response_model=ExtentOut, summary="设置区划范围 (set extent)"
)
def put_extent(
    region_code: str, body: ExtentIn, session: DbSession, identity: CurrentIdentity
) -> ExtentOut:
    """Set the bounding box objects of a region must lie in (admin of that region)."""
    return _extent_out(service.set_extent(session, identity, region_code, body.bbox, body.source))


def _extent_out(e: RegionExtent) -> ExtentOut:
    return ExtentOut(
        region_code=e.region_code,
        bbox=(e.min_lon, e.min_lat, e.max_lon, e.max_lat),
        source=e.source,
        updated_by=e.updated_by,
        updated_at=e.updated_at,
    )


@units_router.get("/{unit_id}", response_model=UnitOut, summary="小区或楼栋详情 (one unit)")
def get_unit(unit_id: int, session: DbSession, identity: CurrentIdentity) -> UnitOut:
    """One compound or building with its geometry."""
    return UnitOut(**service.object_detail(session, identity, "unit", unit_id))


@units_router.get(
    "/{unit_id}/inspections",
    response_model=list[InspectionOut],
    summary="对象的检查历史 (inspection history)",
)
def unit_inspections(
    unit_id: int, session: DbSession, identity: CurrentIdentity, system_id: int | None = None
) -> list[InspectionOut]:
    """Every inspection of one object, newest first; re-inspections keep the earlier ones."""
    return [
        InspectionOut(**h) for h in inspections.unit_history(session, identity, unit_id, system_id)
    ]


# --- facilities ----------------------------------------------------------------------


@facilities_router.post(
    "/import",
    response_model=ImportReportOut,
    summary="导入公共服务设施 (import facilities)",
    openapi_extra=_IMPORT_DOC,
)
async def import_facilities(
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    format: FileFormat | None = None,
    crs: str | None = Query(None, description="文件未声明坐标系时使用，默认 EPSG:4490"),
    mode: ImportMode = "per_row",
) -> JSONResponse:
    """Import facilities from GeoJSON, CSV, zipped Shapefile or GeoPackage."""
    body = await request.body()
    report = service.import_objects(
        session,
        identity,
        target="facility",
        body=body,
        content_type=request.headers.get("content-type"),
        fmt=format,
        crs=crs,
        mode=mode,
    )
    return _report_response(report)


@facilities_router.get(
    "/coverage/rules", response_model=list[CoverageRuleOut], summary="覆盖率规则 (rules)"
)
def coverage_rules(
    system_id: int, session: DbSession, _identity: CurrentIdentity
) -> list[CoverageRuleOut]:
    """Coverage rules of a system: facility type, radius and basis per indicator."""
    return [CoverageRuleOut.model_validate(r) for r in coverage.list_rules(session, system_id)]


@facilities_router.put(
    "/coverage/rules/{system_id}/{indicator_code}",
    response_model=CoverageRuleOut,
    summary="设置覆盖率规则 (set a coverage rule)",
)
def put_coverage_rule(
    system_id: int,
    indicator_code: str,
    body: CoverageRuleIn,
    session: DbSession,
    identity: CurrentIdentity,
) -> CoverageRuleOut:
    """Configure how one coverage indicator is computed (radius defaults to GB 50180-2018)."""
    rule = coverage.set_rule(
        session,
        identity,
        system_id=system_id,
        indicator_code=indicator_code,
        facility_type=body.facility_type,
        radius_m=body.radius_m,
        basis=body.basis,
    )
    return CoverageRuleOut.model_validate(rule)


@facilities_router.post(
    "/coverage/run", response_model=list[RollupOut], summary="计算覆盖率 (compute coverage)"
)
def run_coverage(
    body: CoverageRunIn, session: DbSession, identity: CurrentIdentity
) -> list[RollupOut]:
    """Compute coverage indicators in the database and write them as self-checkup values."""
    reports = coverage.run_coverage(
        session,
        identity,
        system_id=body.system_id,
        period=body.period,
        indicator_code=body.indicator_code,
    )
    return [RollupOut(**asdict(r)) for r in reports]


@facilities_router.get(
    "/coverage/plan", response_model=CoveragePlanOut, summary="覆盖率查询计划 (query plan)"
)
def coverage_plan(
    system_id: int, indicator_code: str, session: DbSession, identity: CurrentIdentity
) -> CoveragePlanOut:
    """The database's plan for one coverage computation, and whether it uses the index."""
    rules = [
        r for r in coverage.list_rules(session, system_id) if r.indicator_code == indicator_code
    ]
    if not rules:
        from shared.errors import NotFound

        raise NotFound(f"指标 {indicator_code} 没有覆盖率规则 (no rule)", slug="unknown-rule")
    plan = coverage.explain_coverage(
        session,
        facility_type=rules[0].facility_type,
        radius_m=rules[0].radius_m,
        scope=identity.region,
    )
    return CoveragePlanOut(**asdict(plan))


@facilities_router.get("/{facility_id}", response_model=FacilityOut, summary="设施详情")
def get_facility(facility_id: int, session: DbSession, identity: CurrentIdentity) -> FacilityOut:
    """One facility with its geometry."""
    return FacilityOut(**service.object_detail(session, identity, "facility", facility_id))


# --- inspections ---------------------------------------------------------------------


@inspections_router.post(
    "", response_model=ImportReportOut, summary="记录一次检查 (record one inspection)"
)
def record_inspection(
    body: InspectionIn,
    session: DbSession,
    identity: CurrentIdentity,
    rollup: bool = Query(True, description="写入后增量汇总 (roll up the changed communities)"),
) -> JSONResponse:
    """Record one inspection of one object; rejected as a whole when any outcome is invalid."""
    rows = [
        inspections.FieldRow(
            row=i,
            where=f"results[{i - 1}]",
            values={
                "unit_code": body.unit_code,
                "indicator_code": r.indicator_code,
                "sub_item_code": r.sub_item_code,
                "outcome": r.outcome,
                "note": r.note,
                "inspector": body.inspector,
                "inspected_at": body.inspected_at,
                "lon": body.lon,
                "lat": body.lat,
                "inspection_note": body.note,
            },
            evidence=[
                (e.file_ref, e.sha256, e.sub_item_code)
                for e in body.evidence
                # Evidence of one sub-item goes with its row; the rest with the first row.
                if e.sub_item_code == r.sub_item_code or (e.sub_item_code is None and i == 1)
            ],
        )
        for i, r in enumerate(body.results, start=1)
    ]
    report = inspections.record_inspections(
        session,
        identity,
        system_id=body.system_id,
        period=body.period,
        rows=rows,
        mode="all_or_nothing",
        rollup=rollup,
    )
    return _report_response(report)


@inspections_router.post(
    "/import",
    response_model=ImportReportOut,
    summary="导入检查表 (import field sheets)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
)
async def import_inspections(
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    system_id: int,
    period: str,
    mode: ImportMode = "per_row",
    rollup: bool = Query(True, description="写入后增量汇总 (roll up the changed communities)"),
) -> JSONResponse:
    """Import a CSV or xlsx field sheet (one row per object × sub-item)."""
    body = await request.body()
    report = inspections.import_field_sheet(
        session,
        identity,
        system_id=system_id,
        period=period,
        body=body,
        content_type=request.headers.get("content-type"),
        mode=mode,
        rollup=rollup,
    )
    return _report_response(report)


@inspections_router.get("/template", summary="检查表模板 (field sheet template, xlsx)")
def field_sheet_template(
    system_id: int, session: DbSession, _identity: CurrentIdentity
) -> Response:
    """The platform's xlsx field sheet for a released system, with its sub-item checklist."""
    data = inspections.field_sheet_template(session, system_id)
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"content-disposition": f'attachment; filename="inspections-{system_id}.xlsx"'},
    )


@inspections_router.post("/rollup", response_model=RollupOut, summary="汇总计数指标 (roll up)")
def run_rollup(body: RollupIn, session: DbSession, identity: CurrentIdentity) -> RollupOut:
    """Recompute count indicators bottom-up and write them as self-checkup values."""
    report = rollup.rollup_counts(
        session, identity, system_id=body.system_id, period=body.period, full=body.full
    )
    return RollupOut(**asdict(report))


# --- inspections received from below ------------------------------------------------


@spatial_router.get(
    "/received-inspections",
    response_model=ReceivedInspectionPage,
    summary="下级上报的检查 (inspections received from the nodes below)",
)
def received_inspections(
    session: DbSession,
    identity: CurrentIdentity,
    region_code: str | None = Query(None, description="默认本人管辖区划 (default: own region)"),
    period: Annotated[str | None, Query(max_length=10)] = None,
    system: str | None = Query(None, description="code@year@version"),
    unit_code: Annotated[str | None, Query(max_length=64)] = None,
    origin: Annotated[str | None, Query(max_length=64, description="来源节点")] = None,
    latest: bool = Query(False, description="只看每个对象最近一次检查 (latest visit only)"),
    cursor: int | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> ReceivedInspectionPage:
    """Read-only copies of inspections recorded below, within the caller's region scope."""
    page = received.list_received(
        session,
        identity,
        region_code=region_code,
        period=period,
        system=system,
        unit_code=unit_code,
        origin=origin,
        latest=latest,
        cursor=cursor,
        limit=limit,
    )
    return ReceivedInspectionPage.model_validate(page)


@spatial_router.get(
    "/received-inspections/summary",
    response_model=list[ReceivedSummaryOut],
    summary="下级检查汇总 (received inspections by region)",
)
def received_inspections_summary(
    session: DbSession,
    identity: CurrentIdentity,
    region_code: str | None = Query(None, description="默认本人管辖区划 (default: own region)"),
    period: Annotated[str | None, Query(max_length=10)] = None,
    system: str | None = Query(None, description="code@year@version"),
    latest: bool = Query(False, description="只计每个对象最近一次检查 (latest visits only)"),
    level: Literal["county", "street", "community"] = "county",
) -> list[ReceivedSummaryOut]:
    """Per county (street, community): inspections, sub-items checked, failed sub-items."""
    rows = received.summarise_received(
        session,
        identity,
        region_code=region_code,
        period=period,
        system=system,
        latest=latest,
        level=level,
    )
    return [ReceivedSummaryOut(**r) for r in rows]


# --- layers --------------------------------------------------------------------------


def _query(
    request: Request,
    layer: layers.Layer,
    *,
    bbox: str | None,
    region_code: str | None,
    name: str | None,
    system_id: int | None,
    period: str | None,
    indicator_code: str | None,
    outcome: str | None,
    cursor: int | None,
    limit: int | None,
) -> layers.FeatureQuery:
    props = {k: v for k, v in request.query_params.items() if k in layer.filters and k != "name"}
    props.pop("region_code", None)
    return layers.FeatureQuery(
        bbox=layers.parse_bbox(bbox),
        region_code=region_code,
        props=props,
        name_contains=name,
        system_id=system_id,
        period=period,
        indicator_code=indicator_code,
        outcome=outcome,
        cursor=cursor,
        limit=limit,
    )


@layers_router.get("", summary="图层列表 (layers)")
def list_layers(_identity: CurrentIdentity) -> list[dict[str, Any]]:
    """The layers a map client can read, with their filterable properties."""
    return [
        {"name": la.name, "title": la.title, "filters": list(la.filters)}
        for la in layers.LAYERS.values()
    ]


@layers_router.get(
    "/values/{system_id}/{indicator_code}/{region_code}/{period}/objects",
    summary="数值背后的对象 (objects behind a value)",
)
def objects_behind_value(
    system_id: int,
    indicator_code: str,
    region_code: str,
    period: str,
    session: DbSession,
    identity: CurrentIdentity,
    outcome: str | None = Query(None, description="deficient / ok / covered / uncovered"),
) -> Response:
    """GeoJSON of the buildings or compounds behind one computed value, with outcomes."""
    doc = layers.value_objects(
        session,
        identity,
        system_id=system_id,
        indicator_code=indicator_code,
        region_code=region_code,
        period=period,
        outcome=outcome,
    )
    return JSONResponse(doc, media_type=GEOJSON)


@layers_router.get("/{layer}", summary="图层要素 GeoJSON (features)")
def layer_features(
    layer: str,
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    bbox: str | None = Query(None, description="minLon,minLat,maxLon,maxLat"),
    region_code: str | None = None,
    name: str | None = Query(None, description="名称包含 (name contains)"),
    system_id: int | None = None,
    period: str | None = None,
    indicator_code: str | None = None,
    outcome: str | None = None,
    cursor: int | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> Response:
    """GeoJSON features of a layer with bbox and property filters (code, facility_type …)."""
    la = layers.get_layer(layer)
    q = _query(
        request,
        la,
        bbox=bbox,
        region_code=region_code,
        name=name,
        system_id=system_id,
        period=period,
        indicator_code=indicator_code,
        outcome=outcome,
        cursor=cursor,
        limit=limit,
    )
    return JSONResponse(layers.feature_collection(session, la, identity, q), media_type=GEOJSON)


@layers_router.get("/{layer}/export", summary="导出图层 (export as GeoPackage / Shapefile)")
def export_layer(
    layer: str,
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    format: Literal["gpkg", "shapefile"] = "gpkg",
    bbox: str | None = Query(None, description="minLon,minLat,maxLon,maxLat"),
    region_code: str | None = None,
    name: str | None = None,
    system_id: int | None = None,
    period: str | None = None,
    indicator_code: str | None = None,
    outcome: str | None = None,
) -> Response:
    """The layer in CGCS2000 as a GeoPackage or a zipped Shapefile, with the same filters."""
    la = layers.get_layer(layer)
    q = _query(
        request,
        la,
        bbox=bbox,
        region_code=region_code,
        name=name,
        system_id=system_id,
        period=period,
        indicator_code=indicator_code,
        outcome=outcome,
        cursor=None,
        limit=None,
    )
    data, media, filename = layers.export_layer(session, la, identity, q, format)
    return Response(
        data,
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


# --- OGC API – Features --------------------------------------------------------------

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/api/v1/ogc"


def _collection(request: Request, session: Any, identity: Any, la: layers.Layer) -> dict[str, Any]:
    base = _base(request)
    extent = layers.layer_extent(session, la, identity)
    out: dict[str, Any] = {
        "id": la.name,
        "title": la.title,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": "http://www.opengis.net/def/crs/EPSG/0/4490",
        "links": [
            {"href": f"{base}/collections/{la.name}", "rel": "self", "type": "application/json"},
            {
                "href": f"{base}/collections/{la.name}/items",
                "rel": "items",
                "type": GEOJSON,
                "title": la.title,
            },
        ],
    }
    if extent:
        out["extent"] = {"spatial": {"bbox": [list(extent)], "crs": CRS84}}
    return out


@ogc_router.get("", summary="OGC 入口页 (landing page)")
def ogc_landing(request: Request, _identity: CurrentIdentity) -> dict[str, Any]:
    """OGC API – Features landing page."""
    base = _base(request)
    root = str(request.base_url).rstrip("/")
    return {
        "title": "城市体检空间数据 (city checkup spatial layers)",
        "description": "小区、楼栋、公共服务设施，CGCS2000 (compounds, buildings, facilities)",
        "links": [
            {"href": base, "rel": "self", "type": "application/json"},
            {
                "href": f"{root}/openapi.json",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
            },
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
        ],
    }


@ogc_router.get("/conformance", summary="OGC 符合性 (conformance)")
def ogc_conformance(_identity: CurrentIdentity) -> dict[str, Any]:
    """Conformance classes implemented."""
    return {"conformsTo": CONFORMANCE}


@ogc_router.get("/collections", summary="OGC 集合 (collections)")
def ogc_collections(
    request: Request, session: DbSession, identity: CurrentIdentity
) -> dict[str, Any]:
    """Every layer as a feature collection."""
    return {
        "links": [{"href": f"{_base(request)}/collections", "rel": "self"}],
        "collections": [
            _collection(request, session, identity, la) for la in layers.LAYERS.values()
        ],
    }


@ogc_router.get("/collections/{collection_id}", summary="OGC 集合详情 (collection)")
def ogc_collection(
    collection_id: str, request: Request, session: DbSession, identity: CurrentIdentity
) -> dict[str, Any]:
    """One collection's metadata."""
    return _collection(request, session, identity, layers.get_layer(collection_id))


@ogc_router.get("/collections/{collection_id}/items", summary="OGC 要素 (items)")
def ogc_items(
    collection_id: str,
    request: Request,
    session: DbSession,
    identity: CurrentIdentity,
    bbox: str | None = Query(None, description="minLon,minLat,maxLon,maxLat (CRS84)"),
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    cursor: int | None = None,
) -> Response:
    """Features of a collection (GeoJSON); filter by bbox and by property=value."""
    la = layers.get_layer(collection_id)
    q = _query(
        request,
        la,
        bbox=bbox,
        region_code=request.query_params.get("region_code"),
        name=None,
        system_id=None,
        period=None,
        indicator_code=None,
        outcome=None,
        cursor=cursor,
        limit=limit,
    )
    doc = layers.feature_collection(session, la, identity, q)
    self_url = str(request.url)
    links = [{"href": self_url, "rel": "self", "type": GEOJSON}]
    if doc["next_cursor"] is not None:
        links.append(
            {
                "href": str(request.url.include_query_params(cursor=doc["next_cursor"])),
                "rel": "next",
                "type": GEOJSON,
            }
        )
    doc.pop("next_cursor")
    doc.pop("name")
    doc["links"] = links
    return JSONResponse(doc, media_type=GEOJSON)


@ogc_router.get("/collections/{collection_id}/items/{feature_id}", summary="OGC 单个要素")
def ogc_item(
    collection_id: str, feature_id: int, session: DbSession, identity: CurrentIdentity
) -> Response:
    """One feature by id."""
    from shapely.geometry import mapping

    from shared.errors import NotFound

    la = layers.get_layer(collection_id)
    q = layers.FeatureQuery(cursor=feature_id - 1, limit=1)
    for fid, geom, props in layers.query_features(session, la, identity, q):
        if fid == feature_id:
            feature = {"type": "Feature", "id": fid, "geometry": mapping(geom), "properties": props}
            return JSONResponse(feature, media_type=GEOJSON)
    raise NotFound(f"要素不存在: {collection_id}/{feature_id} (unknown feature)")
