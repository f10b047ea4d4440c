"""H.264 for room systems: profile-level-id negotiation and parameter-set keeping, with real
libx264 streams decoded by FFmpeg."""

from __future__ import annotations

import pytest
from aiortc.rtp import RtpPacket

from sfu.sip.h264 import (
    BASELINE,
    CONSTRAINED_BASELINE,
    HIGH,
    MAIN,
    ParameterSets,
    answer_profile_level_id,
    can_decode,
    nal_units,
    parse_profile_level_id,
    stap_a,
    webrtc_rank,
)
from sfu.sip.video import SeqShift
from tests.sfu.sip.media import IDR, PPS, SPS, decode, encode, nal_types, packetize


@pytest.mark.parametrize(
    ("value", "profile", "level"),
    [
        ("42e01f", CONSTRAINED_BASELINE, 31),
        ("42001f", BASELINE, 31),
        ("42C01E", CONSTRAINED_BASELINE, 30),
        ("4d0028", MAIN, 40),
        ("4d8028", CONSTRAINED_BASELINE, 40),
        ("640028", HIGH, 40),
        ("64001f", HIGH, 31),
        ("42f00b", CONSTRAINED_BASELINE, 10.5),  # level 1b: level_idc 11 with constraint_set3
        ("42e00b", CONSTRAINED_BASELINE, 11),
        (None, BASELINE, 10),  # RFC 6184 §8.1: absent means 42000a
    ],
)
def test_parse_profile_level_id_reads_profile_and_level(
    value: str | None, profile: str, level: float
) -> None:
    parsed = parse_profile_level_id(value)
    assert (parsed.profile, parsed.level) == (profile, level)


@pytest.mark.parametrize("value", ["42e01", "42e01fz", "zzzzzz", "0x42e01f"])
def test_parse_profile_level_id_refuses_malformed(value: str) -> None:
    with pytest.raises(ValueError, match="six hex digits"):
        parse_profile_level_id(value)


@pytest.mark.parametrize(
    ("stream", "decoder", "plays"),
    [
        # a WebRTC publisher's H.264 to room systems that offered...
        ("42e01f", "42e01f", True),
        ("42e01f", "42801f", True),  # baseline with constraint_set0
        ("42e01f", "640028", True),  # high, level 4: plays constrained baseline 3.1
        ("42e01f", "4d001f", True),
        ("42e01f", "42e01e", False),  # level 3.0 is below the stream's 3.1
        ("42001f", "42e01f", False),  # baseline may use tools constrained baseline lacks
        # a room system's H.264 to WebRTC viewers (42e01f)
        ("42e01f", "42e01f", True),
        ("640028", "42e01f", False),
        ("4d0028", "42e01f", False),
        ("42c015", "42e01f", True),
        ("42e028", "42e01f", False),  # level 4 into a 3.1 decoder
    ],
)
def test_can_decode_follows_profiles_and_levels(stream: str, decoder: str, plays: bool) -> None:
    assert can_decode(stream, decoder) is plays


@pytest.mark.parametrize(
    ("offered", "ours", "answer"),
    [
        ("42e01f", "42e01f", "42e01f"),
        ("42e028", "42e01f", "42e01f"),  # the level drops to ours
        ("42e015", "42e01f", "42e015"),  # a lower offered level stays
        ("42801f", "42e01f", "42801f"),  # the offered constraint flags stay
        ("640028", "42e01f", None),  # high is not a profile our publishers send
        ("4d0028", "42e01f", None),
        ("42f00b", "42e01f", "42f00b"),  # level 1b stays 1b
        ("42e01f", "42f00b", "42f00b"),  # down to 1b: the flag goes with the level
    ],
)
def test_answer_profile_level_id_keeps_profile_and_lowers_level(
    offered: str, ours: str, answer: str | None
) -> None:
    assert answer_profile_level_id(offered, ours) == answer


def test_webrtc_rank_prefers_constrained_baseline() -> None:
    offered = ["640028", "4d0028", "42001f", "42e01f"]
    assert min(offered, key=webrtc_rank) == "42e01f"
    assert sorted(offered, key=webrtc_rank) == ["42e01f", "42001f", "4d0028", "640028"]


