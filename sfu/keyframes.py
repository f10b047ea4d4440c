"""How often a source may ask its publisher for a keyframe (PLI), by how many viewers it feeds."""

from __future__ import annotations

PLI_MIN_INTERVAL_S = 0.5
"""A source sends at most one keyframe request (PLI) to its publisher per this interval."""
PLI_WIDE_FANOUT = 100
"""From this many slots fed by a source (waiting ones included), its keyframe requests are
spaced by `PLI_WIDE_INTERVAL_S` instead: every keyframe is copied to each of them, at about 15
times a delta frame's size (640×360 VP8: 60 packets against 4), so during a join storm, when a
viewer becomes ready every few tens of milliseconds, a keyframe every 0.5 s adds more than half
to the packets the worker forwards to every viewer already in (and a real encoder spends its
bitrate on keyframes). A joining viewer then waits up to one interval for its first frame."""
PLI_WIDE_INTERVAL_S = 1.0


def keyframe_interval_s(slots: int) -> float:
    """The least time between two keyframe requests of a source feeding `slots` slots."""
    return PLI_WIDE_INTERVAL_S if slots >= PLI_WIDE_FANOUT else PLI_MIN_INTERVAL_S
