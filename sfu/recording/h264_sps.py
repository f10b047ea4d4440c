"""The picture size and parameter sets of an H.264 keyframe, read from its SPS without decoding
(ITU-T H.264 §7.3.2.1.1), for the recording's track header.

A keyframe from the depayloader (`sfu.rtc.depayload`) is an Annex B byte stream: NAL units
each after a 00 00 01 or 00 00 00 01 start code.
"""

from __future__ import annotations

_NAL_SPS = 7
_NAL_PPS = 8
# profiles whose SPS carries chroma format and scaling lists (§7.3.2.1.1)
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def annexb_units(stream: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream, without their start codes."""
    units: list[bytes] = []
    start = stream.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        end = stream.find(b"\x00\x00\x01", begin)
        unit = stream[begin:] if end < 0 else stream[begin:end]
        if end >= 0 and unit.endswith(b"\x00"):
            unit = unit[:-1]  # the first byte of a four-byte start code
        if unit:
            units.append(unit)
        start = end
    return units


def parameter_sets(stream: bytes) -> bytes:
    """The SPS and PPS units of `stream` as an Annex B stream (a Matroska muxer turns this
    into the track's avcC), or b"" if it has none."""
    kept = [u for u in annexb_units(stream) if u[0] & 0x1F in (_NAL_SPS, _NAL_PPS)]
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in kept)


class _Bits:
    """An RBSP read bit by bit, with Exp-Golomb codes (§9.1)."""

    def __init__(self, unit: bytes) -> None:
        self._data = unit.replace(b"\x00\x00\x03", b"\x00\x00")  # emulation prevention
        self._pos = 0

    def bit(self) -> int:
        byte = self._data[self._pos >> 3]  # IndexError past the end: a truncated SPS
        value = (byte >> (7 - (self._pos & 7))) & 1
        self._pos += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def sps_size(stream: bytes) -> tuple[int, int] | None:
    """Width and height from the first SPS in `stream`, None if it has none or it is bad."""
    sps = next((u for u in annexb_units(stream) if u[0] & 0x1F == _NAL_SPS), None)
    if sps is None:
        return None
    try:
        return _size(_Bits(sps[1:]))
    except (IndexError, ValueError):
        return None


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = next_ = 8
    for _ in range(size):
        if next_:
            next_ = (last + bits.se() + 256) % 256
        last = next_ or last


def _size(bits: _Bits) -> tuple[int, int]:
    profile = bits.bits(8)
    bits.bits(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3:
            bits.bit()  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format != 3 else 12):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.bit()
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()  # mb_adaptive_frame_field_flag
    bits.bit()  # direct_8x8_inference_flag
    width, height = width_mbs * 16, height_units * 16 * (2 - frame_mbs_only)
    if bits.bit():  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        crop_x = 1 if chroma_format == 0 else (2 if chroma_format in (1, 2) else 1)
        crop_y = (1 if chroma_format in (0, 2, 3) else 2) * (2 - frame_mbs_only)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    return width, height
