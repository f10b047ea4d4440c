"""The floor as plain state: give, take, mute, hands, and what each hall sees and hears."""

from __future__ import annotations

import pytest

from confbridge_kernel.contracts import FloorAction, FloorCommand
from sfu.floor import Floor, FloorError

CHAIR, WARD_A, WARD_B = 1, 2, 3
PRESENT = {CHAIR, WARD_A, WARD_B}


def act(floor: Floor, action: FloorAction, site: int | None = None) -> bool:
    return floor.apply(FloorCommand(action=action, site_id=site, by="test"), PRESENT)


def test_floor_chair_speaks_at_start() -> None:
    floor = Floor(room="occ-1", chair_site_id=CHAIR)
    assert floor.state().speaker_site_id == CHAIR
    assert floor.video_for(WARD_A) == CHAIR
    assert floor.audio_for(WARD_A, 1) == [CHAIR]


def test_floor_give_and_take() -> None:
    floor = Floor(room="occ-1", chair_site_id=CHAIR)
    assert act(floor, FloorAction.give, WARD_A)
    assert floor.video_for(WARD_B) == WARD_A and floor.video_for(CHAIR) == WARD_A
    # The speaking hall sees the chair, and hears the chair but never itself.
    assert floor.video_for(WARD_A) == CHAIR
    assert floor.audio_for(WARD_A, 2) == [CHAIR, None]
    assert floor.audio_for(WARD_B, 2) == [WARD_A, CHAIR]
    assert act(floor, FloorAction.take)
    assert floor.state().speaker_site_id == CHAIR
    assert floor.video_for(CHAIR) == WARD_A  # the chair sees who spoke last
    assert not act(floor, FloorAction.take)  # nothing changed


def test_floor_hands_queue_in_order_and_give_lowers() -> None:
    floor = Floor(room="occ-1", chair_site_id=CHAIR)
    act(floor, FloorAction.raise_hand, WARD_B)
    act(floor, FloorAction.raise_hand, WARD_A)
    assert not act(floor, FloorAction.raise_hand, WARD_B)  # already queued
    assert floor.state().hands == [WARD_B, WARD_A]
    act(floor, FloorAction.give, WARD_B)
    assert floor.state().hands == [WARD_A]
    act(floor, FloorAction.lower_hand, WARD_A)
    assert floor.state().hands == []


def test_floor_mute_all_spares_the_chair_and_give_unmutes() -> None:
    floor = Floor(room="occ-1", chair_site_id=CHAIR)
    act(floor, FloorAction.mute_all)
    assert floor.state().muted_site_ids == [WARD_A, WARD_B]
    act(floor, FloorAction.give, WARD_A)
    assert floor.state().muted_site_ids == [WARD_B]
    act(floor, FloorAction.mute, WARD_A)
    assert floor.audio_for(WARD_B, 2) == [CHAIR, None]  # the muted speaker is not heard
    act(floor, FloorAction.unmute, WARD_A)
    assert floor.audio_for(WARD_B, 2) == [WARD_A, CHAIR]


def test_floor_site_is_required_where_it_matters() -> None:
    floor = Floor(room="occ-1", chair_site_id=CHAIR)
    for action in (FloorAction.give, FloorAction.mute, FloorAction.raise_hand):
        with pytest.raises(FloorError, match=action.value):
            act(floor, action, None)


def test_floor_voice_mode_toggles_and_give_or_take_turns_it_off() -> None:
    floor = Floor(room="occ-1", chair_site_id=CHAIR)
    assert act(floor, FloorAction.voice_on)
    assert floor.state().voice_activated
    assert not act(floor, FloorAction.voice_on)  # already on
    assert floor.follow_voice(WARD_A)
    assert floor.state().speaker_site_id == WARD_A and floor.state().voice_activated
    # The chair's explicit choice sticks: voice activation goes off with give or take.
    assert act(floor, FloorAction.take)
    assert not floor.state().voice_activated
    assert not floor.follow_voice(WARD_B)
    act(floor, FloorAction.voice_on)
    act(floor, FloorAction.give, WARD_B)
    assert not floor.state().voice_activated and floor.state().speaker_site_id == WARD_B
    act(floor, FloorAction.voice_on)
    assert act(floor, FloorAction.voice_off)
    assert not floor.state().voice_activated


def test_floor_voice_never_picks_a_muted_site_and_serves_its_hand() -> None:
    floor = Floor(room="occ-1", chair_site_id=CHAIR)
    act(floor, FloorAction.voice_on)
    act(floor, FloorAction.mute, WARD_A)
    act(floor, FloorAction.raise_hand, WARD_B)
    assert not floor.follow_voice(WARD_A)
    assert floor.follow_voice(WARD_B)
    state = floor.state()
    assert (
        state.speaker_site_id == WARD_B and state.hands == [] and state.muted_site_ids == [WARD_A]
    )
    # mutes and hands leave the mode alone
    act(floor, FloorAction.mute_all)
    act(floor, FloorAction.raise_hand, WARD_A)
    assert floor.state().voice_activated


def test_floor_mute_all_leaves_the_hall_given_the_floor_speaking() -> None:
    floor = Floor(room="occ-1", chair_site_id=CHAIR)
    act(floor, FloorAction.give, WARD_A)
    act(floor, FloorAction.mute_all)
    assert floor.state().muted_site_ids == [WARD_B]
    assert floor.audio_for(WARD_B, 2) == [WARD_A, CHAIR]
    # the chair can still mute the speaker by name
    act(floor, FloorAction.mute, WARD_A)
    assert floor.state().muted_site_ids == [WARD_A, WARD_B]


def test_floor_may_present_the_chair_and_the_speaker_only() -> None:
    floor = Floor(room="occ-1", chair_site_id=CHAIR)
    assert floor.may_present(CHAIR) and not floor.may_present(WARD_A)
    act(floor, FloorAction.give, WARD_A)
    assert floor.may_present(WARD_A) and floor.may_present(CHAIR)
    assert not floor.may_present(WARD_B)


def test_floor_stop_content_clears_the_presenter_and_is_mirrored() -> None:
    floor = Floor(room="occ-1", chair_site_id=CHAIR)
    assert not act(floor, FloorAction.stop_content)  # nobody presents: nothing changes
    floor.content_site_id = WARD_A
    assert floor.state().content_site_id == WARD_A
    edge = Floor(room="occ-1", chair_site_id=CHAIR)
    edge.mirror(floor.state())
    assert edge.content_site_id == WARD_A
    assert act(floor, FloorAction.stop_content)
    assert floor.state().content_site_id is None
