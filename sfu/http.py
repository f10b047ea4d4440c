"""WHIP (RFC 9725) and WHEP ingest/egress endpoints, and the control plane's admin API."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import quote

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from confbridge_kernel.contracts import CascadeRequest, FloorCommand, RoomSchedule
from confbridge_kernel.logs import RequestId
from confbridge_kernel.turn import turn_ice_server
from sfu.admission import Busy
from sfu.errors import SfuError
from sfu.gallery import GalleryLayout
from sfu.pipe import ExtendRoom, PipeRequest, PipeState
from sfu.recording.routes import recording_routes
from sfu.sip.routes import sip_leg_routes
from sfu.worker import Worker

log = logging.getLogger(__name__)

SDP = "application/sdp"
SDP_FRAG = "application/trickle-ice-sdpfrag"
# A gallery's offer has 26 video m-lines: about 40 KB from Chromium with only the bridge's
# codecs, plus its candidates (the grant is checked before the body is read).
MAX_SDP_BYTES = 128 * 1024
Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(message + "\n", status_code=status)


def _busy(exc: Busy) -> JSONResponse:
    """503 of a worker admitting other joins: JSON with the wait, also in `Retry-After`."""
    return JSONResponse(
        {"detail": exc.message, "retry_after_s": exc.retry_after_s},
        status_code=503,
        headers={"Retry-After": str(exc.retry_after_s)},
    )


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SfuError(401, "send 'Authorization: Bearer <join grant>'")
    return token.strip()


async def _body(request: Request, content_type: str) -> str:
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != content_type:
        raise SfuError(415, f"Content-Type must be {content_type}")
    raw = await request.body()
    if len(raw) > MAX_SDP_BYTES:
        raise SfuError(413, "the SDP is too large")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SfuError(400, "the SDP is not UTF-8 text") from None


def ice_server_links(ice_servers: list[dict[str, Any]]) -> list[str]:
    """RFC 9725 §4.6: one `Link: <url>; rel="ice-server"` per STUN/TURN URL."""
    links = []
    for server in ice_servers:
        urls = server.get("urls", [])
        for url in [urls] if isinstance(urls, str) else urls:
            link = f'<{url}>; rel="ice-server"'
            if server.get("username"):
                credential = server.get("credential", "")
                link += (
                    f'; username="{server["username"]}"; credential="{credential}"'
                    '; credential-type="password"'
                )
            links.append(link)
    return links


ModelT = TypeVar("ModelT", bound=BaseModel)


def _model(model: type[ModelT], body: bytes) -> ModelT:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SfuError(422, f"invalid {model.__name__}: {where}: {first['msg']}") from None


def _guarded(handler: Handler) -> Handler:
    """Answer an `SfuError` raised by `handler` as plain text with its status."""

    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except Busy as exc:
            return _busy(exc)
        except SfuError as exc:
            return _error(exc.status, exc.message)

    return wrapper


def _admin_only(worker: Worker, request: Request) -> None:
    """The control plane (a token for this node, method and path) or the node's key."""
    worker.verify_admin(_bearer(request), method=request.method, path=request.url.path)


def _reader(worker: Worker, request: Request) -> None:
    """Read-only views (/metrics, /rooms): also the scraping secret (sfu.node_secret)."""
    token = _bearer(request)
    if not hmac.compare_digest(token.encode(), worker.settings.node_secret.encode()):
        _admin_only(worker, request)


def _turn_servers(worker: Worker, site_id: int) -> list[dict[str, Any]]:
    """The TURN server with a fresh credential for this site, if TURN is configured."""
    settings = worker.settings
    if not (settings.turn_urls and settings.turn_secret):
        return []
    return [
        turn_ice_server(
            urls=settings.turn_urls,
            secret=settings.turn_secret,
            user=str(site_id),
            ttl_s=settings.turn_credential_ttl_s,
        )
    ]


