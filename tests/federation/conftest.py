"""Three real nodes on loopback: province 360000, city 360100, county 360121.

Each is an all-in-one app (gateway + services) served by uvicorn in a thread, with its
own storage cloned from the migrated template; the city's parent is the province's
gateway URL, the county's the city's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from checkup.cluster import free_port
from checkup.node import build_all_in_one
from shared.db import Database
from shared.settings import NodeSettings
from tests.dbs import Template
from tests.gateway.conftest import PASSWORD, add_user


class LiveNode:
    """One node's all-in-one app under uvicorn (lifespan on) in a thread."""

    def __init__(self, settings: NodeSettings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.app: Any = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.headers: dict[str, str] = {}

    def start(self) -> LiveNode:
        self.app = build_all_in_one(self.settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"node {self.settings.node_id} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._server = None
        self._thread = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30.0)

    def login_admin(self) -> None:
        """Create this node's admin (also its reviewer) and keep its token for ``client()``."""
        add_user(self.settings, "admin", ("admin", "reviewer"))
        with httpx.Client(base_url=self.url, timeout=30.0) as c:
            r = c.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
            assert r.status_code == 200, r.text
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def indicator_db(self) -> Database:
        url, schema = self.settings.database_for("indicator")
        return Database(url, schema=schema, spatial=True)


@dataclass
class Tiers:
    province: LiveNode
    city: LiveNode
    county: LiveNode


@pytest.fixture
def tiers(template: Template, tmp_path: Path) -> Iterator[Tiers]:
    """Province, city and county nodes (not started; the test starts them)."""
    ports = {code: free_port() for code in ("360000", "360100", "360121")}
    parents = {"360000": None, "360100": "360000", "360121": "360100"}
    cleanups = []
    made = {}
    for code, parent in parents.items():
        settings, cleanup = template.clone(
            tmp_path / code,
            region_code=code,
            node_id=f"node-{code}",
            parent_url=f"http://127.0.0.1:{ports[parent]}" if parent else None,
            sync_poll_interval_s=0.2,
            sync_dead_letter_after=3,
            sync_backoff_cap_s=1.0,
            # The rate limit keys anonymous (node) requests by address: all on 127.0.0.1 here.
            rate_limit_per_minute=100_000,
            rate_limit_burst=10_000,
        )
        cleanups.append(cleanup)
        made[code] = LiveNode(settings, ports[code])
    nodes = Tiers(made["360000"], made["360100"], made["360121"])
    try:
        yield nodes
    finally:
        for node in (nodes.county, nodes.city, nodes.province):
            node.stop()
        for cleanup in cleanups:
            cleanup()  # type: ignore[operator]


from tests.federation.processes import process_tiers  # noqa: E402,F401 - fixture
