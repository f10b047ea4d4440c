"""Fan-out of one publisher to N viewers through the real SFU worker process (prints figures).

Setup: a temporary SQLite database, the control plane (`confbridge.main.create_app`) on uvicorn
in a thread, one worker subprocess started by `confbridge.local_workers.LocalWorkers`, an
occurrence that is on now, and `POST /api/v1/occurrences/{id}/join` for the chair site (the
publisher's WHIP grant) and for one ward site; every viewer watches as that site, each with a
copy of its grant under an id of its own (a grant holds one WHEP session at a time).

- Publisher (this process): aiortc over WHIP, 640×360 VP8 at 30 fps pre-encoded once up front
  (a loop of `av.Packet`s, keyframe at the start of the loop; a keyframe request from the worker
  restarts the loop at its keyframe) plus aiortc's Opus silence.
- Cheap viewers (client processes, `--clients` of them, each with its own event loop): aiortc
  WHEP peers whose receivers are replaced by `RtpIngest` (RTCP RR/NACK stay, nothing is
  depayloaded or decoded); they count RTP packets and note the first VP8 keyframe packet.
- Lean viewers instead of cheap ones with `--lean-viewers` (see `LeanViewer`): ICE and DTLS
  as above, then the socket of the nominated ICE pair is read with recvmmsg(2) every
  `--lean-poll-ms` (default 50) and RTP/RTCP datagrams (RFC 7983 first byte 128..191) are
  counted and dropped as received: no SRTP decryption (except video packets before the first
  keyframe, to find it), no parsing, no RTCP sent back (no RR, NACK or PLI: their receivers
  are stopped). STUN and DTLS still go to aioice, so the worker's consent checks are answered.
  A lean viewer costs its client process several times less CPU per datagram than a cheap one
  (whose stock asyncio read alone allocates 256 KiB per datagram), so that one machine can
  hold the viewers and the workers that feed them. The workers' own per-viewer work is a
  little lighter with them too: no RTCP arrives from them to be decrypted and handled (a real
  viewer sends RR about once a second per stream, and NACK on loss), so µs/pkt measured with
  lean viewers leaves that out for N of the N + 2 viewers.
- Two decoding viewers (this process): stock aiortc WHEP peers that decode video and audio;
  they are reconnected at every N, which times WHEP POST → first decoded frame under load.

Per N (cheap or lean viewers; the worker forwards to N + 2 viewers), over a window of
`--seconds`:
- worker CPU µs per forwarded packet = Δ(utime + stime of the worker pid, /proc/<pid>/stat, all
  threads) / (Δ RTP packets sent by the publisher (`getStats().packetsSent`, video + audio)
  × (N + 2)); "viewers/core" = 1e6 / (µs per packet × publisher packets/s);
- delivered = Δ RTP packets counted at the cheap (or lean) viewers / (Δ publisher packets × N);
- RSS per viewer = (VmRSS at N − VmRSS with the publisher and no viewer) / (N + 2).
The same per-packet figure is measured for aiortc's `MediaRelay` (a relay process: WHIP-ish
answerer whose tracks go through `MediaRelay.subscribe()` to one answerer per viewer, i.e.
decode once and encode per viewer), with the same publisher and viewers.

All processes share the machine: client and publisher CPU compete with the worker; their CPU
over the window is printed too, and nothing is subtracted from the worker's figure.

With `--workers 2` both local workers serve the room: the second relays the first through a
pipe (`sfu/pipe.py`), client process i views through worker i mod 2 and the decoding viewers
alternate; CPU and RSS are summed over both workers, and the viewer goal doubles (250 per core).

With `--udp-modes range,single` the same series runs once per media socket mode of the worker
(`sfu.udp_mode`: `single`, one UDP port for every peer with sends batched by sendmmsg;
`single-sendto`, one port with a `sendto` per packet; `range`, a socket per peer), each on a
fresh stack, and the µs per packet of each mode is printed against range mode's in that run.

    .venv/bin/python bench/fanout.py [--viewers 10,50,100,250] [--seconds 10]
                                     [--baseline-viewers 1,3] [--clients 2] [--workers 1|2]
                                     [--lean-viewers [--lean-poll-ms 50]]
                                     [--udp-modes single|range|single-sendto,...]
    .venv/bin/python bench/fanout.py --workers 2 --lean-viewers --viewers 250,500 \
                                     --baseline-viewers ""
    .venv/bin/python bench/fanout.py --gallery [--halls 100] [--viewers 100]  # bench/gallery.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import errno
import fractions
import functools
import multiprocessing as mp
import os
import random
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
import httpx
import pylibsrtp
from aiortc import (
    AudioStreamTrack,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from sfu.codecs import is_keyframe
from sfu.rtc.ice import nominated_datagram_transport, use_host_addresses
from sfu.rtc.ingest import RtpIngest
from sfu.rtc.observe import set_receive_filter
from sfu.rtc.sdp import negotiated_rtp
from tests.support.factories import make_province, make_settings, open_occurrence, province_sites
from tests.support.peers import loopback_peer
from tests.support.servers import (
    ServerThread,
    free_port,
    free_ports,
    free_udp_ports,
    wait_until_registered,
)

WIDTH, HEIGHT, FPS = 640, 360, 30
VIDEO_BITRATE = 1_000_000
LOOP_FRAMES = 150  # 5 s of video, then the loop restarts at its keyframe
JOIN_TIMEOUT_S = 45.0
JOIN_CONCURRENCY = 3  # per client process
STEP_TIMEOUT_S = 180.0
SETTLE_S = 1.5
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
LEAN_POLL_MS = 50.0  # lean viewers' sockets are read every this many ms (--lean-poll-ms)
LEAN_BATCH = 64  # datagrams read per recvmmsg(2) call
LEAN_SLOT_BYTES = 4096  # per datagram: RTP from the worker, STUN and DTLS all fit
LEAN_RCVBUF_BYTES = 1 << 20  # SO_RCVBUF of a lean viewer's socket (the kernel caps it at rmem_max)
GOALS = {"cpu_us": 25.0, "viewers": 250, "delivered": 0.995, "first_p95_s": 1.0, "mb": 0.5}


# ---------------------------------------------------------------------------------------------
# /proc readings


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------------------------
# pre-encoded publisher


@functools.cache
def _texture(width: int) -> bytes:
    rng = random.Random(7)
    return bytes((x * 255 // (width * 4) + rng.randrange(8)) & 255 for x in range(width * 4))


def test_card(index: int, width: int = WIDTH, height: int = HEIGHT) -> av.VideoFrame:
    """Frame `index` of a moving, textured test card: a gradient with a little noise, scrolled
    a few pixels per frame (enough detail for a realistic bitrate, the same every run)."""
    texture = _texture(width)
    frame = av.VideoFrame(width=width, height=height, format="yuv420p")
    for plane_index, plane in enumerate(frame.planes):
        size = plane.line_size
        rows = plane.buffer_size // size
        shift = (index * (3 + plane_index)) % size
        out = bytearray()
        for row in range(rows):
            offset = (shift + row * 7) % (len(texture) - size)
            out += texture[offset : offset + size]
        plane.update(bytes(out))
    return frame


def encode_loop() -> list[av.Packet]:
    """LOOP_FRAMES frames of the test card, VP8 at ~VIDEO_BITRATE, once."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.bit_rate = VIDEO_BITRATE
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.time_base = fractions.Fraction(1, FPS)
    codec.gop_size = LOOP_FRAMES * 2
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "maxrate": str(VIDEO_BITRATE * 6 // 5),
        "bufsize": str(VIDEO_BITRATE // 2),
        "qmax": "60",
    }
    packets: list[av.Packet] = []
    for index in range(LOOP_FRAMES):
        frame = test_card(index)
        frame.pts = index
        frame.time_base = codec.time_base
        packets.extend(codec.encode(frame))
    packets.extend(codec.encode(None))
    return packets[:LOOP_FRAMES]


class PreEncodedVideo(MediaStreamTrack):
    """Serves the pre-encoded loop at FPS; `restart()` jumps back to its keyframe."""

    kind = "video"

    def __init__(self, packets: list[av.Packet]) -> None:
        super().__init__()
        self._packets = packets
        self._index = 0
        self._sent = 0
        self._start: float | None = None
        self.restarts = 0

    def restart(self) -> None:
        self._index = 0
        self.restarts += 1

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._sent / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = self._packets[self._index]
        self._index = (self._index + 1) % len(self._packets)
        packet.pts = self._sent * (90000 // FPS)
        packet.time_base = fractions.Fraction(1, 90000)
        self._sent += 1
        return packet


@dataclass
class Publisher:
    url: str
    token: str
    packets: list[av.Packet]
    pc: RTCPeerConnection = field(default_factory=loopback_peer)
    location: str | None = None
    video: PreEncodedVideo | None = None

    async def start(self) -> None:
        self.video = PreEncodedVideo(self.packets)
        sender = self.pc.addTrack(self.video)
        # A PLI/FIR from the worker restarts the loop at its keyframe (no encoder here).
        sender._send_keyframe = self.video.restart  # type: ignore[method-assign]
        self.pc.addTrack(AudioStreamTrack())
        self.location = await offer(self.pc, self.url, self.token)
        await wait_connected(self.pc, 20)

    async def packets_sent(self) -> int:
        report = await self.pc.getStats()
        return sum(s.packetsSent for s in report.values() if s.type == "outbound-rtp")

    async def stop(self) -> None:
        await delete(self.location, self.token)
        await self.pc.close()


async def offer(
    pc: RTCPeerConnection, url: str, token: str, http: httpx.AsyncClient | None = None
) -> str | None:
    """POST the offer (WHIP/WHEP), apply the answer; the resource's URL.

    Without `http`, a client is made for the request (about 20 ms of CPU here, mostly its TLS
    context).
    """
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    if http is None:
        async with httpx.AsyncClient(timeout=30) as own:
            response = await own.post(url, content=pc.localDescription.sdp, headers=headers)
    else:
        response = await http.post(url, content=pc.localDescription.sdp, headers=headers)
    if response.status_code != 201:
        raise RuntimeError(f"{url}: {response.status_code} {response.text.strip()[:200]}")
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    return str(httpx.URL(url).join(response.headers["location"]))


async def delete(location: str | None, token: str, http: httpx.AsyncClient | None = None) -> None:
    if location:
        headers = {"Authorization": f"Bearer {token}"}
        with contextlib.suppress(Exception):
            if http is None:
                async with httpx.AsyncClient(timeout=5) as own:
                    await own.delete(location, headers=headers)
            else:
                await http.delete(location, headers=headers, timeout=5)


async def wait_connected(pc: RTCPeerConnection, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
            raise RuntimeError(f"peer not connected ({pc.connectionState})")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# viewers


class CheapViewer:
    """WHEP peer that counts RTP datagrams and decodes nothing.

    Until its first VP8 keyframe, packets go through `RtpIngest` (SRTP unprotect and parse, no
    depayloading) to spot it; from then on a receive filter on the ICE connection counts each
    RTP datagram from its clear header and drops it before SRTP (STUN, DTLS and RTCP still pass),
    so a viewer costs the client as little as possible. No NACK is sent for losses then: what
    is counted is what the worker delivered.
    """

    def __init__(self) -> None:
        self.pc = loopback_peer()
        self.packets = 0
        self.posted_at = 0.0
        self.first_keyframe_s: float | None = None
        self.location: str | None = None
        self._closers = []
        self._filtered = False
        for kind in ("video", "audio"):
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            self._closers.append(RtpIngest(transceiver, self._counter(kind)).close)

    def _counter(self, kind: str):
        def count(packet) -> None:
            if self._filtered:
                return
            self.packets += 1
            if (
                kind == "video"
                and self.first_keyframe_s is None
                and is_keyframe("video/VP8", packet.payload)
            ):
                self.first_keyframe_s = time.monotonic() - self.posted_at
                self._install_filter()

        return count

    def _install_filter(self) -> None:
        dtls = self.pc.getTransceivers()[0].receiver.transport
        packets = self

        def drop(data: bytes) -> bool:
            # RTP (RFC 5761 demultiplexing): version 2, payload type outside RTCP's 64..95
            if len(data) > 12 and 128 <= data[0] < 192 and not 64 <= (data[1] & 0x7F) < 96:
                packets.packets += 1
                return True
            return False

        self._filtered = True
        set_receive_filter(dtls, drop)
        self._closers.append(lambda: set_receive_filter(dtls, None))

    async def start(self, url: str, token: str) -> None:
        self.posted_at = time.monotonic()
        self.location = await offer(self.pc, url, token)

    async def stop(self, token: str) -> None:
        await delete(self.location, token)
        for close in self._closers:
            with contextlib.suppress(Exception):
                close()
        with contextlib.suppress(Exception):
            await self.pc.close()


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


class BatchReceiver:
    """recvmmsg(2) (Linux) through ctypes: up to `LEAN_BATCH` datagrams of one socket per call.

    Datagram i lands in slot i of one buffer (`LEAN_SLOT_BYTES` each) shared by a process's
    lean viewers, which read one socket at a time; its length is `lengths[i * stride + offset]`,
    the datagram's real length even when it exceeded its slot (MSG_TRUNC). No source address is
    read.
    """

    def __init__(self) -> None:
        call = ctypes.CDLL(None, use_errno=True).recvmmsg
        call.argtypes = [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_void_p,
        ]
        call.restype = ctypes.c_int
        self._call = call
        self._buffer = ctypes.create_string_buffer(LEAN_BATCH * LEAN_SLOT_BYTES)
        self._iovecs = (_IoVec * LEAN_BATCH)()
        self._messages = (_MMsgHdr * LEAN_BATCH)()
        base = ctypes.addressof(self._buffer)
        for index in range(LEAN_BATCH):
            self._iovecs[index].iov_base = base + index * LEAN_SLOT_BYTES
            self._iovecs[index].iov_len = LEAN_SLOT_BYTES
            header = self._messages[index].msg_hdr
            header.msg_iov = ctypes.pointer(self._iovecs[index])
            header.msg_iovlen = 1
        self._address = ctypes.addressof(self._messages)
        self._flags = socket.MSG_DONTWAIT | socket.MSG_TRUNC
        self.data = memoryview(self._buffer).cast("B")
        # msg_len of message i is lengths[i * stride + offset] (the array seen as unsigned ints)
        self.lengths = memoryview(self._messages).cast("B").cast("I")
        self.stride = ctypes.sizeof(_MMsgHdr) // 4
        self.offset = _MMsgHdr.msg_len.offset // 4

    def receive(self, fd: int) -> int:
        """Datagrams now in the slots (0 if none were waiting); OSError on a socket error."""
        count: int = self._call(fd, self._address, LEAN_BATCH, self._flags, None)
        if count >= 0:
            return count
        error = ctypes.get_errno()
        if error in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
            return 0
        raise OSError(error, os.strerror(error))


class LeanPoller:
    """Reads the sockets of one event loop's lean viewers every `interval_s`, in one go.

    The sockets sit in this poller's own epoll set instead of asyncio's selector, so datagrams
    do not wake the event loop one by one: each tick is one `epoll_wait(0)`, then one
    recvmmsg(2) per socket holding data (more if it held more than `LEAN_BATCH`). A datagram
    waits at most about one interval in its socket's receive buffer.
    """

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LeanPoller]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.receiver = BatchReceiver()
        self._epoll = select.epoll()
        self._drains: dict[int, Callable[[], None]] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def running(cls) -> LeanPoller:
        """The poller of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        poller = cls._by_loop.get(loop)
        if poller is None:
            interval_ms = float(os.environ.get("FANOUT_LEAN_POLL_MS", LEAN_POLL_MS))
            poller = cls._by_loop[loop] = cls(interval_ms / 1000)
        return poller

    def add(self, fd: int, drain: Callable[[], None]) -> None:
        self._epoll.register(fd, select.EPOLLIN)
        self._drains[fd] = drain
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="lean-poller")

    def remove(self, fd: int) -> None:
        if self._drains.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)

    async def _run(self) -> None:
        poll = self._epoll.poll
        drains = self._drains
        while drains:
            await asyncio.sleep(self.interval_s)
            for fd, _events in poll(0):
                drain = drains.get(fd)
                if drain is not None:
                    drain()


class LeanViewer:
    """WHEP peer that counts the RTP/RTCP datagrams reaching its socket and handles none of them.

    ICE and DTLS run exactly as for `CheapViewer` (the WHEP POST and DELETE go through one HTTP
    client per client process: a fresh httpx client costs ~20 ms of CPU per join). When the DTLS
    transport becomes connected (before any media can arrive: the worker sends once it has the end
    of this handshake), the socket of the nominated ICE pair is taken out of asyncio's selector and
    read by the event loop's `LeanPoller`, every `--lean-poll-ms`, with recvmmsg(2). By RFC 7983's
    first byte, a datagram in 128..191 is RTP or RTCP (the second byte tells them apart as aiortc
    does): it is counted (datagrams and UDP payload bytes, SRTP as received) and dropped. Any other
    datagram (STUN, DTLS) goes to aioice's protocol as usual, so the worker's ICE consent checks are
    answered and this viewer's own checks get their answers; its source address is taken to be the
    nominated pair's remote address (on loopback the worker has one address, and consent checks only
    run on the nominated pair), which saves formatting an address per datagram. The socket's receive
    buffer is raised to `LEAN_RCVBUF_BYTES`, so the datagrams of one interval (and of a stall of the
    client process) wait there. Once connected, the peer connection's two receivers are stopped:
    they would never see a packet, and their RTCP loops and decoder threads would only cost CPU.

    What a lean viewer skips, compared with `CheapViewer`: SRTP/SRTCP decryption, RTP and RTCP
    parsing, RTCP receiver reports and NACK (its receivers see no packet and are stopped; the
    worker gets no RR, NACK or PLI from it and has none of those to handle), and asyncio's
    per-datagram read (an event-loop wake-up and a 256 KiB buffer per datagram). The exception
    is the first keyframe: until it, video RTP datagrams are also SRTP-decrypted and their VP8
    payload descriptor read (the worker starts a new viewer's video at a keyframe, so this is
    usually one packet); from then on nothing is decrypted. The first keyframe is timed when its
    datagram is read, up to one poll interval after it arrived.
    """

    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        self.pc = loopback_peer()
        self.http = http  # shared by the viewers of a client process (WHEP POST and DELETE)
        self.packets = 0  # RTP datagrams (delivery is computed from these)
        self.bytes = 0
        self.rtcp_packets = 0
        self.rtcp_bytes = 0
        self.oversized = 0  # non-media datagrams longer than a slot (dropped; none expected)
        self.posted_at = 0.0
        self.first_keyframe_s: float | None = None
        self.location: str | None = None
        self.error: str | None = None
        self._sock: socket.socket | None = None
        self._fd = -1
        self._poller: LeanPoller | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: asyncio.DatagramProtocol | None = None
        self._remote: tuple[str, int] = ("", 0)
        self._keyframe_pt = -1  # the video payload type until the first keyframe, then -1
        self._rx_srtp: pylibsrtp.Session | None = None
        for kind in ("video", "audio"):
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            # A closed RtpIngest leaves its receiver discarding whatever RTP would still reach
            # aiortc's path (none should), without statistics, so no receiver report is sent.
            RtpIngest(transceiver, _ignore_packet).close()
        # the first transceiver's DTLS transport is the one BUNDLE keeps
        self._dtls = self.pc.getTransceivers()[0].receiver.transport
        self._dtls.on("statechange", self._on_dtls_state)

    @property
    def tapped(self) -> bool:
        return self._sock is not None

    def _on_dtls_state(self) -> None:
        if self._dtls.state == "connected" and self._sock is None and self.error is None:
            try:
                self._tap()
            except Exception as exc:
                self.error = f"lean tap: {type(exc).__name__}: {exc}"

    def _tap(self) -> None:
        selected = nominated_datagram_transport(self._dtls)
        if selected is None:
            raise RuntimeError("no nominated ICE pair once DTLS is connected")
        transport, self._remote = selected
        video = negotiated_rtp(self.pc.getTransceivers()[0])
        vp8 = [c for c in video.codecs if c.mime_type.lower() == "video/vp8"]
        if vp8:
            self._keyframe_pt = vp8[0].payload_type
            # touches RTCDtlsTransport._rx_srtp, the inbound pylibsrtp.Session aiortc would
            # decrypt these packets with: used only for video packets before the first keyframe
            self._rx_srtp = self._dtls._rx_srtp
        poller = LeanPoller.running()
        self._transport = transport
        self._protocol = transport.get_protocol()
        fd = transport.get_extra_info("socket").fileno()
        # the same socket under a descriptor of our own, registered in the poller's epoll set
        sock = socket.socket(fileno=os.dup(fd))
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LEAN_RCVBUF_BYTES)
        # touches BaseSelectorEventLoop._remove_reader: the public remove_reader refuses a
        # descriptor a transport owns. The transport stops reading; closing it (aioice, at
        # pc.close()) still closes its descriptor, and ours is closed by stop().
        asyncio.get_running_loop()._remove_reader(fd)  # type: ignore[attr-defined]
        self._sock, self._fd, self._poller = sock, sock.fileno(), poller
        poller.add(self._fd, self._drain)

    def _drain(self) -> None:
        if self._poller is None or self._sock is None:
            return
        receiver = self._poller.receiver
        data, lengths = receiver.data, receiver.lengths
        stride, offset = receiver.stride, receiver.offset
        rtp = rtp_bytes = rtcp = rtcp_bytes = 0
        count = LEAN_BATCH
        try:
            while count == LEAN_BATCH:
                count = receiver.receive(self._fd)
                for index in range(count):
                    size = lengths[index * stride + offset]
                    start = index * LEAN_SLOT_BYTES
                    first = data[start] if size else 0
                    if 127 < first < 192:
                        second = data[start + 1] if size > 1 else 0
                        if 191 < second < 209:  # RTCP (payload types 192..208, as aiortc's)
                            rtcp += 1
                            rtcp_bytes += size
                        else:
                            rtp += 1
                            rtp_bytes += size
                            if second & 0x7F == self._keyframe_pt and size <= LEAN_SLOT_BYTES:
                                self._look_for_keyframe(bytes(data[start : start + size]))
                    elif size > LEAN_SLOT_BYTES:
                        self.oversized += 1
                    else:
                        self._pass_on(bytes(data[start : start + size]))
        except OSError as exc:
            if self._protocol is not None:
                self._protocol.error_received(exc)
        finally:
            self.packets += rtp
            self.bytes += rtp_bytes
            self.rtcp_packets += rtcp
            self.rtcp_bytes += rtcp_bytes

    def _pass_on(self, data: bytes) -> None:
        """STUN and DTLS: to aioice, as its transport would have delivered them."""
        if self._transport is None or self._transport.is_closing() or self._protocol is None:
            return
        self._protocol.datagram_received(data, self._remote)

    def _look_for_keyframe(self, data: bytes) -> None:
        if self._rx_srtp is None:
            return
        try:
            packet = RtpPacket.parse(self._rx_srtp.unprotect(data))
        except (pylibsrtp.Error, ValueError):
            return
        if is_keyframe("video/VP8", packet.payload):
            self.first_keyframe_s = time.monotonic() - self.posted_at
            self._keyframe_pt = -1
            self._rx_srtp = None

    async def start(self, url: str, token: str) -> None:
        """POST the offer, wait until connected, then stop the (idle) receivers."""
        self.posted_at = time.monotonic()
        self.location = await offer(self.pc, url, token, self.http)
        await wait_connected(self.pc, JOIN_TIMEOUT_S)
        if self.error is not None:
            raise RuntimeError(self.error)
        # aiortc starts the receivers right after the DTLS handshake; one that has not started
        # yet is left alone (stop() is then a no-op) and stays idle
        for transceiver in self.pc.getTransceivers():
            await transceiver.receiver.stop()

    async def stop(self, token: str) -> None:
        await delete(self.location, token, self.http)
        with contextlib.suppress(Exception):
            await self.pc.close()
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._poller is not None:
                self._poller.remove(self._fd)
            with contextlib.suppress(OSError):
                sock.close()


def _ignore_packet(packet: RtpPacket) -> None:
    pass


class DecodingViewer:
    """Stock aiortc WHEP peer that decodes what it receives."""

    def __init__(self) -> None:
        self.pc = loopback_peer()
        self.frames: list[float] = []
        self.posted_at = 0.0
        self.location: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.on(
            "track", lambda track: self._tasks.append(asyncio.create_task(self._read(track)))
        )

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                if track.kind == "video":
                    self.frames.append(time.monotonic())

    @property
    def first_frame_s(self) -> float | None:
        return self.frames[0] - self.posted_at if self.frames else None

    async def start(self, url: str, token: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.posted_at = time.monotonic()  # timed from the POST (the offer is ready)
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                url,
                content=self.pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
            )
        if response.status_code != 201:
            raise RuntimeError(f"{url}: {response.status_code} {response.text.strip()[:200]}")
        self.location = str(httpx.URL(url).join(response.headers["location"]))
        await self.pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))

    async def stop(self, token: str) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await delete(self.location, token)
        with contextlib.suppress(Exception):
            await self.pc.close()


# ---------------------------------------------------------------------------------------------
# client processes (cheap viewers)


def client_main(conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent shuts us down
    use_host_addresses(["127.0.0.1"])
    asyncio.run(_client_loop(conn))


async def _client_loop(conn: Any) -> None:
    loop = asyncio.get_running_loop()
    viewers: list[tuple[CheapViewer | LeanViewer, str]] = []
    failures: list[str] = []
    http: httpx.AsyncClient | None = None  # shared by lean viewers
    try:
        while True:
            ready = await loop.run_in_executor(None, conn.poll, 1.0)
            if not ready:
                continue
            command, *args = conn.recv()
            if command == "add":
                # ("add", url, tokens[, "lean"]): a viewer per token (a grant holds one session
                # at a time); a fourth element picks `LeanViewer`
                url, tokens, *kind = args
                make: Callable[[], CheapViewer | LeanViewer] = CheapViewer
                if kind and kind[0] == "lean":
                    if http is None:
                        http = httpx.AsyncClient(
                            timeout=30, limits=httpx.Limits(max_connections=None)
                        )
                    make = functools.partial(LeanViewer, http)
                sem = asyncio.Semaphore(
                    int(os.environ.get("FANOUT_JOIN_CONCURRENCY", JOIN_CONCURRENCY))
                )
                new: list[CheapViewer | LeanViewer] = []

                async def join_one(
                    token: str,
                    sem: asyncio.Semaphore = sem,
                    new: list[CheapViewer | LeanViewer] = new,
                    make: Callable[[], CheapViewer | LeanViewer] = make,
                    url: str = url,
                ) -> None:
                    async with sem:
                        viewer = make()
                        new.append(viewer)
                        viewers.append((viewer, token))
                        try:
                            await asyncio.wait_for(viewer.start(url, token), JOIN_TIMEOUT_S)
                            await wait_connected(viewer.pc, JOIN_TIMEOUT_S)
                            if isinstance(viewer, LeanViewer) and not viewer.tapped:
                                raise RuntimeError(viewer.error or "lean viewer: socket not tapped")
                        except Exception as exc:
                            failures.append(f"{type(exc).__name__}: {exc}"[:160])

                await asyncio.gather(*(join_one(token) for token in tokens))
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and any(
                    v.first_keyframe_s is None and v.pc.connectionState == "connected" for v in new
                ):
                    await asyncio.sleep(0.1)
                conn.send(
                    {
                        "keyframe_s": [v.first_keyframe_s for v in new],
                        "failures": list(failures),
                    }
                )
                failures.clear()
            elif command == "counts":
                connected = [v for v, _ in viewers if v.pc.connectionState == "connected"]
                conn.send(
                    {
                        "packets": sum(v.packets for v, _ in viewers),
                        "per_viewer": [v.packets for v, _ in viewers],
                        "connected": len(connected),
                        # lean viewers only (0 for cheap ones): RTP bytes, RTCP datagrams/bytes
                        "bytes": sum(getattr(v, "bytes", 0) for v, _ in viewers),
                        "rtcp_packets": sum(getattr(v, "rtcp_packets", 0) for v, _ in viewers),
                        "rtcp_bytes": sum(getattr(v, "rtcp_bytes", 0) for v, _ in viewers),
                        "oversized": sum(getattr(v, "oversized", 0) for v, _ in viewers),
                    }
                )
            elif command == "stop":
                break
    finally:
        await asyncio.gather(
            *(asyncio.wait_for(v.stop(t), 10) for v, t in viewers), return_exceptions=True
        )
        if http is not None:
            with contextlib.suppress(Exception):
                await http.aclose()
        with contextlib.suppress(Exception):
            conn.send("stopped")


@dataclass
class Client:
    process: Any
    conn: Any

    def ask(self, message: tuple, timeout_s: float) -> Any:
        self.conn.send(message)
        if not self.conn.poll(timeout_s):
            raise TimeoutError(f"client {self.process.pid} did not answer {message[0]!r}")
        return self.conn.recv()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("stop",))
            self.conn.poll(30)
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


def start_clients(count: int) -> list[Client]:
    ctx = mp.get_context("spawn")
    clients = []
    for _ in range(count):
        parent, child = ctx.Pipe()
        process = ctx.Process(target=client_main, args=(child,), daemon=True)
        process.start()
        clients.append(Client(process, parent))
    return clients


async def ask_all(clients: list[Client], messages: list[tuple], timeout_s: float) -> list[Any]:
    loop = asyncio.get_running_loop()
    return await asyncio.gather(
        *(
            loop.run_in_executor(None, c.ask, m, timeout_s)
            for c, m in zip(clients, messages, strict=True)
        )
    )


# ---------------------------------------------------------------------------------------------
# the stack: control plane + worker process


@dataclass
class Stack:
    control: ServerThread
    workers: Any
    worker_pids: list[int]
    worker_urls: list[str]
    occurrence_id: int
    tokens: dict[str, str]
    chair_site_id: int
    ends_at: Any
    grant_key_path: Path | None = None
    database: Any = None  # confbridge.db.Database (bench/sip.py books more sites in it)
    settings: Any = None  # confbridge.settings.Settings

    @property
    def worker_pid(self) -> int:
        return self.worker_pids[0]

    def admin(self, worker_url: str) -> dict[str, str]:
        """The headers of a worker's own key (its admin API, as its operator calls it)."""
        index = self.worker_urls.index(worker_url.rstrip("/"))
        return {"Authorization": f"Bearer {self.workers.node_key(index)}"}

    def relay_token(self, node_id: str) -> str:
        """A relay grant for the room, signed as the control plane signs it for an edge."""
        from confbridge.signing import signer_for
        from confbridge_kernel.contracts import RELAY_SITE_ID, GrantClaims, PeerRole, room_name

        assert self.grant_key_path is not None
        now = int(time.time())
        claims = GrantClaims(
            jti=f"bench-{node_id}-{now}",
            room=room_name(self.occurrence_id),
            occurrence_id=self.occurrence_id,
            site_id=RELAY_SITE_ID,
            site_name=f"node {node_id}",
            role=PeerRole.relay,
            chair_site_id=self.chair_site_id,
            starts_at=self.ends_at - timedelta(minutes=120),
            ends_at=self.ends_at,
            iat=now,
            exp=int(self.ends_at.timestamp()) + 1800,
        )
        return signer_for(self.grant_key_path).sign(claims)

    def extend(self, origin_url: str, edge_url: str) -> None:
        """Have the worker at `edge_url` relay the room from `origin_url` (a pipe)."""
        response = httpx.post(
            f"{edge_url}/rooms/occ-{self.occurrence_id}/pipe",
            json={
                "origin_url": origin_url,
                "occurrence_id": self.occurrence_id,
                "chair_site_id": self.chair_site_id,
                "ends_at": self.ends_at.isoformat(),
                "token": self.relay_token(edge_url),
            },
            headers=self.admin(edge_url),
            timeout=20,
        )
        if response.status_code != 200:
            raise RuntimeError(f"pipe: {response.status_code} {response.text[:200]}")

    def join(self, site: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.control.url}/api/v1/occurrences/{self.occurrence_id}/join",
            headers={"Authorization": f"Bearer {self.tokens[site]}"},
            timeout=10,
        )
        if response.status_code != 200:
            raise RuntimeError(f"join {site}: {response.status_code} {response.text[:200]}")
        return response.json()

    def viewer_grants(self, grant: dict[str, Any], count: int) -> list[str]:
        """`count` grants like `grant` (a join answer), each with its own id: a grant holds one
        WHEP session at a time, and every viewer of the benchmark watches as the same site.
        Signed with the control plane's key, as `bridge.service.join` signs them."""
        import uuid

        from confbridge import signing
        from sfu.grants import GrantVerifier

        assert self.grant_key_path is not None
        signer = signing.signer_for(self.grant_key_path)
        claims = GrantVerifier(signer.public_pem.encode()).verify(
            grant["token"], room=grant["whep_url"].rsplit("/", 1)[1]
        )
        return [
            signer.sign(claims.model_copy(update={"jti": uuid.uuid4().hex})) for _ in range(count)
        ]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.workers.close()
        with contextlib.suppress(Exception):
            self.control.stop()


