"""Dependencies shared by the report service's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

__all__ = ["NodeId", "get_node_id"]


def get_node_id(request: Request) -> str:
    """This node's id: the origin of every change it publishes."""
    node: str = request.app.state.settings.node_id
    return node


NodeId = Annotated[str, Depends(get_node_id)]
