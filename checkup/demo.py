"""The demo of the whole flow on the embedded default: province, city and two counties."""

from __future__ import annotations

import logging
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from checkup.cluster import NodeProcess
from checkup.sample_data import sample_values, to_csv
from checkup.waiting import wait_for
from shared.settings import NodeSettings

PERIOD = "2025"
PREVIOUS = "2024"
GRADE_ZH = {"green": "达标", "yellow": "预警", "red": "不达标", "grey": "无标准"}


def _say(text: str) -> None:
    print(text, flush=True)


class DemoError(RuntimeError):
    pass


def _check(r: httpx.Response, what: str) -> Any:
    if r.status_code >= 400:
        raise DemoError(f"{what} 失败: HTTP {r.status_code} {r.text[:500]}")
    return r.json()


TIERS: tuple[tuple[str, str, str | None], ...] = (
    # region, name, parent region
    ("360000", "江西省", None),
    ("360100", "南昌市", "360000"),
    ("360121", "南昌县", "360100"),
    ("360124", "进贤县", "360100"),
)
PROVINCE, CITY = "360000", "360100"
COUNTIES = ("360121", "360124")


class DemoNode:
    """One node of the demo: its process, name, users and their tokens."""

    def __init__(self, settings: NodeSettings, name: str, port: int | None) -> None:
        self.process = NodeProcess(settings, port)
        self.name = name
        self.passwords: dict[str, str] = {}
        self.tokens: dict[str, dict[str, str]] = {}

    @property
    def code(self) -> str:
        return self.process.region_code

    @property
    def url(self) -> str:
        return self.process.url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=300)

    def login_all(self) -> None:
        with self.client() as c:
            for user, password in self.passwords.items():
                self.tokens[user] = _login(c, user, password)

    def call(self, user: str, method: str, path: str, what: str, **kwargs: Any) -> Any:
        with self.client() as c:
            headers = {**self.tokens[user], **kwargs.pop("headers", {})}
            return _check(c.request(method, path, headers=headers, **kwargs), what)


def _wait(check: Any, what: str, timeout: float = 120.0) -> Any:
    return wait_for(check, timeout, what, 0.3, error=DemoError)


def _make_nodes(data_dir: Path, port: int) -> dict[str, DemoNode]:
    from checkup.node import run_migrations
    from gateway.accounts import create_user
    from shared.db import Database

    ports = {code: (port + i if port else None) for i, (code, _n, _p) in enumerate(TIERS)}
    made: dict[str, DemoNode] = {}
    for code, name, _parent in TIERS:
        made[code] = DemoNode(
            NodeSettings(region_code=code, node_id=f"node-{code}", data_dir=data_dir / code),
            name,
            ports[code],
        )
    for code, name, parent in TIERS:
        node = made[code]
        # The parent's URL is known once its port is: every node gets its own.
        if parent:
            node.process.settings = node.process.settings.model_copy(
                update={"parent_url": made[parent].url}
            )
        t0 = time.time()
        run_migrations(node.process.settings)
        users = [("admin", ["admin"], "系统管理员"), ("reviewer", ["reviewer"], "审核员")]
        if code in COUNTIES:
            users.append(("clerk", ["data_entry"], "填报员"))
        url, schema = node.process.settings.database_for("gateway")
        gdb = Database(url, schema=schema)
        with gdb.session() as session:
            for user, roles, title in users:
                password = "Demo-" + secrets.token_urlsafe(9)
                create_user(
                    session,
                    user,
                    password,
                    roles,
                    code,
                    display_name=f"{name}{title}",
                    settings=node.process.settings,
                )
                node.passwords[user] = password
        gdb.dispose()
        _say(
            f"   {name}节点 ({code}) 数据库迁移完成、已建用户 "
            f"{' / '.join(node.passwords)} ({time.time() - t0:.1f}s)"
        )
    return made


def _join(child: DemoNode, parent: DemoNode) -> None:
    """The child asks to join; the parent's admin approves; the child picks up its credential."""
    settings = child.process.settings
    with parent.client() as c:
        asked = _check(
            c.post(
                "/api/v1/nodes/join",
                json={
                    "node_id": settings.node_id,
                    "region_code": settings.region_code,
                    "tier": settings.tier,
                    "name": f"{child.name}城市体检节点",
                },
            ),
            f"{child.name}申请加入",
        )
    parent.call("admin", "POST", f"/api/v1/nodes/{settings.node_id}/approve", "批准加入")
    with parent.client() as c:
        got = _check(
            c.get(
                f"/api/v1/nodes/join/{asked['request_id']}",
                params={"token": asked["pickup_token"]},
            ),
            "领取凭据",
        )
    settings.store_credential(got["secret"])
    _say(f"   {child.name}节点已由{parent.name}管理员批准加入，节点凭据已保存")


