"""The indicator service app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.indicator.approval.router import router as approval_router
from services.indicator.dashboard.router import router as dashboard_router
from services.indicator.evaluation.router import router as evaluation_router
from services.indicator.regions.router import router as regions_router
from services.indicator.spatial.router import routers as spatial_routers
from services.indicator.sync.wiring import reconcile_router, sync_lifespan, sync_routes
from services.indicator.systems.router import router as systems_router
from services.indicator.values.router import router as values_router
from shared.app import create_service_app
from shared.settings import NodeSettings

PACKAGE_DIR = Path(__file__).parent


def create_app(settings: NodeSettings) -> FastAPI:
    """Build the indicator service for one node."""
    return create_service_app(
        "indicator",
        settings,
        package_dir=PACKAGE_DIR,
        routers=[
            regions_router,
            systems_router,
            # Before the values router: its /{value_id} would take 'checksum' otherwise.
            reconcile_router,
            values_router,
            approval_router,
            evaluation_router,
            dashboard_router,
            *spatial_routers,
            sync_routes(settings),
        ],
        title="指标服务 (indicator service)",
        spatial=True,
        lifespans=[sync_lifespan(settings)],
    )
