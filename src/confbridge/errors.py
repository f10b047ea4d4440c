"""Domain errors, and the one place that maps them (and database refusals) to HTTP."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal a caller can understand; `status_code` is its HTTP face."""

    status_code = 400
    # Seconds the caller should wait before trying again (a `Retry-After` header), if any.
    retry_after_s: int | None = None

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra
        if isinstance(extra.get("retry_after_s"), int):
            self.retry_after_s = extra["retry_after_s"]


class NotFound(DomainError):
    status_code = 404


class Invalid(DomainError):
    status_code = 422


class Conflict(DomainError):
    status_code = 409


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


class TooManyRequests(DomainError):
    """Refused for now; `retry_after_s` becomes the Retry-After header."""

    status_code = 429


class Unavailable(DomainError):
    """Cannot be served right now; `retry_after_s` becomes the Retry-After header."""

    status_code = 503


class RangeNotSatisfiable(DomainError):
    """A byte range outside the file asked for."""

    status_code = 416


def _body(message: str, **extra: Any) -> dict[str, Any]:
    return {"detail": message, **extra}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else {}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(exc.retry_after_s)
        return JSONResponse(
            _body(exc.message, **exc.extra), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(IntegrityError)
    async def _integrity_error(_request: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error: %s", exc.orig)
        return JSONResponse(
            _body("the change conflicts with existing data (a duplicate or a reference in use)"),
            status_code=409,
        )

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, exc: DataError) -> JSONResponse:
        log.info("data error: %s", exc.orig)
        return JSONResponse(_body("a value is out of range or malformed"), status_code=422)

    @app.exception_handler(OperationalError)
    async def _operational_error(_request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", exc.orig)
        return JSONResponse(_body("the database is unavailable, try again"), status_code=503)
