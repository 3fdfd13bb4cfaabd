"""Benchmark: value changes county → city → province end to end, and the trickle lag.

Three nodes as separate processes (``python -m checkup.node all``, as installed), each on
its own PostgreSQL database (or SQLite files with ``--backend sqlite``), registered
county → city → province with node credentials, the benchmark's system (45
community-level indicators) released at the province and received below.

1. **Baseline, same run:** the province's own bulk-import rate: the same number of rows,
   same shape (the county's communities × 45 indicators × 5 sources, other periods),
   through the province's ``POST /api/v1/values/import``. Every value written is checked
   against the earlier periods of its key (outliers, from three earlier periods on), so
   an imported and a received value must find the same history at the province: in each
   run the baseline is imported first into the later period(s) and the county's changes
   go into the period(s) just before them (run 1: county 2000, baseline 2001; run 2:
   county 2002, baseline 2003, …). Each then has exactly the earlier runs' periods before
   it, the same rows; the one imported just before the county's is later, not earlier.
2. **End to end:** the county imports N changes the same way; the clock stops when the
   province has applied the county's last seq (read from the province's inbox in its
   database, so that measuring does not load the nodes). Printed as a rate and as a ratio
   to the baseline, both from the start of the county's import (``e2e``) and from the
   moment the county's import committed (``transfer``: the push/relay/apply pipeline
   alone).
3. **Trickle:** single value changes at the county, one every ``--interval`` seconds; the
   lag of each is the province's ``updated_at`` of the value minus the moment the county
   answered the write (same machine, same clock). p50/p95 with the default poll interval.

    .venv/bin/python benchmarks/federation.py --rows 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checkup.cluster import NodeProcess, free_port, link_child
from checkup.node import run_migrations
from checkup.waiting import wait_for
from gateway.accounts import create_user
from services.indicator.sync.tables import SYNC
from shared.db import Database
from shared.settings import NodeSettings
from shared.sync.outbox import UP

PG_ADMIN_URL = os.environ.get("CHECKUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "Bench-passw0rd!"
N_INDICATORS = 45
SOURCES = ("self_checkup", "third_party", "department", "survey", "hotline")
COUNTY, CITY, PROVINCE = "360121", "360100", "360000"
GOALS = {"transfer_ratio": 0.5, "trickle_p95_s": 5.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot(labels: dict[str, str]) -> dict[str, float]:
    """CPU seconds (user + system) so far of each process this run started, by label:
    ``labels`` maps a node process's pid, or a database name (its PostgreSQL backends
    carry it in their command line), to a label; ``machine`` is every core's busy time.
    Linux only (``/proc``); empty elsewhere."""
    out: dict[str, float] = {}
    proc = Path("/proc")
    if not (proc / "stat").exists():
        return out
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        label = labels.get(entry.name)
        if label is None and cmd.startswith("postgres:"):
            label = next((v for k, v in labels.items() if not k.isdigit() and k in cmd), None)
            if label is not None and "autovacuum" in cmd:
                label += " autovacuum"
        if label is not None:
            out[label] = out.get(label, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    cpu = (proc / "stat").read_text().splitlines()[0].split()[1:]
    idle = int(cpu[3]) + int(cpu[4])
    out["machine"] = (sum(int(x) for x in cpu[:8]) - idle) / _TICK
    return out


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(v - before.get(k, 0.0), 2) for k, v in sorted(after.items())}


def wal_spent(before: dict[str, int], after: dict[str, int]) -> str:
    """Write-ahead log written and checkpoints begun between two ``wal_position`` readings."""
    if not before:
        return "-"
    mb = (after["wal"] - before["wal"]) / 1e6
    return f"WAL {mb:,.0f} MB, checkpoints {after['checkpoints'] - before['checkpoints']}"


def _utc(at: datetime | str) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back naive text)."""
    value = datetime.fromisoformat(at) if isinstance(at, str) else at
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Bench:
    def __init__(self, backend: str, root: Path, batch_size: int | None) -> None:
        self.backend = backend
        self.dbnames: list[str] = []
        self.nodes: dict[str, NodeProcess] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.regions: list[str] = []
        self.rows_per_period = 0
        self.databases: dict[str, Database] = {}
        parents = {PROVINCE: None, CITY: PROVINCE, COUNTY: CITY}
        ports: dict[str, int] = {}
        for code in parents:
            ports[code] = free_port()
        for code, parent in parents.items():
            extra: dict[str, Any] = {}
            if backend == "postgres":
                name = f"checkup_bench_{code}_{uuid.uuid4().hex[:6]}"
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                self.dbnames.append(name)
                extra["database_url"] = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
            if batch_size:
                extra["sync_batch_size"] = batch_size
            settings = NodeSettings(
                environment="test",
                region_code=code,
                node_id=f"node-{code}",
                data_dir=root / code,
                parent_url=f"http://127.0.0.1:{ports[parent]}" if parent else None,
                rate_limit_per_minute=1_000_000,
                rate_limit_burst=100_000,
                **extra,
            )
            run_migrations(settings)
            gdb = Database(*settings.database_for("gateway"))
            with gdb.session() as s:
                create_user(
                    s,
                    "admin",
                    PASSWORD,
                    ["admin", "reviewer", "data_entry"],
                    code,
                    settings=settings,
                )
            gdb.dispose()
            self.nodes[code] = NodeProcess(settings, ports[code])
        for code, parent in parents.items():
            if parent:
                link_child(self.nodes[parent].settings, self.nodes[code].settings, by="bench")
        for node in self.nodes.values():
            node.start()
        for code, node in self.nodes.items():
            r = httpx.post(
                node.url + "/api/v1/auth/login",
                json={"username": "admin", "password": PASSWORD},
                timeout=30,
            )
            r.raise_for_status()
            self.headers[code] = {"authorization": f"Bearer {r.json()['access_token']}"}

    def cpu_labels(self) -> dict[str, str]:
        """What ``cpu_snapshot`` counts: each node process and its databases' backends."""
        labels: dict[str, str] = {}
        for code, node in self.nodes.items():
            if node.pid is not None:
                labels[str(node.pid)] = f"{code} node"
        for name in self.dbnames:
            labels[name] = f"{name.split('_')[2]} postgres"
        return labels

    def settle(self) -> dict[str, int]:
        """Before a measured phase on PostgreSQL: a checkpoint, so that every phase starts
        with the same write-ahead log behind it. The three nodes share one server (a run
        writes ~350 MB of WAL, and the server checkpoints every ~500 MB), so a checkpoint
        otherwise fell inside one phase or the other at random, and that phase paid the
        full-page images of its first touch of each page after it. Returns the log's
        position and checkpoint count to compare with after the phase."""
        if self.backend != "postgres":
            return {}
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        return self.wal_position()

    def wal_position(self) -> dict[str, int]:
        if self.backend != "postgres":
            return {}
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, checkpoints_timed + checkpoints_req "
                "FROM pg_stat_bgwriter"
            ).fetchone()
        assert row is not None
        return {"wal": int(row[0]), "checkpoints": int(row[1])}

    def database(self, code: str) -> Database:
        """The indicator database of a node (one pool per node, kept for the run)."""
        if code not in self.databases:
            self.databases[code] = Database(*self.nodes[code].settings.database_for("indicator"))
        return self.databases[code]

    def client(self, code: str) -> httpx.Client:
        return httpx.Client(base_url=self.nodes[code].url, headers=self.headers[code], timeout=600)

    def close(self) -> None:
        for db in self.databases.values():
            db.dispose()
        for node in self.nodes.values():
            node.stop()
        for name in self.dbnames:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # ------------------------------------------------------------------ setup

    def release_system(self) -> dict[str, int]:
        system = {
            "format": "checkup.indicator-system",
            "format_version": 1,
            "code": "BENCH-FED",
            "name": "联动基准测试指标体系",
            "year": 2025,
            "version": 1,
            "indicators": [
                {
                    "code": f"B{i:02d}",
                    "name_zh": f"社区指标{i}",
                    "level": "community",
                    "dimension": "设施完善",
                    "unit": "个",
                    "direction": "lower",
                    "value_type": "number",
                    "min_value": 0,
                    "max_value": 1_000_000,
                    "compute": "entered",
                    "sort_order": i,
                }
                for i in range(1, N_INDICATORS + 1)
            ],
        }
        with self.client(PROVINCE) as c:
            r = c.post("/api/v1/systems/import", json=system)
            r.raise_for_status()
            c.post(f"/api/v1/systems/{r.json()['id']}/release").raise_for_status()

        def system_at(code: str) -> int | None:
            with self.client(code) as c:
                items = c.get("/api/v1/systems", params={"code": "BENCH-FED"}).json()["items"]
            return int(items[0]["id"]) if items else None

        return {
            code: wait_for(partial(system_at, code), 60, f"the system at {code}", error=SystemExit)
            for code in (PROVINCE, CITY, COUNTY)
        }

    def communities(self) -> list[str]:
        with self.database(COUNTY).session() as s:
            rows = [
                r[0]
                for r in s.execute(
                    text(
                        "SELECT code FROM regions WHERE code LIKE :p AND level_rank = 5 "
                        "ORDER BY code"
                    ),
                    {"p": COUNTY + "%"},
                )
            ]
        return rows

    # ------------------------------------------------------------------ measures

    def import_rows(self, code: str, system_id: int, periods: list[str], n: int, salt: int) -> int:
        """Import ``n`` rows (one request per period); returns rows applied."""
        per_period = self.rows_per_period
        applied = 0
        left = n
        with self.client(code) as c:
            for period in periods:
                if left <= 0:
                    break
                take = min(left, per_period)
                r = c.post(
                    "/api/v1/values/import",
                    params={"system_id": system_id, "period": period, "mode": "all_or_nothing"},
                    content=self.csv(take, salt),
                    headers={"content-type": "text/csv"},
                )
                if r.status_code != 200:
                    raise SystemExit(f"import at {code} failed: {r.status_code} {r.text[:300]}")
                applied += int(r.json()["rows_applied"])
                left -= take
        return applied

    def csv(self, n: int, salt: int) -> bytes:
        lines = ["indicator_code,region_code,source,value"]
        i = 0
        for source in SOURCES:
            for r, region in enumerate(self.regions):
                for k in range(1, N_INDICATORS + 1):
                    if i >= n:
                        return ("\n".join(lines) + "\n").encode()
                    # The same value in every source of a key (as sources mostly agree):
                    # no disagreement flags, as in bulk_import.py.
                    lines.append(f"B{k:02d},{region},{source},{(r * 7919 + k * 31 + salt) % 1000}")
                    i += 1
        return ("\n".join(lines) + "\n").encode()

    def _position(self, code: str, column: Any) -> int:
        """A seq kept at node ``code`` for the county's up stream (``column`` of its row)."""
        t = column.table.c
        with self.database(code).session() as session:
            value = session.execute(
                select(column).where((t.direction == UP) & (t.stream == f"node-{COUNTY}"))
            ).scalar()
        return int(value or 0)

    def county_head(self) -> int:
        """The county's last recorded seq (its own up stream's head)."""
        return self._position(COUNTY, SYNC.streams.c.last_seq)

    def acked_at_province(self) -> int:
        """What the province has applied of the county's stream (its inbox row)."""
        return self._position(PROVINCE, SYNC.inbox.c.applied_seq)

    def wait_province(self, timeout: float) -> float:
        """Poll until the province applied the county's head; returns the moment it was
        seen. The progress is read from the databases (one small indexed read every 0.1 s):
        asking the nodes' status endpoints would load the very processes measured."""
        head = self.county_head()

        def caught_up() -> float:
            return time.perf_counter() if head and self.acked_at_province() >= head else 0.0

        seen: float = wait_for(
            caught_up, timeout, f"the province acknowledging seq {head}", error=SystemExit
        )
        return seen

    def batch_times(self, code: str, since: datetime) -> list[tuple[int, float]]:
        """(changes, seconds since the previous batch) of each batch ``code`` received."""
        with self.database(code).session() as s:
            rows = s.execute(
                text(
                    "SELECT changes, received_at FROM sync_batches WHERE received_at >= :t "
                    "ORDER BY received_at"
                ),
                {"t": since},
            ).all()
        out, prev = [], since
        for n, at in rows:
            at = _utc(at)
            out.append((int(n), round((at - prev).total_seconds(), 2)))
            prev = at
        return out

    def trickle(self, system_id: int, count: int, interval: float, period: str) -> list[float]:
        sent: dict[tuple[str, str], datetime] = {}
        regions = self.regions
        with self.client(COUNTY) as c:
            for i in range(count):
                key = (f"B{i % N_INDICATORS + 1:02d}", regions[i // N_INDICATORS])
                r = c.put(
                    "/api/v1/values",
                    json={
                        "system_id": system_id,
                        "indicator_code": key[0],
                        "region_code": key[1],
                        "period": period,
                        "source": "self_checkup",
                        "value": float(i),
                    },
                )
                r.raise_for_status()
                sent[key] = datetime.now(UTC)
                time.sleep(interval)
        self.wait_province(120)
        with self.database(PROVINCE).session() as s:
            rows = s.execute(
                text(
                    "SELECT indicator_code, region_code, updated_at FROM indicator_values "
                    "WHERE period = :period"
                ),
                {"period": period},
            ).all()
        lags = []
        for code, region, at in rows:
            lags.append((_utc(at) - sent[(code, region)]).total_seconds())
        if len(lags) != count:
            raise SystemExit(f"{count - len(lags)} trickled changes missing at the province")
        return lags


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=None, help="sync batch size (default: node's)")
    p.add_argument("--trickle", type=int, default=60, help="single changes in the trickle")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between trickle changes")
    p.add_argument(
        "--cpu", action="store_true", help="CPU seconds per process of the import and transfer"
    )
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="checkup-fed-bench-") as tmp:
        bench = Bench(args.backend, Path(tmp), args.batch_size)
        try:
            ids = bench.release_system()
            bench.regions = bench.communities()
            bench.rows_per_period = len(bench.regions) * N_INDICATORS * len(SOURCES)
            periods_needed = -(-args.rows // bench.rows_per_period)
            log(
                f"{args.backend}: {len(bench.regions)} communities of {COUNTY}; "
                f"{args.rows} rows over {periods_needed} period(s)"
            )
            base_rates, e2e_rates, transfer_rates = [], [], []

            def period(rep: int, k: int, fed: int) -> str:
                """The k-th year of a run: the county's block first, the baseline's after it
                (the baseline imported first: both find the earlier runs' periods alone)."""
                return str(2000 + 2 * rep * periods_needed + (0 if fed else periods_needed) + k)

            for rep in range(args.repeat):
                base_periods = [period(rep, k, 0) for k in range(periods_needed)]
                labels = bench.cpu_labels() if args.cpu else {}
                w0 = bench.settle()
                c0 = cpu_snapshot(labels) if args.cpu else {}
                t0 = time.perf_counter()
                n = bench.import_rows(PROVINCE, ids[PROVINCE], base_periods, args.rows, rep)
                base = n / (time.perf_counter() - t0)
                log(f"  import: {wal_spent(w0, bench.wal_position())}")
                if args.cpu:
                    log(f"  import CPU s: {cpu_spent(c0, cpu_snapshot(labels))}")

                fed_periods = [period(rep, k, 1) for k in range(periods_needed)]
                w1 = bench.settle()
                wall0 = datetime.now(UTC)
                t0 = time.perf_counter()
                n = bench.import_rows(COUNTY, ids[COUNTY], fed_periods, args.rows, rep)
                t1 = time.perf_counter()
                c1 = cpu_snapshot(labels) if args.cpu else {}
                t2 = bench.wait_province(1800)
                log(f"  county import and transfer: {wal_spent(w1, bench.wal_position())}")
                if args.cpu:
                    log(f"  transfer CPU s: {cpu_spent(c1, cpu_snapshot(labels))}")
                e2e = n / (t2 - t0)
                transfer = n / (t2 - t1)
                for code in (CITY, PROVINCE):
                    times = bench.batch_times(code, wall0)
                    log(f"  {code} batches (changes, s since previous): {times}")
                base_rates.append(base)
                e2e_rates.append(e2e)
                transfer_rates.append(transfer)
                log(
                    f"  run {rep + 1}: province import {base:,.0f} rows/s; county import "
                    f"{n / (t1 - t0):,.0f} rows/s; end to end {e2e:,.0f} rows/s "
                    f"({e2e / base:.3f}); after the county's commit {transfer:,.0f} rows/s "
                    f"({transfer / base:.3f})"
                )
            lags = bench.trickle(
                ids[COUNTY], args.trickle, args.interval, period(args.repeat, 0, 0)
            )
        finally:
            bench.close()

    lags.sort()
    p50 = statistics.median(lags)
    p95 = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
    ratios_e2e = [e / b for e, b in zip(e2e_rates, base_rates, strict=True)]
    ratios_transfer = [t / b for t, b in zip(transfer_rates, base_rates, strict=True)]
    figures = {
        "backend": args.backend,
        "rows": args.rows,
        "province_import_rows_per_s": round(statistics.median(base_rates)),
        "e2e_rows_per_s": round(statistics.median(e2e_rates)),
        "e2e_ratio": round(statistics.median(ratios_e2e), 3),
        "transfer_rows_per_s": round(statistics.median(transfer_rates)),
        "transfer_ratio": round(statistics.median(ratios_transfer), 3),
        "trickle_changes": len(lags),
        "trickle_p50_s": round(p50, 3),
        "trickle_p95_s": round(p95, 3),
    }
    log(
        f"trickle of {len(lags)} single changes every {args.interval}s: "
        f"lag p50 {p50:.3f}s, p95 {p95:.3f}s"
    )
    met = {
        "transfer_ratio": figures["transfer_ratio"] >= GOALS["transfer_ratio"],
        "trickle_p95_s": p95 <= GOALS["trickle_p95_s"],
    }
    print(json.dumps({"benchmark": "federation", "figures": figures, "goals": GOALS, "met": met}))


if __name__ == "__main__":
    main()
