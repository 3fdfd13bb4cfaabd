"""Split mode for real: services as uvicorn processes on loopback, the gateway proxying."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.upstream import Upstream, UpstreamError, UpstreamTimeout, upstream_problem
from shared.settings import NodeSettings
from tests.gateway.conftest import add_user, assert_problem, login

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@pytest.fixture
def split_node(
    node_settings: NodeSettings,
) -> Iterator[tuple[NodeSettings, dict[str, subprocess.Popen[bytes]]]]:
    """The node's services as separate processes; settings of a gateway pointing at them."""
    env = {
        **os.environ,
        "CHECKUP_ENVIRONMENT": "test",
        "CHECKUP_REGION_CODE": node_settings.region_code,
        "CHECKUP_DATA_DIR": str(node_settings.data_dir),
        "CHECKUP_INTERNAL_SECRET": node_settings.internal_secret.get_secret_value(),
    }
    if node_settings.database_url:
        env["CHECKUP_DATABASE_URL"] = node_settings.database_url
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    try:
        for name in ("indicator", "survey", "report"):
            port = _free_port()
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "checkup.node", name, "--port", str(port)], cwd=ROOT, env=env
            )
            urls[f"{name}_url"] = f"http://127.0.0.1:{port}"
        for name, proc in procs.items():
            _wait(urls[f"{name}_url"] + "/health", proc)
        yield node_settings.model_copy(update=urls), procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_gateway_proxies_to_service_processes(
    split_node: tuple[NodeSettings, dict[str, subprocess.Popen[bytes]]],
) -> None:
    settings, procs = split_node
    add_user(settings, "root")
    with TestClient(create_app(settings), raise_server_exceptions=False) as gw:
        assert gw.get("/ready").json()["services"] == ["indicator", "report", "survey"]
        admin = login(gw, "root")
        # Reads go over kept-alive HTTP connections and come back whole.
        for _ in range(3):
            r = gw.get(
                "/api/v1/regions/360121/tree",
                params={"depth": 1},
                headers={**admin, "x-request-id": "split-1"},
            )
            assert r.status_code == 200
            assert r.headers["x-request-id"] == "split-1"
            assert r.json()["name"] == "南昌县" and len(r.json()["children"]) > 10
        big = gw.get("/api/v1/regions", params={"within": "360000", "limit": 1000}, headers=admin)
        assert len(big.json()["items"]) == 1000  # a body larger than one read
        # Service errors pass through as the service's problem+json.
        assert_problem(gw.get("/api/v1/regions/369999", headers=admin), 404, "unknown-region")
        # A write: the body reaches the service, the answer is audited before it is returned.
        r = gw.post(
            "/api/v1/evaluations/run",
            headers={**admin, "x-request-id": "split-write"},
            json={"system_id": 987654, "period": "2025", "region_code": "360121"},
        )
        assert r.status_code >= 400  # no such system in a fresh node
        audit = gw.get("/api/v1/audit", headers=admin, params={"path": "/api/v1/evaluations"})
        row = audit.json()["items"][0]
        assert (row["request_id"], row["status"], row["region_code"], row["actor"]) == (
            "split-write",
            r.status_code,
            "360121",
            "root",
        )
        # The merged document holds the services' paths learnt over HTTP.
        assert "/api/v1/regions/{code}/tree" in gw.get("/openapi.json").json()["paths"]
        # A service that goes away is a 502 problem, not a hang or a 500.
        procs["indicator"].terminate()
        procs["indicator"].wait(timeout=10)
        r = gw.get("/api/v1/regions/360121", headers=admin)
        body = assert_problem(r, 502, "upstream-unavailable")
        assert "indicator" in body["detail"]


def test_upstream_transport_errors_translate_to_502_and_504() -> None:
    """The one translation place, against real sockets: refused → 502, silent → 504."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    refused_port = _free_port()

    async def run(url: str) -> BaseException:
        upstream = Upstream("indicator", url, timeout_s=0.5)
        head = upstream.head("GET", b"/api/v1/regions", b"", [(b"host", b"x")])

        async def on_start(status: int, headers: list[tuple[bytes, bytes]]) -> None:
            raise AssertionError("no answer expected")

        async def send(message: object) -> None:
            raise AssertionError("nothing to send")

        try:
            await upstream.forward(head, b"", send, on_start)
        except UpstreamError as exc:
            return exc
        raise AssertionError("expected a transport error")

    try:
        timeout = asyncio.run(run(f"http://127.0.0.1:{silent.getsockname()[1]}"))
        assert isinstance(timeout, UpstreamTimeout)
        assert upstream_problem("indicator", timeout)[:2] == (504, "upstream-timeout")
        refused = asyncio.run(run(f"http://127.0.0.1:{refused_port}"))
        assert not isinstance(refused, UpstreamTimeout)
        assert upstream_problem("indicator", refused)[:2] == (502, "upstream-unavailable")
    finally:
        stop.set()
        thread.join()
        silent.close()
        for conn in accepted:
            conn.close()
