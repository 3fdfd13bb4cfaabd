"""The shipped starter system: complete, honest about standards, loadable once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.indicator.evaluation.method import parse_index_method
from services.indicator.systems import service
from services.indicator.systems.formula import evaluation_order, parse
from services.indicator.systems.models import Indicator, IndicatorSystem, SubItem
from services.indicator.systems.schemas import SystemDocument
from shared.db import Database
from shared.settings import NodeSettings

# Every row of the 2023+ four-level table in REFERENCE-indicators.md, by level.
REFERENCE_ROWS = {
    "housing": [
        "存在结构安全隐患的住宅数量",
        "存在燃气安全隐患的住宅数量",
        "存在楼道安全隐患的住宅数量",
        "存在围护安全隐患的住宅数量",
        "非成套住宅数量",
        "存在管线管道破损的住宅数量",
        "需要进行适老化改造的住宅数量",
        "入户水质不达标的住宅数量",
        "需要进行节能改造的住宅数量",
        "需要进行数字化改造的住宅数量",
    ],
    "compound": [
        "未达标配建的养老服务设施数量",
        "未达标配建的婴幼儿照护服务设施数量",
        "未达标配建的幼儿园数量",
        "小学学位缺口数",
        "停车泊位缺口数",
        "新能源汽车充电桩缺口数",
        "未配建电动自行车充电设施的小区数量",
        "未达标配建的公共活动场地数量",
        "不达标的步行道长度",
        "未实施生活垃圾分类的小区数量",
        "未实施物业管理的小区数量",
        "需要进行智慧化改造的小区数量",
    ],
    "block": [
        "中学服务半径覆盖率",
        "未达标配建的多功能运动场地数量",
        "存在乱停乱放车辆问题的道路数量",
        "需要更新改造的老旧商业街区数量",
        "需要更新改造的老旧厂区数量",
    ],
    "district": [
        "人均公共文化设施面积",
        "应急供水保障率",
        "老旧燃气管网改造完成率",
        "城市消防站服务半径覆盖率",
        "CIM平台三维数据覆盖率",
    ],
}
DIMENSIONS = {"安全耐久", "功能完备", "绿色智能", "设施完善", "环境宜居", "管理健全"}


@pytest.fixture(scope="module")
def doc() -> SystemDocument:
    return service.starter_document()


def test_every_reference_row_is_there_with_its_level(doc: SystemDocument) -> None:
    national = [i for i in doc.indicators if i.category == "national"]
    for level, names in REFERENCE_ROWS.items():
        got = [i.name_zh for i in national if i.level == level]
        assert got == names, level
    for ind in doc.indicators:
        if ind.level in ("housing", "compound"):
            assert ind.dimension in DIMENSIONS, ind.code
        assert ind.code.split("-")[0] in {"H", "C", "B", "D", "JX"}
        assert ind.name_en, ind.code
    by_name = {i.name_zh: i for i in doc.indicators}
    assert by_name["中学服务半径覆盖率"].direction == "higher"
    assert by_name["不达标的步行道长度"].unit == "千米"
    assert by_name["人均公共文化设施面积"].unit == "m²/人"


def test_sub_item_checklists_follow_the_reference(doc: SystemDocument) -> None:
    subs = {i.code: [s.name for s in i.sub_items] for i in doc.indicators}
    assert len(subs["H-01"]) == 4 and len(subs["H-03"]) == 8 and len(subs["H-04"]) == 5
    assert any("20 年" in s for s in subs["H-02"])
    assert any("电动自行车" in s for s in subs["H-03"])
    assert subs["B-03"] == ["机动车乱停乱放 3 辆及以上", "非机动车乱停乱放 10 辆及以上"]
    for ind in doc.indicators:
        assert (ind.compute == "sub_items") == bool(ind.sub_items), ind.code
        assert all(s.code.startswith(ind.code + "-") for s in ind.sub_items)


def test_standards_only_where_a_real_one_is_known(doc: SystemDocument) -> None:
    with_standard = {
        i.code: i
        for i in doc.indicators
        if i.standard_value is not None or i.band_low is not None or i.band_high is not None
    }
    assert set(with_standard) == {"D-06", "D-07", "D-08", "JX-03"}
    assert (
        with_standard["D-06"].standard_value == 70
        and "70%" in with_standard["D-06"].standard_source
    )
    assert with_standard["D-08"].direction == "lower" and with_standard["D-08"].standard_value == 50
    assert "2000年底前" in with_standard["JX-03"].standard_source
    for ind in doc.indicators:
        assert bool(ind.standard_source) == (ind.code in with_standard), ind.code
        assert ind.warning_value is None  # no real warning bands are known


def test_formulas_are_honest_shares_of_indicators_in_the_system(doc: SystemDocument) -> None:
    codes = {i.code for i in doc.indicators}
    formulas = {i.code: parse(i.formula) for i in doc.indicators if i.formula}
    assert set(formulas) == {"H-12", "H-13", "C-14", "C-15", "JX-03"}
    for code, f in formulas.items():
        assert f.codes <= codes and code not in f.codes
    evaluation_order(formulas)  # no cycles
    assert formulas["JX-03"].evaluate({"JX-01": 120, "JX-02": 96}) == 80.0
    assert formulas["H-12"].evaluate({"H-01": 3, "H-11": 0}) is None
    provincial = [i for i in doc.indicators if i.category == "provincial"]
    assert {i.code for i in provincial} == {"JX-01", "JX-02", "JX-03"}


def test_ranges_and_types(doc: SystemDocument) -> None:
    for ind in doc.indicators:
        if ind.unit == "%":
            assert (ind.value_type, ind.min_value, ind.max_value) == ("percent", 0, 100)
        elif ind.unit in ("栋", "套", "个", "条"):
            assert (ind.value_type, ind.min_value) == ("integer", 0)
        else:
            assert ind.value_type == "number" and ind.min_value == 0
    parse_index_method(doc.index_method, {i.dimension for i in doc.indicators})
    assert service.document_problems(doc.indicators, doc.index_method) == []


@pytest.fixture
def db(node_settings: NodeSettings) -> Iterator[Database]:
    url, schema = node_settings.database_for("indicator")
    database = Database(url, schema=schema, spatial=True)
    yield database
    database.dispose()


def test_loader_is_idempotent_and_releases(db: Database, doc: SystemDocument) -> None:
    with db.session() as session:
        first = service.load_starter_system(session, "360000", "demo")
        first_id = first.id
        assert first.state == "released" and first.released_by == "demo"
        assert first.checksum == service.checksum_of(service.document_of(first))
    with db.session() as session:
        again = service.load_starter_system(session, "360121", "someone-else")
        assert again.id == first_id and again.region_code == "360000"
        n_systems = session.scalar(select(func.count()).select_from(IndicatorSystem))
        n_inds = session.scalar(select(func.count()).select_from(Indicator))
        n_subs = session.scalar(select(func.count()).select_from(SubItem))
        assert (n_systems, n_inds) == (1, len(doc.indicators))
        assert n_subs == sum(len(i.sub_items) for i in doc.indicators)
        by_code = service.indicators_by_code(session, first_id)
        assert list(by_code) == [i.code for i in doc.indicators]
        assert [s.code for s in by_code["H-01"].sub_items] == [f"H-01-{k}" for k in range(1, 5)]
        assert service.get_system(session, first_id).code == "CN-CHECKUP-BASE"


def test_starter_through_the_api(indicator_client: TestClient) -> None:
    first = indicator_client.post("/api/v1/systems/starter")
    assert first.status_code == 200, first.text
    again = indicator_client.post("/api/v1/systems/starter").json()
    assert again["id"] == first.json()["id"]
    assert len(again["indicators"]) == len(service.starter_document().indicators)
    r = indicator_client.post("/api/v1/systems/starter", params={"region_code": "360000"})
    assert r.status_code == 403  # outside this county node
