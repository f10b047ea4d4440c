"""The control plane's one client for an SFU node's admin API: floor commands (the bridge),
extending, relaying and holding rooms (placement), and the SIP calls it holds (IT page)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from confbridge.errors import Conflict, DomainError, NotFound, RangeNotSatisfiable
from confbridge.signing import GrantSigner, admin_headers
from confbridge_kernel.contracts import FloorCommand, FloorState, floor_path
from confbridge_kernel.recordings import (
    RecordingCommand,
    RecordingInfo,
    recording_file_path,
    recording_info_path,
    recording_path,
)
from confbridge_kernel.sip_legs import SIP_LEGS_PATH, SipLegList

log = logging.getLogger(__name__)

# Floor commands are made by people waiting on a button: fail fast rather than hang.
CONNECT_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 5.0
MAX_DETAIL_CHARS = 300


class WorkerUnavailable(DomainError):
    """The worker could not be reached (down, wrong address, or too slow)."""

    status_code = 503


class WorkerFailed(DomainError):
    """The worker answered, but not with something the control plane can use."""

    status_code = 502


@dataclass
class RecordingDownload:
    """A recording's file on its way from the node; `chunks()` reads it and closes both."""

    response: httpx.Response
    http: httpx.Client

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> dict[str, str]:
        """The headers a reader of the file needs: type, length, range."""
        names = ("content-type", "content-length", "content-range", "accept-ranges")
        return {n: self.response.headers[n] for n in names if n in self.response.headers}

    def chunks(self) -> Iterator[bytes]:
        try:
            yield from self.response.iter_bytes(64 * 1024)
        finally:
            self.response.close()
            self.http.close()


