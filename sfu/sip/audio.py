"""Audio of a SIP leg, transcoded to and from the room's Opus with PyAV.

- Leg → room (`Uplink`): each RTP packet of the leg's codec is decoded, resampled to 48 kHz and
  cut into 20 ms Opus packets pushed into the leg's room `Source`, like a WebRTC publisher's,
  with the RFC 6464 level of each 20 ms measured from the PCM (the room's voice activation reads
  it). A muted source drops them as it drops any publisher's.
- Room → leg (`Downlink`): the leg views the room with audio slots, like a WebRTC viewer (the
  speaker and the chair, never itself); each slot's egress (`DecodingEgress`) decodes Opus into
  a short playout buffer, and every 20 ms the buffers are mixed, resampled to the leg's rate,
  encoded in its codec and sent with continuous sequence numbers and timestamps.

The codec work runs on the event loop: about 0.3 ms per leg and 20 ms (see `measure_cpu`), less
than a hop to a thread pool would cost.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from struct import Struct

import av
import numpy as np
from aiortc.rtp import RtpPacket

from sfu.codecs import RtpCodec
from sfu.forwarding import Source
from sfu.rtc.egress import EgressStats
from sfu.rtc.sdp import NegotiatedRtp
from sfu.sip.sdp import SdpCodec

log = logging.getLogger(__name__)

FRAME_S = 0.02
ROOM_RATE = 48000
ROOM_FRAME = 960  # samples of 20 ms at 48 kHz
ROOM_OPUS = RtpCodec(mime_type="audio/opus", clock_rate=48000, payload_type=111, channels=2)
ROOM_OPUS_BITRATE = 32000
PLAYOUT_START_S = 0.04
"""A slot's buffer starts playing once it holds this much (absorbs the room's jitter)."""
PLAYOUT_MAX_S = 0.2
"""A slot's buffer never holds more: older audio is dropped to keep the delay down."""
VAD_MIN_DBOV = -50
TALKSPURT_GAP_S = 0.2
_RTP_HEADER = Struct("!BBHII")


@dataclass(frozen=True)
class LegFormat:
    """How a leg's codec is coded: PyAV codec names, PCM rate, RTP clock per 20 ms."""

    decoder: str
    encoder: str
    pcm_rate: int
    rtp_step: int  # RTP timestamp units per 20 ms


# G.722 samples at 16 kHz but its RTP clock runs at 8 kHz (RFC 3551 §4.5.2).
LEG_FORMATS = {
    "pcmu": LegFormat("pcm_mulaw", "pcm_mulaw", 8000, 160),
    "pcma": LegFormat("pcm_alaw", "pcm_alaw", 8000, 160),
    "g722": LegFormat("g722", "g722", 16000, 160),
    "opus": LegFormat("libopus", "libopus", 48000, 960),
}


def leg_format(codec: SdpCodec) -> LegFormat:
    return LEG_FORMATS[codec.name.lower()]


def level_dbov(pcm: np.ndarray) -> int:
    """RMS level of int16 PCM in dBov (RFC 6464), -127 for silence."""
    if not pcm.size:
        return -127
    samples = pcm.astype(np.float32)
    rms = math.sqrt(float(np.dot(samples, samples)) / pcm.size)
    if rms < 1.0:
        return -127
    return max(-127, min(0, round(20 * math.log10(rms / 32767))))


def _decoder(name: str, rate: int) -> av.AudioCodecContext:
    context = av.CodecContext.create(name, "r")
    context.sample_rate = rate
    context.layout = "mono"  # Opus decodes a stereo stream to mono itself, at less cost
    return context  # type: ignore[return-value]


def _encoder(name: str, rate: int, bitrate: int = ROOM_OPUS_BITRATE) -> av.AudioCodecContext:
    context = av.CodecContext.create(name, "w")
    context.sample_rate = rate
    context.layout = "mono"
    context.format = "s16"
    context.time_base = Fraction(1, rate)
    if name == "libopus":
        context.bit_rate = bitrate
        context.options = {"application": "voip", "frame_duration": "20"}
    context.open()
    return context  # type: ignore[return-value]


