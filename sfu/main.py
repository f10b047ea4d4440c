"""Run one SFU worker process: `confbridge sfu`."""

from __future__ import annotations

import logging

import uvicorn

from sfu.config import WorkerSettings
from sfu.http import build_app
from sfu.worker import Worker


def run(settings: WorkerSettings) -> None:
    """Serve WHIP/WHEP and the admin API until interrupted; one event loop, one core."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker = Worker(settings)
    uvicorn.run(
        build_app(worker),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
    )
