"""Gateway overhead: the same read through the gateway vs directly at the service (split mode).

Starts the indicator service and the gateway as separate uvicorn processes on loopback,
and drives them from a separate load-generator process (asyncio + httptools, keep-alive).
The baseline is the direct call measured in the same run; figures are ratios to it.

    .venv/bin/python benchmarks/gateway_overhead.py --size 300          # quick
    .venv/bin/python benchmarks/gateway_overhead.py --size 5000         # full
    .venv/bin/python benchmarks/gateway_overhead.py --size 5000 --pg    # PostgreSQL

Ends with one JSON line: {"benchmark", "figures", "goals", "met"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checkup.cluster import free_port  # noqa: E402 - after the path is set

GOAL_ADDED_P50_MS = 1.0
GOAL_THROUGHPUT_RATIO = 0.5
PG_ADMIN = os.environ.get("CHECKUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


# ----------------------------------------------------------------------------- load generator


async def _worker(
    host: str, port: int, request: bytes, count: int, latencies: list[float], errors: list[str]
) -> None:
    import httptools

    reader, writer = await asyncio.open_connection(host, port)

    class Proto:
        done = False
        status = 0

        def on_message_complete(self) -> None:
            self.done = True

    try:
        for _ in range(count):
            proto = Proto()
            parser = httptools.HttpResponseParser(proto)
            t0 = time.perf_counter()
            writer.write(request)
            while not proto.done:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                parser.feed_data(data)
            latencies.append(time.perf_counter() - t0)
            status = parser.get_status_code()
            if status != 200:
                errors.append(str(status))
    finally:
        writer.close()


async def _load(url: str, headers: dict[str, str], connections: int, total: int) -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    per_conn = max(1, total // connections)
    latencies: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    await asyncio.gather(
        *(
            _worker(
                parts.hostname or "127.0.0.1",
                parts.port or 80,
                request,
                per_conn,
                latencies,
                errors,
            )
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_sample": errors[:3],
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def loadgen_main(args: argparse.Namespace) -> None:
    import uvloop

    headers = json.loads(args.headers)
    result = uvloop.run(_load(args.url, headers, args.connections, args.size))
    print(json.dumps(result))


def run_load(url: str, headers: dict[str, str], connections: int, total: int) -> dict[str, Any]:
    """One measurement in a separate process so the generator does not share our interpreter."""
    cmd = [
        sys.executable,
        __file__,
        "--loadgen",
        "--url",
        url,
        "--headers",
        json.dumps(headers),
        "--connections",
        str(connections),
        "--size",
        str(total),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["errors"]:
        raise RuntimeError(f"non-200 answers from {url}: {result['error_sample']}")
    return result


# ----------------------------------------------------------------------------- the node


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.2)


def start(service: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "checkup.node", service, "--port", str(port)],
        cwd=ROOT,
        env=env,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000, help="requests per measurement")
    parser.add_argument(
        "--path",
        default=None,
        help="the read to measure (default: the region-period dashboard summary of 360121)",
    )
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--headers", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args)
        return

    from checkup.node import run_migrations
    from gateway import accounts
    from shared.db import Database
    from shared.identity import Identity, sign_identity
    from shared.settings import NodeSettings

    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    env_db: dict[str, str] = {}
    dbname = None
    if args.pg:
        import psycopg

        dbname = f"checkup_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        env_db["CHECKUP_DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + f"/{dbname}"
    secret = uuid.uuid4().hex * 2
    base_env = {
        "CHECKUP_ENVIRONMENT": "test",
        "CHECKUP_REGION_CODE": "360121",
        "CHECKUP_DATA_DIR": str(tmp),
        "CHECKUP_INTERNAL_SECRET": secret,
        "CHECKUP_JWT_SECRET": secret[::-1],
        # The benchmark measures forwarding, not the limiter.
        "CHECKUP_RATE_LIMIT_PER_MINUTE": "100000000",
        "CHECKUP_RATE_LIMIT_BURST": "100000000",
        **env_db,
    }
    os.environ.update(base_env)
    settings = NodeSettings()
    print(f"preparing node in {tmp} ({'PostgreSQL' if args.pg else 'SQLite'}) …", flush=True)
    run_migrations(settings, ("indicator", "gateway"))
    if args.path is None:
        # The real read the issue names: a county's region-period summary, on a node that
        # holds the starter system and a graded year of (synthetic) values.
        from checkup.local import LocalNode

        with LocalNode(settings) as node:
            sid = node.seed_sample_year("2025")
        args.path = f"/api/v1/dashboard/summary?region_code=360121&period=2025&system_id={sid}"
    print(f"measuring GET {args.path}", flush=True)
    db = Database(*settings.database_for("gateway"))
    password = "Pw#9" + uuid.uuid4().hex[:12]
    with db.session() as session:
        accounts.create_user(session, "bench", password, ["viewer"], "360121", settings=settings)
    db.dispose()

    svc_port, gw_port = free_port(), free_port()
    env = {**os.environ, **base_env}
    procs = [start("indicator", svc_port, env)]
    try:
        wait_http(f"http://127.0.0.1:{svc_port}/health")
        procs.append(
            start(
                "gateway", gw_port, {**env, "CHECKUP_INDICATOR_URL": f"http://127.0.0.1:{svc_port}"}
            )
        )
        wait_http(f"http://127.0.0.1:{gw_port}/health")
        req = urllib.request.Request(
            f"http://127.0.0.1:{gw_port}/api/v1/auth/login",
            data=json.dumps({"username": "bench", "password": password}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            token = json.loads(r.read())["access_token"]

        direct_url = f"http://127.0.0.1:{svc_port}{args.path}"
        gateway_url = f"http://127.0.0.1:{gw_port}{args.path}"
        gw_headers = {"authorization": f"Bearer {token}"}

        def direct_headers() -> dict[str, str]:
            ident = Identity("bench", "user", frozenset({"viewer"}), "360121", node="bench")
            return {"x-checkup-identity": sign_identity(ident, secret)}

        warm = max(50, args.size // 10)
        run_load(direct_url, direct_headers(), 4, warm)
        run_load(gateway_url, gw_headers, 4, warm)

        results: dict[str, list[dict[str, Any]]] = {}
        for connections in (1, 32):
            for _ in range(args.rounds):
                for label, url, headers in (
                    ("direct", direct_url, direct_headers()),
                    ("gateway", gateway_url, gw_headers),
                ):
                    r = run_load(url, headers, connections, args.size)
                    results.setdefault(f"{label}_c{connections}", []).append(r)
                    print(
                        f"  {label:8s} c={connections:<3d} p50 {r['p50_ms']:.3f} ms  "
                        f"p99 {r['p99_ms']:.3f} ms  {r['rps']:.0f} req/s",
                        flush=True,
                    )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if dbname:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    def med(key: str, field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    d1, g1 = med("direct_c1", "p50_ms"), med("gateway_c1", "p50_ms")
    d32, g32 = med("direct_c32", "rps"), med("gateway_c32", "rps")
    figures = {
        "direct_p50_ms_c1": round(d1, 3),
        "gateway_p50_ms_c1": round(g1, 3),
        "added_p50_ms_c1": round(g1 - d1, 3),
        "p50_ratio_c1": round(g1 / d1, 3),
        "direct_rps_c32": round(d32),
        "gateway_rps_c32": round(g32),
        "throughput_ratio_c32": round(g32 / d32, 3),
        "gateway_p99_ms_c32": round(med("gateway_c32", "p99_ms"), 3),
        "direct_p99_ms_c32": round(med("direct_c32", "p99_ms"), 3),
        "size": args.size,
        "backend": "postgresql" if args.pg else "sqlite",
        "path": args.path,
    }
    print(
        f"added p50 at 1 connection: {figures['added_p50_ms_c1']} ms "
        f"(ratio {figures['p50_ratio_c1']}× direct); throughput at 32 connections: "
        f"{figures['throughput_ratio_c32']}× direct"
    )
    goals = {
        "added_p50_ms_c1": f"<= {GOAL_ADDED_P50_MS}",
        "throughput_ratio_c32": f">= {GOAL_THROUGHPUT_RATIO}",
    }
    met = {
        "added_p50_ms_c1": figures["added_p50_ms_c1"] <= GOAL_ADDED_P50_MS,
        "throughput_ratio_c32": figures["throughput_ratio_c32"] >= GOAL_THROUGHPUT_RATIO,
    }
    print(
        json.dumps(
            {"benchmark": "gateway_overhead", "figures": figures, "goals": goals, "met": met}
        )
    )


if __name__ == "__main__":
    main()