class WorkerClient:
    """Calls one node's admin API, each request with a token for that node, method and path
    (`signing.admin_headers`): the node checks it with the grant public key."""

    def __init__(
        self,
        base_url: str,
        *,
        node_id: str,
        signer: GrantSigner,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.node_id = node_id
        self._signer = signer
        self._timeout = timeout or httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)

    def send_floor(self, *, room: str, command: FloorCommand) -> FloorState:
        """Apply a floor command in `room`; returns the floor as the worker now holds it."""
        response = self._request("POST", floor_path(room), command.model_dump(mode="json"))
        return self._floor(room, response)

    def get_floor(self, *, room: str) -> FloorState:
        """The floor of `room` as the worker holds it."""
        return self._floor(room, self._request("GET", floor_path(room)))

    def send_recording(self, *, room: str, command: RecordingCommand) -> RecordingInfo:
        """Start or stop `room`'s recording; the recording as the worker now holds it."""
        response = self._request(
            "POST", recording_path(room), command.model_dump(mode="json", exclude_none=True)
        )
        if response.status_code == 404:
            raise Conflict("the meeting room is not open yet", room=room)
        return self._recording(response)

    def get_recording(self, recording_id: str) -> RecordingInfo:
        """A recording this node wrote (settled by the node if it was cut short)."""
        return self._recording(self._request("GET", recording_info_path(recording_id)))

    def delete_recording(self, recording_id: str) -> bool:
        """Remove a recording's file from the node; False if the node had none left."""
        response = self._request("DELETE", recording_info_path(recording_id))
        if response.status_code == 404:
            return False
        self._raise_for_status(response)
        return True

    def open_recording_file(
        self, recording_id: str, byte_range: str | None = None
    ) -> RecordingDownload:
        """The recording's file as a streamed response (the caller closes it), or the part
        `byte_range` (an HTTP `Range` value) names; NotFound if the node no longer has it."""
        path = recording_file_path(recording_id)
        headers = admin_headers(self._signer, node_id=self.node_id, method="GET", path=path)
        if byte_range:
            headers["Range"] = byte_range
        http = httpx.Client(timeout=self._timeout, headers=headers)
        try:
            response = http.send(http.build_request("GET", self.base_url + path), stream=True)
        except httpx.TransportError as exc:
            http.close()
            log.warning("worker %s unreachable: %s", self.base_url, exc)
            raise WorkerUnavailable(
                f"the SFU worker at {self.base_url} holding the recording is unreachable"
            ) from None
        if response.status_code not in (200, 206):
            response.read()
            http.close()
            if response.status_code == 416:
                raise RangeNotSatisfiable(f"recording {recording_id}: no such byte range")
            if response.status_code == 404:
                raise NotFound(f"node {self.node_id} no longer has recording {recording_id}")
            self._raise_for_status(response)
        return RecordingDownload(response, http)

    def _recording(self, response: httpx.Response) -> RecordingInfo:
        self._raise_for_status(response)
        try:
            return RecordingInfo.model_validate_json(response.content)
        except ValidationError:
            log.error("worker %s: unexpected recording: %.300s", self.base_url, response.text)
            raise WorkerFailed("the SFU worker answered with an unexpected recording") from None

    def list_sip_legs(self) -> SipLegList:
        """The SIP calls' legs open on the node now."""
        response = self._request("GET", SIP_LEGS_PATH)
        self._raise_for_status(response)
        try:
            return SipLegList.model_validate_json(response.content)
        except ValidationError:
            log.error("worker %s sent an unexpected leg list: %.300s", self.base_url, response.text)
            raise WorkerFailed("the SFU worker sent an unexpected list of SIP legs") from None

    def tell(self, path: str, body: dict[str, Any] | None, *, what: str, timeout_s: float) -> bool:
        """POST `body` to `path`; False (logged) if the node cannot be reached or refuses.
        For calls whose failure the caller works around (placing the room elsewhere)."""
        headers = admin_headers(self._signer, node_id=self.node_id, method="POST", path=path)
        try:
            response = httpx.post(
                self.base_url + path, json=body, headers=headers, timeout=timeout_s
            )
        except httpx.HTTPError as exc:
            log.warning("node %s could not %s: %s", self.node_id, what, exc)
            return False
        if response.status_code != 200:
            log.warning("node %s refused to %s: %s", self.node_id, what, response.text[:200])
            return False
        return True

    def _floor(self, room: str, response: httpx.Response) -> FloorState:
        if response.status_code == 404:
            raise Conflict("the meeting room is not open yet", room=room)
        self._raise_for_status(response)
        try:
            return FloorState.model_validate_json(response.content)
        except ValidationError:
            log.error(
                "worker %s sent an unexpected floor state: %.300s", self.base_url, response.text
            )
            raise WorkerFailed("the SFU worker answered with an unexpected floor state") from None

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        url = self.base_url + path
        headers = admin_headers(self._signer, node_id=self.node_id, method=method, path=path)
        try:
            with httpx.Client(timeout=self._timeout, headers=headers) as http:
                return http.request(method, url, json=body)
        except httpx.TimeoutException:
            raise WorkerUnavailable(
                f"the SFU worker at {self.base_url} did not answer in time; try again"
            ) from None
        except httpx.TransportError as exc:
            log.warning("worker %s unreachable: %s", self.base_url, exc)
            raise WorkerUnavailable(
                f"the SFU worker at {self.base_url} is unreachable; the media server may be down"
            ) from None

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        detail = _detail(response)
        if status in (401, 403):
            log.error("worker %s refused the control plane's token: %s", self.base_url, detail)
            raise WorkerFailed(
                f"the SFU worker refused the control plane's credentials ({detail}); "
                f"is it node {self.node_id!r}, with this control plane's grant key?"
            )
        if status in (400, 409, 422):
            raise Conflict(f"the SFU worker refused the command: {detail}")
        log.error("worker %s failed with %s: %s", self.base_url, status, detail)
        raise WorkerFailed(f"the SFU worker failed (HTTP {status}): {detail}")


def _detail(response: httpx.Response) -> str:
    """The worker's `detail` message when it sent one, else the start of its body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:MAX_DETAIL_CHARS] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:MAX_DETAIL_CHARS]
    return str(body)[:MAX_DETAIL_CHARS]
