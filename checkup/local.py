"""The node's own API, called in-process by the local operator (CLI commands)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from types import TracebackType
from typing import Any

from fastapi.testclient import TestClient

from shared.errors import PROBLEM_JSON
from shared.identity import Identity, sign_identity
from shared.settings import NodeSettings

CONTENT_TYPES = {
    ".csv": "text/csv",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class LocalApiError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.body = body


class LocalNode:
    """The indicator service in-process, acting as the node's operator (role admin)."""

    def __init__(self, settings: NodeSettings) -> None:
        from checkup.node import run_migrations
        from services.indicator.app import create_app

        run_migrations(settings)
        identity = Identity(
            subject=f"operator:{getpass.getuser()}",
            kind="operator",
            roles=frozenset({"admin", "reviewer", "data_entry"}),
            region=settings.region_code,
            name="本地运维 (local operator)",
        )
        self.settings = settings
        self._client = TestClient(create_app(settings), raise_server_exceptions=True)
        self._identity = identity

    def __enter__(self) -> LocalNode:
        self._client.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._client.__exit__(exc_type, exc, tb)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        secret = self.settings.internal_secret.get_secret_value()
        return {"x-checkup-identity": sign_identity(self._identity, secret), **(extra or {})}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = self._headers(kwargs.pop("headers", None))
        r = self._client.request(method, path, headers=headers, **kwargs)
        body = (
            r.json()
            if r.headers.get("content-type", "").startswith(("application/json", PROBLEM_JSON))
            else r.text
        )
        if r.status_code >= 400:
            raise LocalApiError(r.status_code, body)
        return body

    def load_starter_system(self, release: bool) -> Any:
        from services.indicator.systems.service import STARTER_FILE

        return self.import_system(STARTER_FILE, release=release)

    def import_system(self, path: Path, release: bool) -> Any:
        ctype = CONTENT_TYPES.get(path.suffix.lower(), "application/json")
        system = self.call(
            "POST",
            "/api/v1/systems/import",
            content=path.read_bytes(),
            headers={"content-type": ctype},
        )
        if release:
            system = self.call("POST", f"/api/v1/systems/{system['id']}/release")
        return system

    def import_values(
        self, path: Path, *, system_id: int, period: str, source: str, mode: str
    ) -> Any:
        ctype = CONTENT_TYPES.get(path.suffix.lower(), "text/csv")
        return self.call(
            "POST",
            "/api/v1/values/import",
            params={"system_id": system_id, "period": period, "source": source, "mode": mode},
            content=path.read_bytes(),
            headers={"content-type": ctype},
        )

    def seed_sample_year(self, period: str, seed: int = 2025) -> int:
        """Starter system + synthetic values for the node's region and its children, graded."""
        from checkup.sample_data import sample_values, to_csv
        from services.indicator.systems.service import STARTER_FILE

        region = self.settings.region_code
        code = json.loads(STARTER_FILE.read_text(encoding="utf-8"))["code"]
        systems = self.call("GET", "/api/v1/systems", params={"code": code})["items"]
        if systems:
            sid = int(systems[0]["id"])
        else:
            sid = int(self.import_system(STARTER_FILE, release=True)["id"])
        indicators = self.call("GET", f"/api/v1/systems/{sid}")["indicators"]
        children = [c["code"] for c in self.call("GET", f"/api/v1/regions/{region}/children")]
        rows = sample_values(indicators, [region, *children], period, seed=seed)
        self.call(
            "POST",
            "/api/v1/values/import",
            params={"system_id": sid, "period": period, "source": "self_checkup"},
            content=to_csv(rows).encode("utf-8"),
            headers={"content-type": "text/csv"},
        )
        self.evaluate(system_id=sid, period=period, region_code=region)
        return sid

    def evaluate(self, *, system_id: int, period: str, region_code: str | None) -> Any:
        body: dict[str, Any] = {"system_id": system_id, "period": period}
        if region_code:
            body["region_code"] = region_code
        return self.call("POST", "/api/v1/evaluations/run", json=body)
