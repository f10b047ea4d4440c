"""Value types the settings share: secrets kept out of logs, http base URLs, host:port."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import (
    AfterValidator,
)

from confbridge_kernel.redact import (
    Secret,
)

# Settings that are credentials: masked in repr() (a settings object printed or logged).
SecretText = Annotated[str, AfterValidator(Secret)]


def http_base_url(value: str) -> str:
    """An http(s) base URL without a trailing slash, so paths can be appended."""
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got {value!r}")
    return value.rstrip("/")


def split_host_port(value: str) -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets: `[::1]:5060`) → (host, port); ValueError if not."""
    host, colon, port_text = value.strip().rpartition(":")
    if not colon or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"give host:port (IPv6 in brackets, e.g. [::1]:5060), got {value!r}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"an IPv6 host needs its closing bracket, got {value!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"put an IPv6 host in brackets, e.g. [{host}]:{port_text}")
    elif any(char.isspace() for char in host):
        raise ValueError(f"a host has no spaces, got {host!r}")
    return host, int(port_text)


def host_port(value: str) -> str:
    host, port = split_host_port(value)
    return f"{host}:{port}"


HostPort = Annotated[str, AfterValidator(host_port)]