NODE_SECRET = "bench-node-secret-0123456789abcdef"
CONTROL_START_TIMEOUT_S = 15.0


UDP_MODES = {
    # --udp-modes value: (sfu.udp_mode, sfu.udp_batch)
    "single": ("single", True),
    "single-sendto": ("single", False),
    "range": ("range", False),
}


def start_stack(
    data_dir: Path, worker_count: int = 1, udp_mode: str = "single", ice_lite: bool = True
) -> Stack:
    """The control plane and `worker_count` local workers on a fresh SQLite database, with an
    occurrence on now (chair hq, inviting p1) and a terminal token for both sites. `udp_mode`:
    a key of UDP_MODES (single port with sendmmsg, single port with sendto, a port per peer);
    `ice_lite`: the workers ICE-lite agents in single-port mode."""
    from confbridge import migrate
    from confbridge.db import Database
    from confbridge.local_workers import LocalWorkers
    from confbridge.main import create_app
    from confbridge.meetings.models import Occurrence

    worker_port = free_ports(worker_count)
    settings = make_settings(
        f"sqlite:///{data_dir / 'bench.sqlite3'}",
        data_dir,
        log_format="text",
        sfu={
            "public_url": f"http://127.0.0.1:{worker_port}",
            "node_secret": NODE_SECRET,
            "local_workers": worker_count,
            "udp_mode": UDP_MODES[udp_mode][0],
            "udp_batch": UDP_MODES[udp_mode][1],
            "ice_lite": ice_lite,
            "udp_port": free_udp_ports(worker_count),
        },
    )
    database = Database(settings)
    migrate.upgrade(database.engine)
    with database.session() as session:
        make_province(session)
        sites = province_sites(session)
    control = ServerThread(
        create_app(settings, database=database), start_timeout_s=CONTROL_START_TIMEOUT_S
    ).start()
    occurrence_id, tokens = open_occurrence(
        database, settings, sites, invited=("p1",), duration_min=120, title="Fan-out bench"
    )
    with database.session() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        assert occurrence is not None
        ends_at = occurrence.end_at
    workers = LocalWorkers(settings, control_url=control.url, database=database)
    workers.start()
    worker_urls = [f"http://127.0.0.1:{worker_port + i}" for i in range(worker_count)]
    stack = Stack(
        control,
        workers,
        [process.pid for process in workers.processes],
        worker_urls,
        occurrence_id,
        tokens,
        sites["hq"].id,
        ends_at,
        grant_key_path=settings.grant_key_path,
        database=database,
        settings=settings,
    )
    try:
        wait_until_registered(database, [f"local-{i}" for i in range(worker_count)])
    except AssertionError as exc:
        stack.close()
        raise RuntimeError("the SFU workers did not start") from exc
    return stack