def _frame(pcm: np.ndarray, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    return frame


def _samples(frame: av.AudioFrame) -> np.ndarray:
    """int16 mono PCM of a decoded or resampled frame (a copy: the codec reuses its buffer)."""
    if frame.format.name == "s16" and len(frame.layout.channels) == 1:
        return np.frombuffer(frame.planes[0], dtype=np.int16, count=frame.samples).copy()
    samples = frame.to_ndarray().reshape(len(frame.layout.channels), -1)
    if frame.format.name in ("fltp", "flt"):
        return np.clip(samples.mean(axis=0) * 32767, -32768, 32767).astype(np.int16)
    return samples[0].astype(np.int16)


def decode_pcm(context: av.AudioCodecContext, payload: bytes) -> np.ndarray:
    """Decode one payload to int16 mono PCM (empty if it does not decode)."""
    try:
        frames = context.decode(av.Packet(payload))
    except (av.FFmpegError, ValueError):
        return np.zeros(0, dtype=np.int16)
    if len(frames) == 1:
        return _samples(frames[0])
    chunks = [_samples(frame) for frame in frames]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


class Resampler:
    """int16 mono PCM from one rate to another (swresample), as a stream."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = rate_in, rate_out
        self._swr = (
            av.AudioResampler(format="s16", layout="mono", rate=rate_out)
            if rate_in != rate_out
            else None
        )

    def convert(self, pcm: np.ndarray) -> np.ndarray:
        if self._swr is None or not pcm.size:
            return pcm
        frames = self._swr.resample(_frame(pcm, self.rate_in))
        if len(frames) == 1:
            return _samples(frames[0])
        if not frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([_samples(f) for f in frames])


def encode_pcm(context: av.AudioCodecContext, pcm: np.ndarray, rate: int, pts: int) -> bytes:
    """Encode exactly one 20 ms frame; the payload of one RTP packet."""
    frame = _frame(pcm, rate)
    frame.pts = pts
    return b"".join(bytes(packet) for packet in context.encode(frame))


class Uplink:
    """Leg → room: the leg's audio, as Opus packets with levels, into the room `Source`."""

    def __init__(self, codec: SdpCodec, source: Source | None) -> None:
        fmt = leg_format(codec)
        self.payload_type = codec.payload_type
        self.source = source
        self._decoder = _decoder(fmt.decoder, fmt.pcm_rate)
        self._resampler = Resampler(fmt.pcm_rate, ROOM_RATE)
        self._encoder = _encoder("libopus", ROOM_RATE)
        self._pending = np.zeros(0, dtype=np.int16)
        self._ssrc = random.getrandbits(32)
        self._seq = random.randint(0, 0x7FFF)
        self._ts = random.getrandbits(32)
        self._pts = 0
        self._last_at = -math.inf
        self.packets = 0
        self.last_level_dbov = -127

    def receive(self, payload: bytes, now: float) -> None:
        """One RTP payload of the leg's audio codec."""
        pcm = decode_pcm(self._decoder, payload)
        if not pcm.size:
            return
        marker = now - self._last_at > TALKSPURT_GAP_S
        self._last_at = now
        pending = np.concatenate((self._pending, self._resampler.convert(pcm)))
        while len(pending) >= ROOM_FRAME:
            chunk, pending = pending[:ROOM_FRAME], pending[ROOM_FRAME:]
            self._push(chunk, marker)
            marker = False
        self._pending = pending

    def _push(self, chunk: np.ndarray, marker: bool) -> None:
        level = level_dbov(chunk)
        self.last_level_dbov = level
        source = self.source
        if source is None:
            return
        # A muted source drops the packet but keeps its level (voice activation skips muted
        # sites, the console shows the level): no need to encode what nobody hears.
        payload = b"" if source.muted else encode_pcm(self._encoder, chunk, ROOM_RATE, self._pts)
        self._pts += ROOM_FRAME
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + ROOM_FRAME) & 0xFFFFFFFF
        if not payload and not source.muted:
            return
        packet = RtpPacket(
            payload_type=ROOM_OPUS.payload_type,
            marker=int(marker),
            sequence_number=self._seq,
            timestamp=self._ts,
            ssrc=self._ssrc,
            payload=payload,
        )
        packet.extensions.audio_level = (level >= VAD_MIN_DBOV, -level)
        self.packets += 1
        source.push(packet)


class DecodingEgress:
    """A `SlotEgress` that decodes what its slot forwards into a playout buffer (48 kHz)."""

    def __init__(self) -> None:
        self.kind = "audio"
        self.ssrc = random.getrandbits(32)
        self.params = NegotiatedRtp(kind="audio", mid=None, codecs=(ROOM_OPUS,))
        self.clock_rate = ROOM_RATE
        self.on_keyframe_request: Callable[[], None] = lambda: None
        # libopus hands out s16 mono directly (ffmpeg's own decoder gives float planes)
        self._decoder = _decoder("libopus", ROOM_RATE)
        self._buffer: deque[np.ndarray] = deque()
        self._buffered = 0
        self._playing = False
        self._closed = False
        self._packets = 0
        self._bytes = 0

    @property
    def ready(self) -> bool:
        return not self._closed

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        if self._closed:
            return False
        pcm = decode_pcm(self._decoder, payload)
        self._packets += 1
        self._bytes += len(payload)
        if not pcm.size:
            return True
        self._buffer.append(pcm)
        self._buffered += len(pcm)
        while self._buffered > PLAYOUT_MAX_S * ROOM_RATE:
            self._buffered -= len(self._buffer.popleft())
        return True

    def take(self, count: int) -> np.ndarray | None:
        """`count` samples to play now, or None while this slot has nothing to play."""
        if not self._playing:
            if self._buffered < PLAYOUT_START_S * ROOM_RATE:
                return None
            self._playing = True
        if self._buffered < count:
            self._playing = False  # ran dry: rebuffer before playing again
            self._buffer.clear()
            self._buffered = 0
            return None
        out = np.empty(count, dtype=np.int16)
        filled = 0
        while filled < count:
            head = self._buffer[0]
            used = min(len(head), count - filled)
            out[filled : filled + used] = head[:used]
            filled += used
            if used == len(head):
                self._buffer.popleft()
            else:
                self._buffer[0] = head[used:]
        self._buffered -= count
        return out

    def stats(self) -> EgressStats:
        return EgressStats.plain(packets_sent=self._packets, bytes_sent=self._bytes)

    def close(self) -> None:
        self._closed = True
        self._buffer.clear()
        self._buffered = 0


