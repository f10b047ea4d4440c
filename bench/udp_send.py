"""CPU per datagram of the worker's three ways of sending one packet to N viewers (prints
figures): the send step of the forwarding path alone, in one process, without SRTP.

- `range`: one asyncio datagram transport per viewer (port-range mode: a socket per peer),
  `transport.sendto(data, addr)` per viewer;
- `single-sendto`: the shared socket of single-port mode (`sfu.rtc.udpmux.SharedUdpPort`),
  one `sendto` per viewer;
- `single`: the same socket with sends batched by sendmmsg(2) (`sfu.rtc.sendmmsg`), one
  system call per fan-out of up to 64 viewers.

A packet of `--size` bytes goes to `--viewers` receiving sockets on loopback, `--packets`
times, the event loop turning after each fan-out as the worker's does. The receivers live in
another process that reads them as they fill (recvmmsg is not needed: it reads with recv in a
select loop), so the kernel's loopback delivery is done, but their reading is not counted. CPU
is this process's `time.process_time()` (user + system, which includes the loopback delivery
done in the sender's system call) over the sends. Rounds alternate the three modes, so a busy
machine affects them alike; the median per mode is printed.

    .venv/bin/python bench/udp_send.py [--viewers 100] [--packets 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import select
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sfu.rtc.udpmux import SharedUdpPort

MODES = ("range", "single-sendto", "single")


def receive(ports: mp.SimpleQueue, count: int, stop: mp.Event) -> None:  # type: ignore[type-arg]
    """Own `count` receiving sockets and read them until `stop` is set."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setblocking(False)
        socks.append(sock)
    ports.put([s.getsockname()[1] for s in socks])
    while not stop.is_set():
        readable, _, _ = select.select(socks, [], [], 0.1)
        for sock in readable:
            try:
                while True:
                    sock.recv(4096)
            except BlockingIOError:
                pass


async def send_range(addrs: list[tuple[str, int]], data: bytes, packets: int) -> float:
    loop = asyncio.get_running_loop()
    transports = []
    for _ in addrs:
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
    pairs = list(zip(transports, addrs, strict=True))
    try:
        start = time.process_time()
        for _ in range(packets):
            for transport, addr in pairs:
                transport.sendto(data, addr)
            await asyncio.sleep(0)
        return time.process_time() - start
    finally:
        for transport in transports:
            transport.close()


async def send_shared(
    addrs: list[tuple[str, int]], data: bytes, packets: int, batch: bool
) -> float:
    port = await SharedUdpPort.open("127.0.0.1", 0, batch=batch)
    sendto = port.sendto
    try:
        start = time.process_time()
        for _ in range(packets):
            for addr in addrs:
                sendto(data, addr)
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        return time.process_time() - start
    finally:
        port.close()


async def one_round(mode: str, addrs: list[tuple[str, int]], data: bytes, packets: int) -> float:
    """µs of CPU per datagram sent in `mode`."""
    if mode == "range":
        seconds = await send_range(addrs, data, packets)
    else:
        seconds = await send_shared(addrs, data, packets, batch=mode == "single")
    return seconds * 1e6 / (packets * len(addrs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1100, help="bytes per datagram")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    ports, stop = ctx.SimpleQueue(), ctx.Event()
    receiver = ctx.Process(target=receive, args=(ports, args.viewers, stop), daemon=True)
    receiver.start()
    addrs = [("127.0.0.1", port) for port in ports.get()]
    data = bytes(range(256)) * (args.size // 256) + bytes(args.size % 256)
    figures: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for round_index in range(args.rounds):
            for mode in MODES:
                figure = asyncio.run(one_round(mode, addrs, data, args.packets))
                figures[mode].append(figure)
            print(
                f"round {round_index + 1}: "
                + ", ".join(f"{mode} {figures[mode][-1]:.2f} µs" for mode in MODES),
                flush=True,
            )
    finally:
        stop.set()
        receiver.join(5)
    base = statistics.median(figures["range"])
    print(
        f"\nCPU µs per datagram, median of {args.rounds} alternating rounds "
        f"({args.viewers} viewers × {args.packets} packets of {args.size} B):"
    )
    for mode in MODES:
        median = statistics.median(figures[mode])
        print(f"  {mode:<14}{median:6.2f} µs  ({median / base:.2f}× range)")


if __name__ == "__main__":
    main()
