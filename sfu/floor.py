"""Who holds the programme: the floor of one room, as plain state with no media in it."""

from __future__ import annotations

from dataclasses import dataclass, field

from confbridge_kernel.contracts import FloorAction, FloorCommand, FloorState


class FloorError(ValueError):
    """A floor command that cannot apply (e.g. `give` without a site)."""


@dataclass
class Floor:
    """The chair holds the floor at the start; hands are served in the order they were raised.

    `mute_all` mutes every site but the chair and the speaker (the hall just given the floor
    keeps speaking); giving the floor unmutes the site given it.
    `voice_on` lets the loudest unmuted site take the floor (see `sfu.voice`); an explicit
    `give` or `take` turns that mode off again, so the chair's choice sticks.

    `content_site_id` is who presents content (`sfu.content`); the room sets it, and
    `stop_content` clears it (the room then ends the presenter's session).
    """

    room: str
    chair_site_id: int
    speaker_site_id: int | None = None
    previous_speaker_site_id: int | None = None
    muted: set[int] = field(default_factory=set)
    hands: list[int] = field(default_factory=list)
    voice_activated: bool = False
    content_site_id: int | None = None

    def __post_init__(self) -> None:
        if self.speaker_site_id is None:
            self.speaker_site_id = self.chair_site_id

    def apply(self, command: FloorCommand, present_site_ids: set[int]) -> bool:
        """Apply `command`; return True when the floor changed."""
        before = self.state()
        action, site = command.action, command.site_id
        if (
            action
            in {
                FloorAction.give,
                FloorAction.mute,
                FloorAction.unmute,
                FloorAction.raise_hand,
                FloorAction.lower_hand,
            }
            and site is None
        ):
            raise FloorError(f"'{action.value}' needs a site_id")
        if action == FloorAction.give:
            assert site is not None
            self._set_speaker(site)
            self.muted.discard(site)
            self._lower(site)
        elif action == FloorAction.take:
            self._set_speaker(self.chair_site_id)
        elif action == FloorAction.mute:
            assert site is not None
            self.muted.add(site)
        elif action == FloorAction.unmute:
            assert site is not None
            self.muted.discard(site)
        elif action == FloorAction.mute_all:
            self.muted |= present_site_ids - {self.chair_site_id, self.speaker_site_id}
        elif action == FloorAction.raise_hand:
            assert site is not None
            if site not in self.hands and site != self.speaker_site_id:
                self.hands.append(site)
        elif action == FloorAction.lower_hand:
            assert site is not None
            self._lower(site)
        elif action == FloorAction.voice_on:
            self.voice_activated = True
        elif action == FloorAction.voice_off:
            self.voice_activated = False
        elif action == FloorAction.stop_content:
            self.content_site_id = None
        if action in (FloorAction.give, FloorAction.take):
            # The chair picked the speaker: voice activation would undo that at the next word.
            self.voice_activated = False
        return self.state() != before

    def follow_voice(self, site_id: int) -> bool:
        """Give the floor to `site_id` because it is the loudest (voice-activated mode).

        Unlike `give`, it leaves mutes alone and keeps the mode on. Returns True if it changed.
        """
        if not self.voice_activated or site_id in self.muted:
            return False
        before = self.state()
        self._set_speaker(site_id)
        self._lower(site_id)
        return self.state() != before

    def mirror(self, state: FloorState) -> None:
        """Take the floor as another worker holds it (a room extended over a pipe)."""
        self.speaker_site_id = state.speaker_site_id
        self.previous_speaker_site_id = state.previous_speaker_site_id
        self.muted = set(state.muted_site_ids)
        self.hands = list(state.hands)
        self.voice_activated = state.voice_activated
        self.content_site_id = state.content_site_id

    def may_present(self, site_id: int) -> bool:
        """The chair site, or the site that has the floor, may share content."""
        return site_id in (self.chair_site_id, self.speaker_site_id)

    def _set_speaker(self, site_id: int) -> None:
        if site_id != self.speaker_site_id:
            self.previous_speaker_site_id = self.speaker_site_id
            self.speaker_site_id = site_id

    def _lower(self, site_id: int) -> None:
        if site_id in self.hands:
            self.hands.remove(site_id)

    def video_for(self, viewer_site_id: int | None) -> int | None:
        """The site whose video a viewer at `viewer_site_id` sees.

        Everyone sees the speaker, except the speaking hall itself, which sees who spoke before
        (the chair, usually) instead of its own camera.
        """
        if viewer_site_id != self.speaker_site_id:
            return self.speaker_site_id
        other = self.previous_speaker_site_id
        if other is None or other == viewer_site_id:
            other = self.chair_site_id if self.chair_site_id != viewer_site_id else None
        return other

    def audio_for(self, viewer_site_id: int | None, slots: int) -> list[int | None]:
        """The sites heard in each of a viewer's audio slots: the speaker, then the chair.

        A hall never hears itself (that would feed back through its loudspeakers).
        """
        wanted: list[int] = []
        for site in (self.speaker_site_id, self.chair_site_id):
            if site is not None and site != viewer_site_id and site not in wanted:
                wanted.append(site)
        audible = [s for s in wanted if s not in self.muted]
        return (audible + [None] * slots)[:slots]

    def relay_sites(self) -> tuple[list[int | None], list[int | None]]:
        """The sites a relay (a media server below this one) needs for its halls.

        Video: the speaker, and what the speaking hall sees. Audio: the speaker, and the chair
        when someone else speaks. A muted site's track carries silence (nothing is sent).
        """
        speaker, chair = self.speaker_site_id, self.chair_site_id
        return [speaker, self.video_for(speaker)], [speaker, chair if chair != speaker else None]

    def state(self) -> FloorState:
        return FloorState(
            room=self.room,
            speaker_site_id=self.speaker_site_id,
            previous_speaker_site_id=self.previous_speaker_site_id,
            chair_site_id=self.chair_site_id,
            muted_site_ids=sorted(self.muted),
            hands=list(self.hands),
            voice_activated=self.voice_activated,
            content_site_id=self.content_site_id,
        )
