"""Frames from RTP with a loss that is never repaired: a low-rate camera (one packet a frame)
is not held up for 256 packets; the assembler gives the hole up after `MAX_HOLE_WAIT_S`, asks
for a keyframe and resumes at it. Real VP8 packets from aiortc's encoder."""

from __future__ import annotations

from sfu.recording.frames import MAX_HOLE_WAIT_S, FrameAssembler
from tests.sfu.recording.media import Camera


def test_frames_a_hole_never_repaired_is_given_up_after_a_while() -> None:
    asked: list[float] = []
    now = 0.0
    frames = FrameAssembler("video/VP8", on_loss=lambda: asked.append(now))
    camera = Camera(160, 120)
    written: list[tuple[float, bool]] = []
    for index in range(60):  # two seconds at 30 fps
        now = index / 30
        packets = camera.frame(keyframe=index in (0, 40))
        if index == 10:
            packets = packets[1:] if len(packets) > 1 else []  # lost on the link for good
        for packet in packets:
            for frame in frames.push(
                packet.sequence_number, packet.timestamp, bool(packet.marker), packet.payload, now
            ):
                written.append((now, frame.keyframe))

    assert [at for at, _key in written if at < 10 / 30] == [i / 30 for i in range(10)]
    (request,) = asked
    assert 10 / 30 + MAX_HOLE_WAIT_S <= request <= 10 / 30 + MAX_HOLE_WAIT_S + 0.1
    # nothing written between the loss and the next keyframe; all of it from there on
    after = [(at, key) for at, key in written if at >= 10 / 30]
    assert after[0] == (40 / 30, True) and len(after) == 20
    assert frames.frames_dropped >= 1
