"""Nodes as separate processes on loopback: the three-tier demo and the federation tests.

Each node is ``python -m checkup.node all --port N`` configured only by its environment
(``CHECKUP_*``), exactly as an installation runs; its output goes to ``<data_dir>/node.log``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
from pydantic import SecretStr

from shared.db import Database
from shared.settings import NodeSettings

__all__ = ["NodeProcess", "free_port", "link_child", "settings_env"]

ENV_PREFIX = "CHECKUP_"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def link_child(parent: NodeSettings, child: NodeSettings, *, by: str) -> None:
    """Register and approve ``child`` in ``parent``'s gateway storage and keep the credential
    in the child's data directory: what ``checkup nodes add-child`` at the parent and
    entering the credential at the child do on two machines, for nodes set up together."""
    from gateway import nodes

    db = Database(*parent.database_for("gateway"))
    try:
        with db.session() as session:
            secret = nodes.add_child(
                session, parent, node_id=child.node_id, region_code=child.region_code, by=by
            ).secret
    finally:
        db.dispose()
    child.store_credential(secret)


def settings_env(settings: NodeSettings) -> dict[str, str]:
    """The ``CHECKUP_*`` environment that reproduces ``settings`` in another process."""
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value: Any = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[ENV_PREFIX + name.upper()] = str(value)
    return env


class NodeProcess:
    """One all-in-one node in its own process."""

    def __init__(self, settings: NodeSettings, port: int | None = None) -> None:
        self.settings = settings
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = settings.data_dir / "node.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    @property
    def region_code(self) -> str:
        return self.settings.region_code

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> NodeProcess:
        """Start the process and wait until its gateway answers ``/health``."""
        if self.alive:
            return self
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) or k == "PATH"}
        env.update(settings_env(self.settings))
        env.setdefault("PYTHONUNBUFFERED", "1")
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "checkup.node", "all", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches the parent only
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        # One client for the whole wait: each new one loads a TLS context (~20 ms of CPU).
        with httpx.Client(timeout=2.0, trust_env=False) as probe:
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"节点 {self.node_id} 启动失败 "
                        f"(node exited with {self._proc.returncode}):\n" + self.log_tail()
                    )
                try:
                    if probe.get(self.url + "/health").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(
                        f"节点 {self.node_id} 未在 {timeout:.0f}s 内就绪 (not ready):\n"
                        + self.log_tail()
                    )
                time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful shutdown (SIGTERM), SIGKILL if it does not end in time."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing — as a power cut."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers or {}, timeout=60.0)
