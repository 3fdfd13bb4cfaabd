"""Federation endpoints of the report service: the outbox to push up, the inbox children push to."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.report.deps import NodeId
from services.report.federation import service
from shared.db import DbSession
from shared.identity import CurrentIdentity, require_roles

router = APIRouter(prefix="/api/v1/reports/federation", tags=["federation 上报"])


class RecordIn(BaseModel):
    seq: int
    entity: str
    entity_key: str
    payload: dict[str, Any]


class BatchIn(BaseModel):
    origin_node: str = Field(min_length=1, max_length=60)
    records: list[RecordIn] = Field(max_length=5000)


@router.get("/outbox", summary="待上报变更 (outbox)", dependencies=[require_roles("node", "admin")])
def outbox(
    session: DbSession,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """Changes to push to the parent node, after an outbox id (own and relayed)."""
    rows = service.outbox_since(session, after, limit)
    return {
        "items": [
            {
                "id": r.id,
                "origin_node": r.origin_node,
                "seq": r.seq,
                "entity": r.entity,
                "entity_key": r.entity_key,
                "op": r.op,
                "payload": r.payload,
                "created_at": r.created_at,
            }
            for r in rows
        ],
        "next_after": rows[-1].id if rows else after,
    }


@router.post("/inbox", summary="接收下级上报 (receive a child's batch)")
def inbox(
    batch: BatchIn, session: DbSession, identity: CurrentIdentity, node: NodeId
) -> dict[str, Any]:
    """Apply a child node's batch: each (origin, seq) once, in order; bad batches refused whole."""
    return service.apply_batch(
        session, identity, node, batch.origin_node, [r.model_dump() for r in batch.records]
    )