def _session_routes(worker: Worker) -> list[Route]:
    """WHIP and WHEP: create a session, trickle to it or restart its ICE, delete it; point a
    gallery session's tiles."""
    sessions = worker.sessions

    async def create_session(request: Request) -> Response:
        direction = request.url.path.split("/")[1]  # "whip" or "whep"
        room = request.path_params["room"]
        grant = worker.verify_grant(_bearer(request), room=room)
        offer = await _body(request, SDP)
        peer, answer = await sessions.create_peer(direction, room, grant, offer)
        headers = {
            "Location": f"/{direction}/{quote(room)}/{peer.id}",
            "ETag": f'"{peer.etag}"',
        }
        links = ice_server_links(worker.settings.ice_servers + _turn_servers(worker, grant.site_id))
        if links:
            headers["Link"] = ", ".join(links)
        return Response(answer, status_code=201, media_type=SDP, headers=headers)

    async def patch_session(request: Request) -> Response:
        peer = sessions.find_peer(request.path_params["room"], request.path_params["peer_id"])
        worker.verify_grant(_bearer(request), room=peer.room_name, site_id=peer.site_id)
        if_match = request.headers.get("if-match")
        if if_match not in (None, "*", f'"{peer.etag}"'):
            raise SfuError(412, "the session has changed (ETag mismatch)")
        fragment = await _body(request, SDP_FRAG)
        answer = await sessions.trickle(peer, fragment)
        if answer is None:
            return Response(status_code=204)
        # an ICE restart (RFC 9725 §4.3.2): the new local credentials and candidates
        return Response(
            answer, status_code=200, media_type=SDP_FRAG, headers={"ETag": f'"{peer.etag}"'}
        )

    async def delete_session(request: Request) -> Response:
        peer = sessions.find_peer(request.path_params["room"], request.path_params["peer_id"])
        worker.verify_grant(_bearer(request), room=peer.room_name, site_id=peer.site_id)
        await sessions.remove_peer(peer, reason="deleted")
        return Response(status_code=200)

    async def gallery_layout(request: Request) -> Response:
        """A gallery's viewer points its tiles and preview at halls (sfu.gallery); only with
        the grant the session was opened with."""
        peer = sessions.find_peer(request.path_params["room"], request.path_params["peer_id"])
        grant = worker.verify_grant(_bearer(request), room=peer.room_name, site_id=peer.site_id)
        if grant.jti != peer.grant_id:
            raise SfuError(403, "this session was opened with another grant")
        body = _model(GalleryLayout, await request.body())
        room = worker.rooms[peer.room_name]
        return JSONResponse(room.set_gallery(peer, body))

    routes = [
        Route("/whep/{room}/{peer_id}/layout", _guarded(gallery_layout), methods=["POST"]),
    ]
    for direction in ("whip", "whep"):
        session = f"/{direction}/{{room}}/{{peer_id}}"
        routes += [
            Route(f"/{direction}/{{room}}", _guarded(create_session), methods=["POST"]),
            Route(session, _guarded(patch_session), methods=["PATCH"]),
            Route(session, _guarded(delete_session), methods=["DELETE"]),
        ]
    return routes


def _control_routes(worker: Worker) -> list[Route]:
    """The control plane's admin calls on a room: the floor, a pipe, the cascade, a hold."""
    edges = worker.edges

    async def floor(request: Request) -> Response:
        _admin_only(worker, request)
        room = request.path_params["room"]
        if request.method == "GET":
            return JSONResponse(worker.floor_state(room).model_dump(mode="json"))
        try:
            command = FloorCommand.model_validate(json.loads(await request.body() or b"{}"))
        except (ValueError, ValidationError) as exc:
            raise SfuError(422, f"invalid floor command: {exc}") from None
        state = worker.apply_floor(room, command)
        return JSONResponse(state.model_dump(mode="json"))

    async def extend(request: Request) -> Response:
        """Control plane → this worker: serve the room for its origin (a pipe from there)."""
        _admin_only(worker, request)
        body = _model(ExtendRoom, await request.body())
        state = await edges.extend_room(request.path_params["room"], body)
        return JSONResponse({"room": request.path_params["room"], "sources": len(state.sources)})

    async def cascade(request: Request) -> Response:
        """Control plane → this node (an edge): relay the room from the node above it."""
        _admin_only(worker, request)
        body = _model(CascadeRequest, await request.body())
        room = await edges.relay_room(request.path_params["room"], body)
        return JSONResponse({"room": room.name, "upstream": room.origin_url})

    async def hold(request: Request) -> Response:
        """Control plane → this node: the room moved here; stop relaying it."""
        _admin_only(worker, request)
        was_relayed = await edges.hold_room(request.path_params["room"])
        return JSONResponse({"room": request.path_params["room"], "was_relayed": was_relayed})

    async def schedule(request: Request) -> Response:
        """Control plane → this node: the meeting was extended or ended."""
        _admin_only(worker, request)
        body = _model(RoomSchedule, await request.body())
        room = await worker.reschedule(request.path_params["room"], body)
        if room is None:
            raise SfuError(404, f"room {request.path_params['room']} is not open here")
        return JSONResponse({"room": room.name, "closed": room.closed})

    return [
        Route("/rooms/{room}/floor", _guarded(floor), methods=["GET", "POST"]),
        Route("/rooms/{room}/schedule", _guarded(schedule), methods=["POST"]),
        Route("/rooms/{room}/pipe", _guarded(extend), methods=["POST"]),
        Route("/rooms/{room}/cascade", _guarded(cascade), methods=["POST"]),
        Route("/rooms/{room}/hold", _guarded(hold), methods=["POST"]),
    ]


