"""The meeting record's fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.sites.models import Site
from tests.support.mail import Inbox
from tests.support.records import Meeting, open_meeting
from tests.support.servers import free_port


@pytest.fixture
def meeting(database: Database, settings: Settings, sites: dict[str, Site]) -> Meeting:
    """A briefing on now chaired by hq, inviting p1 (not p2), with terminal tokens."""
    return open_meeting(database, settings, sites)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, Controller]]:
    """A real SMTP server on loopback and what it received."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller
    controller.stop()
