"""SIP legs on a real worker: a plain-RTP room system (PyAV and an asyncio UDP socket, as a
Polycom would send) dials into the lobby, keys digits, is admitted with a join grant, is heard
by a WebRTC hall and hears the chair."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import struct
import time
from fractions import Fraction
from typing import Any

import av
import httpx
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from confbridge.sites.models import Site
from sfu.sip.dtmf import encode_event
from tests.support.peers import TONE_HZ, ToneTrack, WhepViewer, WhipPublisher, until
from tests.support.servers import Stack

LEG_TONE_HZ = 1000
PCMU, DTMF_PT = 0, 101


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.argmax(spectrum)) * rate / len(pcm)


class RoomSystem(asyncio.DatagramProtocol):
    """A SIP room system's media: PCMU and RFC 4733 digits over plain RTP on loopback."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[tuple[float, bytes]] = []
        self.ssrc = random.getrandbits(32)
        self.seq = random.randint(0, 0x7FFF)
        self.ts = random.getrandbits(32)
        self.target: tuple[str, int] | None = None
        self._encoder = av.CodecContext.create("pcm_mulaw", "w")
        self._encoder.sample_rate, self._encoder.layout, self._encoder.format = 8000, "mono", "s16"
        self._encoder.time_base = Fraction(1, 8000)
        self._encoder.open()
        self._sent = 0
        self.talking = True
        self.keying = False
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((time.monotonic(), data))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def offer(self) -> str:
        return (
            f"v=0\r\no=polycom 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.port} RTP/AVP {PCMU} {DTMF_PT}\r\n"
            f"a=rtpmap:{DTMF_PT} telephone-event/8000\r\na=fmtp:{DTMF_PT} 0-15\r\na=sendrecv\r\n"
        )

    def _send(
        self, payload_type: int, payload: bytes, marker: bool = False, ts: int | None = None
    ) -> None:
        assert self.transport is not None and self.target is not None
        self.seq = (self.seq + 1) & 0xFFFF
        stamp = self.ts if ts is None else ts
        header = struct.pack(
            "!BBHII", 0x80, payload_type | (0x80 if marker else 0), self.seq, stamp, self.ssrc
        )
        self.transport.sendto(header + payload, self.target)

    def _tone_packet(self) -> bytes:
        t = (np.arange(160) + self._sent * 160) / 8000
        pcm = (np.sin(2 * math.pi * LEG_TONE_HZ * t) * 0.3 * 32767).astype(np.int16)
        if not self.talking:
            pcm[:] = 0
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, self._sent * 160
        self._sent += 1
        return b"".join(bytes(p) for p in self._encoder.encode(frame))

    async def _talk(self) -> None:
        while True:
            if not self.keying:  # a phone sends no voice while a key is down (RFC 4733 §2.6)
                self._send(PCMU, self._tone_packet(), marker=self._sent == 0)
            self.ts = (self.ts + 160) & 0xFFFFFFFF
            await asyncio.sleep(0.02)

    def start_talking(self) -> None:
        self._task = asyncio.create_task(self._talk())

    async def key(self, digit: str) -> None:
        """One key press as RFC 4733 events (three end packets), all of one timestamp."""
        self.keying = True
        start = self.ts
        for duration in (160, 320, 480):
            event = encode_event(digit, end=False, duration=duration)
            self._send(DTMF_PT, event, duration == 160, ts=start)
            await asyncio.sleep(0.02)
        for _ in range(3):
            self._send(DTMF_PT, encode_event(digit, end=True, duration=640), ts=start)
        await asyncio.sleep(0.02)
        self.keying = False

    def heard_pcm(self, since: float) -> np.ndarray:
        decoder = av.CodecContext.create("pcm_mulaw", "r")
        decoder.sample_rate, decoder.layout = 8000, "mono"
        chunks = []
        for at, data in self.received:
            if at >= since and len(data) > 12 and data[1] & 0x7F == PCMU:
                for frame in decoder.decode(av.Packet(data[12:])):
                    chunks.append(frame.to_ndarray().reshape(-1))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.transport is not None:
            self.transport.close()


