"""Voice-activated floor: which site should hold the programme, judged by how loud it is.

Publishers put the level of each audio packet in the RFC 6464 `ssrc-audio-level` header
extension (-127..0 dBov, 0 the loudest); a `Source` keeps the last one. The room samples those
levels every `VOICE_TICK_INTERVAL_S` and asks a `VoiceDetector` whether the floor should move.
The detector is plain code fed with samples and a clock, so it can be tested without media:

- levels are smoothed per site (exponential, time constant `VOICE_SMOOTHING_S`), so one loud
  packet (a cough, a door) does not count;
- a level older than `VOICE_STALE_AFTER_S` (a site that stopped sending, or sends no levels)
  counts as silence, and so does a muted site, or one quieter than `VOICE_MIN_LEVEL_DBOV`;
- a challenger takes the floor only after being the loudest site, at least `VOICE_MARGIN_DB`
  above the speaker, for `VOICE_MIN_LEAD_S` without interruption, and only once the speaker
  has held the floor for `VOICE_HOLD_S`: two halls talking at once do not make it flap.

The V (voice activity) flag of RFC 6464 is not used: not every sender sets it (aiortc never
does), and the level alone is enough to rank sites.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass

VOICE_TICK_INTERVAL_S = 0.25
"""How often a room in voice-activated mode samples levels and reconsiders the floor."""
VOICE_SMOOTHING_S = 0.5
"""Time constant of the exponential smoothing of each site's level."""
VOICE_STALE_AFTER_S = 1.0
"""A level received longer ago than this counts as silence."""
VOICE_MARGIN_DB = 6.0
"""How much louder than the speaker a site must be to challenge it."""
VOICE_MIN_LEAD_S = 1.0
"""How long a challenger must stay the loudest, by the margin, before it takes the floor."""
VOICE_HOLD_S = 2.0
"""A speaker keeps the floor at least this long, however loud the others are."""
VOICE_MIN_LEVEL_DBOV = -50.0
"""Quieter than this is room noise, not speech: such a site never takes the floor."""
SILENCE_DBOV = -127.0
"""The lowest level RFC 6464 can express; what a silent, muted or absent site counts as."""


@dataclass(frozen=True)
class LevelSample:
    """The last audio level received from a site: `level_dbov` at monotonic time `at` (s)."""

    site_id: int
    level_dbov: float
    at: float


@dataclass
class _Smoothed:
    level_dbov: float
    at: float


class VoiceDetector:
    """Decides, tick by tick, whether a louder site should take the floor from the speaker.

    Call `tick()` with the latest sample of every site that is present and sending; it returns
    the site that should speak now, or None to leave the floor as it is. The caller gives the
    floor and reports when the speaker changed (`speaker_since`), whoever changed it.
    """

    def __init__(
        self,
        *,
        margin_db: float = VOICE_MARGIN_DB,
        min_lead_s: float = VOICE_MIN_LEAD_S,
        hold_s: float = VOICE_HOLD_S,
        stale_after_s: float = VOICE_STALE_AFTER_S,
        smoothing_s: float = VOICE_SMOOTHING_S,
        min_level_dbov: float = VOICE_MIN_LEVEL_DBOV,
    ) -> None:
        self.margin_db = margin_db
        self.min_lead_s = min_lead_s
        self.hold_s = hold_s
        self.stale_after_s = stale_after_s
        self.smoothing_s = smoothing_s
        self.min_level_dbov = min_level_dbov
        self._levels: dict[int, _Smoothed] = {}
        self._challenger: int | None = None
        self._challenger_since = 0.0

    @property
    def challenger(self) -> int | None:
        """The site now leading the speaker by the margin, waiting out `min_lead_s`."""
        return self._challenger

    def level_of(self, site_id: int) -> float:
        """The smoothed level of a site, in dBov (`SILENCE_DBOV` if unknown)."""
        smoothed = self._levels.get(site_id)
        return smoothed.level_dbov if smoothed is not None else SILENCE_DBOV

    def tick(
        self,
        now: float,
        samples: Iterable[LevelSample],
        *,
        speaker_site_id: int | None,
        speaker_since: float,
        muted: Collection[int] = (),
    ) -> int | None:
        """Take this tick's samples; return the site that should take the floor now, or None.

        `now` and the samples' `at` are on the same monotonic clock, in seconds;
        `speaker_since` is when the current speaker got the floor. Sites without a sample this
        tick are forgotten.
        """
        self._update(now, samples, muted)
        audible = {
            site: smoothed.level_dbov
            for site, smoothed in self._levels.items()
            if smoothed.level_dbov >= self.min_level_dbov
        }
        loudest = max(audible, key=audible.__getitem__, default=None)
        if (
            loudest is None
            or loudest == speaker_site_id
            or audible[loudest] < self._speaker_level(speaker_site_id) + self.margin_db
        ):
            self._challenger = None
            return None
        if loudest != self._challenger:
            # a new challenger (or the old one interrupted) starts its lead from now
            self._challenger = loudest
            self._challenger_since = now
        if now - self._challenger_since < self.min_lead_s or now - speaker_since < self.hold_s:
            return None
        self._challenger = None
        return loudest

    def _speaker_level(self, speaker_site_id: int | None) -> float:
        if speaker_site_id is None:
            return SILENCE_DBOV
        return self.level_of(speaker_site_id)

    def _update(self, now: float, samples: Iterable[LevelSample], muted: Collection[int]) -> None:
        previous = self._levels
        levels: dict[int, _Smoothed] = {}
        for sample in samples:
            site = sample.site_id
            if site in muted or now - sample.at > self.stale_after_s:
                continue
            level = min(max(float(sample.level_dbov), SILENCE_DBOV), 0.0)
            before = previous.get(site)
            if before is None:
                levels[site] = _Smoothed(level, sample.at)
                continue
            elapsed = sample.at - before.at
            if elapsed <= 0:  # no newer packet since the last tick
                levels[site] = before
                continue
            weight = 1.0 - math.exp(-elapsed / self.smoothing_s)
            levels[site] = _Smoothed(
                before.level_dbov + weight * (level - before.level_dbov), sample.at
            )
        self._levels = levels
