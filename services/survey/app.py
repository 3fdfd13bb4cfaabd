"""The survey service app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.app import create_service_app
from shared.settings import NodeSettings

PACKAGE_DIR = Path(__file__).parent


def create_app(settings: NodeSettings) -> FastAPI:
    """Build the survey service for one node."""
    return create_service_app(
        "survey",
        settings,
        package_dir=PACKAGE_DIR,
        routers=[],
        title="满意度调查服务 (survey service)",
    )
