"""ICE restart over WHIP/WHEP `PATCH` (RFC 9725 §4.3.2): the session, its grant and its media
survive a change of ICE credentials, as when a hall's network comes back on another path."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from aiortc.sdp import candidate_from_sdp

from confbridge.sites.models import Site
from sfu.rtc.ice import begin_ice_restart, complete_ice_restart
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import Stack

SDP_FRAG = "application/trickle-ice-sdpfrag"


@pytest.fixture(params=["single", "range"])
def stack_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Every test here runs with the worker in single-port mode and in port-range mode."""
    return {"sfu": {"udp_mode": request.param}}


def attribute(sdp: str, name: str) -> list[str]:
    prefix = f"a={name}:"
    return [line[len(prefix) :] for line in sdp.splitlines() if line.startswith(prefix)]


async def patch(viewer: WhepViewer, body: str, **headers: str) -> httpx.Response:
    assert viewer.location is not None
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.patch(
            viewer.location,
            content=body,
            headers={
                "Authorization": f"Bearer {viewer.token}",
                "Content-Type": SDP_FRAG,
                **headers,
            },
        )


async def test_ice_restart_keeps_the_session_and_its_media(
    stack: Stack, peers: list, sites: dict[str, Site]
) -> None:
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    grant = await stack.join("p1")
    viewer = WhepViewer(grant["whep_url"], grant["token"])
    peers.append(viewer)
    created = await viewer.start()
    assert created.status_code == 201
    await until(lambda: len(viewer.frames) > 10, timeout_s=15)
    first_ufrag = attribute(created.text, "ice-ufrag")[0]
    transport = viewer.pc.getTransceivers()[0].sender.transport.transport
    pair_before = transport._connection._nominated[1]

    local = begin_ice_restart(viewer.pc)
    fragment = "".join(
        [
            f"a=ice-ufrag:{local.ufrag}\r\na=ice-pwd:{local.pwd}\r\na=mid:{local.mid}\r\n",
            *(f"a=candidate:{candidate}\r\n" for candidate in local.candidates),
            "a=end-of-candidates\r\n",
        ]
    )
    restarted = await patch(viewer, fragment, **{"If-Match": "*"})
    assert restarted.status_code == 200, restarted.text
    assert restarted.headers["content-type"].startswith(SDP_FRAG)
    assert restarted.headers["etag"] != created.headers["etag"]
    (new_ufrag,) = attribute(restarted.text, "ice-ufrag")
    (new_pwd,) = attribute(restarted.text, "ice-pwd")
    assert new_ufrag != first_ufrag
    candidates = [candidate_from_sdp(c) for c in attribute(restarted.text, "candidate")]
    assert stack.settings is not None
    if stack.settings.sfu.udp_mode == "single":
        assert candidates and {c.port for c in candidates} == {stack.settings.sfu.udp_port}
    else:
        low, high = stack.media_ports
        assert candidates and all(low <= c.port <= high for c in candidates)
    checks = await complete_ice_restart(
        viewer.pc,
        remote_ufrag=new_ufrag,
        remote_pwd=new_pwd,
        remote_candidates=candidates,
        end_of_candidates=True,
    )
    # the viewer's checks only succeed if the worker answers them with its new credentials
    await asyncio.wait_for(checks, 10)
    assert transport._connection._nominated[1] is not pair_before
    restarted_at = time.monotonic()
    await until(lambda: len([f for f in viewer.frames if f.at >= restarted_at]) > 30, timeout_s=10)
    assert viewer.pc.connectionState == "connected"

    # the same session goes on: trickle with the new ufrag, one `joined` and no `left` for it
    trickled = await patch(
        viewer, f"a=ice-ufrag:{local.ufrag}\r\n", **{"If-Match": restarted.headers["etag"]}
    )
    assert trickled.status_code == 204, trickled.text
    stale = await patch(
        viewer,
        "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
        **{"If-Match": created.headers["etag"]},
    )
    assert stale.status_code == 412
    no_password = await patch(viewer, "a=ice-ufrag:zzzz\r\n", **{"If-Match": "*"})
    assert no_password.status_code == 400 and "ice-pwd" in no_password.text
    await asyncio.sleep(1)
    events = [e for e in await stack.events() if e["site_id"] == sites["p1"].id]
    assert [e["type"] for e in events if e["type"] in ("joined", "left")] == ["joined"]
