"""HTTP endpoints of the indicator service's systems domain."""

from fastapi import APIRouter

router = APIRouter(tags=["systems"])
