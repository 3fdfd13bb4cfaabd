"""HTTP endpoints of the indicator service's dashboard domain."""

from fastapi import APIRouter

router = APIRouter(tags=["dashboard"])