# ---------------------------------------------------------------------------------------------
# MediaRelay baseline: a relay process with a minimal WHIP/WHEP-like HTTP front


def relay_main(port: int, ready: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    use_host_addresses(["127.0.0.1"])
    asyncio.run(_relay_loop(port, ready))


async def _relay_loop(port: int, ready: Any) -> None:
    from aiortc.contrib.media import MediaRelay

    relay = MediaRelay()
    tracks: dict[str, MediaStreamTrack] = {}
    pcs: dict[str, RTCPeerConnection] = {}
    stop = asyncio.Event()

    async def answer(path: str, sdp: str) -> tuple[int, str, str]:
        pc = loopback_peer()
        key = f"{len(pcs)}"
        pcs[key] = pc
        if path.startswith("/whip"):
            pc.on("track", lambda track: tracks.__setitem__(track.kind, track))
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        else:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            for kind in ("video", "audio"):
                if kind in tracks:
                    pc.addTrack(relay.subscribe(tracks[kind]))
        await pc.setLocalDescription(await pc.createAnswer())
        return 201, f"{path}/{key}", pc.localDescription.sdp

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode().split()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = (await reader.readexactly(length)).decode() if length else ""
            method, path = request[0], request[1]
            if method == "POST":
                status, location, text = await answer(path, body)
            elif method == "DELETE":
                pc = pcs.pop(path.rsplit("/", 1)[1], None)
                if pc is not None:
                    await pc.close()
                status, location, text = 200, "", ""
            else:
                status, location, text = 405, "", ""
            data = text.encode()
            head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(data)}\r\n"
            head += "Content-Type: application/sdp\r\nConnection: close\r\n"
            if location:
                head += f"Location: {location}\r\n"
            writer.write(head.encode() + b"\r\n" + data)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    ready.set()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    for pc in pcs.values():
        with contextlib.suppress(Exception):
            await pc.close()


