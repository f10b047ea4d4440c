"""Helpers shared by the tests of `sfu.rtc`: reading signatures and sources of aiortc/aioice,
and a negotiated pair of loopback peer connections."""

from __future__ import annotations

import inspect

from aiortc import RTCConfiguration, RTCPeerConnection

LOOPBACK_ONLY = RTCConfiguration(iceServers=[])


def parameters(function: object) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def source_of(function: object) -> str:
    return inspect.getsource(function)


async def negotiated_pair() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    client = RTCPeerConnection(LOOPBACK_ONLY)
    client.addTransceiver("video", direction="recvonly")
    await client.setLocalDescription(await client.createOffer())
    server = RTCPeerConnection(LOOPBACK_ONLY)
    await server.setRemoteDescription(client.localDescription)
    return client, server
