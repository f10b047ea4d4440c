"""The worker's side of the SIP leg contract (`confbridge_kernel.sip_legs`): seven admin calls of
the gateway, answered in JSON; refusals are `{"error": ...}` with a 4xx (5xx only for a worker
out of ports), never a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from confbridge_kernel.sip_legs import (
    SIP_LEGS_PATH,
    SipLegAdmit,
    SipLegAnswer,
    SipLegClose,
    SipLegDtmf,
    SipLegOpen,
)
from sfu.errors import SfuError
from sfu.sip.legs import SipLegs

MAX_BODY_BYTES = 64 * 1024
NDJSON = "application/x-ndjson"
Handler = Callable[[Request], Awaitable[Response]]
ModelT = TypeVar("ModelT", bound=BaseModel)


async def _model(model: type[ModelT], request: Request) -> ModelT:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise SfuError(413, "the request body is too large")
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise SfuError(422, f"invalid {model.__name__}: {where}: {first['msg']}") from None


def _json_errors(handler: Handler) -> Handler:
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except SfuError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)

    return wrapper


def sip_leg_routes(legs: SipLegs, admin_only: Callable[[Request], None]) -> list[Route]:
    """`GET` and `POST /sip-legs`, a leg's answer, admit, dtmf and events, and `DELETE`; every
    call is the control plane's (`admin_only`)."""

    async def list_legs(request: Request) -> Response:
        admin_only(request)
        return JSONResponse(legs.list_().model_dump(mode="json"))

    async def open_leg(request: Request) -> Response:
        admin_only(request)
        opened = await legs.open(await _model(SipLegOpen, request))
        return JSONResponse(opened.model_dump(mode="json"), status_code=201)

    async def answer(request: Request) -> Response:
        admin_only(request)
        body = await _model(SipLegAnswer, request)
        legs.answer(request.path_params["leg_id"], body.sdp)
        return JSONResponse({"leg_id": request.path_params["leg_id"]})

    async def admit(request: Request) -> Response:
        admin_only(request)
        body = await _model(SipLegAdmit, request)
        leg_id = request.path_params["leg_id"]
        legs.admit(leg_id, body.token)
        member = legs.find(leg_id).member
        return JSONResponse(
            {
                "leg_id": leg_id,
                "room": member.room.name if member else None,
                "site_id": member.grant.site_id if member else None,
            }
        )

    async def dtmf(request: Request) -> Response:
        admin_only(request)
        body = await _model(SipLegDtmf, request)
        legs.dtmf(request.path_params["leg_id"], body.digits)
        return JSONResponse({"leg_id": request.path_params["leg_id"], "digits": body.digits})

    async def events(request: Request) -> Response:
        admin_only(request)
        stream = legs.follow(request.path_params["leg_id"])

        async def lines() -> AsyncIterator[bytes]:
            async for event in stream:
                yield event.model_dump_json(exclude_none=True).encode() + b"\n"

        return StreamingResponse(lines(), media_type=NDJSON)

    async def close(request: Request) -> Response:
        admin_only(request)
        body = await _model(SipLegClose, request)
        legs.close_leg(request.path_params["leg_id"], body.reason)
        return JSONResponse({"leg_id": request.path_params["leg_id"], "reason": body.reason})

    leg = f"{SIP_LEGS_PATH}/{{leg_id}}"
    return [
        Route(SIP_LEGS_PATH, _json_errors(list_legs), methods=["GET"]),
        Route(SIP_LEGS_PATH, _json_errors(open_leg), methods=["POST"]),
        Route(f"{leg}/answer", _json_errors(answer), methods=["POST"]),
        Route(f"{leg}/admit", _json_errors(admit), methods=["POST"]),
        Route(f"{leg}/dtmf", _json_errors(dtmf), methods=["POST"]),
        Route(f"{leg}/events", _json_errors(events), methods=["GET"]),
        Route(leg, _json_errors(close), methods=["DELETE"]),
    ]