def test_nal_units_reads_single_stap_a_and_fu_a_start() -> None:
    sps, pps, idr = b"\x67\x42\xe0\x1f", b"\x68\xce\x3c\x80", b"\x65\x88\x84"
    assert nal_units(sps) == [(SPS, sps)]
    assert nal_units(idr) == [(IDR, idr)]
    assert nal_units(stap_a([sps, pps])) == [(SPS, sps), (PPS, pps)]
    assert stap_a([sps, pps])[0] == 0x78  # NRI 3 (the parameter sets'), type 24
    assert nal_units(bytes((0x7C, 0x85)) + b"xx") == [(IDR, None)]  # FU-A start of an IDR
    assert nal_units(bytes((0x7C, 0x05)) + b"xx") == []  # a later fragment
    assert nal_units(bytes((0x78, 0x00, 0x09)) + sps) == []  # length beyond the packet


def test_parameter_sets_insert_once_per_idr_access_unit_without_them() -> None:
    sps, pps = b"\x67\x42\xe0\x1f", b"\x68\xce\x3c\x80"
    fu_idr_start, fu_idr_end = bytes((0x7C, 0x85)) + b"a", bytes((0x7C, 0x45)) + b"b"
    keeper = ParameterSets()
    assert keeper.observe(fu_idr_start, 0) is None  # nothing to insert before any SPS
    assert keeper.observe(stap_a([sps, pps]), 3000) is None
    assert keeper.observe(fu_idr_start, 3000) is None  # they came with this access unit
    assert keeper.observe(fu_idr_start, 6000) == stap_a([sps, pps])
    assert keeper.observe(fu_idr_end, 6000) is None
    assert keeper.observe(b"\x65second-slice", 6000) is None  # once per access unit
    assert keeper.observe(b"\x41p-slice", 9000) is None
    assert keeper.observe(stap_a([b"\x65a", b"\x65b"]), 12000) == stap_a([sps, pps])
    assert keeper.inserted == 2


def test_seq_shift_makes_room_and_keeps_late_packets_on_their_numbers() -> None:
    shift = SeqShift()
    assert [shift.map(s) for s in (65534, 65535)] == [65534, 65535]
    assert shift.insert_before(0) == 0
    assert shift.map(0) == 1
    assert shift.map(2) == 3
    assert shift.map(1) == 2
    assert shift.map(65535) == 65535  # reordered from before the insertion
    assert shift.insert_before(3) == 4
    assert [shift.map(s) for s in (3, 4)] == [5, 6]
    # far past both insertions they fold into the base offset
    assert shift.map(0x3000) == 0x3002
    assert shift.map(0x3001) == 0x3003


def test_parameter_sets_let_a_late_joiner_decode_from_the_second_idr() -> None:
    """A room system sends SPS and PPS once; a decoder joining at the next IDR decodes with the
    parameter sets put back, and decodes nothing without them."""
    units = encode(12, {0, 6})
    packets = packetize(units, payload_type=100, ssrc=7)
    late = [p for p in packets if p.timestamp >= 6 * 3000]
    assert not any(SPS in nal_types(p) for p in late)
    assert decode(late) == []

    keeper = ParameterSets()
    shift = SeqShift()
    out = []
    for packet in packets:
        inserted = keeper.observe(packet.payload, packet.timestamp)
        if inserted is not None:
            out.append(
                RtpPacket(
                    payload_type=100,
                    sequence_number=shift.insert_before(packet.sequence_number),
                    timestamp=packet.timestamp,
                    ssrc=7,
                    payload=inserted,
                )
            )
        packet.sequence_number = shift.map(packet.sequence_number)
        out.append(packet)
    assert keeper.inserted == 1
    seqs = [p.sequence_number for p in out]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    joined = [p for p in out if p.timestamp >= 6 * 3000]
    assert nal_types(joined[0]) == [SPS, PPS]
    frames = decode(joined)
    assert len(frames) == 6
    assert {(f.width, f.height) for f in frames} == {(320, 240)}


def test_parameter_sets_seed_from_sprop_parameter_sets() -> None:
    keeper = ParameterSets()
    keeper.seed("Z0LACtkCxOwEQAAAAwBAAAAHo8SJkg==,aMuDyyA=")  # FFmpeg's, from its SDP
    assert keeper.sps is not None and keeper.sps[0] & 0x1F == SPS
    assert keeper.pps == bytes.fromhex("68cb83cb20")
    assert keeper.observe(b"\x65idr", 0) == stap_a([keeper.sps, keeper.pps])
    with pytest.raises(ValueError, match="not base64"):
        ParameterSets().seed("Z0L*,aMuDyyA=")
    with pytest.raises(ValueError, match="no SPS/PPS"):
        ParameterSets().seed("ZYiE")  # an IDR slice
