"""Whole codec frames from a slot's RTP packets, in order, with the losses cut out.

A recorder's slot numbers packets without gaps across floor switches (`sfu.forwarding.Slot`), so
a frame is a run of consecutive sequence numbers sharing one timestamp and ending with the
marker bit. A frame with a hole that is not repaired in time is dropped, and so is every frame
after it until the next keyframe, which is asked for: what the file holds always decodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sfu.codecs import VP8, is_keyframe
from sfu.rtc.depayload import depayloader

MAX_PENDING_PACKETS = 256
"""A hole is given up on once this many packets wait behind it (about half a second of HD)."""
MAX_HOLE_WAIT_S = 0.5
"""... or once no frame was completed for this long with packets waiting (a low-rate camera
sends 256 packets in several seconds): a NACK repair comes within a round trip or not at all."""
_HALF = 0x8000


@dataclass(frozen=True)
class Frame:
    """One codec frame: its RTP timestamp on the slot's clock, and its bytes."""

    rtp_ts: int
    keyframe: bool
    data: bytes


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 §9.1), None for other frames."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height


class FrameAssembler:
    """Collects one video slot's packets into frames; `push()` returns the frames completed."""

    def __init__(self, mime_type: str, on_loss: Callable[[], None]) -> None:
        self.mime_type = mime_type
        self._depayload = depayloader(mime_type)
        self._on_loss = on_loss
        self._packets: dict[int, tuple[int, bool, bytes]] = {}  # seq → (ts, marker, payload)
        self._next: int | None = None  # the sequence number the next frame starts at
        self._need_keyframe = True
        self._progress_at = 0.0  # since when packets wait: the last frame completed, or the
        # first packet to wait
        self.frames_dropped = 0

    def push(
        self, seq: int, rtp_ts: int, marker: bool, payload: bytes, now: float = 0.0
    ) -> list[Frame]:
        """Take one packet (`now`: its arrival, `time.monotonic()`); the frames it completes."""
        if self._next is None:
            if not is_keyframe(self.mime_type, payload):
                return []
            self._next = seq
        elif (seq - self._next) & 0xFFFF >= _HALF:
            return []  # a late repair of a frame already written or dropped
        if not self._packets:  # nothing was waiting: the wait starts now
            self._progress_at = now
        self._packets[seq] = (rtp_ts, marker, payload)
        frames: list[Frame] = []
        while True:
            frame = self._take_frame()
            if frame is None:
                stalled = now - self._progress_at > MAX_HOLE_WAIT_S
                if self._next is None or not (len(self._packets) > MAX_PENDING_PACKETS or stalled):
                    break
                self._skip_hole()
                self._progress_at = now
                continue
            self._progress_at = now
            if frame.keyframe:
                self._need_keyframe = False
            if self._need_keyframe:
                self.frames_dropped += 1
            else:
                frames.append(frame)
        return frames

    def _take_frame(self) -> Frame | None:
        """The frame starting at `_next` if all its packets are here; a frame cut short by a
        switch (the timestamp changes before a marker) is dropped and the walk goes on."""
        if self._next is None:
            return None
        seq = self._next
        first = self._packets.get(seq)
        if first is None:
            return None
        ts = first[0]
        parts: list[int] = []
        while True:
            packet = self._packets.get(seq)
            if packet is None:
                return None  # wait for the rest (or a repair)
            if packet[0] != ts:
                # the frame ended without its marker: cut short (a floor switch, or a loss
                # right at its end). Drop it; the next frame needs a keyframe unless it is one.
                self._drop(parts)
                self._next = seq
                return self._take_frame()
            parts.append(seq)
            if packet[1]:
                break
            seq = (seq + 1) & 0xFFFF
        self._next = (seq + 1) & 0xFFFF
        payloads = [self._packets.pop(s)[2] for s in parts]
        try:
            data = b"".join(self._depayload(p) for p in payloads)
        except ValueError:
            self._drop([])
            return self._take_frame()
        key = is_keyframe(self.mime_type, payloads[0])
        if self.mime_type.lower() == VP8:
            key = key and vp8_size(data) is not None
        return Frame(ts, key, data)

    def _drop(self, seqs: list[int]) -> None:
        for seq in seqs:
            self._packets.pop(seq, None)
        self.frames_dropped += 1
        if not self._need_keyframe:
            self._need_keyframe = True
            self._on_loss()

    def _skip_hole(self) -> None:
        """Give up on the hole at `_next`: restart at the oldest waiting packet that starts a
        keyframe, or at the next keyframe to arrive, asking for one."""
        assert self._next is not None
        base = self._next
        order = sorted(self._packets, key=lambda s: (s - base) & 0xFFFF)
        start = next(
            (s for s in order[1:] if is_keyframe(self.mime_type, self._packets[s][2])), None
        )
        for seq in order:
            if seq == start:
                break
            del self._packets[seq]
        self._next = start
        self._drop([])
