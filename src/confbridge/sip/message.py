"""SIP messages (RFC 3261 §7): parsing with hard limits, and building.

Parsing is strict where a mistake would matter (the start line, Via, CSeq, Call-ID, From/To,
Content-Length) and lenient elsewhere (unknown headers are kept as text). Anything over the
limits, or not a SIP message, raises `SipParseError`; the transport answers 400 when it can
and drops the datagram when it cannot (no Via to answer to).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_HEADER_LINE = 4096
MAX_BODY_BYTES = 32 * 1024
SIP_VERSION = "SIP/2.0"

# RFC 3261 §7.3.3 compact forms
COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
}
CANONICAL = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "www-authentication": "WWW-Authentication",
}
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_REQUEST_LINE = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]{1,32}) (\S{1,1024}) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2}) ?(.{0,200})$")
_CSEQ = re.compile(r"^\s*([0-9]{1,10})\s+([A-Za-z0-9.!%*_+`'~-]{1,32})\s*$")
_VIA = re.compile(
    r"^SIP\s*/\s*2\.0\s*/\s*(?P<transport>[A-Za-z]{2,10})\s+"
    r"(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<params>(?:\s*;[^;]*)*)$"
)


class SipParseError(ValueError):
    """Not a SIP message we take: the reason, for a 400's phrase or a log line."""


def header_params(text: str) -> dict[str, str]:
    """`;name=value;flag` parameters, names lowercased."""
    params: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            params[name.lower()] = value.strip()
    return params


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")


def parse_via(text: str) -> Via:
    match = _VIA.match(text.strip())
    if not match:
        raise SipParseError("bad Via")
    return Via(
        transport=match.group("transport").upper(),
        host=match.group("host"),
        port=int(match.group("port")) if match.group("port") else None,
        params=header_params(match.group("params") or ""),
    )


def canonical_name(name: str) -> str:
    lowered = name.lower()
    lowered = COMPACT.get(lowered, lowered)
    if lowered in CANONICAL:
        return CANONICAL[lowered]
    return "-".join(part.capitalize() for part in lowered.split("-"))


@dataclass
class SipMessage:
    """A request (`method` set) or a response (`status` set)."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str) -> str | None:
        """The first value of header `name` (any case, compact or long form)."""
        wanted = canonical_name(name)
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """All values of `name`, comma-separated lists split (Via, Route, Allow ...)."""
        wanted = canonical_name(name)
        values: list[str] = []
        for key, value in self.headers:
            if key == wanted:
                values.extend(split_list(value))
        return values

    def set(self, name: str, value: str) -> None:
        """Replace every `name` header with one."""
        wanted = canonical_name(name)
        self.headers = [(k, v) for k, v in self.headers if k != wanted]
        self.headers.append((wanted, value))

    def add(self, name: str, value: str) -> None:
        self.headers.append((canonical_name(name), value))

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        match = _CSEQ.match(self.get("CSeq") or "")
        if not match:
            raise SipParseError("bad CSeq")
        return int(match.group(1)), match.group(2).upper()

    @property
    def top_via(self) -> str:
        vias = self.get_all("Via")
        if not vias:
            raise SipParseError("no Via")
        return vias[0]

    def encode(self) -> bytes:
        if self.is_request:
            start = f"{self.method} {self.uri} {SIP_VERSION}"
        else:
            start = f"{SIP_VERSION} {self.status} {self.reason}"
        lines = [start]
        lines += [f"{name}: {value}" for name, value in self.headers if name != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, not inside quotes or <...>."""
    parts: list[str] = []
    depth_angle = 0
    quoted = False
    current: list[str] = []
    for char in value:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            depth_angle += 1
        elif not quoted and char == ">":
            depth_angle = max(0, depth_angle - 1)
        if char == "," and not quoted and depth_angle == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    tail = "".join(current).strip()
    if tail:
        parts.append(tail)
    return [part for part in parts if part]


def parse(data: bytes, *, stream: bool = False) -> SipMessage:
    """One message from a datagram (or a framed stream message). Raises `SipParseError`."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError("message too large")
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = data.partition(b"\n\n")
        if not separator:
            raise SipParseError("no end of headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = _unfold(text.replace("\r\n", "\n").split("\n"))
    if not lines:
        raise SipParseError("empty message")
    message = _start_line(lines[0])
    if len(lines) - 1 > MAX_HEADERS:
        raise SipParseError("too many headers")
    for line in lines[1:]:
        message.headers.append(_header(line))
    message.body = _body(message, body, stream=stream)
    _check_mandatory(message)
    return message


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (RFC 3261 §7.3.1: a line starting with space or tab)."""
    unfolded: list[str] = []
    for line in lines:
        if len(line) > MAX_HEADER_LINE:
            raise SipParseError("header line too long")
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip()
            if len(unfolded[-1]) > MAX_HEADER_LINE:
                raise SipParseError("header line too long")
        elif line:
            unfolded.append(line)
    return unfolded


def _start_line(line: str) -> SipMessage:
    if line.startswith(SIP_VERSION + " "):
        status = _STATUS_LINE.match(line)
        if not status:
            raise SipParseError("bad status line")
        return SipMessage(status=int(status.group(1)), reason=status.group(2).strip())
    request = _REQUEST_LINE.match(line)
    if not request:
        raise SipParseError("bad request line")
    uri = request.group(2)
    if not uri.lower().startswith(("sip:", "sips:", "tel:")):
        raise SipParseError("unsupported Request-URI scheme")
    return SipMessage(method=request.group(1).upper(), uri=uri)


def _header(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    name = name.strip()
    if not colon or not name or not _TOKEN.match(name):
        raise SipParseError("bad header line")
    if any(ord(char) < 32 and char != "\t" for char in value):
        raise SipParseError("control character in a header")
    return canonical_name(name), value.strip()


def _body(message: SipMessage, body: bytes, *, stream: bool) -> bytes:
    length_text = message.get("Content-Length")
    if length_text is None:
        if stream:
            raise SipParseError("Content-Length is required over a stream")
        length = len(body)
    else:
        if not length_text.isdigit() or len(length_text) > 6:
            raise SipParseError("bad Content-Length")
        length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise SipParseError("body too large")
    if length > len(body):
        raise SipParseError("body shorter than Content-Length")
    return body[:length]


def _check_mandatory(message: SipMessage) -> None:
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if not message.get(name):
            raise SipParseError(f"missing {name}")
    parse_via(message.top_via)
    if len(message.call_id) > 256:
        raise SipParseError("Call-ID too long")
    number, method = message.cseq
    if number >= 2**31:
        raise SipParseError("CSeq number out of range")
    if message.is_request and method != message.method:
        raise SipParseError("CSeq method does not match the request")
