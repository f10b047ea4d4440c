"""Calls the bridge makes: every invited room system with a `sip_uri` at the occurrence's
start (lead time `sip.dial_out_lead_min`), as TMS does, and the bridge above
(`upstream_sip_uri`) for a relayed national briefing. A call that drops is dialled again
with a growing pause until the meeting ends; the worker ends every leg when the room closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from confbridge.sip.admission import Admission, DialTarget
from confbridge.sip.calls import Call, Dialog
from confbridge.sip.headers import parse_uri
from confbridge.sip.media import LegClient, MediaError
from confbridge.sip.message import SipMessage, SipParseError
from confbridge.sip.metrics import GatewayMetrics
from confbridge.sip.transactions import Transactions, new_branch, new_tag
from confbridge.sip.transport import SipTransport
from confbridge_kernel.sip_legs import SipLegOpen

log = logging.getLogger(__name__)

REDIAL_DELAYS_S = (5.0, 10.0, 20.0, 30.0)
STABLE_CALL_S = 60.0
"""A call that lasted this long starts its redial pauses afresh when it drops."""
DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061}


class DialFailed(Exception):
    """The room system could not be called (no answer, busy, refused, bad address)."""


@dataclass
class Attempts:
    """Per target: when it may be dialled again, and how many tries in a row failed."""

    failures: int = 0
    next_at: float = 0.0
    active: bool = False
    history: list[str] = field(default_factory=list)

    def ended(self, *, lasted_s: float, reason: str) -> None:
        self.active = False
        if lasted_s >= STABLE_CALL_S:
            self.failures = 0
        delay = REDIAL_DELAYS_S[min(self.failures, len(REDIAL_DELAYS_S) - 1)]
        self.failures += 1
        self.next_at = time.monotonic() + delay
        self.history = [*self.history[-9:], reason]


def target_remote(uri_text: str) -> tuple[str, str, int]:
    """(transport, host, port) to send the INVITE to, from the URI (no DNS SRV lookup)."""
    uri = parse_uri(uri_text)
    transport = uri.params.get("transport", "tls" if uri.scheme == "sips" else "udp").upper()
    if transport not in DEFAULT_PORTS:
        raise SipParseError(f"unsupported transport {transport}")
    host = uri.host.strip("[]")
    return transport, host, uri.port or DEFAULT_PORTS[transport]


async def invite(
    transport: SipTransport,
    transactions: Transactions,
    *,
    target: DialTarget,
    admitted: Admission,
    media: LegClient,
    contact: tuple[str, int],
) -> tuple[Dialog, str, str]:
    """Open a leg (the worker offers), INVITE the target, ACK its 2xx and give the leg the
    answer. Returns the dialog, the leg id and our SDP; raises `DialFailed`."""
    try:
        kind, host, port = target_remote(target.uri)
        remote = await transport.connect(kind, host, port)
    except (SipParseError, OSError, TimeoutError) as exc:
        raise DialFailed(f"cannot reach {target.uri}: {exc}") from None
    call_id = f"{new_tag()}{new_tag()}@confbridge"
    opened = await media.open(
        SipLegOpen(
            call_id=call_id,
            remote_uri=target.uri,
            display_name=(admitted.site_name or "")[:100],
            token=admitted.token,
            upstream=target.upstream,
            direction="out",
        )
    )
    via_host, via_port = contact
    from_number = target.meeting_number
    request = SipMessage(method="INVITE", uri=target.uri)
    request.add("Via", f"SIP/2.0/{kind} {via_host}:{via_port};branch={new_branch()};rport")
    request.add("Max-Forwards", "70")
    request.add(
        "From", f'"{_display(target.title)}" <sip:{from_number}@{via_host}>;tag={new_tag()}'
    )
    request.add("To", f"<{target.uri}>")
    request.add("Call-ID", call_id)
    request.add("CSeq", "1 INVITE")
    request.add("Contact", f"<sip:{from_number}@{via_host}:{via_port}>")
    request.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO")
    request.add("Content-Type", "application/sdp")
    request.body = opened.sdp.encode()
    answer = await transactions.send_request(request, remote)
    if answer is None or not 200 <= (answer.status or 0) < 300:
        await media.close(opened.leg_id, "not answered")
        status = f"{answer.status} {answer.reason}" if answer else "no answer"
        raise DialFailed(f"{target.uri}: {status}")
    dialog = Dialog.from_answer(request, answer, remote)
    transport.send(dialog.ack(via_host, via_port), remote)
    try:
        await media.answer(opened.leg_id, answer.body.decode("utf-8", "replace"))
    except MediaError as exc:
        bye = dialog.request("BYE", via_host, via_port)
        transport.send(bye, remote)
        await media.close(opened.leg_id, "media not acceptable")
        raise DialFailed(f"{target.uri}: its media was refused ({exc})") from None
    return dialog, opened.leg_id, opened.sdp


def _display(text: str) -> str:
    return text.replace('"', "'").replace("\\", "")[:60]


class DialOuts:
    """Keeps the due calls up: asks `due()` every few seconds which targets should be in a
    call now, dials those that are not, and redials after a drop (with pauses)."""

    def __init__(
        self,
        due: Callable[[], Awaitable[list[DialTarget]]],
        dial: Callable[[DialTarget], Awaitable[Call]],
        *,
        interval_s: float = 2.0,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._due = due
        self._dial = dial
        self.interval_s = interval_s
        self._metrics = metrics if metrics is not None else GatewayMetrics()
        self.attempts: dict[tuple[int, str], Attempts] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("planning SIP calls out failed")
            await asyncio.sleep(self.interval_s)

    async def tick(self) -> None:
        now = time.monotonic()
        for target in await self._due():
            attempts = self.attempts.setdefault(target.key, Attempts())
            if attempts.active or now < attempts.next_at:
                continue
            attempts.active = True
            task = asyncio.get_running_loop().create_task(self._place(target, attempts))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _place(self, target: DialTarget, attempts: Attempts) -> None:
        started = time.monotonic()
        self._metrics.dial_outs.inc()
        try:
            call = await self._dial(target)
        except (DialFailed, MediaError) as exc:
            self._metrics.dial_outs_failed.inc()
            log.info(
                "calling %s for occurrence %s failed: %s", target.uri, target.occurrence_id, exc
            )
            attempts.ended(lasted_s=0.0, reason=str(exc))
            return
        call.on_end = lambda reason: attempts.ended(
            lasted_s=time.monotonic() - started, reason=reason
        )

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
