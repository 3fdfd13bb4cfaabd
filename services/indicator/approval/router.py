"""HTTP endpoints of the indicator service's approval domain."""

from fastapi import APIRouter

router = APIRouter(tags=["approval"])
