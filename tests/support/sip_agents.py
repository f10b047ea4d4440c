"""Room systems for SIP tests: `baresip` (Debian's), driven over its UDP console.

Each agent runs from a config directory of its own: its account (the room system's SIP URI),
a sine tone as its microphone, and `sndfile`, which writes what it hears (decoded) to WAV
files, so a test checks the far end's audio as the room system got it.

With `video=BaresipVideo(...)` it is a room system with a camera too: `avcodec` (libx264 and
FFmpeg's H.264 decoder, from baresip-ffmpeg), `fakevideo` as its camera (a test pattern of the
configured size) and its screen, and `snapshot`, which saves the next decoded picture it
receives as a PNG (`snapshot_received`), so a test checks the far end's video as decoded.
Without it no video codec is loaded and its offers carry audio only.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import shutil
import socket
import subprocess
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_ports

BARESIP = shutil.which("baresip") or "/usr/bin/baresip"
MODULE_PATH = Path("/usr/lib/baresip/modules")
START_TIMEOUT_S = 10.0
WAV_HEADER_BYTES = 44


def baresip_available() -> bool:
    return Path(BARESIP).exists()


AUDIO_MODULES = ("account", "g711", "g722", "opus", "ausine", "aubridge", "sndfile", "cons", "menu")
VIDEO_MODULES = ("avcodec", "fakevideo", "snapshot")  # avcodec comes with baresip-ffmpeg


def baresip_video_available() -> bool:
    return baresip_available() and all(
        (MODULE_PATH / f"{name}.so").exists() for name in VIDEO_MODULES
    )


@dataclass(frozen=True)
class BaresipVideo:
    """A room system's camera and screen: H.264 only (the bridge forwards, never transcodes)."""

    width: int = 352
    height: int = 288
    fps: int = 15
    bitrate_bps: int = 300_000

    def config_lines(self) -> list[str]:
        return [
            "video_source fakevideo,nil",
            "video_display fakevideo,nil",
            f"video_size {self.width}x{self.height}",
            f"video_fps {self.fps}",
            f"video_bitrate {self.bitrate_bps}",
            "avcodec_h264enc libx264",
            "avcodec_h264dec h264",
        ]


def _modules(video: BaresipVideo | None) -> list[str]:
    return [*AUDIO_MODULES, *(VIDEO_MODULES if video is not None else ())]


class Baresip:
    """One baresip process: `dial`, `digits`, `hangup`, and what it logged, heard and saw."""

    def __init__(
        self,
        directory: Path,
        *,
        user: str,
        domain: str = "rooms.halong.gov.vn",
        tone_hz: int = 440,
        auto_answer: bool = True,
        video: BaresipVideo | None = None,
    ) -> None:
        self.directory = directory
        # SIP on UDP and TCP at sip_port, and TLS on the next port (baresip binds it unasked: a
        # port picked apart could be that one), then the console
        self.sip_port = free_ports(3)
        self.console_port = self.sip_port + 2
        self.uri = f"sip:{user}@{domain}"
        self.video = video
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "snd").mkdir(exist_ok=True)
        config = [
            "poll_method epoll",
            "net_interface 127.0.0.1",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            f"module_path {MODULE_PATH}",
            *[f"module {name}.so" for name in _modules(video)],
            f"cons_listen 127.0.0.1:{self.console_port}",
            f"audio_source ausine,{tone_hz}",
            "audio_player aubridge,speaker",
            "ausrc_srate 48000",
            "ausrc_channels 2",
            "auplay_srate 48000",
            f"snd_path {directory / 'snd'}",
            "rtp_timeout 0",
            *(video.config_lines() if video is not None else []),
        ]
        (directory / "config").write_text("\n".join(config) + "\n")
        answer = ";answermode=auto" if auto_answer else ""
        # no registration: the room system calls and is called directly, as on a LAN
        account = f"<{self.uri}>;regint=0{answer};audio_codecs=PCMU,G722,PCMA,opus"
        (directory / "accounts").write_text(account + "\n")
        (directory / "contacts").write_text("")
        self.log_path = directory / "out.txt"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [BARESIP, "-f", str(directory)], stdout=self._log, stderr=subprocess.STDOUT
        )
        self.wait_for("baresip is ready", timeout_s=START_TIMEOUT_S)

    @property
    def contact(self) -> str:
        """Where the bridge reaches it: its URI's user at its own address."""
        user = self.uri.removeprefix("sip:").split("@")[0]
        return f"sip:{user}@127.0.0.1:{self.sip_port}"

    def command(self, text: str) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(text.encode(), ("127.0.0.1", self.console_port))

    def dial(self, uri: str) -> None:
        self.command(f"/dial {uri}\n")

    def digits(self, digits: str, gap_s: float = 0.35) -> None:
        """Key digits in the call: sent as RFC 4733 telephone events."""
        for digit in digits:
            self.command(digit)
            time.sleep(gap_s)

    def hangup(self) -> None:
        self.command("/hangup\n")

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    async def until(
        self, pattern: str, *, timeout_s: float = 15.0, after: int = 0
    ) -> re.Match[str]:
        """`wait_for` off the event loop, so that the peers of a test keep sending meanwhile."""
        return await asyncio.to_thread(self.wait_for, pattern, timeout_s=timeout_s, after=after)

    def wait_for(self, pattern: str, *, timeout_s: float = 15.0, after: int = 0) -> re.Match[str]:
        """The first log match of `pattern` (after offset `after`), waiting for it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = re.compile(pattern).search(self.log(), after)
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"baresip never logged {pattern!r}:\n{self.log()[-3000:]}")

    def snapshot_received(self, path: Path, *, timeout_s: float = 10.0) -> Path:
        """The next picture it decodes from the far end, saved as a PNG at `path`. Waits for it
        (blocking: an async test calls it in a thread, so that its own peers go on sending)."""
        assert self.video is not None, "a room system without video decodes no pictures"
        start = len(self.log())
        self.command(f"/snapshot_recv {path}\n")
        self.wait_for(f"png: wrote {re.escape(str(path))}", timeout_s=timeout_s, after=start)
        return path

    def heard(self) -> list[Path]:
        """WAV files of decoded audio (one per call)."""
        return sorted((self.directory / "snd").glob("*-dec.wav"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def kill(self) -> None:
        """Gone without a BYE, as a room system losing power."""
        self.process.kill()
        self.process.wait()
        self._log.close()


def tone_of(path: Path, *, skip_s: float = 0.5, last_s: float | None = None) -> tuple[float, float]:
    """The tone of a 16-bit WAV after its first `skip_s` seconds, or in its last `last_s`
    (see `tone_of_samples`)."""
    # read as written so far: baresip fills in the header's sizes only when the call ends
    data = path.read_bytes()
    channels = int.from_bytes(data[22:24], "little") or 1
    rate = int.from_bytes(data[24:28], "little") or 8000
    body = data[WAV_HEADER_BYTES:]
    samples = array("h", body[: len(body) // 2 * 2])
    mono = samples[::channels]
    start = len(mono) - int(last_s * rate) if last_s is not None else int(skip_s * rate)
    return tone_of_samples(mono[max(start, 0) :], rate)


def tone_of_samples(samples: Sequence[int], rate: int) -> tuple[float, float]:
    """(frequency in Hz by zero crossings, RMS level 0–1) of 16-bit samples: enough to tell
    which sine a room system or a hall heard; (0, 0) for less than 0.1 s."""
    if len(samples) < rate // 10:
        return 0.0, 0.0
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    rms = math.sqrt(sum(value * value for value in samples) / len(samples)) / 32768.0
    return crossings / 2 / (len(samples) / rate), rms
