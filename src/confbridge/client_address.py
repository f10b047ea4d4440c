"""The address an HTTP request comes from, believing forwarded headers of trusted proxies only.

A reverse proxy in front of the control plane makes every request come from the proxy; it
names the real client in `X-Forwarded-For`. Anyone can send that header, so it counts only when
the peer is one of the configured `trusted_proxies`; then the client is the right-most entry
that is not itself a trusted proxy (each proxy appends the address it saw, so entries to the
left of the first untrusted one may be made up by the client). Limits per address (pairing,
sign-in) key on `client_address(request)`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from contextvars import ContextVar
from functools import lru_cache

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def parse_network(value: str) -> Network:
    """An address or CIDR block (`10.0.0.5`, `10.0.0.0/8`, `fd00::/8`); ValueError if not."""
    return ipaddress.ip_network(value.strip(), strict=False)


@lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(parse_network(value) for value in trusted)


def parse_address(value: str) -> Address | None:
    """An IP address as proxies write it: bare, `1.2.3.4:5678` or `[2001:db8::1]:5678`."""
    text = value.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # IPv4 with a port (an IPv6 address has several colons)
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address | None, networks: Iterable[Network]) -> bool:
    return address is not None and any(address in network for network in networks)


def forwarded_client(peer: str, forwarded_for: Iterable[str], trusted: Iterable[str]) -> str:
    """The client's address: `peer`, unless `peer` is a trusted proxy; then the right-most
    `X-Forwarded-For` entry that is not a trusted proxy (the left-most if all are)."""
    networks = _networks(tuple(trusted))
    peer_address = parse_address(peer)
    client = str(peer_address) if peer_address is not None else (peer or UNKNOWN)
    if not networks or not is_trusted(peer_address, networks):
        return client
    entries = [entry for header in forwarded_for for entry in header.split(",") if entry.strip()]
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            break  # not written by a proxy: keep the last hop that was
        client = str(address)
        if not is_trusted(address, networks):
            break
    return client


def client_address(request: Request) -> str:
    """The address `request` comes from, as `forwarded_client` finds it with the app's
    `trusted_proxies` setting."""
    settings = getattr(request.app.state, "settings", None)
    trusted = getattr(settings, "trusted_proxies", None) or []
    peer = request.client.host if request.client else ""
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), trusted)


# The client address of the request being served, for the audit log of what it does (None
# outside a request: the command line, the planner).
current_address: ContextVar[str | None] = ContextVar("current_address", default=None)


class NoteClientAddress:
    """ASGI middleware: sets `current_address` while a request is served."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = current_address.set(client_address(Request(scope)))
        try:
            await self.app(scope, receive, send)
        finally:
            current_address.reset(token)
