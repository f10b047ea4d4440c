"""The control plane's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from confbridge.alerts.delivery import AlertDelivery
from confbridge.alerts.router import router as alerts_router
from confbridge.attendance.router import router as attendance_router
from confbridge.audit.router import router as audit_router
from confbridge.auth.router import router as auth_router
from confbridge.bridge.router import ScraperDep
from confbridge.bridge.router import heartbeat_router as node_heartbeat_router
from confbridge.bridge.router import occurrence_router as occurrence_timing_router
from confbridge.bridge.router import router as bridge_router
from confbridge.client_address import NoteClientAddress
from confbridge.dashboard.router import router as dashboard_router
from confbridge.db import Database
from confbridge.errors import install_error_handlers
from confbridge.headers import SecurityHeaders
from confbridge.health import Readiness, readiness
from confbridge.live import InProcessBus
from confbridge.live_redis import RedisBus
from confbridge.meetings import calendars
from confbridge.meetings.router import router as meetings_router
from confbridge.meetings.router import site_router as site_archiving_router
from confbridge.metrics import ControlPlaneMetrics, RequestTimer
from confbridge.monitor import Monitor
from confbridge.nodes.router import router as nodes_router
from confbridge.object_store import store_of
from confbridge.openapi import install as install_openapi
from confbridge.recordings.router import router as recordings_router
from confbridge.records import service as record_service
from confbridge.records.delivery import NoticeDelivery
from confbridge.records.documents_router import router as record_documents_router
from confbridge.records.notices_router import router as record_notices_router
from confbridge.records.pages_router import router as record_pages_router
from confbridge.records.router import router as records_router
from confbridge.reports.router import router as reports_router
from confbridge.scheduler import Scheduler
from confbridge.settings import Settings, get_settings
from confbridge.sites.router import router as sites_router
from confbridge.strict_json import StrictJsonBody
from confbridge.terminals.pages import router as kiosk_router
from confbridge.terminals.router import router as terminals_router
from confbridge.terminals.router import site_router as site_terminals_router
from confbridge.timeutil import utcnow
from confbridge.web.app import install as install_web
from confbridge_kernel import __version__
from confbridge_kernel.logs import RequestId

API_PREFIX = "/api/v1"
# Swagger UI's default validator badge calls validator.swagger.io: nothing leaves a closed network.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    run_scheduler: bool = False,
) -> FastAPI:
    """Build the app; `serve` runs the scheduler loop, tests drive it directly."""
    settings = settings or get_settings()
    database = database or Database(settings)
    # /docs and /redoc from files shipped in a package, not a CDN (closed government networks)
    app = FastAPIOffline(
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        title="ConfBridge",
        version=__version__,
        description="Hội nghị truyền hình trực tuyến: lịch họp, điểm cầu, điểm danh.",
        lifespan=_lifespan(database, settings, run_scheduler=run_scheduler),
    )
    app.state.settings = settings
    app.state.db = database
    # Live events for the web pages (one process; a Redis-backed bus can replace it).
    app.state.live = RedisBus(settings.redis_url) if settings.redis_url else InProcessBus()
    install_error_handlers(app)
    install_openapi(app)
    # NaN/Infinity and lone surrogates in any JSON body: 422 before a route sees them
    app.add_middleware(StrictJsonBody)
    app_metrics = ControlPlaneMetrics(
        database, settings.terminals.offline_after_s, settings.meetings.overrun_grace_min
    )
    app.state.metrics = app_metrics  # `serve` adds the SIP gateway's counters to its registry
    app.add_middleware(RequestTimer, metrics=app_metrics)
    app.add_middleware(SecurityHeaders)
    # outermost, so that every log line of a request carries its id
    app.add_middleware(NoteClientAddress)
    app.add_middleware(RequestId)
    _include_routers(app)
    _add_health_routes(app, database, app_metrics)
    return app


def _lifespan(
    database: Database, settings: Settings, *, run_scheduler: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the scheduler, health monitor and alert delivery with the app (`serve` only),
    and stop them and the live event bus when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = Scheduler(database, settings, live=app.state.live) if run_scheduler else None
        if scheduler:
            scheduler.start()
        # health checks and alert delivery run beside the scheduler (`serve`)
        monitor = (
            Monitor(database, settings.alerts, settings.terminals, tz=settings.meetings.default_tz)
            if run_scheduler
            else None
        )
        delivery = AlertDelivery(database, settings.alerts) if run_scheduler else None
        if monitor and delivery:
            monitor.start()
            delivery.start()
        # the meetings' notices: sites' webhooks, and e-mail when records.mail.smtp_host is set
        notices = NoticeDelivery(database, settings.records.mail) if run_scheduler else None
        if notices:
            notices.start()
        try:
            yield
        finally:
            if scheduler:
                await scheduler.close()
            if monitor and delivery:
                await monitor.close()
                await delivery.close()
            if notices:
                await notices.close()
            app.state.live.close()

    return lifespan


def _include_routers(app: FastAPI) -> None:
    """The domains' API under `API_PREFIX`, then the kiosk and the web pages."""
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(auth_router)
    api.include_router(sites_router)
    api.include_router(site_archiving_router)
    api.include_router(site_terminals_router)
    api.include_router(meetings_router)
    api.include_router(occurrence_timing_router)
    api.include_router(bridge_router)
    api.include_router(recordings_router)
    api.include_router(nodes_router)
    api.include_router(node_heartbeat_router)
    api.include_router(alerts_router)
    api.include_router(dashboard_router)
    api.include_router(attendance_router)
    api.include_router(reports_router)
    api.include_router(audit_router)
    api.include_router(terminals_router)
    api.include_router(records_router)
    api.include_router(record_documents_router)
    api.include_router(record_notices_router)
    api.include_router(record_pages_router)
    app.include_router(api)
    # calendar events carry the meeting record's content and agenda
    calendars.add_description_source(record_service.calendar_description)
    app.include_router(kiosk_router)
    install_web(app)


def _add_health_routes(app: FastAPI, database: Database, app_metrics: ControlPlaneMetrics) -> None:
    """/healthz, /readyz and /metrics."""

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # a node heard from before this process started may have died meanwhile (a worker of
    # the previous run): it counts once it heartbeats again
    started_at = utcnow()

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "not ready: see the failing checks"}},
    )
    def readyz() -> JSONResponse:
        """200 when the database answers, its schema is current, an SFU node is up and the
        object store (where one is configured) answers."""
        checks = readiness(database, heard_since=started_at, objects=store_of(app.state.settings))
        ready = all(check.ok for check in checks)
        return JSONResponse(
            {
                "status": "ready" if ready else "not_ready",
                "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
            },
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics(_scraper: ScraperDep) -> Response:
        """Prometheus metrics; scrape with `Authorization: Bearer <sfu.node_secret>`."""
        return Response(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_served_app() -> FastAPI:
    """App factory for `confbridge serve --processes N`: one app and scheduler per process."""
    return create_app(run_scheduler=True)
