"""Fixtures of the SIP tests: the SIP gateway beside a running stack, room systems."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from confbridge.meetings.models import Occurrence
from confbridge.sip.service import SipService
from tests.support.servers import Stack, free_port
from tests.support.sip_agents import Baresip, baresip_available
from tests.support.sip_calls import Bridge


@pytest.fixture
def room_system_installed() -> None:
    if not baresip_available():
        pytest.skip("baresip is not installed (CI installs it)")


@pytest.fixture
def bridge(stack: Stack) -> Iterator[Bridge]:
    assert stack.settings is not None and stack.database is not None
    port = free_port()
    settings = stack.settings.model_copy(
        update={"sip": stack.settings.sip.model_copy(update={"listen": f"127.0.0.1:{port}"})}
    )
    with stack.database.session() as session:
        occurrence = session.get(Occurrence, stack.occurrence_id)
        assert occurrence is not None
        number, pin = occurrence.series.meeting_number, occurrence.series.pin
    service = SipService(settings, stack.database)
    service.start()
    try:
        yield Bridge(stack, port, number, pin)
    finally:
        service.close()


@pytest.fixture
def room_systems(room_system_installed: None) -> Iterator[list[Baresip]]:
    started: list[Baresip] = []
    yield started
    for agent in started:
        agent.stop()
