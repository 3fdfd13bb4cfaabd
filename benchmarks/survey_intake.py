"""Benchmark: survey submissions through the node's gateway under wrk, beside /health.

    .venv/bin/python benchmarks/survey_intake.py --seconds 30 --connections 32 [--backend sqlite]

It makes a fresh node (PostgreSQL database by default, or SQLite files), migrates it,
creates the shipped example questionnaire and an open Nanchang campaign with flood
limits raised for one loopback client, and starts the all-in-one node
(``python -m checkup.node all``: gateway + services, uvicorn) on 127.0.0.1. Then, in the
same run and with the same wrk settings:

* baseline: wrk on the gateway's ``GET /health``;
* intake: wrk on ``POST /api/v1/public/campaigns/{token}/responses`` through the gateway,
  every request a new, valid response (unique client id, varied answers);
* direct: the same requests straight to a survey service process (signed anonymous
  identity and forwarded address, as the gateway sends them) — the gateway's share.

It prints sustained requests/s and p99 of both, the ratio, and checks that every 2xx was
stored. Needs the ``wrk`` binary (Debian package ``wrk``). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from checkup.node import run_migrations  # noqa: E402
from services.survey.campaigns.schemas import CampaignIn, CampaignSettings  # noqa: E402
from services.survey.campaigns.service import create_campaign, open_or_close  # noqa: E402
from services.survey.models import Response  # noqa: E402
from services.survey.questionnaires.service import (  # noqa: E402
    create_questionnaire,
    release_questionnaire,
)
from shared.db import Database  # noqa: E402
from shared.identity import Identity, sign_identity  # noqa: E402
from shared.settings import NodeSettings  # noqa: E402

DATA = ROOT / "services" / "survey" / "data"
ADMIN = Identity(subject="bench", kind="user", roles=frozenset({"admin"}), region="360100")

LUA = r"""
local counter = 0
local ages = {"18-29", "30-39", "40-49", "50-59", "60-69", "70+"}
local sexes = {"M", "F"}
local communities = {%(communities)s}
local path = "%(path)s"
local headers = {["Content-Type"] = "application/json"%(headers)s}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  math.randomseed(tid * 7919 + os.time())
end

local function l() return math.random(1, 5) end

