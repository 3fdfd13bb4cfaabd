"""HTTP endpoints of the indicator service's values domain."""

from fastapi import APIRouter

router = APIRouter(tags=["values"])
