"""Which service owns which path (from the services' OpenAPI documents); the merged document."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "API_PREFIX",
    "PUBLIC",
    "fetch_openapi",
    "merge_openapi",
    "resource_of",
    "route_table",
]

log = logging.getLogger("checkup.gateway.routing")
API_PREFIX = "/api/v1/"
PUBLIC = "public"


def resource_of(path: str) -> str | None:
    """The routing key of a path: its first segment after /api/v1/, or 'public/<next>'."""
    if not path.startswith(API_PREFIX):
        return None
    rest = path[len(API_PREFIX) :]
    first, _, tail = rest.partition("/")
    if first == PUBLIC:
        second = tail.partition("/")[0]
        return f"{PUBLIC}/{second}" if second else None
    return first or None


def route_table(docs: Mapping[str, dict[str, Any]], reserved: set[str]) -> dict[str, str]:
    """Resource → service from the services' OpenAPI paths; a resource claimed twice is an error."""
    table: dict[str, str] = {}
    for service, doc in docs.items():
        for path in doc.get("paths", {}):
            resource = resource_of(path)
            if resource is None:
                continue
            owner = table.get(resource)
            if resource in reserved or (owner is not None and owner != service):
                raise RuntimeError(
                    f"resource {resource!r} of {service} is already served by "
                    f"{owner or 'the gateway'}: resource names must be unique"
                )
            table[resource] = service
    return table


async def fetch_openapi(name: str, url: str, timeout_s: float) -> dict[str, Any]:
    """A service's OpenAPI document over HTTP, retried until ``timeout_s`` (split mode start-up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = 0.1
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        while True:
            try:
                response = await client.get("/openapi.json")
                response.raise_for_status()
                doc: dict[str, Any] = response.json()
                return doc
            except (httpx.HTTPError, ValueError) as exc:
                if loop.time() + delay > deadline:
                    raise RuntimeError(f"cannot read {name}'s OpenAPI at {url}: {exc}") from exc
                log.info("waiting for %s at %s: %s", name, url, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


def _rename_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                name = v.rsplit("/", 1)[-1]
                out[k] = f"#/components/schemas/{renames.get(name, name)}" if name in renames else v
            else:
                out[k] = _rename_refs(v, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "POST /api/v1/auth/login 取得的令牌 (token from login)",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "系统对接用 API 密钥 (API key for other systems)",
    },
}


def merge_openapi(
    gateway_doc: dict[str, Any],
    service_docs: Mapping[str, dict[str, Any]],
    anonymous_paths: set[str],
) -> dict[str, Any]:
    """One document: the gateway's own paths plus every service's /api/v1 paths.

    A component schema name used by two services for different shapes is prefixed with
    the service name in the later one's paths, so no definition silently replaces another.
    """
    merged = copy.deepcopy(gateway_doc)
    merged.setdefault("paths", {})
    schemas: dict[str, Any] = merged.setdefault("components", {}).setdefault("schemas", {})
    tags: list[dict[str, Any]] = merged.setdefault("tags", [])
    known_tags = {t["name"] for t in tags}
    for service, doc in service_docs.items():
        theirs: dict[str, Any] = doc.get("components", {}).get("schemas", {})
        renames = {}
        for name, schema in theirs.items():
            if name in schemas and json.dumps(schemas[name], sort_keys=True) != json.dumps(
                schema, sort_keys=True
            ):
                renames[name] = f"{service}_{name}"
        for name, schema in theirs.items():
            schemas[renames.get(name, name)] = _rename_refs(schema, renames)
        for path, item in doc.get("paths", {}).items():
            if resource_of(path) is None:
                continue
            merged["paths"][path] = _rename_refs(item, renames)
        for tag in doc.get("tags", []):
            if tag["name"] not in known_tags:
                tags.append(tag)
                known_tags.add(tag["name"])
    merged["components"]["securitySchemes"] = SECURITY_SCHEMES
    merged["security"] = [{"bearerAuth": []}, {"apiKey": []}]
    for path, item in merged["paths"].items():
        if (
            path in anonymous_paths
            or resource_of(path) in (None,)
            or path.startswith(API_PREFIX + PUBLIC + "/")
        ):
            for operation in item.values():
                if isinstance(operation, dict):
                    operation["security"] = []
    if not tags:
        merged.pop("tags")
    return merged
