"""Benchmark: requests/s of `GET /v1/tracks?ids=` (50 ids) against one emulator process.

The emulator runs in its own process (uvicorn, one worker, rate limit off); the load comes
from other processes (httpx on asyncio, keep-alive connections; or `wrk` with --tool wrk when
it is installed). Each request asks for a different batch of 50 ids out of the catalog, after
a warm-up that fills the emulator's caches as a long-running pipeline would.
Target (issue 3): >= 1,000 requests/s on a 2-core machine.

    .venv/bin/python -m bench.emulator_bench            # 10 s
    .venv/bin/python -m bench.emulator_bench --quick    # ~3 s
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wrk  # noqa: E402
from emulator.config import EmulatorConfig  # noqa: E402
from emulator.server import start_subprocess  # noqa: E402

TARGET_RPS = 1000
BATCH = 50


def _load(base_url: str, token: str, paths: list[str], duration_s: float, concurrency: int, out) -> None:
    """One load-generator process: `concurrency` keep-alive connections, as fast as they go."""

    async def run() -> tuple[int, int]:
        ok = errors = 0
        deadline = time.perf_counter() + duration_s
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=10) as client:

            async def worker(start: int) -> None:
                nonlocal ok, errors
                i = start
                while time.perf_counter() < deadline:
                    response = await client.get(paths[i % len(paths)])
                    if response.status_code == 200:
                        ok += 1
                    else:
                        errors += 1
                    i += concurrency

            await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return ok, errors

    out.put(asyncio.run(run()))


def run_httpx(base_url: str, token: str, paths: list[str], duration_s: float, processes: int,
              concurrency: int) -> tuple[float, int, int]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=_load, args=(base_url, token, paths[k::processes], duration_s, concurrency, queue))
        for k in range(processes)
    ]
    started = time.perf_counter()
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    elapsed = time.perf_counter() - started
    for w in workers:
        w.join()
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    # Process start-up is not load: measure over the requested duration.
    return ok / min(elapsed, duration_s), ok, errors


def run_wrk(base_url: str, token: str, paths: list[str], duration_s: float, concurrency: int) -> tuple[float, int, int]:
    load = wrk.run(base_url, paths, duration_s=duration_s, connections=concurrency, token=token)  # errors raise
    return load.per_s, load.requests, 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a run of a few seconds")
    parser.add_argument("--duration-s", type=float, default=None)
    parser.add_argument("--tool", choices=("auto", "httpx", "wrk"), default="auto")
    parser.add_argument("--processes", type=int, default=1, help="httpx load-generator processes")
    parser.add_argument("--concurrency", type=int, default=16, help="connections per load process")
    parser.add_argument("--catalog-size", type=int, default=100_000)
    args = parser.parse_args(argv)
    duration_s = args.duration_s or (3.0 if args.quick else 10.0)
    tool = args.tool if args.tool != "auto" else ("wrk" if wrk.available() else "httpx")

    config = EmulatorConfig(rate_limit=None, catalog_size=args.catalog_size)
    with start_subprocess(config, env={"PYTHONHASHSEED": "0"}) as emulator:
        base = emulator.base_url
        token = httpx.post(base + "/api/token", data={"grant_type": "client_credentials"},
                           auth=("bench-client", "bench-secret")).json()["access_token"]
        batches = 400 if args.quick else 2000
        ids = httpx.get(base + "/_emulator/ids", params={"count": batches * BATCH}).json()["ids"]
        paths = ["/v1/tracks?ids=" + ",".join(ids[k : k + BATCH]) for k in range(0, len(ids), BATCH)]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
            for path in paths:  # warm-up: fill the caches, as a long run would have
                assert client.get(path).status_code == 200

        if tool == "wrk":
            rps, total, errors = run_wrk(base, token, paths, duration_s, args.concurrency)
        else:
            rps, total, errors = run_httpx(base, token, paths, duration_s, args.processes, args.concurrency)
        stats = httpx.get(base + "/_emulator/stats").json()

    counted = stats["requests"]["/v1/tracks"].get("200", 0) - len(paths)
    print(f"emulator bench: GET /v1/tracks?ids= with {BATCH} ids, one emulator process, load from {tool} "
          f"({args.processes if tool == 'httpx' else 1} process(es), {args.concurrency} connections each), {duration_s:g} s")
    print(f"  requests: {total} ok, {errors} errors; emulator counted {counted}")
    print(f"  throughput: {rps:,.0f} requests/s (target >= {TARGET_RPS:,}; cpus: {os.cpu_count()})")
    if tool == "httpx":
        print("  note: httpx parses ~100 kB bodies in pure Python and is then the bottleneck, not the "
              "emulator; install wrk (apt-get install wrk) to measure the server")
    return 0 if rps >= TARGET_RPS and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
