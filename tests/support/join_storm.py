"""Halls that join a worker all at once and wait as told when it answers 503 (a join storm):
in this process (`Hall`), or in a process of their own (`StormProcess`), so that their
handshakes do not load the test's event loop.

As a program, `python -m tests.support.join_storm` reads one JSON line `{"url", "tokens"}`,
joins one hall per token at once, prints `{"connected", "refusals"}` once all are connected
(or after `JOIN_DEADLINE_S`), then leaves when stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription

from sfu.rtc.ice import use_host_addresses
from sfu.rtc.ingest import RtpIngest
from tests.support.peers import loopback_peer

JOIN_DEADLINE_S = 90.0
SDP = "application/sdp"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Hall:
    """A viewing hall that joins as a browser would under a storm: POST, and on 503 wait
    Retry-After (with jitter) and POST again with the same grant. Receivers count RTP only."""

    url: str
    token: str
    pc: RTCPeerConnection | None = None
    location: str | None = None
    packets: int = 0
    refusals: list[dict[str, Any]] = field(default_factory=list)
    _closers: list[Any] = field(default_factory=list)

    def _count(self, _packet: Any) -> None:
        self.packets += 1

    async def join(self, http: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + JOIN_DEADLINE_S
        while True:
            pc = loopback_peer()
            for kind in ("video", "audio"):
                transceiver = pc.addTransceiver(kind, direction="recvonly")
                self._closers.append(RtpIngest(transceiver, self._count).close)
            await pc.setLocalDescription(await pc.createOffer())
            response = await http.post(
                self.url,
                content=pc.localDescription.sdp,
                headers={
                    "Content-Type": "application/sdp",
                    "Authorization": f"Bearer {self.token}",
                },
            )
            if response.status_code == 201:
                self.pc = pc
                self.location = str(httpx.URL(self.url).join(response.headers["location"]))
                await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
                return
            await pc.close()
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/json")
            retry_after = int(response.headers["retry-after"])
            self.refusals.append({"retry_after_s": retry_after, **response.json()})
            assert time.monotonic() < deadline, self.refusals
            await asyncio.sleep(retry_after * (1 + 0.2 * random.random()))

    async def leave(self, http: httpx.AsyncClient) -> None:
        if self.location:
            with contextlib.suppress(httpx.HTTPError):
                await http.delete(self.location, headers={"Authorization": f"Bearer {self.token}"})
        for close in self._closers:
            with contextlib.suppress(Exception):
                close()
        if self.pc is not None:
            await self.pc.close()


async def join_all(halls: list[Hall], http: httpx.AsyncClient, timeout_s: float) -> int:
    """Join every hall at once; how many are connected after `timeout_s` at most."""
    await asyncio.gather(*(hall.join(http) for hall in halls))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(h.pc and h.pc.connectionState == "connected" for h in halls):
            break
        await asyncio.sleep(0.1)
    return sum(bool(h.pc and h.pc.connectionState == "connected") for h in halls)


@dataclass
class StormProcess:
    """The test's handle on halls joining from their own process."""

    process: asyncio.subprocess.Process

    @classmethod
    async def start(cls) -> StormProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.join_storm",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        return cls(process)

    async def join(self, url: str, tokens: list[str]) -> dict[str, Any]:
        """Join a hall per token at once; {"connected": n, "refusals": [...]} once done."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps({"url": url, "tokens": tokens}) + "\n").encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), JOIN_DEADLINE_S + 60)
        return dict(json.loads(line))

    async def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def main() -> None:
    use_host_addresses(["127.0.0.1"])
    loop = asyncio.get_running_loop()
    asked = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    halls = [Hall(asked["url"], token) for token in asked["tokens"]]
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=None)) as http:
        try:
            connected = await join_all(halls, http, 60)
            refusals = [r for hall in halls for r in hall.refusals]
            sys.stdout.write(json.dumps({"connected": connected, "refusals": refusals}) + "\n")
            sys.stdout.flush()
            await loop.run_in_executor(None, sys.stdin.readline)  # EOF: leave
        finally:
            await asyncio.gather(*(hall.leave(http) for hall in halls), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
