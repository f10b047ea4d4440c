"""A hall's screen as its own process, for a viewer inside a network namespace.

The test runs `python -m tests.support.viewer_process` in the namespace and does the WHEP
HTTP exchange itself (the worker's admin API stays on loopback): this process prints its
offer as one JSON line `{"offer": sdp}`, reads the answer as `{"answer": sdp}` on stdin, then
prints `{"at": monotonic_s, "width": w}` for every video frame it decodes, until stdin
closes. Host candidates are the namespace's own addresses (stock aioice gathering).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tests.support.netns import Hosts

REPO = Path(__file__).resolve().parents[2]


def _say(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _frames(track: MediaStreamTrack) -> None:
    with contextlib.suppress(Exception):
        while True:
            frame = await track.recv()
            if track.kind == "video":
                _say({"at": time.monotonic(), "width": frame.width})


async def main() -> None:
    loop = asyncio.get_running_loop()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tasks: list[asyncio.Task[None]] = []
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    pc.on("track", lambda track: tasks.append(asyncio.create_task(_frames(track))))
    await pc.setLocalDescription(await pc.createOffer())
    _say({"offer": pc.localDescription.sdp})
    line = await loop.run_in_executor(None, sys.stdin.readline)
    await pc.setRemoteDescription(RTCSessionDescription(json.loads(line)["answer"], "answer"))
    await loop.run_in_executor(None, sys.stdin.readline)  # EOF or any line: stop
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await pc.close()


@dataclass
class ScreenProcess:
    """The test's handle on a `viewer_process` running in a namespace: the frames it decoded
    (arrival time in this process, width), and the WHEP session it opened."""

    process: asyncio.subprocess.Process
    token: str
    location: str | None = None
    frames: list[tuple[float, int]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        hosts: Hosts,
        host: str,
        whep_url: str,
        token: str,
        *,
        module: str = "tests.support.viewer_process",
        args: Sequence[str] = (),
    ) -> ScreenProcess:
        """Start the process in `host`'s namespace and open its WHEP session at `whep_url`
        (or, with `module` `tests.support.publisher_process`, its WHIP session)."""
        argv = hosts.command(host, [sys.executable, "-m", module, *args])
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO
        )
        screen = cls(process, token)
        assert process.stdout is not None and process.stdin is not None
        offer = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))["offer"]
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                whep_url,
                content=offer,
                headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 201, response.text
        screen.location = str(httpx.URL(whep_url).join(response.headers["location"]))
        process.stdin.write((json.dumps({"answer": response.text}) + "\n").encode())
        await process.stdin.drain()
        screen._reader = asyncio.create_task(screen._read())
        return screen

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.frames.append((time.monotonic(), json.loads(line)["width"]))

    def widths_since(self, moment: float) -> list[int]:
        return [width for at, width in self.frames if at >= moment]

    async def stop(self) -> None:
        if self.location:
            with contextlib.suppress(httpx.TransportError):
                async with httpx.AsyncClient(timeout=10) as http:
                    await http.delete(
                        self.location, headers={"Authorization": f"Bearer {self.token}"}
                    )
            self.location = None
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