# ---------------------------------------------------------------------------------------------
# measuring


@dataclass
class Row:
    label: str
    viewers: int  # cheap viewers
    total_viewers: int  # all viewers the server feeds
    connected: int = 0
    pub_pps: float = 0.0
    cpu_us: float = float("nan")
    server_cores: float = 0.0
    marginal_us: float = float("nan")
    delivered: float = float("nan")
    min_viewer: float = float("nan")
    decoded_fps: list[float] = field(default_factory=list)
    first_frame_s: list[float] = field(default_factory=list)
    keyframe_s: list[float] = field(default_factory=list)
    rss_mb: float = float("nan")
    rss_per_viewer_mb: float = float("nan")
    client_cores: float = 0.0
    main_cores: float = 0.0
    failures: list[str] = field(default_factory=list)
    # lean viewers only: RTP Mbit/s received per viewer (SRTP, UDP payload), RTCP datagrams/s
    # received per viewer, client CPU µs per datagram received
    viewer_mbps: float = float("nan")
    rtcp_pps: float = float("nan")
    client_us: float = float("nan")
    oversized: int = 0  # lean viewers: STUN/DTLS datagrams too long for a slot, dropped (ever)

    @property
    def viewers_per_core(self) -> float:
        return 1e6 / (self.cpu_us * self.pub_pps) if self.cpu_us > 0 and self.pub_pps else 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Bench:
    def __init__(
        self, clients: list[Client], server_pids: list[int], seconds: float, lean: bool = False
    ) -> None:
        self.clients = clients
        self.server_pids = server_pids
        self.seconds = seconds
        self.lean = lean  # the clients' viewers are `LeanViewer`s instead of `CheapViewer`s
        self.cheap = 0
        self.decoders: list[DecodingViewer] = []
        self.decoder_tokens: list[str] = []

    async def add_cheap(
        self, urls: list[str], grants: Callable[[int], list[str]], target: int
    ) -> tuple[list, list]:
        """Viewers up to `target`, each with a grant of its own from `grants(count)`; client
        process i joins through urls[i % len(urls)]."""
        need = target - self.cheap
        if need <= 0:
            return [], []
        shares = [
            need // len(self.clients) + (i < need % len(self.clients))
            for i in range(len(self.clients))
        ]
        replies = await ask_all(
            self.clients,
            [
                ("add", urls[i % len(urls)], grants(s), *(("lean",) if self.lean else ()))
                for i, s in enumerate(shares)
            ],
            STEP_TIMEOUT_S,
        )
        self.cheap = target
        keyframes = [k for r in replies for k in r["keyframe_s"]]
        failures = [f for r in replies for f in r["failures"]]
        return keyframes, failures

    async def stop_decoders(self) -> None:
        for viewer, token in zip(self.decoders, self.decoder_tokens, strict=True):
            await viewer.stop(token)
        self.decoders, self.decoder_tokens = [], []

    async def restart_decoders(
        self, urls: list[str], grants: Callable[[int], list[str]], count: int
    ) -> None:
        await self.stop_decoders()
        self.decoders = [DecodingViewer() for _ in range(count)]
        self.decoder_tokens = grants(count)
        await asyncio.gather(
            *(
                v.start(urls[i % len(urls)], token)
                for i, (v, token) in enumerate(zip(self.decoders, self.decoder_tokens, strict=True))
            )
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(v.frames for v in self.decoders):
            await asyncio.sleep(0.05)

    async def snapshot(self, publisher: Publisher) -> dict[str, Any]:
        counts = await ask_all(self.clients, [("counts",)] * len(self.clients), 30)
        return {
            "at": time.monotonic(),
            "server_cpu": sum(proc_cpu_s(pid) for pid in self.server_pids),
            "client_cpu": sum(proc_cpu_s(c.process.pid) for c in self.clients),
            "main_cpu": sum(os.times()[:2]),
            "sent": await publisher.packets_sent(),
            "received": sum(c["packets"] for c in counts),
            "bytes": sum(c.get("bytes", 0) for c in counts),
            "rtcp": sum(c.get("rtcp_packets", 0) for c in counts),
            "oversized": sum(c.get("oversized", 0) for c in counts),
            "per_viewer": [p for c in counts for p in c["per_viewer"]],
            "connected": sum(c["connected"] for c in counts),
            "frames": [len(v.frames) for v in self.decoders],
        }

    async def measure(
        self,
        row: Row,
        publisher: Publisher,
        rss0: float,
        urls: list[str],
        grants: Callable[[int], list[str]],
        decoders: int,
    ) -> Row:
        keyframes, failures = await self.add_cheap(urls, grants, row.viewers)
        row.keyframe_s = [k for k in keyframes if k is not None]
        row.failures = failures + ["no keyframe within 10 s after joining"] * sum(
            k is None for k in keyframes
        )
        if decoders:
            await self.restart_decoders(urls, grants, decoders)
            # a decoding viewer without a frame within 15 s counts as infinitely late
            row.first_frame_s = [v.first_frame_s or float("inf") for v in self.decoders]
        await asyncio.sleep(SETTLE_S)
        before = await self.snapshot(publisher)
        await asyncio.sleep(self.seconds)
        after = await self.snapshot(publisher)
        elapsed = after["at"] - before["at"]
        sent = after["sent"] - before["sent"]
        if sent <= 0:
            raise RuntimeError(
                "the publisher sent no RTP packets in the window (its peer connection is "
                f"{publisher.pc.connectionState}): no figures for this step"
            )
        row.connected = after["connected"]
        row.pub_pps = sent / elapsed
        server_cpu = after["server_cpu"] - before["server_cpu"]
        row.server_cores = server_cpu / elapsed
        row.total_viewers = row.connected + len(self.decoders)  # viewers actually fed
        if sent and row.total_viewers:
            row.cpu_us = server_cpu * 1e6 / (sent * row.total_viewers)
        if sent and row.viewers:
            row.delivered = (after["received"] - before["received"]) / (sent * row.viewers)
            deltas = [
                a - b
                for a, b in zip(
                    after["per_viewer"],
                    (before["per_viewer"] + [0] * len(after["per_viewer"]))[
                        : len(after["per_viewer"])
                    ],
                    strict=True,
                )
            ]
            row.min_viewer = min(deltas) / sent if deltas else float("nan")
        row.decoded_fps = [
            (a - b) / elapsed for a, b in zip(after["frames"], before["frames"], strict=True)
        ]
        row.rss_mb = sum(proc_rss_mb(pid) for pid in self.server_pids)
        if row.total_viewers:
            row.rss_per_viewer_mb = (row.rss_mb - rss0) / row.total_viewers
        row.client_cores = (after["client_cpu"] - before["client_cpu"]) / elapsed
        row.main_cores = (after["main_cpu"] - before["main_cpu"]) / elapsed
        if self.lean and row.viewers:
            received = after["received"] - before["received"]
            rtcp = after["rtcp"] - before["rtcp"]
            row.viewer_mbps = (after["bytes"] - before["bytes"]) * 8 / elapsed / row.viewers / 1e6
            row.rtcp_pps = rtcp / elapsed / row.viewers
            row.oversized = after["oversized"]
            if received + rtcp:
                row.client_us = (
                    (after["client_cpu"] - before["client_cpu"]) * 1e6 / (received + rtcp)
                )
        return row


def fmt(value: float, spec: str = ".1f") -> str:
    return "—" if value != value else format(value, spec)


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'server':<20}{'N':>5}{'fed':>5}{'conn':>5}{'pub pps':>8}{'srv core':>9}"
        f"{'µs/pkt':>8}{'marg µs':>8}{'view/core':>10}{'deliv %':>9}{'min %':>7}{'dec fps':>12}"
        f"{'1st frame s':>13}{'kf p50/p95 s':>14}{'RSS MB':>8}{'MB/view':>8}"
        f"{'cli core':>9}{'pub core':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        fps = "/".join(fmt(f, ".0f") for f in r.decoded_fps) or "—"
        first = "/".join(fmt(f, ".2f") for f in r.first_frame_s) or "—"
        kf = (
            f"{fmt(pct(r.keyframe_s, 0.5), '.2f')}/{fmt(pct(r.keyframe_s, 0.95), '.2f')}"
            if r.keyframe_s
            else "—"
        )
        print(
            f"{r.label:<20}{r.viewers:>5}{r.total_viewers:>5}{r.connected:>5}"
            f"{r.pub_pps:>8.0f}{r.server_cores:>9.2f}{fmt(r.cpu_us):>8}{fmt(r.marginal_us):>8}"
            f"{fmt(r.viewers_per_core, '.0f'):>10}{fmt(r.delivered * 100, '.2f'):>9}"
            f"{fmt(r.min_viewer * 100, '.1f'):>7}{fps:>12}{first:>13}{kf:>14}"
            f"{fmt(r.rss_mb, '.0f'):>8}{fmt(r.rss_per_viewer_mb, '.3f'):>8}"
            f"{r.client_cores:>9.2f}{r.main_cores:>9.2f}"
        )
    for r in rows:
        if r.failures:
            print(
                f"  {r.label} N={r.viewers}: {len(r.failures)} failed joins, e.g. {r.failures[0]}"
            )


