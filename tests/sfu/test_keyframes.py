"""The least time between a source's keyframe requests, by how many slots it feeds."""

from __future__ import annotations

from sfu.keyframes import (
    PLI_MIN_INTERVAL_S,
    PLI_WIDE_FANOUT,
    PLI_WIDE_INTERVAL_S,
    keyframe_interval_s,
)


def test_keyframe_interval_widens_from_a_wide_fan_out() -> None:
    assert keyframe_interval_s(0) == PLI_MIN_INTERVAL_S
    assert keyframe_interval_s(PLI_WIDE_FANOUT - 1) == PLI_MIN_INTERVAL_S
    assert keyframe_interval_s(PLI_WIDE_FANOUT) == PLI_WIDE_INTERVAL_S
    assert keyframe_interval_s(10 * PLI_WIDE_FANOUT) == PLI_WIDE_INTERVAL_S
    # a joining viewer waits at most one interval for its first frame
    assert PLI_MIN_INTERVAL_S < PLI_WIDE_INTERVAL_S <= 1.0