def run_demo(data_dir: Path, port: int = 0, keep_running: bool | None = None) -> int:
    """Province, city and two counties as separate processes on SQLite: the whole flow."""
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if data_dir.exists():
        shutil.rmtree(data_dir)
    _say(
        "== 城市体检信息平台演示：省（江西 360000）— 市（南昌 360100）— 县（南昌县 360121、"
        f"进贤县 360124）四个节点，各自独立进程，嵌入式数据库 SQLite，数据目录 {data_dir}"
    )
    nodes = _make_nodes(data_dir, port)
    started: list[DemoNode] = []
    try:
        province, city = nodes[PROVINCE], nodes[CITY]
        counties = [nodes[c] for c in COUNTIES]

        def start(node: DemoNode) -> None:
            node.process.start()
            started.append(node)
            node.login_all()

        start(province)
        _join(city, province)
        start(city)
        for county in counties:
            _join(county, city)
            start(county)
        _say("   四个节点均已启动")
        _flow(province, city, counties)
        _say("")
        _say("== 各节点 API（OpenAPI 文档在 /docs）与演示用户密码：")
        for node in nodes.values():
            users = "，".join(f"{u} {p}" for u, p in node.passwords.items())
            _say(f"   {node.name:4s} {node.code}  {node.url}  ({node.url}/docs)  {users}")
        if keep_running is None:
            keep_running = sys.stdin.isatty()
        if keep_running:
            _say("节点保持运行，按 Ctrl-C 结束。")
            while all(n.process.alive for n in started):
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except DemoError:
        for node in started:
            _say(
                f"--- {node.name} 节点日志 ({node.process.log_path}):\n{node.process.log_tail(15)}"
            )
        raise
    finally:
        for node in reversed(started):
            node.process.stop()
    return 0