def print_mode_ratios(rows: list[Row]) -> None:
    """Worker µs per forwarded packet of each media socket mode against range mode, per N."""
    by_mode: dict[str, dict[int, Row]] = {}
    for row in rows:
        if row.label.startswith("sfu") and row.viewers > 0:
            by_mode.setdefault(row.label.rsplit(" ", 1)[1], {})[row.viewers] = row
    ranged = by_mode.get("range")
    if not ranged or len(by_mode) < 2:
        return
    print("\nworker µs/pkt against range mode in this run (one socket per peer):")
    for mode, measured in by_mode.items():
        if mode == "range":
            continue
        for n, row in sorted(measured.items()):
            base = ranged.get(n)
            if base is not None and base.cpu_us > 0:
                print(
                    f"  {mode} N={n}: {row.cpu_us:.1f} µs against {base.cpu_us:.1f} µs: "
                    f"{row.cpu_us / base.cpu_us:.2f}×"
                )


def print_goals(rows: list[Row], viewer_kind: str = "cheap") -> None:
    sfu = [r for r in rows if r.label.startswith("sfu") and r.viewers > 0]
    relay = [r for r in rows if r.label == "mediarelay" and r.viewers > 0]
    if not sfu:
        print("no SFU figures")
        return
    largest = max(sfu, key=lambda r: r.viewers)
    worst_us = max((r.cpu_us for r in sfu if r.cpu_us == r.cpu_us), default=float("nan"))
    print()
    ok = lambda b: "met" if b else "NOT met"  # noqa: E731
    print(
        f"goal ≤ {GOALS['cpu_us']:.0f} µs CPU per forwarded packet: "
        f"{ok(worst_us <= GOALS['cpu_us'])}"
        f" (worst {worst_us:.1f} µs; "
        + ", ".join(f"N={r.viewers}: {r.cpu_us:.1f}" for r in sfu)
        + ")"
    )
    # one worker per core: the goal is 250 viewers per worker (500 on two cores)
    workers = int(largest.label.split("×")[1]) if "×" in largest.label else 1
    want = GOALS["viewers"] * workers
    # the largest N that delivered enough decides (a larger N tried and missed is shown too)
    passed = [r for r in sfu if r.delivered >= GOALS["delivered"]]
    best = max(passed, key=lambda r: r.viewers) if passed else largest
    reach = best.viewers >= want and best.delivered >= GOALS["delivered"]
    shown = [best] + ([largest] if largest is not best else [])
    print(
        f"goal ≥ {want} viewers with ≥ {GOALS['delivered'] * 100:.1f} % delivered: "
        f"{ok(reach)} ("
        + "; ".join(
            f"N={r.viewers}: {r.connected} connected, {r.delivered * 100:.2f} % delivered, "
            f"workers {r.server_cores:.2f} cores, implied {r.viewers_per_core:.0f} viewers "
            "per core"
            for r in shown
        )
        + ")"
    )
    firsts = [f for r in sfu for f in r.first_frame_s]
    kfs = [k for r in sfu for k in r.keyframe_s]
    p95 = pct(firsts, 0.95)
    print(
        f"goal first frame p95 ≤ {GOALS['first_p95_s']:.0f} s: {ok(p95 <= GOALS['first_p95_s'])}"
        f" (decoding viewers: p50 {fmt(pct(firsts, 0.5), '.2f')} s, p95 {fmt(p95, '.2f')} s over "
        f"{len(firsts)}; {viewer_kind} viewers' first keyframe packet: "
        f"p50 {fmt(pct(kfs, 0.5), '.2f')} s,"
        f" p95 {fmt(pct(kfs, 0.95), '.2f')} s over {len(kfs)})"
    )
    mb = largest.rss_per_viewer_mb
    print(
        f"goal ≤ {GOALS['mb']} MB per viewer: {ok(mb <= GOALS['mb'])} (N={largest.viewers}: "
        f"{mb:.3f} MB; " + ", ".join(f"N={r.viewers}: {r.rss_per_viewer_mb:.3f}" for r in sfu) + ")"
    )
    if relay:
        small = {r.viewers: r for r in sfu}
        for r in relay:
            ref = min(sfu, key=lambda s: abs(s.total_viewers - r.total_viewers))
            print(
                f"baseline MediaRelay N={r.viewers}: {r.cpu_us:.1f} µs per forwarded packet, "
                f"{r.cpu_us / ref.cpu_us:.1f}× the SFU's {ref.cpu_us:.1f} µs (SFU N={ref.viewers})"
            )
        del small


