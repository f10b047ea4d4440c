"""Fixtures of the `sfu.rtc` tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection

from tests.sfu.rtc.introspect import LOOPBACK_ONLY
from tests.sfu.rtc.shared_pairs import Pair


@pytest.fixture
async def pc() -> AsyncIterator[RTCPeerConnection]:
    connection = RTCPeerConnection(LOOPBACK_ONLY)
    yield connection
    await connection.close()
    assert connection.connectionState == "closed"


@pytest.fixture
async def pairs() -> AsyncIterator[list[Pair]]:
    """Client/server pairs a test made (`Pair`), closed at its end."""
    made: list[Pair] = []
    yield made
    for pair in made:
        await pair.close()
