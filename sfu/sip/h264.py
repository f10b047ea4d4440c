"""H.264 for SIP room systems, without decoding: profile-level-id negotiation (RFC 6184 §8.1)
and keeping the parameter sets (SPS, PPS) a late joiner needs to decode.

Room systems send H.264 over plain RTP, often with a profile or level other than WebRTC's
42e01f (constrained baseline, level 3.1), and many send their SPS and PPS only once, at the
start of the call: a viewer switched to such a stream later sees IDR pictures it cannot decode.
`ParameterSets` remembers the latest SPS and PPS and hands back a STAP-A (RFC 6184 §5.7.1) to
send in front of an IDR that comes without them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from struct import pack

# NAL unit types (ITU-T H.264 table 7-1) and RTP packet types (RFC 6184 §5.2)
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
STAP_A = 24
FU_A = 28
_NRI_MASK = 0x60

# profile_idc values (ITU-T H.264 annex A)
PROFILE_BASELINE = 66
PROFILE_MAIN = 77
PROFILE_EXTENDED = 88
PROFILE_HIGH = 100

CONSTRAINED_BASELINE = "constrained-baseline"
BASELINE = "baseline"
MAIN = "main"
EXTENDED = "extended"
HIGH = "high"

# Which profile's decoder plays which profile's streams: a constrained baseline stream is
# also a baseline, main, extended and high stream (ITU-T H.264 A.2.1.1, A.2.2, A.2.3, A.2.4).
_DECODES: dict[str, frozenset[str]] = {
    CONSTRAINED_BASELINE: frozenset({CONSTRAINED_BASELINE}),
    BASELINE: frozenset({CONSTRAINED_BASELINE, BASELINE}),
    EXTENDED: frozenset({CONSTRAINED_BASELINE, BASELINE, EXTENDED}),
    MAIN: frozenset({CONSTRAINED_BASELINE, MAIN}),
    HIGH: frozenset({CONSTRAINED_BASELINE, MAIN, HIGH}),
}

WEBRTC_PROFILE_LEVEL_ID = "42e01f"
"""What browsers and aiortc offer first: constrained baseline, level 3.1."""
DEFAULT_PROFILE_LEVEL_ID = "42000a"
"""RFC 6184 §8.1: the value when profile-level-id is absent (baseline, level 1)."""


@dataclass(frozen=True)
class ProfileLevel:
    """A parsed profile-level-id: profile_idc, profile-iop (constraint flags), level_idc."""

    profile_idc: int
    profile_iop: int
    level_idc: int

    @property
    def profile(self) -> str:
        """The profile name (constraint flags applied), or `profile_idc=N` if not one of ours."""
        idc, iop = self.profile_idc, self.profile_iop
        if idc == PROFILE_BASELINE:
            return CONSTRAINED_BASELINE if iop & 0x40 else BASELINE
        if idc == PROFILE_MAIN:
            return CONSTRAINED_BASELINE if iop & 0x80 else MAIN
        if idc == PROFILE_EXTENDED:
            return CONSTRAINED_BASELINE if iop & 0xC0 == 0xC0 else EXTENDED
        if idc == PROFILE_HIGH:
            return HIGH
        return f"profile_idc={idc}"

    @property
    def level(self) -> float:
        """The level as a number to compare (3.1 → 31); level 1b is 10.5 (A.3.1, RFC 6184)."""
        level_1b = (
            self.level_idc == 11
            and self.profile_iop & 0x10
            and self.profile_idc
            in (
                PROFILE_BASELINE,
                PROFILE_MAIN,
                PROFILE_EXTENDED,
            )
        )
        if level_1b or (self.level_idc == 9 and self.profile_idc == PROFILE_HIGH):
            return 10.5
        return float(self.level_idc)

    def __str__(self) -> str:
        return f"{self.profile_idc:02x}{self.profile_iop:02x}{self.level_idc:02x}"


def parse_profile_level_id(value: str | int | None) -> ProfileLevel:
    """Parse a profile-level-id fmtp value (six hex digits); absent means 42000a.

    Raises ValueError on anything else, with the value in the message.
    """
    if value is None or value == "":
        value = DEFAULT_PROFILE_LEVEL_ID
    text = f"{value:06x}" if isinstance(value, int) else str(value).strip()
    if len(text) != 6:
        raise ValueError(f"profile-level-id must be six hex digits, not {value!r}")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"profile-level-id must be six hex digits, not {value!r}") from None
    return ProfileLevel(raw[0], raw[1], raw[2])


def can_decode(stream: str | int | None, decoder: str | int | None) -> bool:
    """Whether a receiver that declared `decoder` plays a stream sent as `stream`.

    Its profile must include the stream's (constrained baseline plays everywhere) and its
    level must be at least the stream's. Use it both ways: a WebRTC publisher's H.264 to a room
    system's offered profile-level-id, and a room system's H.264 to a WebRTC viewer's.
    """
    sent, accepted = parse_profile_level_id(stream), parse_profile_level_id(decoder)
    profiles = _DECODES.get(accepted.profile, frozenset({accepted.profile}))
    return sent.profile in profiles and sent.level <= accepted.level


def answer_profile_level_id(offered: str | int | None, supported: str | int | None) -> str | None:
    """Our answer to an offered profile-level-id, or None if we cannot take that profile.

    RFC 6184 §8.2.2: the answer keeps the offered profile and may only lower the level; we
    lower it to what `supported` allows (the level of the room's H.264 publishers). Baseline
    and constrained baseline are taken as one: room systems that offer baseline send no FMO,
    ASO or redundant slices, which is all that sets it apart. Main or high against our
    constrained baseline gives None: choose another offered format (`webrtc_rank`).
    """
    offer, ours = parse_profile_level_id(offered), parse_profile_level_id(supported)
    baselines = {CONSTRAINED_BASELINE, BASELINE}
    if offer.profile != ours.profile and not {offer.profile, ours.profile} <= baselines:
        return None
    lower = offer if offer.level <= ours.level else ours
    return str(ProfileLevel(offer.profile_idc, _answer_iop(offer, lower), lower.level_idc))


def _answer_iop(offer: ProfileLevel, lower: ProfileLevel) -> int:
    # the constraint flags are the offer's, except the level-1b flag, which goes with the level
    if lower is offer:
        return offer.profile_iop
    level_1b = lower.level == 10.5 and lower.level_idc == 11
    return (offer.profile_iop & ~0x10) | (0x10 if level_1b else 0)


def webrtc_rank(value: str | int | None) -> int:
    """How well WebRTC viewers take a stream of this profile-level-id, lower is better: among a
    room system's H.264 payload types, answer the one with the lowest rank."""
    profile = parse_profile_level_id(value).profile
    order = (CONSTRAINED_BASELINE, BASELINE, MAIN, HIGH)
    return order.index(profile) if profile in order else len(order)


# ------------------------------------------------------------------------------------------------
# parameter sets


def nal_units(payload: bytes) -> list[tuple[int, bytes | None]]:
    """The NAL units an H.264 RTP payload starts or carries: (type, the whole unit or None).

    A single NAL unit packet gives itself, a STAP-A each unit it aggregates, the first fragment
    of an FU-A the type of the unit it starts (without the unit, which is not whole yet); other
    fragments and packet types give nothing. Malformed aggregates give what parsed.
    """
    if not payload:
        return []
    nal_type = payload[0] & 0x1F
    if 0 < nal_type < STAP_A:
        return [(nal_type, payload)]
    if nal_type == STAP_A:
        units: list[tuple[int, bytes | None]] = []
        pos, size = 1, len(payload)
        while pos + 2 < size:
            length = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if length == 0 or pos + length > size:
                break
            unit = payload[pos : pos + length]
            units.append((unit[0] & 0x1F, unit))
            pos += length
        return units
    if nal_type == FU_A and len(payload) >= 2 and payload[1] & 0x80:
        return [(payload[1] & 0x1F, None)]
    return []


def stap_a(units: list[bytes]) -> bytes:
    """One STAP-A payload aggregating these NAL units (RFC 6184 §5.7.1); its NRI is the
    highest of theirs."""
    nri = max(unit[0] & _NRI_MASK for unit in units)
    return bytes((nri | STAP_A,)) + b"".join(pack("!H", len(unit)) + unit for unit in units)


class ParameterSets:
    """Watches one H.264 RTP stream and keeps its latest SPS and PPS.

    `observe()` each packet in arrival order: for a packet that starts an IDR picture whose
    access unit (the packets of one RTP timestamp) brought no SPS and PPS before it, it returns
    the STAP-A payload to send just in front of it; else None. A stream that repeats its
    parameter sets at every IDR gets nothing inserted. An SPS or PPS fragmented in FU-A (larger
    than a packet, which no encoder we know of does) is not remembered.
    """

    __slots__ = ("_au_has_pps", "_au_has_sps", "_au_timestamp", "inserted", "pps", "sps")

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self.inserted = 0
        """How many times the parameter sets were handed back for insertion."""
        self._au_timestamp = -1
        self._au_has_sps = False
        self._au_has_pps = False

    def seed(self, sprop_parameter_sets: str) -> None:
        """Take the parameter sets the SDP gave (RFC 6184 §8.1 sprop-parameter-sets: base64
        NAL units, comma-separated): room systems that put them only there send no SPS or
        PPS in band at all. Raises ValueError if the value is not that."""
        for item in sprop_parameter_sets.split(","):
            try:
                unit = base64.b64decode(item.strip(), validate=True)
            except binascii.Error:
                raise ValueError(f"sprop-parameter-sets: {item[:40]!r} is not base64") from None
            nal_type = unit[0] & 0x1F if unit else 0
            if nal_type == NAL_SPS:
                self.sps = unit
            elif nal_type == NAL_PPS:
                self.pps = unit
            else:
                raise ValueError(f"sprop-parameter-sets: NAL unit type {nal_type} is no SPS/PPS")

    def observe(self, payload: bytes, timestamp: int) -> bytes | None:
        """Note this packet's parameter sets; the STAP-A to send before it, if it needs one."""
        if timestamp != self._au_timestamp:
            self._au_timestamp = timestamp
            self._au_has_sps = self._au_has_pps = False
        for nal_type, unit in nal_units(payload):
            if nal_type == NAL_SPS and unit is not None:
                self.sps, self._au_has_sps = unit, True
            elif nal_type == NAL_PPS and unit is not None:
                self.pps, self._au_has_pps = unit, True
            elif nal_type == NAL_IDR:
                return self._missing()
        return None

    def _missing(self) -> bytes | None:
        if self._au_has_sps and self._au_has_pps:
            return None
        if self.sps is None or self.pps is None:
            return None  # nothing seen yet: the receiver will have to ask for a keyframe
        # once per access unit, however many slices or fragments the IDR picture has
        self._au_has_sps = self._au_has_pps = True
        self.inserted += 1
        return stap_a([self.sps, self.pps])
