"""Logging: one JSON object per line, carrying the id of the HTTP request being served."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it looks like one (a proxy's, a load balancer's), else replaced.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

LogFormat = Literal["json", "text"]


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
    log_format: LogFormat, level: str = "INFO", *, quiet: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the process, uvicorn's own loggers included;
    the `quiet` loggers log warnings and errors only."""
    formatter = (
        "confbridge.logs.JsonFormatter"
        if log_format == "json"
        else ("confbridge.logs.TextFormatter")
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            **{
                name: {"handlers": [], "propagate": True, "level": level}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
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
