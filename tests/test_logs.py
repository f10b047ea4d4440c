"""Log lines as JSON with the request id; the id travels in `X-Request-ID`."""

from __future__ import annotations

import io
import json
import logging

from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from confbridge.logs import (
    NOISY_MEDIA_LOGGERS,
    REQUEST_ID_HEADER,
    JsonFormatter,
    RequestId,
    TextFormatter,
    log_config,
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
