"""The latency relay (tests/chaos/relay.py), the several-hosts run's stand-in for netem: a round trip
through it costs about twice the one-way delay, a stall stands for 0.5% loss, and a stream's chunks
come out in the order they went in, however the delays fall. No root needed."""

import asyncio
import random
import statistics
import time

from tests.chaos.relay import Impairment, Relay, due_at


async def _echo_server() -> asyncio.AbstractServer:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def _relayed(impairment: Impairment, seed: int) -> tuple[Relay, asyncio.AbstractServer]:
    server = await _echo_server()
    relay = Relay([("127.0.0.1", 0, "127.0.0.1", server.sockets[0].getsockname()[1])], impairment, seed=seed)
    await relay.start()
    return relay, server


def test_a_round_trip_through_the_relay_takes_about_40ms():
    async def run() -> list[float]:
        relay, server = await _relayed(Impairment(), seed=3)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.ports()[0])
        rtts = []
        for n in range(60):
            started = time.perf_counter()
            writer.write(b"ping %d\n" % n)
            assert await reader.readline() == b"ping %d\n" % n
            rtts.append((time.perf_counter() - started) * 1000)
        writer.close()
        await writer.wait_closed()
        await relay.close()
        server.close()
        await server.wait_closed()
        return rtts

    rtts = asyncio.run(run())
    print(f"rtt through the relay: median {statistics.median(rtts):.1f} ms, min {min(rtts):.1f}, max {max(rtts):.1f}")
    # 40 ms, and a few more when the machine is busy (the event loop's own turns).
    assert 35 <= statistics.median(rtts) <= 55, rtts
    assert min(rtts) >= 30, rtts  # two draws of 20 +- 5 ms: never under 30


def test_a_stream_comes_out_in_order_however_the_delays_fall():
    async def run() -> tuple[bytes, bytes, int]:
        # A jitter nearly as large as the delay: chunks read 1 ms apart would overtake each other
        # many times over if each were simply sent after its own delay.
        relay, server = await _relayed(Impairment(delay_ms=20, jitter_ms=19, loss=0.02), seed=5)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.ports()[0])
        sent = b"".join(b"%05d;" % n for n in range(400))
        for n in range(400):
            writer.write(sent[n * 6:(n + 1) * 6])
            await writer.drain()
            await asyncio.sleep(0.001)  # pacing the sender, so that the relay reads separate chunks
        writer.write_eof()
        received = await reader.read()  # the echo closes after our EOF has come round
        writer.close()
        await writer.wait_closed()
        await relay.close()
        server.close()
        await server.wait_closed()
        return sent, received, relay.counts.chunks

    sent, received, chunks = asyncio.run(run())
    assert chunks >= 200, chunks  # the check bites only on many chunks in flight at once
    assert received == sent


def test_a_chunk_is_never_due_before_the_one_ahead_of_it():
    assert due_at(10.0, 0.015, previous_due_s=10.030) == 10.030
    assert due_at(10.0, 0.025, previous_due_s=10.010) == 10.025


def test_about_half_a_percent_of_chunks_stall_for_a_retransmission_timeout():
    rng = random.Random(11)
    draws_ms = [Impairment().draw_s(rng) * 1000 for _ in range(200_000)]
    stalls = [d for d in draws_ms if d > 25]
    assert 0.004 < len(stalls) / len(draws_ms) < 0.006
    assert all(215 <= d <= 325 for d in stalls)  # an RTO (200-300 ms) on top of the path's delay
    assert 19.5 < statistics.mean(d for d in draws_ms if d <= 25) < 20.5
