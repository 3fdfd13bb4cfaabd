"""The demo of the whole flow on the embedded default: a county node, start to summary."""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from checkup.sample_data import sample_values, to_csv
from shared.settings import NodeSettings

COUNTY = "360121"  # 南昌县
PERIOD = "2025"
PREVIOUS = "2024"
GRADE_ZH = {"green": "达标", "yellow": "预警", "red": "不达标", "grey": "无标准"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _say(text: str) -> None:
    print(text, flush=True)


class DemoError(RuntimeError):
    pass


def _check(r: httpx.Response, what: str) -> Any:
    if r.status_code >= 400:
        raise DemoError(f"{what} 失败: HTTP {r.status_code} {r.text[:500]}")
    return r.json()


def _start_server(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise DemoError("节点启动失败 (node did not start)")
        time.sleep(0.05)
    return server, thread


def run_demo(data_dir: Path, port: int = 0, keep_running: bool | None = None) -> int:
    """Start a county node on SQLite and run the indicator work end to end through its API."""
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from checkup.node import build_all_in_one, run_migrations
    from gateway.accounts import create_user

    if data_dir.exists():
        shutil.rmtree(data_dir)
    settings = NodeSettings(region_code=COUNTY, data_dir=data_dir)
    _say(
        f"== 城市体检信息平台演示：南昌县节点 ({COUNTY})，嵌入式数据库 SQLite，数据目录 {data_dir}"
    )
    t0 = time.time()
    run_migrations(settings)
    _say(f"   数据库迁移完成，已载入 2023 年统计用区划代码 ({time.time() - t0:.1f}s)")

    passwords = {
        name: "Demo-" + secrets.token_urlsafe(9) for name in ("admin", "clerk", "reviewer")
    }
    from shared.db import Database

    url, schema = settings.database_for("gateway")
    gdb = Database(url, schema=schema)
    with gdb.session() as session:
        create_user(
            session, "admin", passwords["admin"], ["admin"], COUNTY, display_name="系统管理员"
        )
        create_user(
            session, "clerk", passwords["clerk"], ["data_entry"], COUNTY, display_name="填报员"
        )
        create_user(
            session, "reviewer", passwords["reviewer"], ["reviewer"], COUNTY, display_name="审核员"
        )
    gdb.dispose()
    _say("   已创建用户 admin / clerk（填报）/ reviewer（审核），密码随机生成：")
    for name, pw in passwords.items():
        _say(f"     {name:9s} {pw}")

    port = port or _free_port()
    server, thread = _start_server(build_all_in_one(settings), port)
    base = f"http://127.0.0.1:{port}"
    _say(f"   节点已启动: {base}  (API 文档 {base}/docs)")
    try:
        _flow(base, passwords)
        _say("")
        _say(f"API 文档 (OpenAPI): {base}/docs    健康检查: {base}/health")
        if keep_running is None:
            keep_running = sys.stdin.isatty()
        if keep_running:
            _say("节点保持运行，按 Ctrl-C 结束。")
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(10)
    return 0


def _login(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    body = _check(
        client.post("/api/v1/auth/login", json={"username": username, "password": password}),
        f"登录 {username}",
    )
    return {"authorization": f"Bearer {body['access_token']}"}


def _flow(base: str, passwords: dict[str, str]) -> None:
    with httpx.Client(base_url=base, timeout=120) as client:
        admin = _login(client, "admin", passwords["admin"])
        clerk = _login(client, "clerk", passwords["clerk"])
        reviewer = _login(client, "reviewer", passwords["reviewer"])

        from services.indicator.systems.service import STARTER_FILE

        system = _check(
            client.post(
                "/api/v1/systems/import",
                content=STARTER_FILE.read_bytes(),
                headers={**admin, "content-type": "application/json"},
            ),
            "导入指标体系",
        )
        system = _check(
            client.post(f"/api/v1/systems/{system['id']}/release", headers=admin), "发布指标体系"
        )
        system = _check(
            client.get(f"/api/v1/systems/{system['id']}", headers=admin), "读取指标体系"
        )
        sid = system["id"]
        indicators = system["indicators"]
        _say(
            f"== 指标体系「{system['name']}」{system['year']} 第 {system['version']} 版已发布："
            f"{len(indicators)} 项指标，其中有标准值 "
            f"{sum(1 for i in indicators if _has_standard(i))} 项"
        )

        streets = _check(
            client.get(f"/api/v1/regions/{COUNTY}/children", headers=admin), "读取街道"
        )
        for period in (PREVIOUS, PERIOD):
            rows = sample_values(indicators, [COUNTY] + [s["code"] for s in streets], period)
            result = _check(
                client.post(
                    "/api/v1/values/import",
                    params={
                        "system_id": sid,
                        "period": period,
                        "source": "self_checkup",
                        "mode": "per_row",
                    },
                    content=to_csv(rows).encode("utf-8"),
                    headers={**clerk, "content-type": "text/csv"},
                ),
                f"导入 {period} 年数据",
            )
            _say(
                f"== 导入 {period} 年自体检数据（合成演示数据）：共 {result['rows_total']} 行，"
                f"写入 {result['rows_applied']} 行，拒绝 {result['rows_rejected']} 行"
            )
            sub = f"/api/v1/submissions/{sid}/{COUNTY}/{period}"
            _check(client.post(f"{sub}/submit", headers=clerk, json={}), "提交审核")
            _check(client.post(f"{sub}/approve", headers=reviewer, json={}), "审核通过")
            run = _check(
                client.post(
                    "/api/v1/evaluations/run",
                    json={"system_id": sid, "period": period, "region_code": COUNTY},
                    headers=reviewer,
                ),
                "评价",
            )
            _say(
                "   已提交并审核通过；评价完成（全部来源、全部区划）："
                f"{_fmt_counts(run['grades'])}，"
                f"{run['values_evaluated']} 个数值，{run['regions_scored']} 个区划计分"
            )

        summary = _check(
            client.get(
                "/api/v1/dashboard/summary",
                params={"region_code": COUNTY, "period": PERIOD, "system_id": sid},
                headers=reviewer,
            ),
            "读取评价汇总",
        )
        _print_summary(summary)


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
