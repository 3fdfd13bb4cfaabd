"""The report service app: diagnosis, problems, tasks, projects, reports and bulletins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.report.diagnosis.router import router as diagnosis_router
from services.report.problems.router import router as problems_router
from services.report.projects.router import router as projects_router
from services.report.reports.router import bulletins_router, jobs_router
from services.report.reports.router import router as reports_router
from services.report.reports.worker import ReportWorker
from services.report.sync.wiring import sync_lifespan, sync_routes
from services.report.tasks.router import router as tasks_router
from shared.app import create_service_app
from shared.settings import NodeSettings

PACKAGE_DIR = Path(__file__).parent


def create_app(settings: NodeSettings, *, run_worker: bool = True) -> FastAPI:
    """Build the report service for one node (with its report worker unless told not to)."""
    app = create_service_app(
        "report",
        settings,
        package_dir=PACKAGE_DIR,
        routers=[
            diagnosis_router,
            problems_router,
            tasks_router,
            projects_router,
            sync_routes(settings),
            reports_router,
            jobs_router,
            bulletins_router,
        ],
        title="诊断与报告服务 (report service)",
        lifespans=[sync_lifespan(settings)],
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The worker needs the database the shared lifespan opens, and must stop before it
        # closes: wrap that lifespan rather than duplicate it.
        async with inner(app):
            worker = ReportWorker(
                app.state.db, app.state.peers, settings.node_id, settings.data_dir
            )
            app.state.report_worker = worker
            if run_worker:
                worker.start()
            try:
                yield
            finally:
                worker.stop()

    app.router.lifespan_context = lifespan
    return app