def _pipe_routes(worker: Worker) -> list[Route]:
    """Between workers of one room: an edge asks the origin for a pipe, the origin pushes
    what the pipe carries; each shows the room's relay grant."""
    edges = worker.edges

    async def pipe_out(request: Request) -> Response:
        """An edge → this worker (the origin): pipe the room's sources to it. The edge shows
        the relay grant the control plane gave it for this room."""
        token = _bearer(request)
        worker.verify_relay(token, room=request.path_params["room"])
        body = _model(PipeRequest, await request.body())
        state = await edges.open_pipe_out(request.path_params["room"], body, token=token)
        return JSONResponse(state.model_dump(mode="json"))

    async def pipe_state(request: Request) -> Response:
        """The origin → this worker (an edge): what the pipe carries now, and the floor. The
        origin shows back the relay grant this edge asked for the pipe with."""
        token = _bearer(request)
        room = worker.rooms.get(request.path_params["room"])
        if room is None or room.closed:
            raise SfuError(404, f"room {request.path_params['room']} is not open here")
        if room.pipe_token is None or not hmac.compare_digest(
            token.encode(), room.pipe_token.encode()
        ):
            raise SfuError(401, "not the origin of this room's pipe")
        body = _model(PipeState, await request.body())
        edges.apply_pipe_state(room, body)
        return JSONResponse({"sources": len(body.sources)})

    return [
        Route("/rooms/{room}/pipe-out", _guarded(pipe_out), methods=["POST"]),
        Route("/rooms/{room}/pipe-state", _guarded(pipe_state), methods=["POST"]),
    ]


def _reading_routes(worker: Worker) -> list[Route]:
    """Health, the rooms and the Prometheus metrics."""

    async def rooms(request: Request) -> Response:
        _reader(worker, request)
        return JSONResponse(worker.describe())

    async def metrics(request: Request) -> Response:
        _reader(worker, request)
        return Response(generate_latest(worker.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "node_id": worker.settings.node_id})

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/rooms", _guarded(rooms), methods=["GET"]),
        Route("/metrics", _guarded(metrics), methods=["GET"]),
    ]


def _middleware(worker: Worker) -> list[Middleware]:
    """Request ids, and CORS for browsers calling WHIP/WHEP from the pages' origins."""
    return [
        Middleware(RequestId),
        Middleware(
            CORSMiddleware,
            allow_origins=worker.settings.cors_origins,
            allow_methods=["POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "If-Match"],
            # Retry-After is not CORS-safelisted: a page must be allowed to read it on a 503
            expose_headers=["Location", "ETag", "Link", "Retry-After"],
        ),
    ]


def build_app(worker: Worker) -> Starlette:
    """The worker's HTTP face; `worker` owns rooms, peers and media."""
    routes = [
        *_reading_routes(worker),
        *_control_routes(worker),
        *_pipe_routes(worker),
        *_session_routes(worker),
        *sip_leg_routes(worker.sip_legs, lambda request: _admin_only(worker, request)),
        *recording_routes(
            worker.recordings, worker.rooms, lambda r: _admin_only(worker, r), _guarded
        ),
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await worker.start()
        try:
            yield
        finally:
            await worker.close()

    return Starlette(routes=routes, middleware=_middleware(worker), lifespan=lifespan)
