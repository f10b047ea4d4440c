"""A meeting session names the media server of the connection it lost first."""

from __future__ import annotations

from datetime import timedelta

from aiortc import AudioStreamTrack, VideoStreamTrack

from confbridge.agent.session import MeetingSession
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import JoinInfo, PeerRole
from tests.support.peers import until


def grant() -> JoinInfo:
    return JoinInfo(
        whip_url="http://127.0.0.1:9/whip/occ-1",
        whep_url="http://127.0.0.1:9/whep/occ-1",
        token="t",
        ice_servers=[],
        expires_at=utcnow() + timedelta(hours=1),
        role=PeerRole.site,
        node_id="origin",
        viewing_node_id="edge",
    )


async def test_session_the_first_connection_lost_names_its_node() -> None:
    session = MeetingSession(grant(), VideoStreamTrack(), AudioStreamTrack())
    viewer = session._peer("edge")
    publisher = session._peer("origin")
    await viewer.close()  # the programme's server went away first
    await until(lambda: session.lost.is_set(), timeout_s=5)
    await publisher.close()
    assert session.lost_node == "edge"
    assert session.lost_reason == "connection closed"
