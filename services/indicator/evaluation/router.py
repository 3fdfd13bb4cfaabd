"""HTTP endpoints of the indicator service's evaluation domain."""

from fastapi import APIRouter

router = APIRouter(tags=["evaluation"])
