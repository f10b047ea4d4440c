"""A paper plan for a national briefing, computed from the fan-out benchmark's figures.

Every site views the programme (one WHEP session each); a few speak (WHIP). Forwarding cost is
what `bench/fanout.py` measured per forwarded packet; taking a relayed programme in, and the
latency a hop adds, are what `bench/cascade.py` measured; the programme's packet rate and
bitrate are the benchmarks' publisher's. The plan has two tiers, as the national conference
network has: the origin holds the chair and relays the programme to one edge per province over
the cascade (`sfu/cascade.py`: up to two videos and two audio tracks per relay session, the
speaker's and what the speaking hall sees and hears), and each edge serves its province's
sites. It prints the cores and nodes each tier needs and the bandwidth on each link, and, for
comparison, the same audience on a single tier.

    .venv/bin/python bench/national_plan.py [--us-per-packet 16.8] [--cores-per-node 2] ...
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

# Measured with bench/fanout.py on the 2-core development machine (README "Benchmarks"):
# the worst per-packet CPU over 100-500 viewers, one and two workers.
MEASURED_US_PER_PACKET = 17.1
PROGRAMME_PACKETS_PER_S = 167  # VP8 ~1 Mbit/s at 30 fps + Opus, as the benchmark's publisher
PROGRAMME_MBIT_S = 1.1  # video 1.03 Mbit/s + Opus + RTP/SRTP/UDP/IP overhead
# Measured with bench/cascade.py: a worker's CPU per programme packet it takes in from the
# relay session above it (the edge feeding one viewer, less what fanout.py measured per packet
# out), and the latency one hop adds at p95 on loopback (processing and scheduling only).
MEASURED_US_PER_PACKET_IN = 165.0
MEASURED_HOP_P95_MS = 4.4
# A relay session carries at most two programmes' worth: the speaker's video and audio, and
# what the speaking hall sees and hears (the chair), when a hall other than the chair speaks.
RELAY_PROGRAMMES = 2
PROVINCES = 34
COMMUNES = 3_321  # communes, wards and special zones since July 2025


@dataclass(frozen=True)
class Tier:
    name: str
    nodes: int
    sessions_per_node: int
    cores_per_node: float
    egress_mbit_per_node: float


def viewers_per_core(us_per_packet: float, packets_per_s: float, load: float) -> float:
    """Viewers one core serves at `load` (share of the core the worker may use)."""
    return load * 1e6 / (us_per_packet * packets_per_s)


def plan(args: argparse.Namespace) -> list[Tier]:
    per_core = viewers_per_core(args.us_per_packet, args.packets_per_s, args.load)
    per_node = per_core * args.cores_per_node
    sites = args.provinces + args.communes
    # origin: the chair's node; one relay session per province edge (each up to two
    # programmes' worth of packets) plus the speakers' own screens
    relay_load = args.provinces * RELAY_PROGRAMMES
    origin = Tier(
        "origin (chair)",
        1,
        args.provinces + args.speakers,
        (relay_load + args.speakers) / per_core,
        (relay_load + args.speakers) * args.mbit_s,
    )
    per_province = math.ceil(sites / args.provinces)
    edge_nodes_each = math.ceil(per_province / per_node)
    # each edge node takes the relayed programme in once (its machine's other workers by pipe)
    intake_cores = RELAY_PROGRAMMES * args.packets_per_s * args.us_per_packet_in / 1e6 / args.load
    edges = Tier(
        "province edges",
        args.provinces * edge_nodes_each,
        math.ceil(per_province / edge_nodes_each),
        per_province / per_core / edge_nodes_each + intake_cores,
        per_province / edge_nodes_each * args.mbit_s,
    )
    flat_nodes = math.ceil(sites / per_node)
    flat = Tier(
        "single tier (for comparison)",
        flat_nodes,
        math.ceil(sites / flat_nodes),
        sites / per_core / flat_nodes,
        sites / flat_nodes * args.mbit_s,
    )
    return [origin, edges, flat]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--us-per-packet", type=float, default=MEASURED_US_PER_PACKET)
    parser.add_argument("--us-per-packet-in", type=float, default=MEASURED_US_PER_PACKET_IN)
    parser.add_argument("--hop-p95-ms", type=float, default=MEASURED_HOP_P95_MS)
    parser.add_argument("--packets-per-s", type=float, default=PROGRAMME_PACKETS_PER_S)
    parser.add_argument("--mbit-s", type=float, default=PROGRAMME_MBIT_S)
    parser.add_argument("--cores-per-node", type=int, default=8)
    parser.add_argument(
        "--load", type=float, default=0.6, help="share of each core planned for forwarding"
    )
    parser.add_argument("--provinces", type=int, default=PROVINCES)
    parser.add_argument("--communes", type=int, default=COMMUNES)
    parser.add_argument("--speakers", type=int, default=5, help="sites publishing at once")
    args = parser.parse_args()

    per_core = viewers_per_core(args.us_per_packet, args.packets_per_s, args.load)
    sites = args.provinces + args.communes
    print(
        f"{sites:,} sites view one programme of {args.packets_per_s:.0f} packets/s, "
        f"{args.mbit_s} Mbit/s; forwarding costs {args.us_per_packet} µs CPU per packet "
        f"(measured), so one core at {args.load:.0%} serves {per_core:.0f} viewers and a "
        f"{args.cores_per_node}-core node {per_core * args.cores_per_node:.0f}."
    )
    print()
    header = (
        f"{'tier':32} {'nodes':>6} {'sessions/node':>14} {'cores/node':>11} "
        f"{'egress/node':>13} {'egress, tier':>13}"
    )
    print(header)
    print("-" * len(header))
    for tier in plan(args):
        print(
            f"{tier.name:32} {tier.nodes:>6} {tier.sessions_per_node:>14,} "
            f"{tier.cores_per_node:>11.1f} {tier.egress_mbit_per_node:>10.0f} Mb "
            f"{tier.egress_mbit_per_node * tier.nodes / 1000:>10.2f} Gb"
        )
    print()
    relay_mbit = RELAY_PROGRAMMES * args.mbit_s
    print(
        "Each province edge takes the programme once from the origin over one relay session "
        f"(at most {relay_mbit:.1f} Mbit/s, {relay_mbit * args.provinces:.0f} Mbit/s out of "
        f"the origin), so the national backbone carries {args.provinces} sessions instead of "
        "one per site; the sites' traffic stays inside their province. The edge tier adds one "
        f"hop: {args.hop_p95_ms} ms at p95 measured on loopback, plus the network's own delay "
        "between the origin and the province."
    )


if __name__ == "__main__":
    main()
