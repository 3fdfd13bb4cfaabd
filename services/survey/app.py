"""The survey service app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.survey.campaigns.router import router as campaigns_router
from services.survey.questionnaires.router import router as questionnaires_router
from services.survey.responses.intake import AttemptLimiter, FormCache
from services.survey.responses.router import public_router
from services.survey.responses.router import router as responses_router
from services.survey.results.router import router as results_router
from services.survey.sync.received import router as received_router
from services.survey.sync.wiring import sync_lifespan, sync_routes
from shared.app import create_service_app
from shared.settings import NodeSettings

PACKAGE_DIR = Path(__file__).parent


def _on_startup(app: FastAPI) -> None:
    # Per-process state of the public link: parsed forms and the attempt limiter.
    app.state.survey_forms = FormCache()
    app.state.survey_limiter = AttemptLimiter()


def create_app(settings: NodeSettings) -> FastAPI:
    """Build the survey service for one node."""
    return create_service_app(
        "survey",
        settings,
        package_dir=PACKAGE_DIR,
        routers=[
            questionnaires_router,
            campaigns_router,
            responses_router,
            results_router,
            public_router,
            received_router,
            sync_routes(settings),
        ],
        title="满意度调查服务 (survey service)",
        on_startup=_on_startup,
        lifespans=[sync_lifespan(settings)],
    )
