"""Run one SFU worker process: `confbridge sfu`."""

from __future__ import annotations

import ctypes
import logging
import logging.config
import os
import signal
import sys

import uvicorn

from confbridge_kernel.logs import NOISY_MEDIA_LOGGERS, log_config
from sfu.config import WorkerSettings
from sfu.http import build_app
from sfu.worker import Worker

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """End this worker (SIGTERM: it closes its rooms and spool) when its parent `serve` dies,
    even by SIGKILL, so that no orphan holds the spool or the port of the next run.

    The kernel sends the signal when the thread that started this process ends; `serve`
    starts its workers from a thread that lives as long as it supervises them.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("cannot ask to die with serve: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent_pid:  # it died before the request above
        raise SystemExit(f"serve (pid {parent_pid}) is gone; not starting")


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
