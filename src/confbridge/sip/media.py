"""The gateway's client for a worker's SIP legs (`confbridge_kernel.sip_legs`)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator

import httpx
from pydantic import BaseModel, ValidationError

from confbridge.signing import GrantSigner, admin_headers
from confbridge_kernel.sip_legs import (
    SIP_LEGS_PATH,
    SipLegAdmit,
    SipLegAnswer,
    SipLegClose,
    SipLegDtmf,
    SipLegEvent,
    SipLegOpen,
    SipLegOpened,
    sip_leg_path,
)

log = logging.getLogger(__name__)
TIMEOUT = httpx.Timeout(5.0, connect=2.0)


class MediaError(Exception):
    """The worker could not open or change a leg: the message says why (for the SIP reason)."""

    def __init__(self, message: str, *, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


class LegClient:
    """One worker's leg API, with an admin token per call (method and path)."""

    def __init__(self, base_url: str, *, node_id: str, signer: GrantSigner) -> None:
        self.base_url = base_url.rstrip("/")
        self.node_id = node_id
        self._signer = signer
        self._http = httpx.AsyncClient(timeout=TIMEOUT)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self, method: str, path: str) -> dict[str, str]:
        return admin_headers(self._signer, node_id=self.node_id, method=method, path=path)

    async def _call(self, method: str, path: str, body: BaseModel | None) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                self.base_url + path,
                json=body.model_dump(mode="json") if body is not None else None,
                headers=self._headers(method, path),
            )
        except httpx.HTTPError as exc:
            log.warning("node %s unreachable for SIP media: %s", self.node_id, exc)
            raise MediaError("the media server is unreachable") from None
        if response.status_code >= 400:
            detail = response.text[:200].strip()
            log.warning("node %s refused %s %s: %s", self.node_id, method, path, detail)
            # the caller's media was refused (bad SDP): 488; anything else is ours: 503
            status = 488 if response.status_code in (400, 415, 422) else 503
            raise MediaError(detail or f"HTTP {response.status_code}", status=status)
        return response

    async def open(self, request: SipLegOpen) -> SipLegOpened:
        response = await self._call("POST", SIP_LEGS_PATH, request)
        try:
            return SipLegOpened.model_validate_json(response.content)
        except ValidationError:
            raise MediaError("the media server answered with something unexpected") from None

    async def answer(self, leg_id: str, sdp: str) -> None:
        await self._call("POST", sip_leg_path(leg_id, "answer"), SipLegAnswer(sdp=sdp))

    async def admit(self, leg_id: str, token: str) -> None:
        await self._call("POST", sip_leg_path(leg_id, "admit"), SipLegAdmit(token=token))

    async def dtmf(self, leg_id: str, digits: str) -> None:
        await self._call("POST", sip_leg_path(leg_id, "dtmf"), SipLegDtmf(digits=digits))

    async def close(self, leg_id: str, reason: str) -> None:
        # already gone when the worker closed it itself, or is down: nothing left to close
        with contextlib.suppress(MediaError):
            await self._call("DELETE", sip_leg_path(leg_id), SipLegClose(reason=reason[:200]))

    async def events(self, leg_id: str) -> AsyncIterator[SipLegEvent]:
        """The leg's events until it closes (or the worker goes away: then one `closed`)."""
        path = sip_leg_path(leg_id, "events")
        try:
            async with self._http.stream(
                "GET",
                self.base_url + path,
                headers=self._headers("GET", path),
                timeout=httpx.Timeout(None, connect=2.0),
            ) as response:
                if response.status_code != 200:
                    yield SipLegEvent(type="closed", reason="media leg not found")
                    return
                async for line in response.aiter_lines():
                    event = _event(line)
                    if event is not None:
                        yield event
                        if event.type == "closed":
                            return
        except httpx.HTTPError as exc:
            log.warning("lost the event stream of leg %s on %s: %s", leg_id, self.node_id, exc)
        yield SipLegEvent(type="closed", reason="media server connection lost")


def _event(line: str) -> SipLegEvent | None:
    if not line.strip():
        return None
    try:
        return SipLegEvent.model_validate(json.loads(line))
    except (ValueError, ValidationError):
        log.warning("unexpected leg event line: %.200s", line)
        return None
