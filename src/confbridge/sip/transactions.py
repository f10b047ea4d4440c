"""SIP transactions (RFC 3261 §17): retransmissions over UDP, and matching.

Server side: a retransmitted request gets the last response again and never reaches the
call logic twice; a final response to INVITE is repeated (T1, doubling to T2) until the ACK
comes or 32 s pass. Client side (BYE, OPTIONS, INVITE the bridge sends): the request is
repeated until a response comes; its future gives the final response, or None on timeout.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confbridge.sip.message import SipMessage, SipParseError, parse_via
from confbridge.sip.transport import Remote, SipTransport

log = logging.getLogger(__name__)

T1 = 0.5
T2 = 4.0
TIMEOUT_S = 64 * T1
MAGIC_COOKIE = "z9hG4bK"
USER_AGENT = "ConfBridge"


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def response_to(
    request: SipMessage,
    status: int,
    reason: str,
    remote: Remote,
    *,
    to_tag: str | None = None,
) -> SipMessage:
    """A response with the request's Via (top one marked with where it came from), From, To
    (with our tag), Call-ID and CSeq (RFC 3261 §8.2.6)."""
    response = SipMessage(status=status, reason=reason)
    for index, via in enumerate(request.get_all("Via")):
        if index == 0:
            via = _mark_received(via, remote)
        response.add("Via", via)
    response.add("From", request.get("From") or "")
    to = request.get("To") or ""
    if to_tag and ";tag=" not in to.replace(" ", ""):
        to = f"{to};tag={to_tag}"
    response.add("To", to)
    response.add("Call-ID", request.call_id)
    response.add("CSeq", request.get("CSeq") or "")
    response.add("Server", USER_AGENT)
    return response


def _mark_received(via: str, remote: Remote) -> str:
    """RFC 3261 §18.2.1 `received`, RFC 3581 `rport` with the port it came from."""
    parts = [part.strip() for part in via.split(";")]
    marked = [parts[0]]
    for part in parts[1:]:
        name = part.partition("=")[0].lower()
        if name == "rport":
            marked.append(f"rport={remote.port}")
        elif name != "received":
            marked.append(part)
    marked.insert(1, f"received={remote.host}")
    return ";".join(marked)


def transaction_key(message: SipMessage) -> tuple[str, str]:
    """(branch, method): ACK and CANCEL find the INVITE's transaction by its branch."""
    via = parse_via(message.top_via)
    method = message.cseq[1]
    if method == "ACK":
        method = "INVITE"
    return via.branch or message.call_id + (message.get("CSeq") or ""), method


def ack_for_refusal(invite: SipMessage, response: SipMessage) -> SipMessage:
    ack = SipMessage(method="ACK", uri=invite.uri)
    ack.add("Via", invite.top_via)
    for route in invite.get_all("Route"):
        ack.add("Route", route)
    ack.add("Max-Forwards", "70")
    ack.add("From", invite.get("From") or "")
    ack.add("To", response.get("To") or "")
    ack.add("Call-ID", invite.call_id)
    ack.add("CSeq", f"{invite.cseq[0]} ACK")
    return ack


@dataclass(eq=False)
class ServerTransaction:
    request: SipMessage
    remote: Remote
    send: Callable[[SipMessage, Remote], None]
    last_response: SipMessage | None = None
    acked: bool = False
    created: float = field(default_factory=time.monotonic)
    _retransmit: asyncio.Task[None] | None = None

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"

    def respond(self, response: SipMessage) -> None:
        self.last_response = response
        self.send(response, self.remote)
        status = response.status or 0
        if self.is_invite and status >= 200 and self.remote.transport == "UDP":
            self._retransmit = asyncio.get_running_loop().create_task(self._repeat(response))

    def retransmitted(self) -> None:
        """The same request again: the far end did not get our answer."""
        if self.last_response is not None:
            self.send(self.last_response, self.remote)

    def ack(self) -> None:
        self.acked = True
        if self._retransmit:
            self._retransmit.cancel()

    def expired(self, now: float) -> bool:
        return now - self.created > TIMEOUT_S + 5

    async def _repeat(self, response: SipMessage) -> None:
        interval = T1
        deadline = time.monotonic() + TIMEOUT_S
        while not self.acked and time.monotonic() < deadline:
            await asyncio.sleep(interval)
            if not self.acked:
                self.send(response, self.remote)
            interval = min(interval * 2, T2)