# ---------------------------------------------------------------------------------------------
# main


def worker_peers(stack: Stack) -> str:
    """What each worker's admin API says about its peers (connected ingest/egress)."""
    parts = []
    for url in stack.worker_urls:
        try:
            rooms = httpx.get(
                f"{url}/rooms", timeout=5, headers={"Authorization": f"Bearer {NODE_SECRET}"}
            ).json()["rooms"]
        except Exception:
            parts.append(f"{url}: /rooms unavailable")
            continue
        peers = [p for room in rooms for p in room["peers"] if p["connected"]]
        ingest = sum(p["direction"] == "ingest" for p in peers)
        parts.append(f"{ingest} publisher(s), {len(peers) - ingest} viewers connected")
    return "workers: " + "; ".join(parts)


async def run_sfu(
    args: argparse.Namespace,
    mode: str,
    packets: list[av.Packet],
    clients: list,
    cleanup: list,
    rows: list[Row],
    problems: list[str],
) -> bool:
    """One series through the real worker(s) in media socket mode `mode`; False if a step
    failed (it is in `problems`)."""
    data_dir = Path(tempfile.mkdtemp(prefix="fanout-"))
    cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    stack = await asyncio.to_thread(start_stack, data_dir, args.workers, mode)
    cleanup.append(stack.close)
    chair = stack.join("hq")
    ward = stack.join("p1")
    publisher = Publisher(chair["whip_url"], chair["token"], packets)
    ward_grants = functools.partial(stack.viewer_grants, ward)
    bench = Bench(clients, stack.worker_pids, args.seconds, lean=args.lean_viewers)
    label = ("sfu" if args.workers == 1 else f"sfu×{args.workers}") + f" {mode}"
    try:
        await publisher.start()
        await asyncio.sleep(2)
        # one room over every worker: the others relay the origin's media through pipes
        origin = chair["whip_url"].split("/whip/", 1)[0]
        urls = [ward["whep_url"]]
        for edge in stack.worker_urls:
            if edge != origin:
                await asyncio.to_thread(stack.extend, origin, edge)
                urls.append(f"{edge}/whep/occ-{stack.occurrence_id}")
        rss0 = sum(proc_rss_mb(pid) for pid in stack.worker_pids)
        zero = Row(label, 0, 0)
        await bench.measure(zero, publisher, rss0, urls, ward_grants, 0)
        zero.rss_mb = rss0
        rows.append(zero)
        print(
            f"worker pids {stack.worker_pids}: publisher only, RSS {rss0:.0f} MB, "
            f"{zero.server_cores:.2f} cores",
            flush=True,
        )
        for n in args.viewers:
            row = Row(label, n, n + 2)
            try:
                await bench.measure(row, publisher, rss0, urls, ward_grants, 2)
            except Exception as exc:
                print(f"N={n}: {type(exc).__name__}: {exc}", flush=True)
                problems.append(f"{mode} N={n}: {type(exc).__name__}: {exc}")
                return False
            if row.pub_pps:
                row.marginal_us = (
                    (row.server_cores - zero.server_cores) * 1e6 / (row.pub_pps * row.total_viewers)
                )
            rows.append(row)
            print(
                f"{mode} N={n}: {row.cpu_us:.1f} µs/pkt, {row.delivered * 100:.2f} % delivered, "
                f"{row.connected} connected, worker {row.server_cores:.2f} cores, "
                f"clients {row.client_cores:.2f}, publisher+decoders {row.main_cores:.2f}; "
                + (
                    f"lean viewers: {fmt(row.client_us, '.1f')} µs client CPU per datagram, "
                    f"{fmt(row.viewer_mbps, '.2f')} Mbit/s and {fmt(row.rtcp_pps, '.1f')} RTCP/s"
                    " received per viewer"
                    + (
                        f", {row.oversized} oversized non-media datagrams dropped"
                        if row.oversized
                        else ""
                    )
                    + "; "
                    if args.lean_viewers
                    else ""
                )
                + f"{await asyncio.to_thread(worker_peers, stack)}",
                flush=True,
            )
    finally:
        await bench.stop_decoders()
        await ask_all(clients, [("stop",)] * len(clients), 60)
        await publisher.stop()
        stack.close()
    return True


