"""A gallery session over the real stack: an aiortc viewer with a preview and tiles points them
at halls with `POST {session}/layout` and decodes their thumbnails (sfu.gallery)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any

import httpx
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from confbridge.sites.models import Site
from tests.support.peers import WhepViewer, WhipPublisher, loopback_peer, until
from tests.support.servers import Stack

WIDTH, HEIGHT = 160, 120  # a hall's camera here; its thumbnail is half as wide


async def _gallery_grant(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        response = await http.post(
            f"/api/v1/occurrences/{stack.occurrence_id}/join",
            json={"purpose": "gallery"},
            headers=stack.secretariat,
        )
    assert response.status_code == 200, response.text
    return response.json()


class GalleryViewer:
    """An aiortc gallery: the preview, then `tiles` tiles; frames' widths by track index."""

    def __init__(self, grant: dict[str, Any], tiles: int) -> None:
        self.grant = grant
        self.pc = loopback_peer()
        self.transceivers = [
            self.pc.addTransceiver("video", direction="recvonly") for _ in range(tiles + 1)
        ]
        self.widths: dict[int, list[tuple[float, int]]] = defaultdict(list)
        self.location = ""
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on(
            "track", lambda track: self._tasks.append(asyncio.create_task(self._read(track)))
        )

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(self._read(track)))

    async def start(self, offer_sdp: str | None = None) -> httpx.Response:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                self.grant["whep_url"],
                content=offer_sdp or self.pc.localDescription.sdp,
                headers={
                    "Content-Type": "application/sdp",
                    "Authorization": f"Bearer {self.grant['token']}",
                },
            )
        if response.status_code == 201:
            self.location = str(
                httpx.URL(self.grant["whep_url"]).join(response.headers["location"])
            )
            await self.pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        return response

    async def layout(self, layout: dict[str, Any], token: str | None = None) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.post(
                f"{self.location}/layout",
                json=layout,
                headers={"Authorization": f"Bearer {token or self.grant['token']}"},
            )

    async def _read(self, track: MediaStreamTrack) -> None:
        index = next(i for i, t in enumerate(self.transceivers) if t.receiver.track is track)
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()
                self.widths[index].append((time.monotonic(), frame.width))

    def since(self, index: int, moment: float) -> set[int]:
        return {width for at, width in self.widths[index] if at >= moment}

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.location:
            async with httpx.AsyncClient(timeout=10) as http:
                await http.delete(
                    self.location, headers={"Authorization": f"Bearer {self.grant['token']}"}
                )
        await self.pc.close()


async def test_gallery_session_decodes_thumbnails_as_pointed(
    stack: Stack, sites: dict[str, Site], peers: list[Any]
) -> None:
    """Two halls publish camera and thumbnail; the gallery's tiles decode the thumbnails, its
    preview a camera; another page re-points a tile; only the session's own grant may."""
    for name, width in (("hq", WIDTH), ("p1", WIDTH * 2)):
        grant = await stack.join(name)
        hall = WhipPublisher(grant["whip_url"], grant["token"], width, HEIGHT, thumbnail=True)
        peers.append(hall)
        assert (await hall.start()).status_code == 201
    gallery = GalleryViewer(await _gallery_grant(stack), tiles=2)
    try:
        assert (await gallery.start()).status_code == 201
        hq, p1 = sites["hq"].id, sites["p1"].id
        pointed = await gallery.layout({"tiles": [hq, p1], "preview": p1})
        assert pointed.status_code == 200, pointed.text
        assert pointed.json()["tiles"] == [
            {"site_id": hq, "live": True},
            {"site_id": p1, "live": True},
        ]
        start = time.monotonic()
        await until(
            lambda: gallery.since(0, start) and gallery.since(1, start) and gallery.since(2, start),
            timeout_s=20,
        )
        assert gallery.since(1, start) == {WIDTH // 2}  # hq's thumbnail, not its camera
        assert gallery.since(2, start) == {WIDTH}  # p1's thumbnail
        assert gallery.since(0, start) == {WIDTH * 2}  # p1's camera, large

        # Another page: tile 1 now shows p1, tile 2 nobody.
        assert (await gallery.layout({"tiles": [p1]})).status_code == 200
        await asyncio.sleep(1.5)
        moved = time.monotonic()
        await until(lambda: WIDTH in gallery.since(1, moved), timeout_s=20)
        assert gallery.since(1, moved) == {WIDTH}

        other = await _gallery_grant(stack)
        refused = await gallery.layout({"tiles": [hq]}, token=other["token"])
        assert refused.status_code == 403
        too_many = await gallery.layout({"tiles": [hq, p1, hq]})
        assert too_many.status_code == 422
        bad = await gallery.layout({"tiles": "all"})
        assert bad.status_code == 422
    finally:
        await gallery.stop()


async def test_gallery_grant_cannot_publish_or_take_audio(stack: Stack, peers: list[Any]) -> None:
    grant = await _gallery_grant(stack)
    publisher = WhipPublisher(grant["whip_url"], grant["token"])
    peers.append(publisher)
    refused = await publisher.start()
    assert refused.status_code == 403, refused.text
    viewer = WhepViewer(grant["whep_url"], grant["token"])  # video and audio: no gallery offer
    peers.append(viewer)
    response = await viewer.start()
    assert response.status_code == 400 and "only video" in response.text
