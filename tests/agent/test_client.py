"""The agent's client and back-off: a 503 with `Retry-After` is waited out as the server asks."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from confbridge.agent.backoff import (
    MAX_RETRY_AFTER_S,
    Backoff,
    retry_after_delay_s,
    retry_delay_s,
)
from confbridge.agent.client import ControlClient, ControlError, retry_after_s
from tests.support.servers import ServerThread


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), ("0.5", 0.5), (" 10 ", 10.0), ("Wed, 21 Oct 2015 07:28:00 GMT", None),
     ("-1", None), ("nan", None), ("", None)],
)  # fmt: skip
def test_client_retry_after_is_read_in_seconds(header: str, expected: float | None) -> None:
    headers = {"Retry-After": header} if header else {}
    assert retry_after_s(httpx.Response(503, headers=headers)) == expected


async def test_client_a_503_with_retry_after_reaches_the_agent(
    serve: Callable[..., ServerThread],
) -> None:
    async def no_media_server(_request: Request) -> JSONResponse:
        return JSONResponse(
            {"detail": "no media server is up"}, status_code=503, headers={"Retry-After": "2"}
        )

    route = Route("/api/v1/occurrences/{occurrence_id}/join", no_media_server, methods=["POST"])
    control = serve(Starlette(routes=[route]))
    client = ControlClient(control.url, token="cbt_x")
    try:
        with pytest.raises(ControlError) as refused:
            await client.join(7)
    finally:
        await client.close()
    assert (refused.value.status, refused.value.retry_after_s) == (503, 2.0)
    assert refused.value.detail == "no media server is up"


def test_backoff_retry_after_is_honoured_with_jitter() -> None:
    """Never sooner than asked, up to 20 % later (and a little), so that the halls turned away
    together do not come back together."""
    delays = [retry_after_delay_s(2.0) for _ in range(200)]
    assert all(2.0 <= d <= 2.0 * 1.2 + 0.2 for d in delays)
    assert max(delays) - min(delays) > 0.1  # spread
    assert retry_after_delay_s(86_400) <= MAX_RETRY_AFTER_S * 1.2 + 0.2


def test_backoff_the_server_s_retry_after_replaces_the_back_off() -> None:
    backoff = Backoff(1.0, 8.0)
    told = ControlError(503, "no media server", retry_after_s=3.0)
    assert all(3.0 <= retry_delay_s(backoff, told) <= 3.0 * 1.2 + 0.2 for _ in range(20))
    assert backoff.attempts == 0  # the back-off did not grow meanwhile
    plain = ControlError(0, "cannot reach the server")
    assert 0.8 <= retry_delay_s(backoff, plain) <= 1.2 and backoff.attempts == 1
    assert 1.6 <= retry_delay_s(backoff, None) <= 2.4
