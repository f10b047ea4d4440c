"""Log lines as JSON with the request id; the id travels in `X-Request-ID`."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import sys
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from confbridge_kernel.logs import (
    NOISY_MEDIA_LOGGERS,
    REQUEST_ID_HEADER,
    JsonFormatter,
    RequestId,
    TextFormatter,
    log_config,
    resolve_log_format,
)


def logging_app() -> tuple[Starlette, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.logs")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False

    async def hello(request: Request) -> PlainTextResponse:
        logger.info("xin chào %s", request.path_params["name"], extra={"site_id": 7})
        try:
            raise ValueError("hỏng")
        except ValueError:
            logger.exception("failed")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/hello/{name}", hello)])
    app.add_middleware(RequestId)
    return app, stream


def test_logs_json_lines_carry_the_request_id() -> None:
    app, stream = logging_app()
    with TestClient(app) as client:
        response = client.get("/hello/Hà Nội", headers={REQUEST_ID_HEADER: "lb-1234"})
    assert response.headers[REQUEST_ID_HEADER] == "lb-1234"
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "xin chào Hà Nội" and first["request_id"] == "lb-1234"
    assert (first["level"], first["logger"], first["site_id"]) == ("info", "tests.logs", 7)
    assert second["level"] == "error" and "ValueError: hỏng" in second["exc"]


def test_logs_request_id_is_made_when_missing_or_malformed() -> None:
    app, stream = logging_app()
    with TestClient(app) as client:
        made = client.get("/hello/a").headers[REQUEST_ID_HEADER]
        replaced = client.get("/hello/b", headers={REQUEST_ID_HEADER: "bad id\n<script>"})
    assert len(made) == 32 and replaced.headers[REQUEST_ID_HEADER] != "bad id\n<script>"
    ids = [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()]
    assert ids[:2] == [made, made] and ids[2] == replaced.headers[REQUEST_ID_HEADER]


def test_logs_the_control_plane_answers_with_a_request_id(client: TestClient) -> None:
    response = client.get("/healthz", headers={REQUEST_ID_HEADER: "abc-1"})
    assert response.headers[REQUEST_ID_HEADER] == "abc-1"


def test_logs_config_picks_the_formatter() -> None:
    assert log_config("json")["formatters"]["default"]["()"].endswith("JsonFormatter")
    assert log_config("text")["formatters"]["default"]["()"].endswith("TextFormatter")
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "x"})
    assert TextFormatter().format(record).endswith("INFO x hello")


def test_logs_quiet_loggers_keep_their_warnings_only() -> None:
    config = log_config("json", "INFO", quiet=NOISY_MEDIA_LOGGERS)
    assert {name: config["loggers"][name]["level"] for name in NOISY_MEDIA_LOGGERS} == {
        "httpx": "WARNING",
        "aioice": "WARNING",
        "aiortc": "WARNING",
    }
    assert config["root"]["level"] == config["loggers"]["uvicorn"]["level"] == "INFO"


@pytest.fixture
def configured() -> Iterator[Callable[..., io.StringIO]]:
    """`configured(format, level)`: the process's logging as `log_config` sets it, written to a
    buffer; the previous configuration is restored afterwards."""
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "alembic.runtime.migration")
    saved = {
        name: (
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).filters[:],
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
        )
        for name in names
    }

    def configure(log_format: str = "json", level: str = "INFO") -> io.StringIO:
        logging.config.dictConfig(log_config(log_format, level))  # type: ignore[arg-type]
        stream = io.StringIO()
        for handler in logging.getLogger().handlers:
            handler.setStream(stream)  # type: ignore[attr-defined]
        return stream

    yield configure
    for name, (handlers, filters, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers, logger.filters, logger.propagate = handlers, filters, propagate
        logger.setLevel(level)


def access_line(path: str, status: int = 200) -> None:
    """What uvicorn logs for one request (its format and arguments)."""
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", path, "1.1", status
    )


def test_logs_access_lines_mask_credentials_in_query_strings(
    configured: Callable[..., io.StringIO],
) -> None:
    stream = configured("json")
    access_line("/terminal?code=ABCD-EFGH&lang=en")
    access_line("/api/v1/series/4/calendar.ics?feed=f33d-t0ken")
    access_line("/api/v1/sites/2/calendar.ics?lang=vi&token=eyJhbGciOi.x.y")
    access_line("/sign-in?next=/calendar&password=hunter2&client_secret=s3")
    lines = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert len(lines) == 4
    text = "\n".join(lines)
    for secret in ("ABCD-EFGH", "f33d-t0ken", "eyJhbGciOi", "hunter2", 's3"'):
        assert secret not in text, secret
    assert '"GET /terminal?code=**********&lang=en HTTP/1.1" 200' in lines[0]
    assert "?lang=vi&token=**********" in lines[2] and "next=/calendar" in lines[3]


def test_logs_periodic_calls_are_debug_lines(configured: Callable[..., io.StringIO]) -> None:
    periodic = (
        "/api/v1/sfu/nodes/heartbeat",
        "/api/v1/terminals/me/heartbeat",
        "/api/v1/sfu/events",
        "/metrics",
        "/api/v1/terminals/me/floor?occurrence_id=3",
    )
    stream = configured("json", "INFO")
    for path in periodic:
        access_line(path)
    access_line("/calendar")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == [
        '127.0.0.1:50000 - "GET /calendar HTTP/1.1" 200'
    ]
    stream = configured("json", "DEBUG")
    for path in periodic:
        access_line(path)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(entries) == len(periodic) and {e["level"] for e in entries} == {"debug"}


def test_logs_auto_format_is_text_on_a_terminal_and_json_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leader, follower = os.openpty()
    with open(follower, "w") as terminal, open(os.devnull, "w") as plain:
        assert resolve_log_format("auto", terminal) == "text"
        assert resolve_log_format("auto", plain) == "json"
        assert resolve_log_format("json", terminal) == "json"
        assert resolve_log_format("text", plain) == "text"
        monkeypatch.setattr(sys, "stderr", terminal)
        assert log_config("auto")["formatters"]["default"]["()"].endswith("TextFormatter")
        monkeypatch.setattr(sys, "stderr", plain)
        assert log_config("auto")["formatters"]["default"]["()"].endswith("JsonFormatter")
    os.close(leader)


def test_logs_alembic_connection_chatter_is_debug_but_upgrades_show(
    configured: Callable[..., io.StringIO],
) -> None:
    stream = configured("json", "INFO")
    migration = logging.getLogger("alembic.runtime.migration")
    migration.info("Context impl %s.", "SQLiteImpl")
    migration.info("Will assume %s DDL.", "non-transactional")
    migration.info("Running upgrade %s -> %s, %s", "0005", "0006", "node machine")
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert messages == ["Running upgrade 0005 -> 0006, node machine"]


def test_logs_any_line_with_a_credential_in_a_url_is_masked(
    configured: Callable[..., io.StringIO],
) -> None:
    stream = configured("text")
    logging.getLogger("httpx").warning(
        'HTTP Request: GET %s "HTTP/1.1 200 OK"', "https://hop.example.vn/cal.ics?feed=f33d"
    )
    logging.getLogger("tests.redact").info("pairing at /terminal?code=%s", "WXYZ-2345")
    text = stream.getvalue()
    assert "f33d" not in text and "WXYZ-2345" not in text
    assert "cal.ics?feed=**********" in text and "/terminal?code=**********" in text
