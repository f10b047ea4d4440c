"""The structured SIP header values a bridge needs: addresses (From, To, Contact), URIs, Via."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from confbridge.sip.message import SipParseError, header_params

_URI = re.compile(
    r"^(?P<scheme>sips?):(?:(?P<user>[^@;?]{1,128})@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<params>;[^?]*)?(?:\?.*)?$"
)


@dataclass(frozen=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """user@host, or host: how sites and callers are compared (no port, no params)."""
        host = self.host.lower()
        return f"{self.user}@{host}" if self.user else host

    def __str__(self) -> str:
        text = f"{self.scheme}:"
        if self.user:
            text += f"{self.user}@"
        text += self.host
        if self.port:
            text += f":{self.port}"
        for name, value in self.params.items():
            text += f";{name}={value}" if value else f";{name}"
        return text


def parse_uri(text: str) -> SipUri:
    match = _URI.match(text.strip())
    if not match:
        raise SipParseError("bad SIP URI")
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise SipParseError("bad port in SIP URI")
    return SipUri(
        scheme=match.group("scheme").lower(),
        user=match.group("user"),
        host=match.group("host"),
        port=port,
        params=header_params(match.group("params") or ""),
    )


@dataclass(frozen=True)
class NameAddr:
    """`"Display" <sip:user@host>;tag=x` (From, To, Contact, Route)."""

    display_name: str
    uri: SipUri
    raw_uri: str
    params: dict[str, str]

    @property
    def tag(self) -> str | None:
        return self.params.get("tag") or None


def parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    if "<" in text:
        before, _, rest = text.partition("<")
        raw_uri, closed, after = rest.partition(">")
        if not closed:
            raise SipParseError("unclosed < in an address")
        display = before.strip().strip('"').strip()[:100]
        params = header_params(after)
    else:
        # addr-spec: parameters after the URI belong to the header (RFC 3261 §20.10)
        raw_uri, _, after = text.partition(";")
        display = ""
        params = header_params(after)
    uri = parse_uri(raw_uri)
    return NameAddr(display_name=display, uri=uri, raw_uri=raw_uri.strip(), params=params)


def normalised_address(text: str) -> str | None:
    """`user@host` of a SIP URI or name-addr, for comparing callers with sites; None if bad."""
    try:
        return parse_name_addr(text).uri.address
    except SipParseError:
        return None
