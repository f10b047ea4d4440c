"""Observation and fault injection on aiortc peers, for tests and benchmarks.

- `set_receive_filter` drops chosen incoming datagrams of one DTLS transport (loss injection).
- `observe_rtp` shows every RTP packet a receiver gets to a callback, before stock handling.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCRtpTransceiver
from aiortc.rtcdtlstransport import (
    RTCDtlsTransport,
)
from aiortc.rtp import (
    RtpPacket,
)

from sfu.rtc.ingest import RtpCallback


def set_receive_filter(dtls: RTCDtlsTransport, drop: Callable[[bytes], bool] | None) -> None:
    """Drop incoming datagrams of this transport for which `drop(datagram)` is true.

    The datagram is as received (SRTP): its 12-byte RTP header is in clear, so a filter can
    match sequence number, SSRC and payload type. None removes the filter. For loss injection.
    """
    # touches RTCIceTransport._connection (aioice Connection) and its data_received(data,
    # component) method, which StunProtocol calls for every non-STUN datagram; an instance
    # attribute shadows it for this connection only
    connection = dtls.transport._connection
    if "data_received" in vars(connection):
        del connection.data_received
    if drop is None:
        return
    stock = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        if not drop(data):
            stock(data, component)

    connection.data_received = data_received


def observe_rtp(transceiver: RTCRtpTransceiver, observer: RtpCallback) -> Callable[[], None]:
    """Call `observer(packet)` for every RTP packet the receiver gets, before stock handling.

    The receiver still depayloads and decodes as usual. Returns a function that removes the
    observer. RTX packets are seen as received (wrapped).
    """
    receiver = transceiver.receiver
    # touches RTCRtpReceiver._handle_rtp_packet (see RtpIngest), wrapping instead of replacing
    stock = receiver._handle_rtp_packet

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        observer(packet)
        await stock(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = handle

    def remove() -> None:
        if vars(receiver).get("_handle_rtp_packet") is handle:
            del receiver._handle_rtp_packet

    return remove
