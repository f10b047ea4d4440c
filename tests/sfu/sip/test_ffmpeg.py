"""A leg's video against FFmpeg as the room system: its RTP sender (parameter sets only in the
SDP, as `-flags +global_header` makes it) into the room, and its RTP receiver decoding ours,
forwarded or transcoded from VP8."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
from pathlib import Path

import pytest
from aiortc.rtp import RtpPacket

from sfu.forwarding import Slot, Source
from sfu.sip.video import SipEgress, SipVideo
from tests.sfu.sip.media import decode, encode, packetize
from tests.sfu.sip.test_video import SIP_PT, Wire, h264
from tests.sfu.sip.test_video_transcode import Vp8Stream, vp8

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]

FFMPEG_SSRC = 0x0FF0_0001


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def ffmpeg_sends(port: int, sdp_file: Path) -> asyncio.subprocess.Process:
    """FFmpeg's libx264 and RTP muxer: baseline, SPS/PPS only in its SDP's fmtp."""
    return await asyncio.create_subprocess_exec(
        *("ffmpeg", "-hide_banner", "-loglevel", "error", "-re"),
        *("-f", "lavfi", "-i", "testsrc=size=176x144:rate=15", "-t", "3"),
        *("-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline"),
        *("-tune", "zerolatency", "-g", "15", "-flags", "+global_header"),
        *("-x264-params", "repeat-headers=0", "-payload_type", str(SIP_PT)),
        *("-ssrc", str(FFMPEG_SSRC), "-f", "rtp", "-sdp_file", str(sdp_file)),
        f"rtp://127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_ffmpeg_room_system_with_parameter_sets_only_in_its_sdp_is_decodable(
    tmp_path: Path,
) -> None:
    """SPS/PPS seeded from sprop-parameter-sets go in front of FFmpeg's IDRs: a viewer decodes;
    the same stream without the SDP's parameter sets decodes to nothing."""
    sock = udp_socket()
    sdp_file = tmp_path / "ffmpeg.sdp"
    sender = await ffmpeg_sends(sock.getsockname()[1], sdp_file)
    loop = asyncio.get_running_loop()
    received: list[bytes] = []
    try:
        while True:
            received.append(await asyncio.wait_for(loop.sock_recv(sock, 2048), 5))
    except TimeoutError:
        pass
    finally:
        sock.close()
    _, errors = await sender.communicate()
    assert sender.returncode == 0, errors.decode()
    sprop = re.search(r"sprop-parameter-sets=([^;\s]+)", sdp_file.read_text())
    assert sprop is not None

    def viewer_of(leg: SipVideo) -> list[RtpPacket]:
        sent: list[bytes] = []
        viewer = Slot(SipEgress(sent.append, 0xBEEF, h264(96)))
        viewer.switch_to(leg.source)
        for data in received:
            leg.on_rtp(RtpPacket.parse(data))
        return [RtpPacket.parse(data) for data in sent]

    seeded = Wire().leg(sprop_parameter_sets=sprop.group(1))
    frames = decode(viewer_of(seeded))
    assert len(frames) >= 30 and frames[0].width == 176
    assert seeded.stats().parameter_sets_inserted >= 3  # every IDR: FFmpeg sends none in band
    assert decode(viewer_of(Wire().leg())) == []


class FfmpegRoomSystem:
    """FFmpeg as a room system's decoder: its RTP demuxer, given the SDP a leg answers with,
    decodes what the leg sends to it; `frames()` counts what it decoded (framecrc)."""

    def __init__(self, tmp_path: Path, frames: int = 10) -> None:
        receiver_sock = udp_socket()
        self.port = receiver_sock.getsockname()[1]
        receiver_sock.close()  # FFmpeg binds it
        self.sdp_file = tmp_path / "leg.sdp"
        self.sdp_file.write_text(
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=leg\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=video {self.port} RTP/AVP {SIP_PT}\r\na=rtpmap:{SIP_PT} H264/90000\r\n"
            f"a=fmtp:{SIP_PT} packetization-mode=1;profile-level-id=42e01f\r\n"
        )
        self.count = frames
        self.out = udp_socket()
        self.process: asyncio.subprocess.Process | None = None

    def leg(self) -> SipVideo:
        return SipVideo(
            send_rtp=lambda data: self.out.sendto(data, ("127.0.0.1", self.port)),
            send_rtcp=lambda data: None,
            payload_type=SIP_PT,
        )

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *("ffmpeg", "-hide_banner", "-loglevel", "error", "-protocol_whitelist"),
            *("file,udp,rtp", "-i", str(self.sdp_file), "-frames:v", str(self.count)),
            *("-f", "framecrc", "-"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(1.0)  # FFmpeg opens its socket

    async def decoded(self) -> str:
        """Its framecrc output, once it has decoded its frames (asserts a clean exit)."""
        assert self.process is not None
        stdout, errors = await asyncio.wait_for(self.process.communicate(), 15)
        assert self.process.returncode == 0, errors.decode()
        return stdout.decode()

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.out.close()


def frame_lines(framecrc: str) -> list[str]:
    return [line for line in framecrc.splitlines() if line and not line.startswith("#")]


async def test_ffmpeg_decodes_what_a_leg_sends(tmp_path: Path) -> None:
    """FFmpeg's RTP demuxer, given the SDP the leg would answer with, decodes the leg's
    stream."""
    room_system = FfmpegRoomSystem(tmp_path)
    leg = room_system.leg()
    publisher = Source("video", [h264()])
    leg.slot.switch_to(publisher)
    packets = packetize(
        encode(90, range(0, 90, 15), keep_parameter_sets_after=90), payload_type=96, ssrc=7
    )
    try:
        await room_system.start()
        for packet in packets:
            publisher.push(packet)
            if packet.marker:
                await asyncio.sleep(1 / 30)
        decoded = await room_system.decoded()
    finally:
        leg.close()
        await room_system.close()
    assert len(frame_lines(decoded)) == 10
    assert "#dimensions 0: 320x240" in decoded


async def test_ffmpeg_decodes_what_a_leg_transcodes_from_vp8(tmp_path: Path) -> None:
    """A VP8 source, transcoded for the leg: FFmpeg, given the leg's H.264 SDP, decodes it at
    the source's size."""
    room_system = FfmpegRoomSystem(tmp_path)
    leg = room_system.leg()
    publisher = Source("video", [vp8()])
    leg.slot.switch_to(publisher)
    stream = Vp8Stream(320, 240)
    try:
        await room_system.start()
        for _ in range(60):
            for packet in stream.frame():
                publisher.push(packet)
            await asyncio.sleep(1 / 30)
        decoded = await room_system.decoded()
    finally:
        leg.close()
        await room_system.close()
    assert len(frame_lines(decoded)) == 10
    assert "#dimensions 0: 320x240" in decoded
    assert leg.egress.transcoders_started == 1
