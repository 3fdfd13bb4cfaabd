"""Reading the indicator and survey services through their HTTP APIs (the contracts only).

Every call goes through ``Peers.client(...)`` acting as the requesting identity, so the
sibling service applies its own region scope. A missing endpoint or missing data comes back
as ``None`` and is noted, so that a report for a period without data says so instead of
failing.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.errors import Forbidden, ProblemError
from shared.identity import Identity
from shared.peers import Peers
from shared.regions import contains

__all__ = ["PeerFailed", "SiblingData"]


class PeerFailed(ProblemError):
    status = 502
    slug = "peer-failed"
    title = "关联服务出错 (sibling service failed)"


class SiblingData:
    """Async reader of the indicator and survey services for one identity."""

    def __init__(self, peers: Peers, identity: Identity) -> None:
        self.peers = peers
        self.identity = identity
        self.notes: list[str] = []
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._campaigns: dict[str, list[dict[str, Any]]] = {}
        self.unavailable: set[str] = set()

    async def __aenter__(self) -> SiblingData:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def _client(self, service: str) -> httpx.AsyncClient:
        if service not in self._clients:
            self._clients[service] = self.peers.client(service, self.identity)  # type: ignore[arg-type]
        return self._clients[service]

    async def _get(
        self,
        service: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        what: str,
        optional: bool = False,
        quiet: bool = False,
    ) -> Any:
        """GET a sibling's JSON; 404 → None with a note; 403 raises unless ``optional``."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            client = self._client(service)
        except ProblemError:
            # A node without that sibling (no URL, not in-process): say so once and go on.
            if service not in self.unavailable:
                self.unavailable.add(service)
                self.notes.append(f"{service} 服务未接入，相关内容从略 ({service} not available)")
            return None
        try:
            r = await client.get(path, params=clean)
        except httpx.HTTPError as exc:
            raise PeerFailed(f"{service} 服务无法访问 ({service} unreachable: {exc})") from exc
        if r.status_code == 404:
            if quiet:
                return None
            self.notes.append(f"{what}：无数据或接口不可用 (no data: {service} {path} → 404)")
            return None
        if r.status_code == 403:
            detail = r.json().get("detail", "") if r.content else ""
            if optional:
                self.notes.append(f"{what}：无权读取，从略 (not readable by this identity)")
                return None
            raise Forbidden(f"{what}：无权读取 (forbidden by {service}): {detail}")
        if r.status_code >= 400:
            self.notes.append(f"{what}：{service} 返回 {r.status_code} ({path})")
            if r.status_code >= 500:
                raise PeerFailed(f"{service} {path} 返回 {r.status_code}: {r.text[:300]}")
            return None
        return r.json()

    # --- regions (indicator service) ------------------------------------------------------

    async def region(self, code: str) -> dict[str, Any] | None:
        """One region: code, name, level, parent_code."""
        return await self._get("indicator", f"/api/v1/regions/{code}", what=f"区划 {code}")

    async def children(self, code: str) -> list[dict[str, Any]]:
        """Direct children of a region."""
        return (
            await self._get("indicator", f"/api/v1/regions/{code}/children", what="下级区划") or []
        )

    async def ancestors(self, code: str) -> list[dict[str, Any]]:
        """Parents of a region, province first."""
        return (
            await self._get("indicator", f"/api/v1/regions/{code}/ancestors", what="上级区划") or []
        )

    # --- indicator system, evaluation and dashboard ---------------------------------------

    async def system(self, system_id: int) -> dict[str, Any] | None:
        """The indicator system with its indicators (names, levels, dimensions, units)."""
        return await self._get("indicator", f"/api/v1/systems/{system_id}", what="指标体系")

    async def indicators(self, system_id: int) -> list[dict[str, Any]]:
        """The indicators of a system, from the system document or its indicators list."""
        system = await self.system(system_id)
        if system and isinstance(system.get("indicators"), list):
            return list(system["indicators"])
        listed = await self._get(
            "indicator", f"/api/v1/systems/{system_id}/indicators", what="指标列表"
        )
        if isinstance(listed, dict):
            return list(listed.get("items") or [])
        return list(listed or [])

    async def evaluations(
        self,
        system_id: int,
        period: str,
        *,
        region_code: str | None = None,
        within: str | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """Graded values of exactly ``region_code`` or of ``within`` and below (all pages)."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {
                "system_id": system_id,
                "period": period,
                "region_code": region_code,
                "within": within,
                "limit": 1000,
                "cursor": cursor,
                **filters,
            }
            page = await self._get("indicator", "/api/v1/evaluations", params, what="评价结果")
            if not page:
                return items
            items.extend(page.get("items") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def summary(
        self, region_code: str, period: str, system_id: int, *, quiet: bool = False
    ) -> dict[str, Any] | None:
        """Dashboard summary of a region: health index, dimensions, grade counts, rank."""
        return await self._get(
            "indicator",
            "/api/v1/dashboard/summary",
            {"region_code": region_code, "period": period, "system_id": system_id},
            what="体检概况",
            quiet=quiet,
        )

    async def children_summary(
        self, region_code: str, period: str, system_id: int, *, optional: bool = False
    ) -> Any:
        """Index and grades of each child region."""
        return await self._get(
            "indicator",
            "/api/v1/dashboard/children",
            {"region_code": region_code, "period": period, "system_id": system_id},
            what="下级区划评价" if not optional else "同级区划评价",
            optional=optional,
        )

    # --- survey service --------------------------------------------------------------------

    async def campaign(self, region_code: str, period: str) -> dict[str, Any] | None:
        """The survey campaign covering a region in a period: its own, else an ancestor's."""
        if period in self._campaigns:
            campaigns = self._campaigns[period]
        else:
            page = await self._get(
                "survey", "/api/v1/campaigns", {"period": period, "limit": 500}, what="满意度调查"
            )
            campaigns = [c for c in (page or {}).get("items") or [] if isinstance(c, dict)]
            self._campaigns[period] = campaigns
        covering = [c for c in campaigns if contains(str(c.get("region_code")), region_code)]
        if not covering:
            return None
        # The nearest campaign (longest region prefix), the latest among equals.
        return max(covering, key=lambda c: (len(str(c["region_code"]).rstrip("0")), c["id"]))

    async def satisfaction(self, region_code: str, period: str) -> list[dict[str, Any]] | None:
        """Weighted satisfaction per target of the region: score 0–100, 95 % interval, n."""
        c = await self.campaign(region_code, period)
        if c is None:
            if "survey" not in self.unavailable:
                self.notes.append(f"满意度调查：{period} 年无覆盖本区划的调查活动 (no campaign)")
            return None
        own = c["region_code"] == region_code
        params = {"breakdown": "overall" if own else "region"}
        if not own:
            params["group"] = region_code
        res = await self._get(
            "survey", f"/api/v1/campaigns/{c['id']}/results", params, what="满意度调查结果"
        )
        out = []
        for item in (res or {}).get("items") or []:
            target = item.get("target") or {}
            rate, ci = item.get("rate"), item.get("rate_ci") or [None, None]
            if rate is None or item.get("suppressed"):
                continue
            out.append(
                {
                    "item_code": target.get("code"),
                    "item_name": target.get("label") or target.get("code"),
                    "kind": target.get("kind") or "question",
                    "region_code": region_code,
                    "score": 100.0 * float(rate),
                    "ci_low": None if ci[0] is None else 100.0 * float(ci[0]),
                    "ci_high": None if ci[1] is None else 100.0 * float(ci[1]),
                    "n": item.get("n"),
                    "scale": "0-100",
                }
            )
        return out

    async def themes(self, region_code: str, period: str) -> list[dict[str, Any]] | None:
        """Open-answer themes counted by the survey service, per region inside ours."""
        c = await self.campaign(region_code, period)
        if c is None:
            return None
        res = await self._get(
            "survey", f"/api/v1/campaigns/{c['id']}/themes", what="满意度调查开放题主题"
        )
        return [
            t
            for t in (res or {}).get("items") or []
            if isinstance(t, dict) and contains(region_code, str(t.get("region_code")))
        ]
