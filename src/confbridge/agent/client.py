"""The control plane as the agent sees it: pairing, its agenda, join grants, heartbeats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel

from confbridge_kernel.contracts import GrantPurpose, JoinInfo

REQUEST_TIMEOUT_S = 10.0


class ControlError(Exception):
    """The control plane refused or could not be reached (`status` 0); `retry_after_s` is
    its `Retry-After` (503: no media server up just now), when it sent one."""

    def __init__(
        self,
        status: int,
        detail: str,
        body: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.body = body or {}
        self.retry_after_s = retry_after_s


def retry_after_s(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds (the delay form; a date is ignored)."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds == seconds else None  # not NaN


class Revoked(ControlError):
    """The terminal's token no longer works (revoked, or replaced by a new pairing)."""


class AgendaEntry(BaseModel):
    occurrence_id: int
    title: str
    mode: str
    start_at: datetime
    end_at: datetime
    # the end plus the time a meeting may run over; an older control plane does not send it
    closes_at: datetime | None = None
    is_chair: bool

    @property
    def leave_at(self) -> datetime:
        """When the hall leaves, unless the meeting is extended or ended first."""
        return self.closes_at or self.end_at


class AgendaView(BaseModel):
    site_id: int
    site_name: str
    items: list[AgendaEntry]


class Identity(BaseModel):
    terminal_id: int
    name: str
    site_id: int
    site_name: str
    heartbeat_interval_s: int


class ControlClient:
    """Calls the control plane with the terminal's token (`token` may be set after pairing)."""

    def __init__(self, server: str, token: str | None = None) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self._http = httpx.AsyncClient(base_url=self.server, timeout=REQUEST_TIMEOUT_S)

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ControlError(0, f"cannot reach {self.server}: {exc!r}") from None
        if response.is_success:
            return response.json()
        try:
            body = response.json()
            detail = str(body.get("detail", response.text))
        except ValueError:
            body, detail = {}, response.text.strip()[:200]
        if response.status_code == 401 and self.token:
            raise Revoked(401, detail, body)
        raise ControlError(response.status_code, detail, body, retry_after_s(response))

    async def pair(self, code: str) -> dict[str, Any]:
        """Exchange a pairing code for a token; the client uses the token from then on."""
        answer = await self._call("POST", "/api/v1/terminals/pair", json={"code": code})
        self.token = answer["token"]
        return answer

    async def me(self) -> Identity:
        return Identity.model_validate(await self._call("GET", "/api/v1/terminals/me"))

    async def agenda(self) -> AgendaView:
        return AgendaView.model_validate(await self._call("GET", "/api/v1/terminals/me/agenda"))

    async def join(
        self,
        occurrence_id: int,
        *,
        failed_node_id: str | None = None,
        purpose: GrantPurpose = GrantPurpose.media,
    ) -> JoinInfo:
        """A join grant; `failed_node_id` names the media server lost with the previous one,
        so that the control plane moves the room if that server is dead; `purpose` content
        asks for a grant to present."""
        body: dict[str, Any] | None = {"failed_node_id": failed_node_id} if failed_node_id else None
        if purpose is not GrantPurpose.media:
            body = {**(body or {}), "purpose": purpose.value}
        return JoinInfo.model_validate(
            await self._call("POST", f"/api/v1/occurrences/{occurrence_id}/join", json=body)
        )

    async def heartbeat(self, report: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/api/v1/terminals/me/heartbeat", json=report)
