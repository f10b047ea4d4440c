"""Dial-in: the meeting a number reaches now, why a call reaches none, and who the caller is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from confbridge.errors import DomainError
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings import service as meeting_service
from confbridge.meetings.dial_in import DialInRefused, find_dial_in, match_site
from confbridge.meetings.models import OccurrenceStatus, Series
from confbridge.meetings.occurrences import OccurrenceChange
from confbridge.settings import MeetingSettings
from confbridge.sites import service as site_service
from confbridge.sites.models import Site

SETTINGS = MeetingSettings(horizon_days=30)
# Mondays 4 and 11 March 2030, 07:30-09:00 in Hanoi (00:30-02:00 UTC).
FIRST_START = datetime(2030, 3, 4, 0, 30, tzinfo=UTC)
CREATED = datetime(2030, 3, 1, tzinfo=UTC)


@pytest.fixture
def series(
    session: Session, series_body: Callable[..., dict[str, Any]], sites: dict[str, Site]
) -> Series:
    site_service.update_site(
        session=session, site=sites["p1"], sip_uri="sip:halong-p1@Rooms.Halong.gov.vn"
    )
    created = meeting_service.create(
        session=session,
        series_in=series_body(rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=2", meeting_number="2468135"),
        settings=SETTINGS,
        now=CREATED,
    )
    session.commit()
    return created


def refusal(session: Session, number: str, now: datetime) -> DialInRefused:
    with pytest.raises(DialInRefused) as caught:
        find_dial_in(session, meeting_number=number, now=now, early_min=10)
    assert isinstance(caught.value, DomainError)
    return caught.value


def test_find_dial_in_opens_early_min_before_the_start_until_the_end(
    session: Session, series: Series, sites: dict[str, Site]
) -> None:
    for now in (FIRST_START - timedelta(minutes=10), FIRST_START + timedelta(minutes=89)):
        dial_in = find_dial_in(session, meeting_number="2468135", now=now, early_min=10)
        assert dial_in.occurrence.start_at == FIRST_START
        assert dial_in.series.id == series.id
        assert dial_in.chair_site_id == sites["hq"].id
        assert [s.id for s in dial_in.sites] == [sites["hq"].id, sites["p1"].id]
        assert dial_in.pin_matches(series.pin) and not dial_in.pin_matches("0000000")


def test_find_dial_in_stays_open_while_the_meeting_runs_over_until_it_is_ended(
    session: Session, series: Series
) -> None:
    running_over = FIRST_START + timedelta(minutes=95)  # its end was 07:30 + 90 min
    dial_in = find_dial_in(
        session, meeting_number="2468135", now=running_over, early_min=10, overrun_grace_min=10
    )
    assert dial_in.occurrence.start_at == FIRST_START
    refusal(session, "2468135", running_over)  # no time to run over: closed at the end
    dial_in.occurrence.ended_at = running_over
    session.flush()
    with pytest.raises(DialInRefused):
        find_dial_in(
            session,
            meeting_number="2468135",
            now=running_over + timedelta(seconds=1),
            early_min=10,
            overrun_grace_min=10,
        )


def test_find_dial_in_before_the_window_says_when_it_opens_in_the_series_zone(
    session: Session, series: Series
) -> None:
    refused = refusal(session, "2468135", FIRST_START - timedelta(minutes=11))
    assert refused.reason == "not_open" and refused.status_code == 409
    assert "07:20" in refused.message and "04/03" in refused.message
    assert "the meeting opens at 07:20 on 04/03" in refused.message
    assert refused.opens_at == FIRST_START - timedelta(minutes=10)
    # Between two meetings: the next one.
    between = refusal(session, "2468135", FIRST_START + timedelta(days=2))
    assert "07:20 on 11/03" in between.message


def test_find_dial_in_refuses_unknown_numbers_cancelled_meetings_and_ended_series(
    session: Session, series: Series
) -> None:
    for number in ("1111111", "0123456", "abc", ""):
        refused = refusal(session, number, FIRST_START)
        assert refused.reason == "unknown" and refused.status_code == 404
    occurrence = series.occurrences[0]
    occurrence_service.update_occurrence(
        session=session,
        occurrence=occurrence,
        change=OccurrenceChange(status=OccurrenceStatus.cancelled),
        settings=MeetingSettings(),
        now=FIRST_START - timedelta(days=1),
    )
    assert refusal(session, "2468135", FIRST_START).reason == "cancelled"
    after_the_last = series.occurrences[-1].end_at + timedelta(minutes=1)
    assert refusal(session, "2468135", after_the_last).reason == "ended"
    # Deleted after its first meeting: ended, its history kept.
    deleted_at = FIRST_START + timedelta(days=1)
    assert not meeting_service.delete_series(session=session, series=series, now=deleted_at)
    ended = refusal(session, "2468135", FIRST_START + timedelta(days=7))
    assert ended.reason == "ended" and "has ended" in ended.message


def test_match_site_compares_normalised_addresses_of_invited_sites(
    session: Session, series: Series, sites: dict[str, Site]
) -> None:
    dial_in = find_dial_in(session, meeting_number="2468135", now=FIRST_START, early_min=10)
    caller = '"P1" <sip:halong-p1@ROOMS.halong.gov.vn:5060;transport=tcp>;tag=9'
    matched = match_site(dial_in, caller)
    assert matched is not None and matched.id == sites["p1"].id
    assert match_site(dial_in, "sip:someone@elsewhere.vn") is None
    assert match_site(dial_in, "not an address") is None
    # A room system of a site that is not invited is no match: it joins as a guest.
    site_service.update_site(session=session, site=sites["p2"], sip_uri="sip:p2@rooms.vn")
    assert match_site(dial_in, "sip:p2@rooms.vn") is None


def test_dial_in_upstream_of_the_occurrence_overrides_the_series(
    session: Session, series: Series
) -> None:
    series.upstream_sip_uri = "sip:cp@bridge.chinhphu.vn"
    dial_in = find_dial_in(session, meeting_number="2468135", now=FIRST_START, early_min=10)
    assert dial_in.upstream_sip_uri == "sip:cp@bridge.chinhphu.vn"
    occurrence_service.set_occurrence_upstream(
        session=session, occurrence=dial_in.occurrence, upstream_sip_uri="sip:tinh@bridge.vn"
    )
    assert dial_in.upstream_sip_uri == "sip:tinh@bridge.vn"
