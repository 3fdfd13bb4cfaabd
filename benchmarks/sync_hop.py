"""Benchmark: what one hop of value sync costs, against an import of the same rows.

The three nodes of ``federation.py`` are set up (PostgreSQL), the province imports a period
(history for its flags), the city and province processes are stopped and the county
imports ``--rows`` values into a new period, which it records for its parent. Then, in
this process and one tier at a time, with nothing else running:

- the county's outbox is read and encoded in batches as its pusher does (``read``);
- each batch is received at the city as its service endpoint does (parse, digest, checks,
  apply, relay into the city's outbox) and then, from the city's outbox, at the province
  (``receive``);
- the same rows are imported at the city through the import service call (``import``:
  the baseline, same node, same run).

Ratios are receive rate / import rate: how much more a received value costs than an
imported one. ``--statements`` prints where the database time of the receives went.

    .venv/bin/python benchmarks/sync_hop.py --rows 50000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from federation import CITY, COUNTY, N_INDICATORS, PROVINCE, SOURCES, Bench, log

from services.indicator.sync.tables import SYNC
from services.indicator.sync.wiring import UP_APPLIERS
from services.indicator.values import service as values_service
from services.indicator.values.parsers import parser_for
from shared.db import Database
from shared.identity import Identity
from shared.sync import SyncNode
from shared.sync.node import bind_node, mark_upward
from shared.sync.outbox import UP, read_stream
from shared.sync.receiver import receive_batch
from shared.sync.wire import build_batch, parse_batch

STREAM = f"node-{COUNTY}"


def _sync_node(code: str) -> SyncNode:
    return SyncNode(f"node-{code}", code, "indicator")


def _statements(db: Database, totals: dict[str, list[float]], active: list[bool]) -> None:
    """Add each statement's time to ``totals`` (keyed by its first 90 characters) while
    ``active[0]`` is set."""

    @event.listens_for(db.engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["checkup.bench.t"] = time.perf_counter()

    @event.listens_for(db.engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not active[0]:
            return
        key = re.sub(r"\s+", " ", statement).strip()[:90]
        slot = totals.setdefault(key, [0, 0.0])
        slot[0] += 1
        slot[1] += time.perf_counter() - conn.info["checkup.bench.t"]


def hop(source: Database, sender: str, target: Database, code: str, batch: int) -> dict[str, float]:
    """Read ``source``'s relay of the county's stream in batches and receive them at ``target``."""
    after, read_s, receive_s, n = 0, 0.0, 0.0, 0
    while True:
        t0 = time.perf_counter()
        with source.session() as session:
            changes = read_stream(session, SYNC, UP, STREAM, after, batch)
        if not changes:
            break
        body = build_batch(
            sender=f"node-{sender}",
            service="indicator",
            origins={STREAM: COUNTY},
            changes=changes,
            secret=None,
        ).encode()
        t1 = time.perf_counter()
        # As the service endpoint does behind the gateway (which checked the MAC).
        parsed = parse_batch(body)
        with target.session(write=True) as session:
            receive_batch(
                session,
                SYNC,
                parsed,
                node=_sync_node(code),
                credential_secret=None,
                allowed_region=sender,
                appliers=UP_APPLIERS,
                relay=code != PROVINCE,
            )
        t2 = time.perf_counter()
        read_s += t1 - t0
        receive_s += t2 - t1
        n += len(changes)
        after = changes[-1].seq
    return {"changes": n, "read_rows_per_s": n / read_s, "receive_rows_per_s": n / receive_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=50_000)
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--statements", action="store_true", help="database time per statement")
    args = p.parse_args()

    runs: dict[str, list[float]] = defaultdict(list)
    totals: dict[str, list[float]] = {}
    recording = [False]
    for rep in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="checkup-hop-bench-") as tmp:
            bench = Bench("postgres", Path(tmp), None)
            try:
                ids = bench.release_system()
                bench.regions = bench.communities()
                bench.rows_per_period = len(bench.regions) * N_INDICATORS * len(SOURCES)
                bench.import_rows(PROVINCE, ids[PROVINCE], ["2000"], args.rows, rep)
                for code in (CITY, PROVINCE):
                    bench.nodes[code].stop()
                bench.import_rows(COUNTY, ids[COUNTY], ["2040"], args.rows, rep)
                bench.nodes[COUNTY].stop()
                dbs: dict[str, Database] = {}
                for code in (CITY, PROVINCE):
                    db = Database(*bench.nodes[code].settings.database_for("indicator"))
                    bind_node(db.sessionmaker, _sync_node(code))
                    if code == CITY:
                        mark_upward(db.sessionmaker)
                    if args.statements:
                        _statements(db, totals, recording)
                    dbs[code] = db
                # As a node process does after start-up (checkup.node.serve).
                gc.collect()
                gc.freeze()
                recording[0] = True
                city = hop(bench.database(COUNTY), COUNTY, dbs[CITY], CITY, args.batch_size)
                province = hop(dbs[CITY], CITY, dbs[PROVINCE], PROVINCE, args.batch_size)
                recording[0] = False
                identity = Identity("bench", "user", frozenset({"admin", "data_entry"}), CITY)
                body = bench.csv(args.rows, rep)
                t0 = time.perf_counter()
                with dbs[CITY].session(write=True) as session:
                    outcome = values_service.import_values(
                        session,
                        identity,
                        system_id=ids[CITY],
                        period="2041",
                        source=SOURCES[0],
                        mode="all_or_nothing",
                        parser=parser_for(
                            "csv",
                            body,
                            default_source=SOURCES[0],
                            system_id=ids[CITY],
                            period="2041",
                        ),
                    )
                imported = outcome.rows_applied / (time.perf_counter() - t0)
                for db in dbs.values():
                    db.dispose()
            finally:
                gc.unfreeze()
                bench.close()
        runs["import_rows_per_s"].append(imported)
        runs["county_read_rows_per_s"].append(city["read_rows_per_s"])
        runs["city_receive_rows_per_s"].append(city["receive_rows_per_s"])
        runs["province_receive_rows_per_s"].append(province["receive_rows_per_s"])
        runs["city_receive_ratio"].append(city["receive_rows_per_s"] / imported)
        runs["province_receive_ratio"].append(province["receive_rows_per_s"] / imported)
        log(
            f"run {rep + 1}: import at the city {imported:,.0f} rows/s; receive at the city "
            f"{city['receive_rows_per_s']:,.0f} (relaying), at the province "
            f"{province['receive_rows_per_s']:,.0f}; county outbox read+encode "
            f"{city['read_rows_per_s']:,.0f} rows/s"
        )
    if args.statements:
        for key, (count, seconds) in sorted(totals.items(), key=lambda kv: -kv[1][1])[:30]:
            log(f"{seconds:8.3f} s {int(count):6d}×  {key}")
    figures: dict[str, Any] = {"rows": args.rows, "batch_size": args.batch_size}
    for name, values in runs.items():
        median = statistics.median(values)
        figures[name] = round(median, 3) if name.endswith("ratio") else round(median)
    print(json.dumps({"benchmark": "sync_hop", "figures": figures, "goals": {}, "met": {}}))


if __name__ == "__main__":
    main()
