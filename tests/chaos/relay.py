"""A userspace stand-in for netem: a TCP relay that adds latency and loss to every connection
through it. This machine's kernel has no sch_netem (`tc qdisc add ... netem` answers "Specified
qdisc kind is unknown"), so the several-hosts run puts one relay inside each host's network
namespace, listening on the namespace's 127.0.0.1 at the ports of PostgreSQL, Redis and the
emulator, and forwarding to the services on the bridge (tests/chaos/netns.py, `Hosts.relay`).

What it does to each chunk read from either side (a chunk is what one read returned, about one
segment train):

- delays it by a time drawn from DELAY_MS +- JITTER_MS (uniform), each way, so a round trip
  costs about twice that;
- on LOSS of the chunks, adds a stall of a TCP retransmission timeout (200-300 ms: Linux's minimum
  RTO is 200 ms). That is what a lost segment looks like to the application over TCP: nothing is
  lost, the byte stream just stops until the retransmission arrives, and everything behind it
  waits (head-of-line blocking). It stands for netem's `loss 0.5%`, which the application cannot
  tell apart from this;
- never reorders: a chunk is due no earlier than the one before it in the same direction, as TCP
  delivers in order whatever the path does.

Run as `python -m tests.chaos.relay --route 127.0.0.1:5432=10.213.7.1:5432 ...`; it prints
"relay ready" once every route listens, and its counts as one JSON line on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import socket
import sys
from dataclasses import dataclass, field

DELAY_MS, JITTER_MS = 20.0, 5.0
LOSS = 0.005
RTO_MS = (200.0, 300.0)
CHUNK = 65536


@dataclass
class Impairment:
    delay_ms: float = DELAY_MS
    jitter_ms: float = JITTER_MS
    loss: float = LOSS
    rto_ms: tuple[float, float] = RTO_MS

    def draw_s(self, rng: random.Random) -> float:
        """One chunk's extra time in flight: the path's delay, plus a retransmission's stall when
        this chunk stands for a lost segment."""
        ms = rng.uniform(self.delay_ms - self.jitter_ms, self.delay_ms + self.jitter_ms)
        if rng.random() < self.loss:
            ms += rng.uniform(*self.rto_ms)
        return max(ms, 0.0) / 1000


def due_at(now_s: float, delay_s: float, previous_due_s: float) -> float:
    """When a chunk read at `now_s` is written on: after its delay, and never before the chunk
    ahead of it in the stream (order is kept, as TCP keeps it)."""
    return max(now_s + delay_s, previous_due_s)


@dataclass
class Counts:
    connections: int = 0
    chunks: int = 0
    stalls: int = 0
    refused: int = 0  # the target did not accept (e.g. the host's link is down)
    routes: dict[str, str] = field(default_factory=dict)


class Relay:
    def __init__(self, routes: list[tuple[str, int, str, int]], impairment: Impairment,
                 seed: int | None = None) -> None:
        self.routes = routes
        self.impairment = impairment
        self.rng = random.Random(seed)
        self.counts = Counts(routes={f"{h}:{p}": f"{th}:{tp}" for h, p, th, tp in routes})
        self.servers: list[asyncio.AbstractServer] = []
        self._open: set[asyncio.StreamWriter] = set()  # both ends of every live connection

    async def start(self) -> None:
        for host, port, target_host, target_port in self.routes:
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             target: tuple[str, int] = (target_host, target_port)) -> None:
                await self._connection(reader, writer, target)
            self.servers.append(await asyncio.start_server(handle, host, port, reuse_address=True))

    def ports(self) -> list[int]:
        return [s.sockets[0].getsockname()[1] for s in self.servers]

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for writer in list(self._open):
            writer.close()
        for writer in list(self._open):
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        for server in self.servers:
            await server.wait_closed()

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                          target: tuple[str, int]) -> None:
        self.counts.connections += 1
        self._open.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            self.counts.refused += 1
            await self._close(client_writer)
            return
        self._open.add(upstream_writer)
        _keepalive(upstream_writer.get_extra_info("socket"))
        try:
            await asyncio.gather(self._pipe(client_reader, upstream_writer),
                                 self._pipe(upstream_reader, client_writer))
        finally:
            await self._close(client_writer, upstream_writer)

    async def _close(self, *writers: asyncio.StreamWriter) -> None:
        for writer in writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self._open.discard(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One direction: a reader that timestamps chunks as they arrive, a writer that sends each
        when it is due. The two are apart so that a delay holds up no reading: chunks in flight
        overlap, as on a real path, and throughput is not one chunk per delay."""
        loop = asyncio.get_running_loop()
        in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            previous = 0.0
            try:
                while chunk := await reader.read(CHUNK):
                    delay_s = self.impairment.draw_s(self.rng)
                    self.counts.chunks += 1
                    self.counts.stalls += delay_s * 1000 > self.impairment.delay_ms + self.impairment.jitter_ms
                    previous = due_at(loop.time(), delay_s, previous)
                    in_flight.put_nowait((previous, chunk))
            except OSError:
                pass  # a reset: end the stream as the peer did
            in_flight.put_nowait((previous, b""))

        async def write() -> None:
            while True:
                due, chunk = await in_flight.get()
                wait_s = due - loop.time()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                if not chunk:
                    with contextlib.suppress(OSError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(chunk)
                try:
                    await writer.drain()
                except OSError:
                    return

        await asyncio.gather(read(), write())


def _keepalive(sock: socket.socket) -> None:
    """The workers' own PostgreSQL keepalives (shared/db.py: 10 s, then 3 probes 5 s apart) stop at
    the relay's loopback end; the relay's upstream socket carries them instead, so a peer lost
    behind a cut link is found as quickly, and the relay then closes the worker's side."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _route(raw: str) -> tuple[str, int, str, int]:
    listen, _, target = raw.partition("=")
    host, _, port = listen.rpartition(":")
    target_host, _, target_port = target.rpartition(":")
    return host, int(port), target_host, int(target_port)


async def _serve(args: argparse.Namespace) -> None:
    relay = Relay([_route(r) for r in args.route],
                  Impairment(args.delay_ms, args.jitter_ms, args.loss), seed=args.seed)
    await relay.start()
    print("relay ready", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    await relay.close()
    print(json.dumps(relay.counts.__dict__), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--route", action="append", required=True, help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    parser.add_argument("--delay-ms", type=float, default=DELAY_MS)
    parser.add_argument("--jitter-ms", type=float, default=JITTER_MS)
    parser.add_argument("--loss", type=float, default=LOSS)
    parser.add_argument("--seed", type=int, default=None)
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
