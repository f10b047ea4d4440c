"""Headless Chromium publishes with WHIP into a worker's room: a room that expects SIP room
systems gets Chromium's H.264 (packetization-mode 1, 42e01f), which reaches a leg that FFmpeg's
decoder plays; a room without keeps VP8."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page

from confbridge_kernel.contracts import FloorAction, FloorCommand, PeerRole
from sfu.room import Peer
from sfu.worker import Worker
from tests.sfu.sip.conftest import grant
from tests.sfu.sip.media import decode
from tests.sfu.sip.test_video import SIP_PT, Wire
from tests.support.browsers import async_chromium, skip_without_chromium
from tests.support.peers import until

skip_without_chromium()

# A canvas camera (getUserMedia needs a secure origin; about:blank is none): 320×240, drawn
# with a moving square so that the encoder has pictures to send.
OFFER_JS = """async () => {
  const canvas = document.createElement("canvas");
  canvas.width = 320; canvas.height = 240;
  const paint = canvas.getContext("2d");
  let x = 0;
  window.painter = setInterval(() => {
    paint.fillStyle = "#204080"; paint.fillRect(0, 0, 320, 240);
    paint.fillStyle = "#f0c000"; paint.fillRect((x += 4) % 280, 100, 40, 40);
  }, 33);
  const pc = window.pc = new RTCPeerConnection();
  pc.addTransceiver(canvas.captureStream(30).getVideoTracks()[0], { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((done) => pc.addEventListener("icegatheringstatechange",
      () => pc.iceGatheringState === "complete" && done()));
  }
  return pc.localDescription.sdp;
}"""

SENT_CODEC_JS = """async () => {
  const report = await window.pc.getStats();
  for (const stat of report.values()) {
    if (stat.type === "outbound-rtp" && stat.codecId) return report.get(stat.codecId).mimeType;
  }
  return null;
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


async def publish(page: Page, worker: Worker, room: str, *, prefers_h264: bool) -> Peer:
    offer = await page.evaluate(OFFER_JS)
    claims = grant(2, PeerRole.site, room, prefers_h264=prefers_h264)
    peer, answer = await worker.sessions.create_peer("whip", room, claims, offer)
    await page.evaluate("(sdp) => window.pc.setRemoteDescription({type: 'answer', sdp})", answer)
    await until(lambda: peer.connected, timeout_s=15)
    return peer


async def test_chromium_publishes_h264_only_into_a_room_expecting_sip(
    worker: Worker, browser: Browser
) -> None:
    """Without SIP the room keeps VP8; with a leg, Chromium's H.264 is forwarded to the leg as
    plain RTP and FFmpeg decodes it. (One test: aioice's mDNS resolver, which Chromium's
    candidates need, belongs to the first event loop that uses it.)"""
    plain_page = await browser.new_page()
    plain = (await publish(plain_page, worker, "occ-plain", prefers_h264=False)).sources["video"]
    await until(lambda: plain.stats().packets_received > 0, timeout_s=15)
    assert [c.name for c in plain.codecs] == ["video/vp8"]
    assert await plain_page.evaluate(SENT_CODEC_JS) == "video/VP8"

    wire = Wire()
    leg = wire.leg()
    room = worker.sessions.room_for(grant(1, PeerRole.chair, "occ-sip"))
    leg.attach(room, 1, site_name="Room system", peer_id="leg-1")
    page = await browser.new_page()
    publisher = await publish(page, worker, "occ-sip", prefers_h264=False)
    source = publisher.sources["video"]
    await until(lambda: source.stats().packets_received > 0, timeout_s=15)
    assert source.codec.name == "video/h264"
    assert str(source.codec.parameters["packetization-mode"]) == "1"
    assert source.codec.parameters["profile-level-id"] == "42e01f"
    assert await page.evaluate(SENT_CODEC_JS) == "video/H264"

    room.apply_floor(FloorCommand(action=FloorAction.give, site_id=2, by="test"))
    await until(lambda: len(decode(wire.rtp_packets())) >= 10, timeout_s=15)
    frames = decode(wire.rtp_packets())
    assert {(f.width, f.height) for f in frames} == {(320, 240)}
    assert {(p.payload_type, p.ssrc) for p in wire.rtp_packets()} == {(SIP_PT, leg.ssrc)}
    leg.close()
    for tab in (plain_page, page):
        await tab.evaluate("() => window.pc.close()")
