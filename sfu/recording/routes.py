"""The worker's admin calls for recordings (`confbridge_kernel.recordings`); refusals are a
4xx with a plain-text reason, as the floor's (`guard`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from confbridge_kernel.recordings import RecordingCommand
from sfu.errors import SfuError
from sfu.recording.control import Recordings
from sfu.recording.writer import MEDIA_TYPES
from sfu.room import Room, open_room

MAX_BODY_BYTES = 4096
Handler = Callable[[Request], Awaitable[Response]]


def recording_routes(
    recordings: Recordings,
    rooms: Mapping[str, Room],
    admin_only: Callable[[Request], None],
    guard: Callable[[Handler], Handler],
) -> list[Route]:
    """Start/stop a room's recording, a recording's state, its file, its deletion; all the
    control plane's."""

    async def command(request: Request) -> Response:
        admin_only(request)
        room = open_room(rooms, request.path_params["room"])
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise SfuError(413, "the request body is too large")
        try:
            body = RecordingCommand.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise SfuError(422, f"invalid recording command: {where}: {first['msg']}") from None
        info = await recordings.command(room, body)
        return JSONResponse(info.model_dump(mode="json"))

    async def info(request: Request) -> Response:
        admin_only(request)
        found = await recordings.info(request.path_params["recording_id"])
        return JSONResponse(found.model_dump(mode="json"))

    async def delete(request: Request) -> Response:
        admin_only(request)
        await recordings.delete(request.path_params["recording_id"])
        return Response(status_code=204)

    async def file(request: Request) -> Response:
        admin_only(request)
        path = recordings.file(request.path_params["recording_id"])
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], filename=path.name)

    return [
        Route("/rooms/{room}/recording", guard(command), methods=["POST"]),
        Route("/recordings/{recording_id}", guard(info), methods=["GET"]),
        Route("/recordings/{recording_id}", guard(delete), methods=["DELETE"]),
        Route("/recordings/{recording_id}/file", guard(file), methods=["GET"]),
    ]