@dataclass(eq=False)
class ClientTransaction:
    request: SipMessage
    remote: Remote
    future: asyncio.Future[SipMessage | None]
    on_provisional: Callable[[SipMessage], None] | None = None
    _task: asyncio.Task[None] | None = None
    answered: bool = False


class Transactions:
    """Both kinds, keyed by branch; expired server transactions are forgotten."""

    def __init__(self, transport: SipTransport) -> None:
        self.transport = transport
        self.server: dict[tuple[str, str], ServerTransaction] = {}
        self.client: dict[str, ClientTransaction] = {}
        # 2xx to INVITE is end to end: its ACK has a new branch, found by Call-ID and CSeq.
        self.awaiting_ack: dict[tuple[str, int], ServerTransaction] = {}

    def find_server(self, request: SipMessage) -> ServerTransaction | None:
        try:
            key = transaction_key(request)
        except SipParseError:
            return None
        return self.server.get(key)

    def open_server(self, request: SipMessage, remote: Remote) -> ServerTransaction:
        transaction = ServerTransaction(request, remote, self._send_response)
        self.server[transaction_key(request)] = transaction
        return transaction

    def _send_response(self, response: SipMessage, remote: Remote) -> None:
        self.transport.send(response, remote)
        number, method = response.cseq
        if method == "INVITE" and 200 <= (response.status or 0) < 300:
            for transaction in self.server.values():
                if transaction.last_response is response:
                    self.awaiting_ack[(response.call_id, number)] = transaction

    def ack_received(self, ack: SipMessage) -> bool:
        """An ACK: stops the retransmission of the response it acknowledges."""
        number = ack.cseq[0]
        transaction = self.awaiting_ack.pop((ack.call_id, number), None)
        if transaction is None:
            transaction = self.find_server(ack)
        if transaction is None:
            return False
        transaction.ack()
        return True

    def send_request(
        self,
        request: SipMessage,
        remote: Remote,
        *,
        on_provisional: Callable[[SipMessage], None] | None = None,
    ) -> asyncio.Future[SipMessage | None]:
        """Send `request` (its top Via carries a new branch) and retransmit it over UDP."""
        branch = parse_via(request.top_via).branch
        future: asyncio.Future[SipMessage | None] = asyncio.get_running_loop().create_future()
        transaction = ClientTransaction(request, remote, future, on_provisional)
        self.client[branch] = transaction
        self.transport.send(request, remote)
        transaction._task = asyncio.get_running_loop().create_task(
            self._retransmit(branch, transaction)
        )
        return future

    async def _retransmit(self, branch: str, transaction: ClientTransaction) -> None:
        interval = T1
        deadline = time.monotonic() + TIMEOUT_S
        is_invite = transaction.request.method == "INVITE"
        try:
            while time.monotonic() < deadline and not transaction.future.done():
                await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
                if transaction.future.done():
                    break
                # an INVITE stops repeating once anything came back (RFC 3261 §17.1.1.2)
                if transaction.remote.transport == "UDP" and not (
                    is_invite and transaction.answered
                ):
                    self.transport.send(transaction.request, transaction.remote)
                interval = interval * 2 if is_invite else min(interval * 2, T2)
            if not transaction.future.done():
                transaction.future.set_result(None)
        finally:
            self.client.pop(branch, None)

    def response_received(self, response: SipMessage) -> bool:
        """False: no transaction of ours waits for it (a late or repeated response)."""
        try:
            branch = parse_via(response.top_via).branch
        except SipParseError:
            return False
        transaction = self.client.get(branch)
        if transaction is None or transaction.future.done():
            return False
        transaction.answered = True
        if (response.status or 0) < 200:
            if transaction.on_provisional:
                transaction.on_provisional(response)
            return True
        if transaction.request.method == "INVITE" and (response.status or 0) >= 300:
            # a refusal is acknowledged hop by hop, in the same transaction (RFC 3261 §17.1.1.3)
            self.transport.send(ack_for_refusal(transaction.request, response), transaction.remote)
        transaction.future.set_result(response)
        return True

    def sweep(self) -> None:
        now = time.monotonic()
        for key, transaction in list(self.server.items()):
            if transaction.expired(now):
                del self.server[key]
        for key, transaction in list(self.awaiting_ack.items()):
            if transaction.expired(now):
                del self.awaiting_ack[key]
