"""A SIP call the gateway holds: its dialog (RFC 3261 §12) and its media leg on a worker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confbridge.sip.admission import Admission
from confbridge.sip.headers import NameAddr, parse_name_addr
from confbridge.sip.media import LegClient
from confbridge.sip.message import SipMessage, SipParseError
from confbridge.sip.transactions import new_branch
from confbridge.sip.transport import Remote

MAX_FORWARDS = "70"


@dataclass(eq=False)
class Dialog:
    """The two ends as the INVITE set them up; builds the requests we send inside it."""

    call_id: str
    local: str  # our address with our tag (the INVITE's To, or our From when we called)
    remote: str  # theirs with their tag
    remote_target: str  # their Contact URI
    route_set: list[str]
    transport: Remote
    local_cseq: int = 1

    @classmethod
    def from_invite(cls, invite: SipMessage, remote: Remote, local_tag: str) -> Dialog:
        """The UAS side (RFC 3261 §12.1.1)."""
        contact = invite.get("Contact")
        target = invite.uri or ""
        if contact:
            with contextlib.suppress(SipParseError):
                target = parse_name_addr(contact).raw_uri
        to = invite.get("To") or ""
        return cls(
            call_id=invite.call_id,
            local=f"{to};tag={local_tag}" if ";tag=" not in to else to,
            remote=invite.get("From") or "",
            remote_target=target,
            route_set=invite.get_all("Record-Route"),
            transport=remote,
            local_cseq=int(time.time()) % 100_000 + 1,
        )

    @classmethod
    def from_answer(cls, invite: SipMessage, answer: SipMessage, remote: Remote) -> Dialog:
        """The UAC side, from our INVITE and its 2xx (RFC 3261 §12.1.2)."""
        target = invite.uri or ""
        contact = answer.get("Contact")
        if contact:
            with contextlib.suppress(SipParseError):
                target = parse_name_addr(contact).raw_uri
        return cls(
            call_id=invite.call_id,
            local=invite.get("From") or "",
            remote=answer.get("To") or "",
            remote_target=target,
            route_set=list(reversed(answer.get_all("Record-Route"))),
            transport=remote,
            local_cseq=invite.cseq[0],
        )

    def ack(self, via_host: str, via_port: int) -> SipMessage:
        """The ACK of our INVITE's 2xx: same CSeq number, a new branch (end to end)."""
        message = self._new("ACK", via_host, via_port)
        message.add("CSeq", f"{self.local_cseq} ACK")
        return message

    def request(self, method: str, via_host: str, via_port: int) -> SipMessage:
        """A new request inside the dialog (BYE, INFO), with a fresh branch."""
        self.local_cseq += 1
        message = self._new(method, via_host, via_port)
        message.add("CSeq", f"{self.local_cseq} {method}")
        return message

    def _new(self, method: str, via_host: str, via_port: int) -> SipMessage:
        message = SipMessage(method=method, uri=self.remote_target)
        transport = self.transport.transport
        message.add("Via", f"SIP/2.0/{transport} {via_host}:{via_port};branch={new_branch()};rport")
        message.add("Max-Forwards", MAX_FORWARDS)
        for route in self.route_set:
            message.add("Route", route)
        message.add("From", self.local)
        message.add("To", self.remote)
        message.add("Call-ID", self.call_id)
        return message


@dataclass(eq=False)
class Call:
    """One call into a meeting: where it is (lobby, admitted), and what ends it."""

    dialog: Dialog
    caller: NameAddr
    admission: Admission
    media: LegClient
    leg_id: str
    local_sdp: str
    state: str = "lobby"  # "lobby" (PIN pending), "admitting", "admitted", "ended"
    late_offer: bool = False  # the INVITE had no SDP: the ACK carries the answer
    digits: str = ""
    pin_failures: int = 0
    started_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    follower: asyncio.Task[None] | None = None
    on_end: Callable[[str], None] | None = None  # a call we placed: redial after a drop
    acked: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    @property
    def caller_label(self) -> str:
        return self.caller.display_name or self.caller.uri.address


def dtmf_from_info(message: SipMessage) -> str | None:
    """Digits of a SIP INFO: `application/dtmf-relay` (`Signal=5`) or `application/dtmf`."""
    content_type = (message.get("Content-Type") or "").split(";")[0].strip().lower()
    try:
        body = message.body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if content_type == "application/dtmf-relay":
        for line in body.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                return _digit(value.strip())
        return None
    if content_type == "application/dtmf":
        return _digit(body.strip())
    return None


def _digit(value: str) -> str | None:
    mapping = {"10": "*", "11": "#"}
    value = mapping.get(value, value).upper()
    return value if len(value) == 1 and value in "0123456789*#ABCD" else None
