"""Load the shipped division codes (set-based: one multi-row insert per chunk)."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, text

from shared.regions import LEVEL_RANK, RegionLevel

DATA_FILE = Path(__file__).parent / "data" / "regions-2023.csv.gz"


def read_regions(path: Path = DATA_FILE) -> Iterator[dict[str, object]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            yield {
                "code": row["code"],
                "name": row["name"],
                "level": row["level"],
                "level_rank": LEVEL_RANK[RegionLevel(row["level"])],
                "parent_code": row["parent_code"] or None,
            }


def load_regions(conn: Connection, path: Path = DATA_FILE) -> int:
    """Insert every shipped region not yet present; returns the number inserted."""
    existing = {r[0] for r in conn.execute(text("SELECT code FROM regions"))}
    rows = [r for r in read_regions(path) if r["code"] not in existing]
    stmt = text(
        "INSERT INTO regions (code, name, level, level_rank, parent_code, has_node) "
        "VALUES (:code, :name, :level, :level_rank, :parent_code, false)"
    )
    for i in range(0, len(rows), 5000):
        conn.execute(stmt, rows[i : i + 5000])
    return len(rows)
