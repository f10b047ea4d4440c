"""The meeting record's fixtures."""

from __future__ import annotations

import pytest

from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.sites.models import Site
from tests.support.records import Meeting, open_meeting


@pytest.fixture
def meeting(database: Database, settings: Settings, sites: dict[str, Site]) -> Meeting:
    """A briefing on now chaired by hq, inviting p1 (not p2), with terminal tokens."""
    return open_meeting(database, settings, sites)
