"""Checks on the URLs a node registers: the control plane and other nodes post to them, so
they may not point at link-local, multicast or cloud-metadata addresses."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from confbridge.errors import Invalid

# Addresses a node may never register: link-local (cloud metadata at 169.254.169.254),
# multicast, unspecified, and the metadata services that sit elsewhere.
METADATA_NETWORKS = (
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS, over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
)


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The host's addresses: itself if it is one, else what it resolves to (nothing when it
    does not resolve from here)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found = []
    for info in infos:
        try:
            found.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except ValueError:
            continue
    return found


def check_node_url(url: str, *, field: str, allow_loopback: bool) -> str:
    """A node's URL as the control plane and other nodes will call it, or Invalid.

    http(s) only, no user or password in it, no query or fragment; never a link-local,
    multicast, unspecified or cloud-metadata address (the control plane and other nodes post
    to these URLs); loopback only for a node enrolled to run on this machine.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise Invalid(f"{field}: not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Invalid(f"{field}: must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise Invalid(f"{field}: must not carry a user name or password")
    if parts.query or parts.fragment:
        raise Invalid(f"{field}: must not have a query or fragment")
    host = parts.hostname
    if not host:
        raise Invalid(f"{field}: has no host")
    for address in _addresses(host):
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        forbidden = (
            address.is_link_local
            or address.is_multicast
            or address.is_unspecified
            or any(address in network for network in METADATA_NETWORKS)
        )
        if forbidden:
            raise Invalid(f"{field}: {host} is a link-local, multicast or metadata address")
        if address.is_loopback and not allow_loopback:
            raise Invalid(
                f"{field}: {host} is a loopback address; enrol the node with loopback "
                "allowed if it runs on the control plane's machine"
            )
    return url.rstrip("/")
