"""The control plane's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from confbridge import __version__
from confbridge.auth.router import router as auth_router
from confbridge.bridge.router import router as bridge_router
from confbridge.db import Database
from confbridge.errors import install_error_handlers
from confbridge.meetings.router import router as meetings_router
from confbridge.scheduler import Scheduler
from confbridge.settings import Settings, get_settings
from confbridge.sites.router import router as sites_router

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    run_scheduler: bool = False,
) -> FastAPI:
    """Build the app; `serve` runs the scheduler loop, tests drive it directly."""
    settings = settings or get_settings()
    database = database or Database(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = Scheduler(database, settings) if run_scheduler else None
        if scheduler:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler:
                await scheduler.close()

    app = FastAPI(
        title="ConfBridge",
        version=__version__,
        description="Hội nghị truyền hình trực tuyến: lịch họp, điểm cầu, điểm danh.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(auth_router)
    api.include_router(sites_router)
    api.include_router(meetings_router)
    api.include_router(bridge_router)
    app.include_router(api)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


def create_served_app() -> FastAPI:
    """App factory for `confbridge serve --processes N`: one app and scheduler per process."""
    return create_app(run_scheduler=True)