async def run(
    args: argparse.Namespace, cleanup: list, rows: list[Row], problems: list[str] | None = None
) -> list[Row]:
    """Measure every step; a step that fails ends the SFU series and is added to `problems`."""
    problems = [] if problems is None else problems
    use_host_addresses(["127.0.0.1"])
    t0 = time.process_time()
    packets = encode_loop()
    size = sum(p.size for p in packets)
    print(
        f"pre-encoded {len(packets)} VP8 frames {WIDTH}x{HEIGHT} in "
        f"{time.process_time() - t0:.1f} s CPU: {size * 8 * FPS / len(packets) / 1e6:.2f} Mbit/s,"
        f" keyframe {packets[0].size} B",
        flush=True,
    )
    clients = start_clients(args.clients)
    cleanup.append(lambda: [c.close() for c in clients])

    # --- the real worker, in each media socket mode asked for
    for index, mode in enumerate(args.udp_modes):
        if index:
            for c in clients:
                c.process.join(10)
            clients[:] = start_clients(args.clients)
        # a mode whose series failed leaves its figures out; the next mode still runs
        try:
            await run_sfu(args, mode, packets, clients, cleanup, rows, problems)
        except RuntimeError as exc:
            print(f"{mode}: {exc}", flush=True)
            problems.append(f"{mode}: {exc}")

    # --- baseline: aiortc MediaRelay in its own process
    if args.baseline_viewers:
        for c in clients:
            c.process.join(10)
        clients[:] = start_clients(args.clients)
        ctx = mp.get_context("spawn")
        port = free_port()
        ready = ctx.Event()
        relay = ctx.Process(target=relay_main, args=(port, ready), daemon=True)
        relay.start()

        def stop_relay() -> None:
            if relay.is_alive():
                relay.terminate()
                relay.join(10)
            if relay.is_alive():
                relay.kill()

        cleanup.append(stop_relay)
        if not ready.wait(30):
            raise RuntimeError("the relay did not start")
        url = f"http://127.0.0.1:{port}"
        publisher = Publisher(f"{url}/whip", "-", packets)
        bench = Bench(clients, [relay.pid], args.seconds, lean=args.lean_viewers)
        try:
            await publisher.start()
            await asyncio.sleep(3)
            rss0 = proc_rss_mb(relay.pid)
            for n in args.baseline_viewers:
                row = Row("mediarelay", n, n)
                await bench.measure(row, publisher, rss0, [f"{url}/whep"], "-", 0)
                rows.append(row)
                print(
                    f"MediaRelay N={n}: {row.cpu_us:.1f} µs/pkt, relay {row.server_cores:.2f}"
                    f" cores, {row.delivered * 100:.2f} % delivered",
                    flush=True,
                )
        finally:
            await ask_all(clients, [("stop",)] * len(clients), 60)
            await publisher.stop()
            stop_relay()
    return rows


