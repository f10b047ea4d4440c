"""Synchronous SRTP over aiortc's DTLS transports, and the DTLS cipher suites.

- `DatagramPath` sends on one DTLS transport without aiortc's coroutine chain: it binds the
  outbound SRTP session and the socket ICE selected, and unbinds at any DTLS state change;
  `_RtpProtector` SRTP-protects into one reused libsrtp buffer.
- `accept_rsa_dtls_peers` adds ECDHE-RSA suites to aiortc's DTLS cipher list, so peers with an
  RSA certificate can connect; it applies process-wide (ECDSA peers are unaffected).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pylibsrtp
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsTransport,
    SRTPProtectionProfile,
    State,
)
from OpenSSL import SSL

from sfu.rtc.ice import nominated_datagram_transport

_SRTP_BUFFER_BYTES = 2048  # plain packet + SRTP trailer; UDP payloads stay under the MTU
_SRTP_MAX_TRAILER_BYTES = 16 + 128  # SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN (as pylibsrtp)


RtpProtect = Callable[[bytes, bytes], "bytes | None"]
"""(header, payload) → the SRTP packet, or None if libsrtp refused it."""


class _RtpProtector:
    """SRTP-protect `header + payload` for one session without per-packet allocations.

    `Session.protect` allocates a C int and copies the packet twice per call, a large share of
    the per-viewer cost; this writes header and payload straight into one reusable buffer and
    calls libsrtp once.
    """

    __slots__ = ("_buffer", "_cdata", "_length", "_limit", "_ok", "_protect", "handle", "session")

    def __init__(self, session: pylibsrtp.Session) -> None:
        # touches pylibsrtp._binding (its cffi module) and Session._srtp (the srtp_t handle);
        # holding `session` keeps the handle alive
        from pylibsrtp._binding import ffi, lib

        self.session = session
        self.handle = session._srtp[0]
        """The session's `srtp_t` (`sfu.rtc.sendmmsg.BatchSender.add_srtp` protects with it)."""
        self._protect = lib.srtp_protect
        self._ok = lib.srtp_err_status_ok
        self._cdata = ffi.new("char[]", _SRTP_BUFFER_BYTES)
        self._buffer = ffi.buffer(self._cdata)
        self._length = ffi.new("int *")
        self._limit = _SRTP_BUFFER_BYTES - _SRTP_MAX_TRAILER_BYTES

    def __call__(self, header: bytes, payload: bytes) -> bytes | None:
        split = len(header)
        size = split + len(payload)
        if size > self._limit:
            return None
        buffer = self._buffer
        buffer[0:split] = header
        buffer[split:size] = payload
        length = self._length
        length[0] = size
        if self._protect(self.handle, self._cdata, length) != self._ok:
            return None
        return buffer[0 : length[0]]


class DatagramPath:
    """Synchronous SRTP send on one DTLS transport, skipping aiortc's coroutine chain.

    `resolve()` binds the SRTP session and the nominated socket once the transport is connected;
    any DTLS state change unbinds them (and calls `on_unbind`).
    """

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self.transport: asyncio.DatagramTransport | None = None
        self.addr: tuple[str, int] = ("", 0)
        self.protect: RtpProtect | None = None
        self.on_unbind: Callable[[], None] | None = None
        self._session: pylibsrtp.Session | None = None
        self._listening = False

    def resolve(self) -> bool:
        """Bind to the connected transport; False while it is not connected."""
        dtls = self.dtls
        if not self._listening:
            dtls.on("statechange", self.unbind)
            self._listening = True
        # touches RTCDtlsTransport._state and ._tx_srtp (the outbound pylibsrtp.Session),
        # because RTCDtlsTransport._send_rtp is a coroutine and we want a synchronous send
        session = dtls._tx_srtp
        if dtls._state is not State.CONNECTED or session is None:
            self.unbind()
            return False
        selected = nominated_datagram_transport(dtls)
        if selected is None or selected[0].is_closing():
            self.unbind()
            return False
        self.transport, self.addr = selected
        if session is not self._session or self.protect is None:
            self._session = session
            self.protect = _RtpProtector(session)
        return True

    def unbind(self) -> None:
        """Forget the bound socket (the next send resolves again)."""
        self.transport = None
        if self.on_unbind is not None:
            self.on_unbind()

    def send_rtcp(self, data: bytes) -> bool:
        """Protect and send one compound RTCP packet; False if not connected or refused."""
        if (self.transport is None and not self.resolve()) or self._session is None:
            return False
        try:
            protected = self._session.protect_rtcp(data)
        except (pylibsrtp.Error, ValueError):
            return False
        assert self.transport is not None
        self.transport.sendto(protected, self.addr)
        return True

    def close(self) -> None:
        """Stop listening to the DTLS transport."""
        if self._listening:
            self.dtls.remove_listener("statechange", self.unbind)
            self._listening = False
        self.on_unbind = None
        self.unbind()
        self.protect = None
        self._session = None


# --------------------------------------------------------------------------------------------
# DTLS cipher suites: peers with an RSA certificate

AIORTC_DTLS_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
)
"""The cipher list aiortc 1.16.0 sets on every DTLS context: ECDSA-authenticated suites only."""
RSA_DTLS_CIPHERS = (
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
)
"""Suites offered as well, so that a DTLS server holding an RSA certificate finds one it can use."""

_stock_create_ssl_context = RTCCertificate._create_ssl_context


def _create_ssl_context_accepting_rsa(
    self: RTCCertificate, srtp_profiles: list[SRTPProtectionProfile]
) -> SSL.Context:
    ctx = _stock_create_ssl_context(self, srtp_profiles)
    ctx.set_cipher_list(f"{AIORTC_DTLS_CIPHERS}:{RSA_DTLS_CIPHERS}".encode("ascii"))
    return ctx


def accept_rsa_dtls_peers(enabled: bool = True) -> None:
    """Let DTLS complete with peers whose certificate is RSA (False: back to stock). Idempotent.

    aiortc offers ECDHE-ECDSA suites only. When the SFU answers an offer it is the DTLS client
    (`a=setup:active`), and the peer, as DTLS server, must pick a suite its own certificate can
    sign: a peer holding an RSA certificate (GStreamer webrtcbin 1.22, for one) then fails with
    "no shared cipher". This adds the ECDHE-RSA suites after aiortc's own. The SFU's certificate
    stays aiortc's ECDSA one, SRTP profiles and verification are unchanged, and between two
    ECDSA peers the suite chosen is the same as before. Applies process-wide to DTLS transports
    started afterwards (a worker calls it once at start).
    """
    # touches RTCCertificate._create_ssl_context(srtp_profiles), the method
    # RTCDtlsTransport.start calls to build each transport's pyOpenSSL context, because aiortc
    # hard-codes the cipher list there and offers no option for it; the stock method still
    # builds the context (certificate, key, set_verify, SRTP profiles), only the list is reset
    if enabled:
        RTCCertificate._create_ssl_context = _create_ssl_context_accepting_rsa  # type: ignore[method-assign]
    else:
        RTCCertificate._create_ssl_context = _stock_create_ssl_context  # type: ignore[method-assign]
