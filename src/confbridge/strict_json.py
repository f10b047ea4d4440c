"""Refuse JSON bodies that Python's parser accepts but nothing after it can handle.

`json.loads` reads `NaN`, `Infinity` and `-Infinity` (not JSON, RFC 8259 §6) and turns an
escaped lone UTF-16 surrogate (`"\\ud800"`) into a string that cannot be encoded as UTF-8: the
database driver, the log line and even the validation error's own response then fail with a
server error. This ASGI middleware checks every JSON request body once, before any route sees
it, and answers 422 in the shape of a FastAPI validation error, so one rule covers every route,
present and future, the unauthenticated ones included.

Only bodies that contain one of those tokens at all are parsed here (a byte search); the others,
nearly all of them, go through untouched.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What a refused body may contain: the non-JSON constants, or an escaped surrogate.
_SUSPECT = re.compile(rb"NaN|Infinity|\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _Refused(ValueError):
    """The body is JSON that must not be accepted; the message says why."""


def _reject_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number; send a finite number or null")


def _check_strings(value: Any) -> None:
    """Raise `_Refused` if any key or string in `value` holds a lone surrogate."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _Refused(
                    "a string holds a lone UTF-16 surrogate (such as \\ud800), which is not "
                    "valid Unicode"
                )
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)


def body_problem(body: bytes) -> str | None:
    """Why `body` must be refused, or None (valid, or malformed in a way the route reports)."""
    if not _SUSPECT.search(body):
        return None
    try:
        value = json.loads(body, parse_constant=_reject_constant)
        _check_strings(value)
    except _Refused as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None  # malformed JSON: FastAPI answers it as it always does
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json" or media_type.endswith(b"+json")
    return True  # no content type: FastAPI reads the body as JSON


class StrictJsonBody:
    """ASGI middleware: a JSON body with NaN/Infinity or a lone surrogate gets 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = body_problem(body)
        if problem is not None:
            detail = [{"type": "json_invalid", "loc": ["body"], "msg": problem, "input": None}]
            await JSONResponse({"detail": detail}, status_code=422)(scope, receive, send)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
