"""CPU cost of one SIP leg's audio, both ways, as a share of one core.

For each leg codec, `sfu.sip.audio.measure_cpu` runs seconds of audio through the leg's
`Uplink` (decode the leg's codec, resample to 48 kHz, level, Opus encode, push into a room
`Source`) and `Downlink` (decode the Opus of each audio slot, mix, resample, encode the leg's
codec, packetise) as fast as it can, and divides the process CPU time by the audio's duration.
Sockets, SRTP and the event loop's 20 ms wake-ups are not in the figure. The goal is 2 % of a
core per leg.

    .venv/bin/python bench/sip_legs.py [--seconds 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sip_media import CODECS
from sip_media import GOAL_CORE_PER_LEG as GOAL

from sfu.sip.audio import measure_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median shown)")
    args = parser.parse_args()
    print(f"{'codec':8} {'1 slot':>8} {'2 slots':>8}  goal {GOAL:.0%}")
    for codec in CODECS:
        figures = [
            statistics.median(
                measure_cpu(codec, seconds=args.seconds, slots=slots) for _ in range(args.runs)
            )
            for slots in (1, 2)
        ]
        verdict = "ok" if figures[1] <= GOAL else "over"
        print(f"{codec.name:8} {figures[0]:8.2%} {figures[1]:8.2%}  {verdict}")


if __name__ == "__main__":
    main()
