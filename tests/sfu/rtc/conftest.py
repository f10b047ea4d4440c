"""Fixtures of the `sfu.rtc` tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection

from tests.sfu.rtc.introspect import LOOPBACK_ONLY


@pytest.fixture
async def pc() -> AsyncIterator[RTCPeerConnection]:
    connection = RTCPeerConnection(LOOPBACK_ONLY)
    yield connection
    await connection.close()
    assert connection.connectionState == "closed"
