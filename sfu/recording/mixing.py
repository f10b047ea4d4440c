"""The recording's mixed audio track: the speaker's and the chair's Opus decoded, added and
encoded again, on the writer's thread (audio only: video is never decoded).

Frames are placed on a 20 ms grid by their time in the recording; a block is mixed once
frames `LAG_MS` later have arrived (both microphones' frames for it are in by then), with
silence where neither spoke. A pause of more than `MAX_SILENCE_BLOCKS` without any frame is
left as a gap in the track rather than filled, so a long silent stretch costs nothing.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import av
import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
BLOCK_MS = 20
BLOCK_SAMPLES = SAMPLE_RATE * BLOCK_MS // 1000
LAG_MS = 300
MAX_SILENCE_BLOCKS = 50  # a second
BITRATE = 48_000
_TIME_BASE = Fraction(1, SAMPLE_RATE)


class AudioMixer:
    """`add()` each Opus frame of the microphones, `take()` the mixed Opus packets that are
    ready as (ms, bytes), `finish()` the rest at the end."""

    def __init__(self) -> None:
        self._decoders: dict[str, Any] = {}
        self._blocks: dict[int, np.ndarray] = {}
        self._next_block: int | None = None  # blocks below it are mixed; later frames dropped
        self._newest_ms = 0
        self.frames_undecodable = 0
        self._encoder: Any = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate = SAMPLE_RATE
        self._encoder.layout = "mono"
        self._encoder.format = "s16"
        self._encoder.bit_rate = BITRATE
        self._encoder.time_base = _TIME_BASE
        self._encoder.options = {"application": "voip"}
        self._encoder.open()

    @property
    def extradata(self) -> bytes | None:
        """The encoder's OpusHead, for the track's header."""
        return self._encoder.extradata

    def add(self, kind: str, pts_ms: int, data: bytes) -> None:
        decoder = self._decoders.get(kind)
        if decoder is None:
            decoder = self._decoders[kind] = av.CodecContext.create("opus", "r")
        try:
            frames = decoder.decode(av.Packet(data))
        except av.error.FFmpegError:
            self.frames_undecodable += 1
            return
        start = pts_ms * SAMPLE_RATE // 1000
        for frame in frames:
            samples = frame.to_ndarray().astype(np.float32)
            mono = samples.mean(axis=0) if samples.shape[0] > 1 else samples[0]
            self._place(start, mono)
            start += len(mono)
        self._newest_ms = max(self._newest_ms, start * 1000 // SAMPLE_RATE)

    def _place(self, start: int, samples: np.ndarray) -> None:
        offset = 0
        while offset < len(samples):
            block, within = divmod(start + offset, BLOCK_SAMPLES)
            count = min(BLOCK_SAMPLES - within, len(samples) - offset)
            if self._next_block is None or block >= self._next_block:
                mixed = self._blocks.get(block)
                if mixed is None:
                    mixed = self._blocks[block] = np.zeros(BLOCK_SAMPLES, np.float32)
                mixed[within : within + count] += samples[offset : offset + count]
            offset += count

    def take(self) -> list[tuple[int, bytes]]:
        """The packets of the blocks that are ready."""
        return self._mix_until((self._newest_ms - LAG_MS) // BLOCK_MS)

    def finish(self) -> list[tuple[int, bytes]]:
        """Every block left, and what the encoder still holds."""
        packets = self._mix_until(max(self._blocks, default=-1) + 1)
        return packets + self._packets(self._encoder.encode(None))

    def _mix_until(self, end_block: int) -> list[tuple[int, bytes]]:
        packets: list[tuple[int, bytes]] = []
        while self._blocks:
            first = min(self._blocks)
            block = first if self._next_block is None else self._next_block
            if first - block > MAX_SILENCE_BLOCKS:
                block = first  # a long pause: a gap in the track, not encoded silence
            if block >= end_block:
                break
            mixed = self._blocks.pop(block, None)
            pcm = np.zeros(BLOCK_SAMPLES, np.int16) if mixed is None else _to_pcm(mixed)
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = block * BLOCK_SAMPLES
            frame.time_base = _TIME_BASE
            packets += self._packets(self._encoder.encode(frame))
            self._next_block = block + 1
        return packets

    @staticmethod
    def _packets(encoded: list[Any]) -> list[tuple[int, bytes]]:
        return [(max(int(p.pts or 0), 0) * 1000 // SAMPLE_RATE, bytes(p)) for p in encoded]


def _to_pcm(mixed: np.ndarray) -> np.ndarray:
    return (np.clip(mixed, -1.0, 1.0) * 32767).astype(np.int16)