function request()
  counter = counter + 1
  local body = string.format(
    '{"client_id":"b%%d-%%d-%%d","answers":{"C1":"%%s","D_AGE":"%%s","D_SEX":"%%s",' ..
    '"D_RES":"1-5","D_TEN":"own","H1":%%d,"H2":%%d,"H3":%%d,"M1":%%d,"M2":%%d,"M3":%%d,' ..
    '"A1":4,"M4":"no","M6":%%d,"B1":%%d,"B2":%%d,"T1":%%d,"T2":%%d,"T3":%%d,' ..
    '"P2":"小区停车难，希望改善"},"meta":{"duration_s":300}}',
    tid, counter, math.random(1, 1000000000),
    communities[math.random(1, #communities)], ages[math.random(1, 6)],
    sexes[math.random(1, 2)], l(), l(), l(), l(), l(), l(), l(), l(), l(), l(), l(),
    math.random(0, 10))
  return wrk.format("POST", path, headers, body)
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wrk(args: list[str]) -> dict[str, float]:
    done = subprocess.run(["wrk", *args], capture_output=True, text=True, check=True)
    out = done.stdout
    if os.environ.get("BENCH_VERBOSE"):
        print(out, done.stderr, file=sys.stderr)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99 = float(m.group(1)) * scale[m.group(2)] if m else float("nan")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "p99_ms": p99,
        "requests": total,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="survey-intake-"))
    admin_url = os.environ.get("CHECKUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    dbname = f"checkup_bench_intake_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CHECKUP_DATA_DIR": str(tmp),
        "CHECKUP_REGION_CODE": "360100",
        # One loopback client stands for many residents: lift the gateway's per-address limit.
        "CHECKUP_RATE_LIMIT_PER_MINUTE": "100000000",
        "CHECKUP_RATE_LIMIT_BURST": "10000000",
        "CHECKUP_LOG_LEVEL": "warning",
    }
    if args.backend == "postgres":
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        env["CHECKUP_DATABASE_URL"] = admin_url.rsplit("/", 1)[0] + "/" + dbname
    for key in ("CHECKUP_DATA_DIR", "CHECKUP_REGION_CODE", "CHECKUP_DATABASE_URL"):
        if key in env:
            os.environ[key] = env[key]
    settings = NodeSettings()
    proc: subprocess.Popen[bytes] | None = None
    try:
        run_migrations(settings)
        url, schema = settings.database_for("survey")
        db = Database(url, schema=schema)
        definition = json.loads((DATA / "example-questionnaire.json").read_text("utf-8"))
        limits = {
            "per_address_per_hour": 100_000,
            "per_device": 100_000,
            "attempts_per_minute": 100_000,
        }
        with db.session() as s:
            q = create_questionnaire(s, definition, ADMIN)
            release_questionnaire(s, q.id, ADMIN)
            now = datetime.now(UTC)
            c = create_campaign(
                s,
                CampaignIn(
                    name="bench",
                    questionnaire_id=q.id,
                    region_code="360100",
                    period="2026",
                    opens_at=now - timedelta(days=1),
                    closes_at=now + timedelta(days=1),
                    settings=CampaignSettings.model_validate({"limits": limits}),
                ),
                ADMIN,
            )
            open_or_close(s, c.id, "open", ADMIN)
            token, campaign_id = c.token, c.id
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "checkup.node", "all", "--port", str(port)],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("node did not start")
        path = f"/api/v1/public/campaigns/{token}/responses"
        communities = ", ".join(
            f'"{o["code"]}"' for o in definition["sections"][0]["questions"][0]["options"]
        )
        script = tmp / "submit.lua"
        script.write_text(LUA % {"communities": communities, "path": path, "headers": ""}, "utf-8")
        # The same requests straight to a survey service process, as the gateway would
        # send them (signed anonymous identity, forwarded address): the gateway's share.
        anonymous = Identity(subject="anonymous", kind="anonymous", roles=frozenset(), region="")
        signed = sign_identity(anonymous, settings.internal_secret.get_secret_value())
        direct_script = tmp / "direct.lua"
        direct_script.write_text(
            LUA
            % {
                "communities": communities,
                "path": path,
                "headers": f', ["x-checkup-identity"] = "{signed}", '
                '["x-forwarded-for"] = "127.0.0.1"',
            },
            "utf-8",
        )
        # One valid request by hand first: the wrk figures must be of accepted responses.
        probe = httpx.post(
            base + path,
            json={
                "client_id": "probe-" + uuid.uuid4().hex,
                "answers": {
                    "C1": "360121001001",
                    "D_AGE": "30-39",
                    "D_SEX": "F",
                    "D_RES": "1-5",
                    "D_TEN": "own",
                    **{k: 3 for k in ("H1", "H2", "H3", "M1", "M2", "M3", "M6", "B1", "B2")},
                    "T1": 2,
                    "T2": 4,
                    "A1": 4,
                    "M4": "no",
                    "T3": 7,
                },
                "meta": {"duration_s": 300},
            },
        )
        if probe.status_code != 201:
            raise RuntimeError(f"probe submission refused: {probe.status_code} {probe.text}")
        common = [f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency"]
        _wrk(["-t1", "-c4", "-d2s", base + "/health"])  # warm up
        health = _wrk([*common, base + "/health"])
        submit = _wrk([*common, "-s", str(script), base + path])
        direct_port = _free_port()
        direct_proc = subprocess.Popen(
            [sys.executable, "-m", "checkup.node", "survey", "--port", str(direct_port)],
            cwd=ROOT,
            env=env,
        )
        try:
            direct_base = f"http://127.0.0.1:{direct_port}"
            for _ in range(200):
                try:
                    if httpx.get(direct_base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            direct = _wrk([*common, "-s", str(direct_script), direct_base + path])
        finally:
            direct_proc.terminate()
            direct_proc.wait(timeout=15)
        with db.session() as s:
            stored = s.scalar(
                select(func.count())
                .select_from(Response)
                .where(Response.campaign_id == campaign_id)
            )
        db.dispose()
        accepted = submit["requests"] - submit["non_2xx"]
        accepted += direct["requests"] - direct["non_2xx"]
        ratio = submit["rps"] / health["rps"]
        print(
            f"health:  {health['rps']:.0f} req/s, p99 {health['p99_ms']:.1f} ms "
            f"({args.connections} connections, {args.seconds}s)"
        )
        print(
            f"submit:  {submit['rps']:.0f} responses/s, p99 {submit['p99_ms']:.1f} ms, "
            f"non-2xx {submit['non_2xx']}"
        )
        print(
            f"direct:  {direct['rps']:.0f} responses/s, p99 {direct['p99_ms']:.1f} ms "
            "(same requests straight to the survey service, no gateway)"
        )
        print(f"ratio:   {ratio:.3f} of the health endpoint's rate ({args.backend})")
        print(f"stored:  {stored} (probe + {accepted} accepted by both runs)")
        # Requests still in flight when wrk stops are stored but not counted by wrk.
        ok_stored = accepted + 1 <= (stored or 0) <= accepted + 1 + 2 * args.connections
        print(
            json.dumps(
                {
                    "benchmark": "survey_intake",
                    "figures": {
                        "backend": args.backend,
                        "connections": args.connections,
                        "seconds": args.seconds,
                        "health_rps": round(health["rps"], 1),
                        "health_p99_ms": health["p99_ms"],
                        "submit_rps": round(submit["rps"], 1),
                        "submit_p99_ms": submit["p99_ms"],
                        "ratio_to_health": round(ratio, 4),
                        "direct_submit_rps": round(direct["rps"], 1),
                        "direct_submit_p99_ms": direct["p99_ms"],
                        "non_2xx": submit["non_2xx"] + direct["non_2xx"],
                        "socket_errors": submit["socket_errors"],
                        "stored": stored,
                    },
                    "goals": {"non_2xx": 0, "every_accepted_stored": True},
                    "met": {
                        "non_2xx": submit["non_2xx"] + direct["non_2xx"] == 0,
                        "every_accepted_stored": ok_stored,
                    },
                }
            )
        )
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.backend == "postgres":
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
