"""The mixed audio track: two microphones' Opus decoded, added and encoded again, on its own
(the mixer) and in a recording (a fifth track that ffprobe reads and PyAV decodes)."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from sfu.recording.mixing import BLOCK_MS, MAX_SILENCE_BLOCKS, AudioMixer
from sfu.recording.programme import Programme
from sfu.recording.recorder import Recorder
from tests.sfu.recording.media import Camera, Microphone, publish, sources
from tests.sfu.recording.probe import decode_all, ffprobe

RATE = 48_000


def _opus(hz: int, seconds: float) -> list[bytes]:
    """20 ms Opus packets of a tone."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = RATE, "mono", "s16"
    encoder.time_base = Fraction(1, RATE)
    times = np.arange(int(RATE * seconds)) / RATE
    pcm = (np.sin(2 * np.pi * hz * times) * 0.3 * 32767).astype(np.int16)
    packets = []
    for index in range(len(pcm) // 960):
        frame = av.AudioFrame.from_ndarray(
            pcm[index * 960 : (index + 1) * 960].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = RATE, index * 960, encoder.time_base
        packets += [bytes(p) for p in encoder.encode(frame)]
    return packets


def _decoded(packets: list[bytes]) -> np.ndarray:
    decoder = av.CodecContext.create("opus", "r")
    return np.concatenate(
        [f.to_ndarray()[0] for p in packets for f in decoder.decode(av.Packet(p))]
    )


def _strongest_hz(pcm: np.ndarray, count: int) -> set[int]:
    """The `count` strongest frequencies of a second of `pcm`, to 10 Hz."""
    spectrum = np.abs(np.fft.rfft(pcm[:RATE]))
    frequencies = np.fft.rfftfreq(RATE, 1 / RATE)
    peaks = [
        i for i in range(1, len(spectrum) - 1) if spectrum[i - 1] < spectrum[i] > spectrum[i + 1]
    ]
    peaks.sort(key=lambda i: spectrum[i], reverse=True)
    return {int(round(frequencies[i], -1)) for i in peaks[:count]}


def test_mixer_adds_both_microphones_in_time() -> None:
    speaker, chair = _opus(440, 2.0), _opus(1000, 2.0)
    mixer = AudioMixer()
    mixed: list[tuple[int, bytes]] = []
    for index, (one, other) in enumerate(zip(speaker, chair, strict=True)):
        mixer.add("audio", index * BLOCK_MS, one)
        mixer.add("chair", index * BLOCK_MS + 7, other)  # not aligned with the grid
        mixed += mixer.take()
    assert mixed and mixed[-1][0] < 2000 - 200  # held back until later frames are in
    mixed += mixer.finish()
    times = [ms for ms, _ in mixed]
    assert times == sorted(times) and 1960 <= times[-1] <= 2060
    pcm = _decoded([data for _, data in mixed])
    assert abs(len(pcm) - 2 * RATE) < 3 * 960
    assert _strongest_hz(pcm[RATE // 2 :], 2) == {440, 1000}


def test_mixer_leaves_a_long_pause_as_a_gap_and_skips_what_it_cannot_decode() -> None:
    tone = _opus(440, 1.0)
    mixer = AudioMixer()
    for index, packet in enumerate(tone):
        mixer.add("audio", index * BLOCK_MS, packet)
    mixer.add("audio", 1000, b"\xff\xff\xff")  # not Opus
    pause_ms = (MAX_SILENCE_BLOCKS + 100) * BLOCK_MS
    for index, packet in enumerate(tone):
        mixer.add("audio", 1000 + pause_ms + index * BLOCK_MS, packet)
    packets = mixer.take() + mixer.finish()
    assert len(packets) < 2 * 50 + 10  # the pause was not filled with silence
    times = [ms for ms, _ in packets]
    assert any(later - earlier > pause_ms - 100 for earlier, later in itertools.pairwise(times))
    assert mixer.frames_undecodable <= 1


async def test_recorder_writes_a_mixed_track_of_the_speaker_and_the_chair(
    tmp_path: Path,
) -> None:
    hq, p2 = sources("hq"), sources("p2")
    recorder = Recorder("r9", tmp_path / "r9.webm", mixed_audio=True)
    recorder.follow(Programme(p2[0], p2[1], chair_audio=hq[1]))
    cameras, mics = [Camera(320, 240), Camera(176, 144)], [Microphone(440), Microphone(1000)]
    await publish(3.0, cameras, mics, [hq, p2])
    written = await recorder.stop()

    probe = ffprobe(written.path)
    tracks = {s["tags"]["title"]: s for s in probe["streams"]}
    assert set(tracks) == {"programme", "content", "speaker", "chair", "mixed"}
    assert tracks["mixed"]["codec_name"] == "opus" and tracks["mixed"]["channels"] == 1
    assert int(tracks["mixed"]["nb_read_packets"]) >= 140  # 3 s of 20 ms packets, about
    decoded = decode_all(written.path)
    assert decoded.errors == []
    with av.open(str(written.path)) as container:
        (stream,) = [s for s in container.streams.audio if s.metadata.get("title") == "mixed"]
        pcm = np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])
    assert _strongest_hz(pcm[RATE // 2 :], 2) == {440, 1000}  # the chair (hq) and p2
