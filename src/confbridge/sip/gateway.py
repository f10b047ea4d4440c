"""The SIP side of the bridge: answers room systems calling a meeting number.

Signalling only: each call's media is a leg on the worker that holds the room
(`confbridge_kernel.sip_legs`), so video is forwarded there without decoding. The gateway
answers OPTIONS (room systems and SBCs ping it), takes INVITE/ACK/CANCEL/BYE/INFO, asks the
database who may join (`admission`), keeps PIN callers in a lobby until they key the PIN, and
hangs up when the worker closes the leg (the meeting ended, no media).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.signing import GrantSigner
from confbridge.sip import admission as admission_
from confbridge.sip import dial_out, readiness
from confbridge.sip.calls import Call, Dialog, dtmf_from_info
from confbridge.sip.headers import parse_name_addr, parse_uri
from confbridge.sip.media import LegClient, MediaError
from confbridge.sip.message import SipMessage, SipParseError, parse_via
from confbridge.sip.metrics import GatewayMetrics
from confbridge.sip.transactions import (
    TIMEOUT_S,
    ServerTransaction,
    Transactions,
    new_branch,
    new_tag,
    response_to,
)
from confbridge.sip.transport import Remote, SipTransport
from confbridge.timeutil import utcnow
from confbridge_kernel.sip_legs import SipLegOpen

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"
NOT_ALLOWED = {"REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "UPDATE", "PRACK"}
SWEEP_INTERVAL_S = 5.0
LOBBY_TIMEOUT_S = 60.0
"""A caller has this long to key the PIN."""
MAX_LOBBY_CALLS_PER_SOURCE = 5
CLOSE_BYE_WAIT_S = 2.0
"""On shutdown, how long answers to our BYEs are waited for (a far end may be gone)."""


class SipGateway:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        signer: GrantSigner,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.signer = signer
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self.transport = SipTransport(
            self._on_message,
            self._on_bad_message,
            rate_per_source=settings.sip.rate_limit_per_source,
            metrics=self.metrics,
        )
        self.transactions = Transactions(self.transport)
        self.calls: dict[str, Call] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}  # INVITEs not answered yet
        self._cancelled: set[str] = set()
        self._lobby_setups: Counter[str] = Counter()  # lobby calls being set up, by address
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._dialler: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self.dial_outs = dial_out.DialOuts(self._due, self.dial, metrics=self.metrics)
        self.malformed = 0

    # -- life ------------------------------------------------------------------------------

    async def start(self, host: str, port: int, **tls: object) -> None:
        await self.transport.start(host, port, **tls)  # type: ignore[arg-type]
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        self._dialler = asyncio.get_running_loop().create_task(self.dial_outs.run())
        self._pinger = asyncio.get_running_loop().create_task(
            readiness.keep_checking(self.database, self.settings, self.ping)
        )
        log.info("SIP listening on %s (UDP and TCP)", self.transport.udp_address)

    async def close(self) -> None:
        reason = "the bridge is shutting down"
        calls = list(self.calls.values())
        await asyncio.gather(*(self.hang_up(c, reason, wait_s=CLOSE_BYE_WAIT_S) for c in calls))
        for task in [*self._pending.values(), *self._tasks]:
            task.cancel()
        self.dial_outs.close()
        for background in (self._sweeper, self._dialler, self._pinger):
            if background:
                background.cancel()
        await self.transport.close()

    @property
    def contact_host(self) -> tuple[str, int]:
        address = self.transport.udp_address or ("127.0.0.1", 5060)
        public = self.settings.sip.public_address
        return (public or str(address[0])), int(address[1])

    def _spawn(self, coroutine: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            self.transactions.sweep()

    # -- dispatch --------------------------------------------------------------------------

    def _on_bad_message(self, data: bytes, error: SipParseError, remote: Remote) -> None:
        self.malformed += 1
        log.debug("dropped a malformed SIP message from %s: %s", remote.host, error)

    def _on_message(self, message: SipMessage, remote: Remote) -> None:
        if not message.is_request:
            if not self.transactions.response_received(message):
                self._late_response(message)
            return
        if message.method == "ACK":
            self._on_ack(message)
            return
        existing = self.transactions.find_server(message)
        if existing is not None:
            existing.retransmitted()
            return
        transaction = self.transactions.open_server(message, remote)
        try:
            self._dispatch(message, transaction)
        except SipParseError as exc:
            self._respond(transaction, 400, f"Bad Request ({exc})")

    def _dispatch(self, request: SipMessage, transaction: ServerTransaction) -> None:
        method = request.method or ""
        forwards = request.get("Max-Forwards")
        if forwards is not None and forwards.strip() == "0":
            self._respond(transaction, 483, "Too Many Hops")
        elif method == "OPTIONS":
            self._options(transaction)
        elif method == "INVITE" and not _to_tag(request):
            self._pending[request.call_id] = self._spawn(self._invite(transaction))
        elif method == "CANCEL":
            self._cancel(transaction)
        elif method in ("INVITE", "BYE", "INFO"):
            self._in_dialog(transaction)
        elif method in NOT_ALLOWED:
            self._respond(transaction, 405, "Method Not Allowed", headers={"Allow": ALLOW})
        else:
            self._respond(transaction, 501, "Not Implemented", headers={"Allow": ALLOW})

    def _respond(
        self,
        transaction: ServerTransaction,
        status: int,
        reason: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        to_tag: str | None = None,
    ) -> None:
        response = response_to(
            transaction.request, status, reason, transaction.remote, to_tag=to_tag or new_tag()
        )
        for name, value in (headers or {}).items():
            response.add(name, value)
        if body:
            response.add("Content-Type", "application/sdp")
            response.body = body
        transaction.respond(response)

    def _options(self, transaction: ServerTransaction) -> None:
        self._respond(
            transaction,
            200,
            "OK",
            headers={"Allow": ALLOW, "Accept": "application/sdp", "Supported": ""},
        )

    # -- calls in --------------------------------------------------------------------------

    async def _invite(self, transaction: ServerTransaction) -> None:
        request, remote = transaction.request, transaction.remote
        to_tag = new_tag()
        try:
            trying = response_to(request, 100, "Trying", remote)
            self.transport.send(trying, remote)
            number = parse_uri(request.uri or "").user or ""
            offer = _sdp_offer(request)
            call = await self._answer(transaction, number, offer, to_tag)
        except SipParseError as exc:
            self._respond(transaction, 400, f"Bad Request ({exc})", to_tag=to_tag)
            return
        except _Cancelled:
            return
        except _Refused as refused:
            self._respond(
                transaction,
                refused.status,
                refused.reason,
                headers={"Warning": _warning(self.contact_host[0], refused.detail)},
                to_tag=to_tag,
            )
            return
        finally:
            self._pending.pop(request.call_id, None)
        self.calls[call.call_id] = call
        call.follower = self._spawn(self._follow(call))
        self._spawn(self._watch_setup(call))

    async def _watch_setup(self, call: Call) -> None:
        """No ACK for our 2xx (RFC 3261 §13.3.1.4), or no PIN within the lobby's time: the
        call ends, so that half-open calls and idle lobbies hold no media leg."""
        try:
            await asyncio.wait_for(call.acked.wait(), TIMEOUT_S)
        except TimeoutError:
            await self.hang_up(call, "no ACK")
            return
        deadline = call.started_at + LOBBY_TIMEOUT_S
        while call.state in ("lobby", "admitting"):
            if asyncio.get_running_loop().time() >= deadline:
                await self.hang_up(call, "no PIN given")
                return
            await asyncio.sleep(1.0)

    def _lobby_calls_from(self, host: str) -> int:
        waiting = sum(
            1
            for call in self.calls.values()
            if call.state == "lobby" and call.dialog.transport.host == host
        )
        return waiting + self._lobby_setups[host]

    async def _answer(
        self,
        transaction: ServerTransaction,
        number: str,
        offer: str | None,
        to_tag: str,
    ) -> Call:
        request, remote = transaction.request, transaction.remote
        caller_addr = parse_name_addr(request.get("From") or "")
        if not number.isdigit() or not 6 <= len(number) <= 9:
            raise _Refused(404, "Not Found", "no meeting has this number")
        if self._lobby_calls_from(remote.host) >= MAX_LOBBY_CALLS_PER_SOURCE:
            raise _Refused(486, "Busy Here", "too many calls waiting for their PIN")
        try:
            admitted = await asyncio.to_thread(
                admission_.admit,
                self.database,
                self.settings,
                self.signer,
                meeting_number=number,
                caller_uri=caller_addr.raw_uri,
                now=utcnow(),
            )
        except admission_.CallRefused as refused:
            log.info("SIP call from %s to %s refused: %s", remote.host, number, refused.detail)
            raise _Refused(refused.status, refused.reason, refused.detail) from None
        if admitted.token is not None:
            return await self._set_up(transaction, number, offer, to_tag, admitted)
        # A lobby call holds its place from now on: INVITEs from one address that come
        # together all pass the check above before any of them is in `calls`, and would
        # take every media port of the worker.
        if self._lobby_calls_from(remote.host) >= MAX_LOBBY_CALLS_PER_SOURCE:
            raise _Refused(486, "Busy Here", "too many calls waiting for their PIN")
        self._lobby_setups[remote.host] += 1
        try:
            return await self._set_up(transaction, number, offer, to_tag, admitted)
        finally:  # `_invite` puts the call in `calls` straight after
            self._lobby_setups[remote.host] -= 1
            if not self._lobby_setups[remote.host]:
                del self._lobby_setups[remote.host]

    async def _set_up(
        self,
        transaction: ServerTransaction,
        number: str,
        offer: str | None,
        to_tag: str,
        admitted: admission_.Admission,
    ) -> Call:
        """The call's media leg on the worker, then the 200 with its SDP."""
        request, remote = transaction.request, transaction.remote
        caller_addr = parse_name_addr(request.get("From") or "")
        media = LegClient(
            admitted.media.internal_url, node_id=admitted.media.node_id, signer=self.signer
        )
        try:
            opened = await media.open(
                SipLegOpen(
                    call_id=request.call_id[:200],
                    remote_uri=caller_addr.raw_uri[:300],
                    display_name=caller_addr.display_name,
                    offer=offer,
                    token=admitted.token,
                    lobby=admitted.token is None,
                )
            )
        except MediaError as exc:
            await media.aclose()
            phrase = "Not Acceptable Here" if exc.status == 488 else "Service Unavailable"
            raise _Refused(exc.status, phrase, str(exc)) from None
        dialog = Dialog.from_invite(request, remote, to_tag)
        call = Call(
            dialog=dialog,
            caller=caller_addr,
            admission=admitted,
            media=media,
            leg_id=opened.leg_id,
            local_sdp=opened.sdp,
            state="admitted" if admitted.token else "lobby",
            late_offer=offer is None,
        )
        if request.call_id in self._cancelled:  # CANCEL came while we were setting up
            self._cancelled.discard(request.call_id)
            await self._end(call, "the room system cancelled the call")
            raise _Cancelled
        host, port = self.contact_host
        self._respond(
            transaction,
            200,
            "OK",
            headers={
                "Contact": f"<sip:{number}@{_host(host)}:{port}"
                + (f";transport={remote.transport.lower()}>" if remote.transport != "UDP" else ">"),
                "Allow": ALLOW,
                "Supported": "",
            },
            body=opened.sdp.encode(),
            to_tag=to_tag,
        )
        log.info(
            "SIP call %s from %s into occurrence %s: %s",
            call.call_id[:40],
            call.caller_label,
            admitted.occurrence_id,
            f"site {admitted.site_id}" if admitted.site_id else "PIN asked",
        )
        return call

    def _late_response(self, response: SipMessage) -> None:
        """A 2xx to our INVITE repeated (our ACK was lost): acknowledge it again."""
        call = self.calls.get(response.call_id)
        if call is None or response.cseq[1] != "INVITE" or not 200 <= (response.status or 0) < 300:
            return
        host, port = self.contact_host
        self.transport.send(call.dialog.ack(host, port), call.dialog.transport)

    def _on_ack(self, ack: SipMessage) -> None:
        self.transactions.ack_received(ack)
        call = self.calls.get(ack.call_id)
        if call is None or call.acked.is_set():
            return
        call.acked.set()
        if ack.body and call.late_offer:
            self._spawn(call.media.answer(call.leg_id, ack.body.decode("utf-8", "replace")))

    def _cancel(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        self._respond(transaction, 200, "OK")
        invite = self.transactions.server.get((_branch(request), "INVITE"))
        if request.call_id in self._pending and invite is not None:
            # the setup goes on in its task and ends the leg it opened (see _answer)
            self._cancelled.add(request.call_id)
            self._respond(invite, 487, "Request Terminated")

    def _in_dialog(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        call = self.calls.get(request.call_id)
        if call is None:
            self._respond(transaction, 481, "Call/Transaction Does Not Exist")
            return
        if request.method == "BYE":
            self._respond(transaction, 200, "OK")
            self._spawn(self._end(call, "the room system hung up"))
        elif request.method == "INFO":
            digit = dtmf_from_info(request)
            if digit or not request.body:
                self._respond(transaction, 200, "OK")
            else:  # an INFO we do not read (e.g. video fast update): say so
                self._respond(
                    transaction,
                    415,
                    "Unsupported Media Type",
                    headers={"Accept": "application/dtmf-relay, application/dtmf"},
                )
            if digit:
                self._spawn(self._digit(call, digit, relay=True))
        else:  # re-INVITE (session refresh, hold): keep the media as negotiated
            self._respond(
                transaction, 200, "OK", body=call.local_sdp.encode(), to_tag=_to_tag(request)
            )

    # -- the lobby and the end -------------------------------------------------------------

    async def _follow(self, call: Call) -> None:
        async for event in call.media.events(call.leg_id):
            if event.type == "dtmf" and event.digit:
                await self._digit(call, event.digit, relay=False)
            elif event.type == "closed":
                await self.hang_up(call, event.reason or "the media ended")
                return

    async def _digit(self, call: Call, digit: str, *, relay: bool) -> None:
        if call.state == "admitted":
            if relay:  # SIP INFO: the worker acts on it (e.g. *9 raises the hand)
                await call.media.dtmf(call.leg_id, digit)
            return
        if call.state != "lobby":
            return
        if digit == "*":
            call.digits = ""
            return
        if digit != "#":
            call.digits = (call.digits + digit)[-16:]
            if len(call.digits) < len(call.admission.pin):
                return
        given, call.digits = call.digits, ""
        if admission_.pin_matches(given, call.admission.pin):
            await self._admit(call)
            return
        call.pin_failures += 1
        log.info("wrong PIN from %s (%d)", call.caller_label, call.pin_failures)
        if call.pin_failures >= self.settings.sip.max_pin_attempts:
            await self.hang_up(call, "wrong PIN")

    async def _admit(self, call: Call) -> None:
        call.state = "admitting"
        _site_id, site_name, token = await asyncio.to_thread(
            admission_.guest_grant,
            self.database,
            self.settings,
            self.signer,
            occurrence_id=call.admission.occurrence_id,
            caller_uri=call.caller.raw_uri,
            display_name=call.caller.display_name,
            now=utcnow(),
        )
        try:
            await call.media.admit(call.leg_id, token)
        except MediaError as exc:
            await self.hang_up(call, f"could not join the meeting: {exc}")
            return
        call.state = "admitted"
        log.info("SIP caller %s gave the PIN: joined as %s", call.caller_label, site_name)

    async def hang_up(self, call: Call, reason: str, *, wait_s: float = TIMEOUT_S) -> None:
        """End the call from our side: BYE to the room system, the leg closed; its answer is
        waited for `wait_s` at most."""
        if call.state == "ended":
            return
        host, port = self.contact_host
        bye = call.dialog.request("BYE", host, port)
        bye.add("Reason", f'Q.850;cause=16;text="{_quoted(reason)}"')
        await self._end(call, reason)
        answer = self.transactions.send_request(bye, call.dialog.transport)
        try:
            answered = await asyncio.wait_for(answer, wait_s) is not None
        except TimeoutError:  # the BYE's transaction is cancelled with its future
            answered = False
        if not answered:
            log.info("no answer to BYE for call %s", call.call_id[:40])

    async def _end(self, call: Call, reason: str) -> None:
        if call.state == "ended":
            return
        call.state = "ended"
        self.calls.pop(call.call_id, None)
        if call.follower and call.follower is not asyncio.current_task():
            call.follower.cancel()
        await call.media.close(call.leg_id, reason)
        await call.media.aclose()
        log.info("SIP call %s ended: %s", call.call_id[:40], reason)
        if call.on_end is not None:
            call.on_end(reason)

    # -- calls out -------------------------------------------------------------------------

    async def ping(self, uri: str) -> bool:
        """True if `uri` answers OPTIONS (whatever the status: it is there)."""
        try:
            kind, host, port = dial_out.target_remote(uri)
            remote = await self.transport.connect(kind, host, port)
        except (SipParseError, OSError, TimeoutError):
            return False
        via_host, via_port = self.contact_host
        probe = SipMessage(method="OPTIONS", uri=uri)
        probe.add("Via", f"SIP/2.0/{kind} {via_host}:{via_port};branch={new_branch()};rport")
        probe.add("Max-Forwards", "70")
        probe.add("From", f"<sip:bridge@{via_host}>;tag={new_tag()}")
        probe.add("To", f"<{uri}>")
        probe.add("Call-ID", f"{new_tag()}{new_tag()}@confbridge")
        probe.add("CSeq", "1 OPTIONS")
        probe.add("Accept", "application/sdp")
        answer = self.transactions.send_request(probe, remote)
        try:
            return await asyncio.wait_for(answer, readiness.ANSWER_TIMEOUT_S) is not None
        except TimeoutError:
            return False

    async def _due(self) -> list[admission_.DialTarget]:
        due = await asyncio.to_thread(
            admission_.due_dial_outs, self.database, self.settings, now=utcnow()
        )
        # a room system that called in itself is not called as well
        in_call = {
            (call.admission.occurrence_id, call.admission.site_id) for call in self.calls.values()
        }
        return [t for t in due if t.site_id is None or (t.occurrence_id, t.site_id) not in in_call]

    async def dial(self, target: admission_.DialTarget) -> Call:
        """Call `target` into its meeting; raises `DialFailed` or `MediaError`."""
        try:
            admitted = await asyncio.to_thread(
                admission_.prepare_dial,
                self.database,
                self.settings,
                self.signer,
                target=target,
                now=utcnow(),
            )
        except admission_.CallRefused as refused:
            raise dial_out.DialFailed(refused.detail) from None
        media = LegClient(
            admitted.media.internal_url, node_id=admitted.media.node_id, signer=self.signer
        )
        try:
            dialog, leg_id, sdp = await dial_out.invite(
                self.transport,
                self.transactions,
                target=target,
                admitted=admitted,
                media=media,
                contact=self.contact_host,
            )
        except BaseException:
            await media.aclose()
            raise
        call = Call(
            dialog=dialog,
            caller=parse_name_addr(dialog.remote),
            admission=admitted,
            media=media,
            leg_id=leg_id,
            local_sdp=sdp,
            state="admitted",
        )
        call.acked.set()
        self.calls[call.call_id] = call
        call.follower = self._spawn(self._follow(call))
        log.info(
            "called %s into occurrence %s as %s",
            target.uri,
            target.occurrence_id,
            admitted.site_name,
        )
        return call


class _Cancelled(Exception):
    pass


class _Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def _to_tag(message: SipMessage) -> str | None:
    try:
        return parse_name_addr(message.get("To") or "").tag
    except SipParseError:
        return None


def _branch(message: SipMessage) -> str:
    return parse_via(message.top_via).branch


def _sdp_offer(request: SipMessage) -> str | None:
    if not request.body:
        return None  # a late offer: we offer in the 200, the answer comes with the ACK
    content_type = (request.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        raise _Refused(415, "Unsupported Media Type", "only application/sdp is accepted")
    try:
        return request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(400, "Bad Request", "the SDP is not UTF-8") from None


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")[:150]


def _warning(host: str, detail: str) -> str:
    """RFC 3261 §20.43: `399 host "text"`, which room systems show to their user."""
    return f'399 {_host(host)} "{_quoted(detail)}"'
