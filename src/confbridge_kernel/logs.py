"""Logging: one JSON object per line (or text in a terminal), carrying the id of the HTTP
request being served; access lines without credentials, and without the periodic calls."""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confbridge_kernel.contracts import EVENTS_PATH, NODE_HEARTBEAT_PATH
from confbridge_kernel.redact import redact_query

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it looks like one (a proxy's, a load balancer's), else replaced.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

LogFormat = Literal["json", "text"]
LogFormatSetting = Literal["auto", "json", "text"]

# Calls made every few seconds by machines (heartbeats, event batches, scrapes, probes, polls):
# logged at debug, so that the access log at info shows what people and terminals do.
PERIODIC_PATHS = frozenset(
    {
        NODE_HEARTBEAT_PATH,
        EVENTS_PATH,
        "/api/v1/terminals/me/heartbeat",
        "/api/v1/terminals/me/floor",
        "/it/body",
        "/metrics",
        "/healthz",
        "/readyz",
    }
)
# uvicorn's access record: (client address, method, path with query, HTTP version, status)
_ACCESS_PATH_ARG = 2
# What alembic says each time it opens a migration context (every readiness probe does).
ALEMBIC_CHATTER = ("Context impl ", "Will assume ")


def resolve_log_format(setting: str, stream: Any = None) -> LogFormat:
    """`auto` → text when `stream` (stderr) is a terminal, JSON when it is not (journald,
    docker logs, a file); `json` and `text` as given. Workers get the resolved value."""
    if setting in ("json", "text"):
        return setting  # type: ignore[return-value]
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


class AccessLogFilter(logging.Filter):
    """For uvicorn's access log: the periodic machine calls (PERIODIC_PATHS) go down to debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        path = args[_ACCESS_PATH_ARG] if len(args) > _ACCESS_PATH_ARG else ""
        if isinstance(path, str) and path.split("?", 1)[0] in PERIODIC_PATHS:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


class RedactFilter(logging.Filter):
    """For the handler, so every logger's lines pass it (uvicorn's access lines, httpx's
    request lines ...): credentials in query strings (`?token=`, `?feed=`, `?code=` ...)
    are masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_query(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class JsonFormatter(logging.Formatter):
    """`{"at", "level", "logger", "message", "request_id", ...extra, "exc"}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            entry["request_id"] = current
        for key, value in vars(record).items():
            if (
                key not in _STANDARD_ATTRIBUTES
                and not key.startswith("_")
                and key != "color_message"
            ):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class ChatterFilter(logging.Filter):
    """Moves alembic's per-connection lines (ALEMBIC_CHATTER) down to debug; the lines of an
    actual upgrade stay at info."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(ALEMBIC_CHATTER):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


class TextFormatter(logging.Formatter):
    """For reading in a terminal: time, level, logger, request id, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(request)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        current = request_id.get()
        record.request = f"[{current}] " if current else ""
        return super().format(record)


NOISY_MEDIA_LOGGERS = ("httpx", "aioice", "aiortc")
"""Libraries that log each request and ICE check at INFO: thousands of lines in a join burst."""


def log_config(
    log_format: LogFormatSetting, level: str = "INFO", *, quiet: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the process, uvicorn's own loggers included;
    the `quiet` loggers log warnings and errors only."""
    formatter = (
        "confbridge_kernel.logs.JsonFormatter"
        if resolve_log_format(log_format) == "json"
        else ("confbridge_kernel.logs.TextFormatter")
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter}},
        "filters": {
            "access": {"()": "confbridge_kernel.logs.AccessLogFilter"},
            "chatter": {"()": "confbridge_kernel.logs.ChatterFilter"},
            "redact": {"()": "confbridge_kernel.logs.RedactFilter"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            **{
                name: {"handlers": [], "propagate": True, "level": level}
                for name in ("uvicorn", "uvicorn.error")
            },
            "uvicorn.access": {
                "handlers": [],
                "propagate": True,
                "level": level,
                "filters": ["access"],
            },
            "alembic.runtime.migration": {
                "handlers": [],
                "propagate": True,
                "filters": ["chatter"],
            },
            **{name: {"handlers": [], "propagate": True, "level": "WARNING"} for name in quiet},
        },
    }


class RequestId:
    """ASGI middleware: gives each HTTP request an id (the caller's `X-Request-ID` if valid),
    available to every log line written while serving it and sent back in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = (
            dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        )
        current = given if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(current)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = current
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