class Downlink:
    """Room → leg: mixes its slots' audio every 20 ms into RTP packets of the leg's codec."""

    def __init__(self, codec: SdpCodec, egresses: list[DecodingEgress]) -> None:
        fmt = leg_format(codec)
        self.egresses = egresses
        self.payload_type = codec.payload_type
        self._rate = fmt.pcm_rate
        self._samples = round(fmt.pcm_rate * FRAME_S)
        self._step = fmt.rtp_step
        self._resampler = Resampler(ROOM_RATE, fmt.pcm_rate)
        self._encoder = _encoder(fmt.encoder, fmt.pcm_rate)
        self._pending = np.zeros(0, dtype=np.int16)
        self._ssrc = 0
        self._seq = random.randint(0, 0x7FFF)
        self._ts = random.getrandbits(32)
        self._pts = 0
        self._heard = False
        self._silence = np.zeros(ROOM_FRAME, dtype=np.int16)

    def mix(self) -> tuple[np.ndarray, bool]:
        """20 ms of the room at 48 kHz, and whether any slot had something to play."""
        parts = [p for e in self.egresses if (p := e.take(ROOM_FRAME)) is not None]
        if not parts:
            return self._silence, False
        if len(parts) == 1:
            return parts[0], True
        total = np.sum(np.stack(parts).astype(np.int32), axis=0)
        return np.clip(total, -32768, 32767).astype(np.int16), True

    def produce(self, ssrc: int) -> tuple[bytes, int] | None:
        """The next RTP packet for the leg and its timestamp (None while resampling fills)."""
        room, heard = self.mix()
        pending = np.concatenate((self._pending, self._resampler.convert(room)))
        if len(pending) < self._samples:
            self._pending = pending
            return None
        chunk, self._pending = pending[: self._samples], pending[self._samples :]
        payload = encode_pcm(self._encoder, chunk, self._rate, self._pts)
        self._pts += self._samples
        if not payload:
            return None
        marker = heard and not self._heard  # RFC 3551 §4.1: first packet of a talkspurt
        self._heard = heard
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + self._step) & 0xFFFFFFFF
        header = _RTP_HEADER.pack(
            0x80, (0x80 if marker else 0) | self.payload_type, self._seq, self._ts, ssrc
        )
        return header + payload, self._ts


async def run_every_frame(tick: Callable[[], None], what: str) -> None:
    """Call `tick` every 20 ms on the event loop's clock until cancelled; late ticks catch
    up, but a stall of more than 100 ms restarts the schedule rather than bursting."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        due += FRAME_S
        delay = due - loop.time()
        if delay < -0.1:
            due = loop.time()
        elif delay > 0:
            await asyncio.sleep(delay)
        try:
            tick()
        except Exception:
            log.exception("%s: audio tick failed", what)


def measure_cpu(codec: SdpCodec, *, seconds: float = 10.0, slots: int = 2) -> float:
    """Fraction of one core that one leg's audio takes both ways, measured by running
    `seconds` of audio through an `Uplink` and a `Downlink` as fast as possible: a 400 Hz
    tone in the leg's codec up into a room source, and `slots` Opus streams mixed down."""
    fmt = leg_format(codec)
    frames = round(seconds / FRAME_S)
    leg_encoder = _encoder(fmt.encoder, fmt.pcm_rate)
    opus = _encoder("libopus", ROOM_RATE)
    t = np.arange(ROOM_FRAME * frames) / ROOM_RATE
    room_pcm = (np.sin(2 * math.pi * 400 * t) * 8000).astype(np.int16)
    leg_pcm = Resampler(ROOM_RATE, fmt.pcm_rate).convert(room_pcm)
    n = round(fmt.pcm_rate * FRAME_S)
    leg_payloads = [
        encode_pcm(leg_encoder, leg_pcm[i * n : (i + 1) * n], fmt.pcm_rate, i * n)
        for i in range(frames)
    ]
    room_payloads = [
        encode_pcm(opus, room_pcm[i * ROOM_FRAME : (i + 1) * ROOM_FRAME], ROOM_RATE, i * 960)
        for i in range(frames)
    ]
    source = Source("audio", [ROOM_OPUS], label="benchmark")
    uplink = Uplink(codec, source)
    egresses = [DecodingEgress() for _ in range(slots)]
    downlink = Downlink(codec, egresses)
    started = time.process_time()
    for i in range(frames):
        if leg_payloads[i]:
            uplink.receive(leg_payloads[i], i * FRAME_S)
        for egress in egresses:
            egress.send(b"", room_payloads[i], i, i * 960, i * FRAME_S)
        downlink.produce(1)
    return (time.process_time() - started) / (frames * FRAME_S)
