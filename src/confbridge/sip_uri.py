"""SIP addresses and dial-in numbers as the control plane stores them (RFC 3261, section 19.1).

A room system's address is stored in one canonical form, so that uniqueness and the match of a
caller against a site both compare equal strings: `sip:` or `sips:` in lower case, then
`user@host[:port]` with the host in lower case and the scheme's default port left out. The
user part keeps its case (RFC 3261 19.1.4 compares it case-sensitively).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from typing import Annotated

from pydantic import AfterValidator

MAX_SIP_URI_CHARS = 300
DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
# Meeting numbers are typed on a room system's keypad: 6 to 9 digits, never a leading 0.
MEETING_NUMBER_RE = re.compile(r"^[1-9][0-9]{5,8}$")
PIN_RE = re.compile(r"^[0-9]{4,8}$")
GENERATED_NUMBER_DIGITS = 7
GENERATED_PIN_DIGITS = 6
# RFC 3261 `user`: unreserved, escaped and user-unreserved characters, less ";" and "?" (URI
# parameters and headers are not part of a stored address).
_USER_RE = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()&=+$,/]|%[0-9A-Fa-f]{2})+$")
_HOST_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class SipUriError(ValueError):
    """A SIP address that cannot be stored; the message says what to fix."""


def _host(text: str) -> str:
    host = text.lower()
    if host.startswith("["):
        if not host.endswith("]"):
            raise SipUriError(f"host {text!r}: an IPv6 address needs its closing ']'")
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            raise SipUriError(f"host {text!r} is not an IPv6 address") from None
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_HOST_LABEL_RE.match(label) for label in labels):
        raise SipUriError(f"host {text!r} is not a host name or an IPv4 address")
    return host


def _split_host_port(text: str) -> tuple[str, int | None]:
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end != -1 and text[end + 1 :].startswith(":"):
            host, port_text = text[: end + 1], text[end + 2 :]
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise SipUriError(f"port {port_text!r} must be a number from 1 to 65535")
    return host, int(port_text)


def normalise_sip_uri(value: str) -> str:
    """The canonical form of a room system's address, or `SipUriError` saying what is wrong.

    `SIP:Room-1@Rooms.Example.VN:5060` becomes `sip:Room-1@rooms.example.vn`.
    """
    text = value.strip()
    if not text:
        raise SipUriError("give an address such as sip:phonghop@rooms.example.vn")
    if len(text) > MAX_SIP_URI_CHARS:
        raise SipUriError(f"at most {MAX_SIP_URI_CHARS} characters")
    if any(char.isspace() for char in text):
        raise SipUriError("an address has no spaces")
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in DEFAULT_PORTS:
        raise SipUriError("must start with sip: or sips:, e.g. sip:phonghop@rooms.example.vn")
    if ";" in rest or "?" in rest:
        raise SipUriError("give the address without parameters or headers (;transport=..., ?...)")
    user, at, host_port = rest.rpartition("@")
    if not at or not user:
        raise SipUriError("needs a user part: user@host, e.g. sip:phonghop@rooms.example.vn")
    if not _USER_RE.match(user):
        raise SipUriError(f"user part {user!r} has characters a SIP address may not hold")
    host_text, port = _split_host_port(host_port)
    host = _host(host_text)
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}:{user}@{host}"
    return f"{scheme}:{user}@{host}:{port}"


def _sip_uri(value: str) -> str:
    try:
        return normalise_sip_uri(value)
    except SipUriError as exc:
        raise ValueError(f"not a SIP address: {exc}") from None


def _meeting_number(value: str) -> str:
    if not MEETING_NUMBER_RE.match(value):
        raise ValueError("a meeting number is 6 to 9 digits and does not start with 0")
    return value


def _pin(value: str) -> str:
    if not PIN_RE.match(value):
        raise ValueError("a PIN is 4 to 8 digits")
    return value


# Pydantic field types: a bad value is a 422 (API) or a file:line error (schedule files).
SipUri = Annotated[str, AfterValidator(_sip_uri)]
MeetingNumber = Annotated[str, AfterValidator(_meeting_number)]
Pin = Annotated[str, AfterValidator(_pin)]


def address_key(uri: str) -> str | None:
    """What two addresses of one endpoint have in common: `user@host[:port]`, for matching a
    caller's From (display name, `<...>`, parameters, host case, the default port and the
    scheme ignored); None when `uri` is not a SIP address with a user part."""
    text = uri.strip()
    if "<" in text:
        start, end = text.find("<"), text.find(">", text.find("<"))
        text = text[start + 1 : end if end != -1 else len(text)]
    text = re.split(r"[;?]", text, maxsplit=1)[0].strip()
    try:
        canonical = normalise_sip_uri(text)
    except SipUriError:
        return None
    _, _, user_host = canonical.partition(":")
    user, _, host_port = user_host.rpartition("@")
    host, port = _split_host_port(host_port)
    if port is not None and port in DEFAULT_PORTS.values():
        return f"{user}@{host}"
    return user_host


def new_meeting_number() -> str:
    """A random 7-digit meeting number (first digit not 0); the caller checks it is free."""
    low = 10 ** (GENERATED_NUMBER_DIGITS - 1)
    return str(low + secrets.randbelow(9 * low))


def new_pin() -> str:
    """A random 6-digit PIN."""
    return f"{secrets.randbelow(10**GENERATED_PIN_DIGITS):0{GENERATED_PIN_DIGITS}d}"


def sip_address(meeting_number: str, domain: str) -> str:
    """The address a room system dials to reach a meeting: `sip:<number>@<domain>`."""
    return f"sip:{meeting_number}@{domain}"
