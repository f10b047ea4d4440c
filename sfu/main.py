"""Run one SFU worker process: `confbridge sfu`."""

from __future__ import annotations

import logging.config

import uvicorn

from confbridge.logs import NOISY_MEDIA_LOGGERS, log_config
from sfu.config import WorkerSettings
from sfu.http import build_app
from sfu.worker import Worker


def run(settings: WorkerSettings) -> None:
    """Serve WHIP/WHEP and the admin API until interrupted; one event loop, one core."""
    # the worker's own lines; not one per ICE check or admin call of the libraries
    config = log_config(settings.log_format, quiet=NOISY_MEDIA_LOGGERS)
    logging.config.dictConfig(config)
    worker = Worker(settings)
    uvicorn.run(
        build_app(worker),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=config,
        lifespan="on",
    )