def main() -> None:
    if "--gallery" in sys.argv[1:]:
        # the gallery case (bench/gallery.py): one console viewing a page of thumbnails while
        # the halls watch the programme; its own options follow
        import gallery

        sys.argv.remove("--gallery")
        gallery.main()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ints = lambda s: [int(x) for x in s.split(",") if x.strip()]  # noqa: E731
    parser.add_argument("--viewers", type=ints, default=[10, 50, 100, 250])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--baseline-viewers", type=ints, default=[1, 3])
    parser.add_argument("--clients", type=int, default=2, help="client processes for viewers")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        choices=[1, 2],
        help="workers serving the room (2: the second relays the first through a pipe, and "
        "client process i views through worker i mod 2)",
    )
    parser.add_argument(
        "--lean-viewers",
        action="store_true",
        help="LeanViewer instead of CheapViewer in the client processes: RTP/RTCP datagrams are "
        "counted at the socket and dropped (no SRTP, no RTCP RR/NACK sent to the workers)",
    )
    parser.add_argument(
        "--lean-poll-ms",
        type=float,
        default=LEAN_POLL_MS,
        help="with --lean-viewers: how often each client process reads its viewers' sockets",
    )
    parser.add_argument(
        "--udp-modes",
        type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        default=["single"],
        help="media socket modes of the worker, one series each in this order: single (one "
        "UDP port, sends batched with sendmmsg), single-sendto (one port, sendto per packet), "
        "range (a socket per peer); e.g. range,single,single-sendto for their ratios",
    )
    parser.add_argument("--timeout", type=float, default=1200.0, help="bound on the whole run")
    parser.add_argument(
        "--join-concurrency",
        type=int,
        default=JOIN_CONCURRENCY,
        help="WHEP joins in flight per client process",
    )
    args = parser.parse_args()
    os.environ["FANOUT_JOIN_CONCURRENCY"] = str(args.join_concurrency)  # read by the clients
    if args.lean_poll_ms <= 0:
        parser.error("--lean-poll-ms must be positive")
    os.environ["FANOUT_LEAN_POLL_MS"] = str(args.lean_poll_ms)  # read by the clients too
    args.viewers = sorted(args.viewers)
    unknown = [m for m in args.udp_modes if m not in UDP_MODES]
    if unknown or not args.udp_modes:
        parser.error(f"--udp-modes: choose among {', '.join(UDP_MODES)} (got {unknown})")
    cleanup: list = []
    rows: list[Row] = []
    problems: list[str] = []
    print(
        f"{os.cpu_count()} CPUs; CPU time from /proc/<pid>/stat (utime+stime, "
        f"{1000 // CLK_TCK} ms ticks); RSS from /proc/<pid>/status VmRSS",
        flush=True,
    )
    try:
        asyncio.run(asyncio.wait_for(run(args, cleanup, rows, problems), args.timeout))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        problems.append("interrupted")
    except Exception as exc:
        reason = str(exc) or (
            f"the run took longer than --timeout {args.timeout:g} s"
            if isinstance(exc, TimeoutError)
            else "no message"
        )
        print(f"stopped: {type(exc).__name__}: {reason}", file=sys.stderr)
        problems.append(f"stopped: {type(exc).__name__}: {reason}")
    finally:
        for step in reversed(cleanup):
            with contextlib.suppress(Exception):
                step()
    if rows:
        print()
        print_table(rows)
        print_mode_ratios(rows)
        kind = "lean" if args.lean_viewers else "cheap"
        print_goals(rows, kind)
        print(
            f"\nN: {kind} viewers; fed: viewers the server sends to (N + 2 decoding viewers for "
            "the SFU); µs/pkt: server CPU / (publisher packets × fed); marg µs: the same after "
            "subtracting the worker's CPU with the publisher alone (N=0); view/core: 1e6 / "
            "(µs/pkt × publisher packets/s); deliv/min %: packets "
            "counted at those viewers / (publisher packets × N), all / worst viewer "
            "(MediaRelay re-encodes, "
            "so its packet counts differ from the publisher's: not a loss figure); cli core, "
            "pub core: CPU of the viewer client processes and of this process (publisher, "
            "decoding viewers, control plane) in the same window, competing for the same cores."
        )
        if args.lean_viewers:
            print(
                "Lean viewers count RTP/RTCP datagrams at their socket (recvmmsg every "
                f"{args.lean_poll_ms:g} ms) and drop them: no SRTP decryption (except video "
                "packets before the first keyframe, to find it; kf times are read at the poll, "
                "up to one interval late), no parsing, and no RTCP receiver reports, NACK or "
                "PLI sent back, so the workers handle no RTCP from them. A viewer that decodes "
                "sends RR about once a second per stream and NACK on loss; the workers' µs/pkt "
                "here leaves that work out for N of the N + 2 viewers. The two decoding "
                "viewers are stock aiortc peers and do all of it."
            )
    if problems:
        print(
            f"\nFAILED ({len(problems)} step(s) did not complete; figures above are only "
            "those measured): " + "; ".join(problems),
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
