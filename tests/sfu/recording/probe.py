"""Reading a recording back: ffprobe's view of it, and every frame decoded with PyAV."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import av


def ffprobe(path: Path) -> dict:
    """ffprobe's streams, format and chapters of `path`, with packet counts (fails on an
    unreadable file)."""
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-show_streams",
            "-show_format",
            "-show_chapters",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


@dataclass
class Decoded:
    widths: list[int] = field(default_factory=list)
    video_times: list[float] = field(default_factory=list)
    audio_frames: int = 0
    errors: list[str] = field(default_factory=list)
    content_widths: list[int] = field(default_factory=list)
    audio_by_track: dict[str, int] = field(default_factory=dict)


def decode_all(path: Path) -> Decoded:
    """Decode every packet of `path`; errors are collected, not raised. Video frames of the
    track titled "content" are counted apart, audio frames per track title."""
    decoded = Decoded()
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size == 0:
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                decoded.errors.append(f"{packet.stream.type} at {packet.pts}: {exc}")
                continue
            title = packet.stream.metadata.get("title", "")
            for frame in frames:
                if packet.stream.type == "video" and title == "content":
                    decoded.content_widths.append(frame.width)
                elif packet.stream.type == "video":
                    decoded.widths.append(frame.width)
                    decoded.video_times.append(float(frame.time or 0.0))
                else:
                    decoded.audio_frames += 1
                    decoded.audio_by_track[title] = decoded.audio_by_track.get(title, 0) + 1
    return decoded