class ListeningViewer(WhepViewer):
    """A WHEP hall that keeps what its loudspeaker plays (48 kHz, first channel)."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url, token)
        self.sound: list[tuple[float, np.ndarray]] = []

    async def _read(self, track: MediaStreamTrack, is_content: bool = False) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    samples = frame.to_ndarray().reshape(-1)[:: len(frame.layout.channels)]
                    self.sound.append((time.monotonic(), samples))

    def pcm_since(self, moment: float) -> np.ndarray:
        parts = [samples for at, samples in self.sound if at >= moment]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


async def _follow(url: str, headers: dict[str, str], sink: list[dict[str, Any]]) -> None:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http,
        http.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.strip():
                sink.append(json.loads(line))


def _types(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["type"], e.get("digit") or e.get("reason")) for e in events]


async def test_legs_room_system_dials_in_is_admitted_hears_and_is_heard(
    stack: Stack, peers: list, sites: dict[str, Site]
) -> None:
    """Lobby, digits in RTP and SIP INFO, admission, audio both ways, hand, hang-up."""
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], audio=ToneTrack(0.3))
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    loop = asyncio.get_running_loop()
    _transport, system = await loop.create_datagram_endpoint(
        RoomSystem, local_addr=("127.0.0.1", 0)
    )
    admin = stack.admin()
    worker = stack.worker
    events: list[dict[str, Any]] = []
    try:
        async with httpx.AsyncClient(base_url=worker, headers=admin, timeout=10) as http:
            opened = await http.post(
                "/sip-legs",
                json={
                    "call_id": "a84b4c76e66710@192.0.2.10",
                    "remote_uri": "sip:phonghop@192.0.2.10",
                    "offer": system.offer(),
                    "lobby": True,
                },
            )
            assert opened.status_code == 201, opened.text
            leg_id, answer = opened.json()["leg_id"], opened.json()["sdp"]
            (m_line,) = [line for line in answer.splitlines() if line.startswith("m=audio")]
            assert m_line.split()[3:] == [str(PCMU), str(DTMF_PT)]
            port = int(m_line.split()[1])
            low, high = stack.media_ports
            assert low <= port <= high and port % 2 == 0
            assert f"a=rtcp:{port + 1}" in answer
            follower = asyncio.create_task(
                _follow(f"{worker}/sip-legs/{leg_id}/events", admin, events)
            )

            # the lobby: digits are heard, nothing of the meeting reaches the caller
            system.target = ("127.0.0.1", port)
            system.start_talking()
            await asyncio.sleep(0.2)
            for digit in "12":
                await system.key(digit)
            assert (
                await http.post(f"/sip-legs/{leg_id}/dtmf", json={"digits": "#"})
            ).status_code == 200
            await until(lambda: len(events) >= 4, timeout_s=10)
            assert _types(events)[:4] == [
                ("media", None),
                ("dtmf", "1"),
                ("dtmf", "2"),
                ("dtmf", "#"),
            ]
            assert system.received == []

            # the PIN was right: the caller joins as site p2
            grant = await stack.join("p2")
            admitted = await http.post(f"/sip-legs/{leg_id}/admit", json={"token": grant["token"]})
            assert admitted.status_code == 200, admitted.text
            assert admitted.json()["site_id"] == sites["p2"].id
            await system.key("*")
            await system.key("9")
            floor_path = f"/rooms/{admitted.json()['room']}/floor"

            async def hand_raised() -> bool:
                state = (await http.get(floor_path)).json()
                return sites["p2"].id in state["hands"]

            await _eventually(hand_raised, 10, "the hand raised with *9")
            rooms = await http.get("/rooms")
            (room,) = rooms.json()["rooms"]
            sip_peers = [p for p in room["peers"] if p["transport"] == "sip"]
            assert {(p["site_id"], p["direction"]) for p in sip_peers} == {
                (sites["p2"].id, "ingest"),
                (sites["p2"].id, "egress"),
            }

            # the leg hears the chair (it is not the speaker yet, and never hears itself)
            await until(lambda: len(system.received) > 100, timeout_s=15)
            since = time.monotonic()
            await until(lambda: len(system.heard_pcm(since)) >= 8000, timeout_s=15)
            heard = system.heard_pcm(since)
            assert np.abs(heard).max() > 2000
            assert abs(dominant_hz(heard[-4000:], 8000) - TONE_HZ) < 15

            # given the floor, the leg is heard by a WebRTC hall
            given = await stack.floor("give", sites["p2"].id)
            assert given.status_code == 200, given.text
            p1 = await stack.join("p1")
            viewer = ListeningViewer(p1["whep_url"], p1["token"])
            peers.append(viewer)
            assert (await viewer.start()).status_code == 201
            await until(lambda: len(viewer.pcm_since(0)) > 48000 * 1.5, timeout_s=20)
            sound = viewer.pcm_since(0)[-24000:]
            assert np.abs(sound).max() > 2000
            assert abs(dominant_hz(sound, 48000) - LEG_TONE_HZ) < 15

            # the chair mutes the site: its audio stops reaching the room, the hall hears the
            # chair's tone in its place
            muted = await http.post(
                floor_path, json={"action": "mute", "site_id": sites["p2"].id, "by": "test"}
            )
            assert muted.status_code == 200, muted.text
            muted_at = time.monotonic() + 0.5
            await until(lambda: len(viewer.pcm_since(muted_at)) > 48000, timeout_s=10)
            after = viewer.pcm_since(muted_at)[-24000:]
            assert abs(dominant_hz(after, 48000) - TONE_HZ) < 15

            closed = await http.request("DELETE", f"/sip-legs/{leg_id}", json={"reason": "hangup"})
            assert closed.status_code == 200, closed.text
            await asyncio.wait_for(follower, 10)
            assert _types(events)[-1] == ("closed", "hangup")
            assert (
                await http.post(f"/sip-legs/{leg_id}/dtmf", json={"digits": "1"})
            ).status_code == 404
    finally:
        await system.stop()

    async def attendance_events() -> list[dict[str, Any]]:
        found = [e for e in await stack.events() if e["site_id"] == sites["p2"].id]
        return found if {"joined", "left"} <= {e["type"] for e in found} else []

    reported = await _eventually(attendance_events, 15, "the leg's joined and left events")
    joined = [e for e in reported if e["type"] == "joined"]
    left = [e for e in reported if e["type"] == "left"]
    assert all(e["detail"]["transport"] == "sip" for e in joined + left), reported
    assert joined[0]["detail"]["codec"] == "PCMU/8000"
    assert {e["detail"]["reason"] for e in left} == {"hangup"}


async def _eventually(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not seen in {timeout_s} s"
        await asyncio.sleep(0.2)


async def test_legs_refuse_bad_requests_with_json_reasons(stack: Stack) -> None:
    admin = stack.admin()
    async with httpx.AsyncClient(base_url=stack.worker, timeout=10) as http:
        body = {"call_id": "x@y", "remote_uri": "sip:x@y", "lobby": True}
        anonymous = await http.post("/sip-legs", json=body)
        assert anonymous.status_code == 401
        garbage = await http.post(
            "/sip-legs", json={**body, "offer": "this is not SDP"}, headers=admin
        )
        assert garbage.status_code == 400 and "v=0" in garbage.json()["error"]
        neither = await http.post("/sip-legs", json={**body, "lobby": False}, headers=admin)
        assert neither.status_code == 422 and "token" in neither.json()["error"]
        invalid = await http.post("/sip-legs", content=b"{", headers=admin)
        assert invalid.status_code == 422
        unknown = await http.post("/sip-legs/nope/admit", json={"token": "a.b.c"}, headers=admin)
        assert unknown.status_code in (401, 404)
        missing = await http.get("/sip-legs/nope/events", headers=admin)
        assert missing.status_code == 404 and missing.json()["error"] == "no such SIP leg"
        forged = await http.post(
            "/sip-legs", json={**body, "lobby": False, "token": "a.b.c"}, headers=admin
        )
        assert forged.status_code == 401
        # a call out: the worker offers, the far end answers
        out = await http.post("/sip-legs", json={**body, "lobby": True}, headers=admin)
        assert out.status_code == 201 and "opus/48000/2" in out.json()["sdp"]
        leg = out.json()["leg_id"]
        bad = await http.post(f"/sip-legs/{leg}/answer", json={"sdp": "v=0\r\n"}, headers=admin)
        assert bad.status_code == 400 and "no media" in bad.json()["error"]
        good = await http.post(
            f"/sip-legs/{leg}/answer",
            json={"sdp": "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 5004 RTP/AVP 8\r\n"},
            headers=admin,
        )
        assert good.status_code == 200, good.text
        again = await http.post(
            f"/sip-legs/{leg}/answer",
            json={"sdp": "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 5004 RTP/AVP 8\r\n"},
            headers=admin,
        )
        assert again.status_code == 409
        closed = await http.delete(f"/sip-legs/{leg}", headers=admin)
        assert closed.status_code == 200


async def test_legs_ffmpeg_rtp_sender_is_heard_in_the_room(
    stack: Stack, peers: list, sites: dict[str, Site]
) -> None:
    """Interop: ffmpeg's own RTP muxer (PCMU) as the caller, opened straight into the room."""
    loop = asyncio.get_running_loop()
    _transport, system = await loop.create_datagram_endpoint(
        RoomSystem, local_addr=("127.0.0.1", 0)
    )
    grant = await stack.join("p2")
    ffmpeg: asyncio.subprocess.Process | None = None
    try:
        async with httpx.AsyncClient(
            base_url=stack.worker, headers=stack.admin(), timeout=10
        ) as http:
            opened = await http.post(
                "/sip-legs",
                json={
                    "call_id": "ffmpeg-1",
                    "remote_uri": "sip:ffmpeg@127.0.0.1",
                    "offer": system.offer(),
                    "token": grant["token"],
                },
            )
            assert opened.status_code == 201, opened.text
            (m_line,) = [x for x in opened.json()["sdp"].splitlines() if x.startswith("m=audio")]
            port = int(m_line.split()[1])
            ffmpeg = await asyncio.create_subprocess_exec(
                "ffmpeg", "-nostdin", "-loglevel", "error", "-re",
                "-f", "lavfi", "-i", f"sine=frequency={LEG_TONE_HZ}:sample_rate=8000",
                "-t", "30", "-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1",
                "-f", "rtp", f"rtp://127.0.0.1:{port}",
                stdout=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert (await stack.floor("give", sites["p2"].id)).status_code == 200
            p1 = await stack.join("p1")
            viewer = ListeningViewer(p1["whep_url"], p1["token"])
            peers.append(viewer)
            assert (await viewer.start()).status_code == 201
            await until(lambda: len(viewer.pcm_since(0)) > 48000 * 1.5, timeout_s=20)
            sound = viewer.pcm_since(0)[-24000:]
            assert np.abs(sound).max() > 1000
            assert abs(dominant_hz(sound, 48000) - LEG_TONE_HZ) < 15
            closed = await http.delete(f"/sip-legs/{opened.json()['leg_id']}")
            assert closed.status_code == 200
    finally:
        if ffmpeg is not None and ffmpeg.returncode is None:
            ffmpeg.kill()
            await ffmpeg.wait()
        await system.stop()