def _login(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    body = _check(
        client.post("/api/v1/auth/login", json={"username": username, "password": password}),
        f"登录 {username}",
    )
    return {"authorization": f"Bearer {body['access_token']}"}


def _system_at(node: DemoNode, code: str) -> dict[str, Any] | None:
    items = node.call("admin", "GET", "/api/v1/systems", "读取指标体系", params={"code": code})
    return items["items"][0] if items["items"] else None


def _submission(node: DemoNode, sid: int, region: str) -> dict[str, Any]:
    got: dict[str, Any] = node.call(
        "reviewer", "GET", f"/api/v1/submissions/{sid}/{region}/{PERIOD}", "读取填报状态"
    )
    return got


def _flow(province: DemoNode, city: DemoNode, counties: list[DemoNode]) -> None:
    from services.indicator.systems.service import STARTER_FILE

    # 1. The province releases the year's indicator system; it comes down to every node.
    system = province.call(
        "admin",
        "POST",
        "/api/v1/systems/import",
        "导入指标体系",
        content=STARTER_FILE.read_bytes(),
        headers={"content-type": "application/json"},
    )
    system = province.call("admin", "POST", f"/api/v1/systems/{system['id']}/release", "发布")
    code = system["code"]
    ids = {province.code: system["id"]}
    for node in (city, *counties):
        ids[node.code] = _wait(lambda n=node: _system_at(n, code), f"{node.name}收到指标体系")["id"]
    full = province.call("admin", "GET", f"/api/v1/systems/{system['id']}", "读取指标体系")
    indicators = full["indicators"]
    _say(
        f"== 省级发布指标体系「{system['name']}」{system['year']} 第 {system['version']} 版"
        f"（{len(indicators)} 项指标），市、县节点已自动接收（校验和一致）"
    )

    # 2. Each county's clerk enters two years; its reviewer approves the year's submission.
    for county in counties:
        sid = ids[county.code]
        streets = county.call("admin", "GET", f"/api/v1/regions/{county.code}/children", "读取街道")
        regions = [county.code] + [s["code"] for s in streets]
        for period in (PREVIOUS, PERIOD):
            rows = sample_values(indicators, regions, period, seed=int(county.code))
            result = county.call(
                "clerk",
                "POST",
                "/api/v1/values/import",
                f"{county.name}导入 {period} 年数据",
                params={"system_id": sid, "period": period, "source": "self_checkup"},
                content=to_csv(rows).encode("utf-8"),
                headers={"content-type": "text/csv"},
            )
            sub = f"/api/v1/submissions/{sid}/{county.code}/{period}"
            county.call("clerk", "POST", f"{sub}/submit", "提交", json={})
            county.call("reviewer", "POST", f"{sub}/approve", "县级审核通过", json={})
        _say(
            f"== {county.name}：填报员导入 {PREVIOUS}、{PERIOD} 年自体检数据（合成演示数据，"
            f"{len(regions)} 个区划，每年 {result['rows_applied']} 项），县级审核通过并上报"
        )

    # 3. The city reviews: one county is sent back with a reason, corrects and resubmits.
    first = counties[0]
    for county in counties:
        _wait(
            lambda c=county: _submission(city, ids[CITY], c.code)["state"] == "approved",
            f"{county.name}的数据到达市级",
        )
    reason = "生活垃圾资源化利用率与统计年报不一致，请核实后重报"
    city.call(
        "reviewer",
        "POST",
        f"/api/v1/submissions/{ids[CITY]}/{first.code}/{PERIOD}/reject",
        "市级退回",
        json={"reason": reason},
    )
    _say(f"== 南昌市审核员退回{first.name} {PERIOD} 年数据：「{reason}」")
    back = _wait(
        lambda: (s := _submission(first, ids[first.code], first.code))["state"] == "rejected" and s,
        f"{first.name}收到退回意见",
    )
    _say(f"   {first.name}已收到退回意见：「{back['reason']}」，数据已解锁")
    values = first.call(
        "clerk",
        "GET",
        "/api/v1/values",
        "读取数据",
        params={"system_id": ids[first.code], "period": PERIOD, "region_code": first.code},
    )["items"]
    target = next(v for v in values if v["value"] is not None)
    first.call(
        "clerk",
        "PUT",
        "/api/v1/values",
        "更正数据",
        json={
            "system_id": ids[first.code],
            "indicator_code": target["indicator_code"],
            "region_code": first.code,
            "period": PERIOD,
            "source": "self_checkup",
            "value": float(target["value"]) + (-1 if float(target["value"]) >= 1 else 1),
            "reason": "按市级意见核实更正",
        },
    )
    sub = f"/api/v1/submissions/{ids[first.code]}/{first.code}/{PERIOD}"
    first.call("clerk", "POST", f"{sub}/submit", "重新提交", json={})
    first.call("reviewer", "POST", f"{sub}/approve", "县级审核通过", json={})
    _say(f"   {first.name}更正 {target['indicator_code']} 后重新提交，县级审核通过")

    # 4. The city approves both counties; then the province accepts; the counties see it.
    for county in counties:
        _wait(
            lambda c=county: _submission(city, ids[CITY], c.code)["state"] == "approved",
            f"{county.name}重报到达市级",
        )
        city.call(
            "reviewer",
            "POST",
            f"/api/v1/submissions/{ids[CITY]}/{county.code}/{PERIOD}/approve",
            "市级审核通过",
            json={},
        )
    for county in counties:
        _wait(
            lambda c=county: _submission(province, ids[PROVINCE], c.code)["state"] == "reviewed",
            f"{county.name}市级审核结果到达省级",
        )
        province.call(
            "reviewer",
            "POST",
            f"/api/v1/submissions/{ids[PROVINCE]}/{county.code}/{PERIOD}/approve",
            "省级验收",
            json={},
        )
    for county in counties:
        _wait(
            lambda c=county: _submission(c, ids[c.code], c.code)["state"] == "accepted",
            f"{county.name}收到省级验收",
        )
    _say("== 南昌市审核通过两县数据，江西省验收；验收结果已下达到县（数据在县级锁定）")

    # 5. Reconciliation: the province holds exactly what the counties approved.
    key = f"{code}@{system['year']}@{system['version']}"
    for county in counties:

        def same(c: DemoNode = county) -> bool:
            sums = [
                n.call(
                    "admin",
                    "GET",
                    "/api/v1/values/checksum",
                    "核对",
                    params={"system": key, "period": PERIOD, "region_code": c.code},
                )
                for n in (c, city, province)
            ]
            return len({(s["count"], s["checksum"]) for s in sums}) == 1

        _wait(same, f"{county.name}数据三级一致")
    _say("   三级核对：两县数据在市、省两级的条数与校验和与县级完全一致")

    # 6. Every tier grades the data of all regions below it and shows it.
    for node in (province, city, *counties):
        run = node.call(
            "reviewer",
            "POST",
            "/api/v1/evaluations/run",
            "评价",
            json={"system_id": ids[node.code], "period": PERIOD, "region_code": node.code},
        )
        _say(
            f"== {node.name}评价 {PERIOD} 年：{_fmt_counts(run['grades'])}，"
            f"{run['values_evaluated']} 个数值，{run['regions_scored']} 个区划计分"
        )
    board = province.call(
        "reviewer",
        "GET",
        "/api/v1/dashboard/children",
        "读取下级对比",
        params={"region_code": CITY, "period": PERIOD, "system_id": ids[PROVINCE]},
    )
    _say(f"   省级看板：{board['region_name']}所辖县区（有数据的）城市健康指数与排名：")
    for child in board["children"]:
        if child["evaluated"]:
            _say(
                f"     {child['name']}（{child['region_code']}）指数 {_num(child['index'])}，"
                f"第 {child['rank']} / {child['rank_of']}，{_fmt_counts(child['counts'])}"
            )
    summary = city.call(
        "reviewer",
        "GET",
        "/api/v1/dashboard/summary",
        "读取评价汇总",
        params={"region_code": first.code, "period": PERIOD, "system_id": ids[CITY]},
    )
    _print_summary(summary)

    # 7. Every link is caught up (the counties' last state changes are still travelling).
    def idle() -> bool:
        for node in (city, *counties):
            status = node.call("admin", "GET", "/api/v1/sync/status", "读取同步状态")
            for body in status["services"].values():
                if any(link["pending"] for link in body.get("links", [])):
                    return False
        return True

    _wait(idle, "同步链路清空")
    _say("")
    _say("== 同步链路状态（checkup sync status 的 JSON 形式：GET /api/v1/sync/status）：")
    for node in (city, *counties):
        status = node.call("admin", "GET", "/api/v1/sync/status", "读取同步状态")
        for service, body in status["services"].items():
            for link in body.get("links", []):
                if link["kind"] != "push":
                    continue
                _say(
                    f"   {node.name} → 上级 [{service}] 来源 {link['stream']}：已确认至 "
                    f"{link['last_acked_seq']}，待发 {link['pending']}，状态 {link['state']}"
                )


def _has_standard(ind: dict[str, Any]) -> bool:
    return ind.get("standard_value") is not None or ind.get("band_low") is not None


def _fmt_counts(counts: dict[str, Any]) -> str:
    return "，".join(f"{GRADE_ZH.get(k, k)} {v}" for k, v in counts.items())


def _num(v: Any, unit: str = "") -> str:
    if isinstance(v, int | float):
        return f"{v:,.1f}{unit}" if v != int(v) else f"{int(v):,}{unit}"
    return "—"


def _print_summary(s: dict[str, Any]) -> None:
    _say("")
    _say(
        f"== {s['region_name']}（{s['region_code']}）{s['period']} 年体检评价汇总"
        f" — {s['system_name']}"
    )
    _say(f"   三色统计（每项指标一个值，按数据来源优先级选取）：{_fmt_counts(s['counts'])}")
    line = f"   城市健康指数：{_num(s.get('index'))}"
    if isinstance(s.get("index_change"), int | float):
        line += f"（较 {s.get('previous_period')} 年 {s['index_change']:+.1f}）"
    _say(line)
    if s.get("rank") is not None:
        _say(f"   同级排名：第 {s['rank']} / {s['rank_of']}")
    _say("   分维度得分（0–100；无可评价指标的维度记为 —）：")
    for d in s.get("dimensions", []):
        c = d["counts"]
        _say(
            f"     {d['dimension']:<10s}{_num(d.get('score')):>8s}   "
            f"达标 {c['green']} 预警 {c['yellow']} 不达标 {c['red']} 无标准 {c['grey']}"
        )
    worst = s.get("top_red") or []
    if worst:
        _say("   最差指标（不达标）：")
        for w in worst[:5]:
            _say(f"     {w['indicator_code']} {w['name']}：{_num(w.get('value'), ' ' + w['unit'])}")
            _say(f"         {w['rule']}")
