"""The report service app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.app import create_service_app
from shared.settings import NodeSettings

PACKAGE_DIR = Path(__file__).parent


def create_app(settings: NodeSettings) -> FastAPI:
    """Build the report service for one node."""
    return create_service_app(
        "report",
        settings,
        package_dir=PACKAGE_DIR,
        routers=[],
        title="诊断与报告服务 (report service)",
    )
