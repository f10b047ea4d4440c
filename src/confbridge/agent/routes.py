"""How the agent reaches the bridge through a hall network that may block UDP: a ladder of ICE
routes (direct UDP, then relay through TURN over TCP, then TURN over TLS), the first one that
brings media up kept for the following joins of the meeting; the next meeting starts again
from direct UDP.

aiortc uses one TURN URL per peer connection (the first it finds), unlike a browser, which
gathers a relay candidate from every URL it is given; so the agent picks one URL per attempt.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from aiortc import RTCPeerConnection

log = logging.getLogger("confbridge.agent")

TurnTransport = Literal["udp", "tcp", "tls"]
TURN_TRANSPORTS: tuple[TurnTransport, ...] = ("udp", "tcp", "tls")


def turn_transport_of(url: str) -> TurnTransport | None:
    """The transport a TURN URL reaches its server over (RFC 7065), None for a STUN URL.
    `turns:` is TLS over TCP; `turn:` is UDP unless `?transport=tcp`."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "turns":
        return "tls"
    if scheme != "turn":
        return None
    query = parse_qs(urlsplit(url).query)
    return "tcp" if query.get("transport", ["udp"])[0].lower() == "tcp" else "udp"


def _urls(server: dict[str, Any]) -> list[str]:
    urls = server["urls"]
    return [urls] if isinstance(urls, str) else list(urls)


def offered_transports(ice_servers: list[dict[str, Any]]) -> set[TurnTransport]:
    """The TURN transports the grant's ICE servers offer."""
    return {
        transport
        for server in ice_servers
        for url in _urls(server)
        if (transport := turn_transport_of(url)) is not None
    }


@dataclass(frozen=True)
class IceRoute:
    """One way to the bridge: the TURN URLs of `turn_transport` alone, and with `relay_only`
    no host or server-reflexive candidates (`iceTransportPolicy: relay`)."""

    turn_transport: TurnTransport
    relay_only: bool

    @property
    def name(self) -> str:
        """`relay-<transport>`; else `direct` (host candidates, TURN over UDP beside them),
        or `direct+<transport>` with TURN over another transport beside them."""
        if self.relay_only:
            return f"relay-{self.turn_transport}"
        return "direct" if self.turn_transport == "udp" else f"direct+{self.turn_transport}"

    def ice_servers(self, ice_servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The grant's servers with only this route's TURN URLs (STUN URLs kept)."""
        chosen = []
        for server in ice_servers:
            urls = [
                url
                for url in _urls(server)
                if turn_transport_of(url) in (None, self.turn_transport)
            ]
            if urls:
                chosen.append({**server, "urls": urls})
        return chosen


DIRECT = IceRoute("udp", relay_only=False)


def ladder(*, relay_only: bool, turn_transport: TurnTransport | None) -> list[IceRoute]:
    """The routes in the order they are tried: direct, relay over TCP, relay over TLS. With
    `relay_only` the first step is a relay over UDP; a configured `turn_transport` is the only
    step (relayed if `relay_only`)."""
    if turn_transport is not None:
        return [IceRoute(turn_transport, relay_only=relay_only)]
    first = IceRoute("udp", relay_only=True) if relay_only else DIRECT
    return [first, IceRoute("tcp", relay_only=True), IceRoute("tls", relay_only=True)]


class IceRoutes:
    """The agent's ladder of routes, shared by all its sessions (the meeting and content).

    A route whose session did not come up (`failed`) is passed over for the next one the grant
    offers; the one that works stays in use until it fails too (after the last, the ladder
    starts again) or the meeting ends: each meeting starts again from the first step
    (`start_over`), as a network that blocked UDP one morning may let it through the next.
    The direct route is always possible (host candidates need no TURN); a relay route only if
    the grant has a TURN URL of its transport."""

    def __init__(self, routes: list[IceRoute]) -> None:
        self._routes = routes
        self._index = 0

    def current(self, ice_servers: list[dict[str, Any]]) -> IceRoute:
        """The route to try with these ICE servers (the first usable one from the current)."""
        offered = offered_transports(ice_servers)
        count = len(self._routes)
        for step in range(count):
            route = self._routes[(self._index + step) % count]
            if not route.relay_only or route.turn_transport in offered:
                return route
        # nothing the grant offers fits a configured transport: try as configured (it fails
        # with a clear "did not come up", and IT staff see the route in the log)
        return self._routes[self._index]

    def failed(self, route: IceRoute) -> None:
        """`route` did not bring media up: the next attempt uses the route after it."""
        if route in self._routes and len(self._routes) > 1:
            self._index = (self._routes.index(route) + 1) % len(self._routes)
            following = self._routes[self._index]
            log.warning(
                "ICE route %s did not bring media up; next: %s",
                route.name,
                following.name,
                extra={"event": "ice_route", "failed": route.name, "next": following.name},
            )

    def start_over(self) -> None:
        """A new meeting: its first join tries the first step of the ladder again."""
        if self._index == 0:
            return
        previous, first = self._routes[self._index], self._routes[0]
        self._index = 0
        log.info(
            "ICE route: trying %s again (was %s)",
            first.name,
            previous.name,
            extra={"event": "ice_route_reset", "route": first.name, "previous": previous.name},
        )

    def succeeded(self, route: IceRoute) -> None:
        """`route` works: it stays in use."""
        if route in self._routes:
            self._index = self._routes.index(route)


def turn_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The TLS context for `turns:` servers: the system's CAs, plus `ca_file` (PEM) when the
    TURN server's certificate comes from a private CA. Raises OSError or ssl.SSLError."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def use_turn_tls_context(pc: RTCPeerConnection, context: ssl.SSLContext) -> None:
    """Make the peer connection's TURN-over-TLS allocations verify with `context`; call after
    the transceivers are added and before `setLocalDescription` (which gathers).

    aiortc hands aioice `turn_ssl=True` (asyncio's default context: system CAs only); aioice's
    Connection accepts an SSLContext in the same attribute. Touches RTCIceGatherer._connection
    (the aioice Connection) because aiortc has no option for it."""
    for transceiver in pc.getTransceivers():
        connection = transceiver.sender.transport.transport.iceGatherer._connection
        if connection.turn_ssl:
            connection.turn_ssl = context


def selected_path(pc: RTCPeerConnection) -> str | None:
    """The nominated candidate pair of the peer connection's first transport, as
    `<local type>/<how the relay is reached>` for a relay (`relay/tcp`, `relay/tls`,
    `relay/udp`) or `<local type>/<protocol>` otherwise (`host/udp`); None before nomination.

    Touches RTCIceGatherer._connection and aioice's Connection._nominated (component → pair)
    because aiortc has no getStats entry for the selected pair."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    connection = transceivers[0].sender.transport.transport.iceGatherer._connection
    pair = connection._nominated.get(1)
    if pair is None:
        return None
    local = pair.local_candidate
    if local.type != "relay":
        return f"{local.type}/{local.transport}"
    reached = "tls" if connection.turn_ssl else connection.turn_transport
    return f"relay/{reached}"
