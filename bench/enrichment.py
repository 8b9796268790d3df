"""Enrichment latency through HTTP: what a search costs when it asks Spotify.

    python -m bench --only enrichment [--quick]

`spotify-sync serve --workers 2` (as bench/search.py: one per core) as a child process against a
fresh database, the emulator as Spotify, and 8 client threads asking searches that the songs
table cannot answer alone (so `enrich=auto` asks Spotify). Measured, each as p50/p99 of the HTTP round trip:
- cached: the same queries again once Spotify's answers are in Redis (goal p99 <= 30 ms; the
  seed asks < 300 ms), from 8 Python client threads, then cycled through by wrk's 8 connections
  when wrk is installed (the headline then: bench/wrk.py says why);
- Spotify slow: every /v1/search of the emulator sleeps 5 s (goal p99 <= SEARCH_ENRICH_WAIT + 30 ms);
- Spotify down: the emulator stopped (goal p99 <= SEARCH_ENRICH_WAIT + 30 ms);
slow and down from wrk's 8 connections too (for 4 s: no slow call ends within it, so nothing is
cached and a repeated query waits as the first did), or each query once from the Python threads
without wrk; against the baseline of the same run: the same queries with `enrich=never` (local
only).
Prints; asserts nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx

from bench import wrk
from bench.harness import serve_client, world
from bench.report import Figure
from emulator.config import EmulatorConfig
from shared import migrate

CLIENTS = 8
WAIT_S = 0.2
TOKEN = "bench-enrichment-token-0123456789"


def run(quick: bool = False) -> list[Figure]:
    queries_n = 40 if quick else 200
    with world(EmulatorConfig(rate_limit=None, slow_s=5.0)) as w:
        migrate.upgrade(w.database_url)
        names = w.emulator.http.get(w.emulator.base_url + "/_emulator/tracks",
                                    params={"offset": 0, "count": queries_n}).json()["tracks"]
        queries = [f"{t['name']} {t['artists'][0]}" for t in names]
        port = _free_port()
        server = _serve(w, port)
        try:
            with serve_client(port, TOKEN) as http:
                # A first search builds the emulator's index (seconds): not what is measured.
                http.get("/v1/search", params={"q": "warm up", "enrich": "always"})
                local = _measure(http, queries, "never")
                _measure(http, queries, "always")  # fills the cache (answers land in Redis)
                _wait_until_cached(http, queries)
                cached = _measure(http, queries, "always", other=True)
                served = _served(port, queries, 2 if quick else 8) if wrk.available() else None
                w.emulator.configure(faults="slow:1@/v1/search")
                slow = _measure_fault(http, port, [q + " slow" for q in queries])
                w.emulator.configure(faults="")
                w.emulator.handle.stop()
                down = _measure_fault(http, port, [q + " down" for q in queries])
        finally:
            server.terminate()
            server.wait(30)
    wait_ms = WAIT_S * 1000
    base = (f"local only (enrich=never) p50 {local[0]:.1f} ms, p99 {local[1]:.1f} ms; "
            f"{len(queries)} queries, {CLIENTS} clients")
    if served is None:
        cached_p99, cached_context = cached[1], f"p50 {cached[0]:.1f} ms; {base}; {CLIENTS} client threads (no wrk)"
    else:
        cached_p99 = round(served.p99_ms, 1)
        cached_context = (f"p50 {served.p50_ms:.1f} ms, {served.per_s:,.0f} searches/s ({CLIENTS} connections, wrk); "
                          f"{CLIENTS} Python client threads p50 {cached[0]:.1f} ms, p99 {cached[1]:.1f} ms; {base}")
    return [
        Figure("search, enrichment cached: p99", cached_p99, "ms", cached_context, "<= 30 ms", cached_p99 <= 30),
        Figure("search, Spotify slow (5 s): p99", slow[1], "ms", f"p50 {slow[0]:.1f} ms; wait {wait_ms:.0f} ms; {slow[2]}",
               f"<= {wait_ms + 30:.0f} ms", slow[1] <= wait_ms + 30),
        Figure("search, Spotify down: p99", down[1], "ms", f"p50 {down[0]:.1f} ms; wait {wait_ms:.0f} ms; {down[2]}",
               f"<= {wait_ms + 30:.0f} ms", down[1] <= wait_ms + 30),
    ]


def _served(port: int, queries: list[str], duration_s: float) -> wrk.Load:
    """The searches with wrk as the clients (bench/wrk.py: why), cycled through for `duration_s`."""
    paths = ["/v1/search?" + urlencode({"q": q, "enrich": "always"}) for q in queries]
    return wrk.run(f"http://127.0.0.1:{port}", paths, duration_s=duration_s, connections=CLIENTS, token=TOKEN)


def _measure_fault(http: httpx.Client, port: int, queries: list[str]) -> tuple[float, float, str]:
    """(p50, p99, the clients) of searches that ask a Spotify that is slow or down. With wrk, 4 s of
    them: within the slow fault's 5 s no call ends, so none is answered and cached and a query met
    again waits as the first did (joining its call, or skipped with every slot taken); without
    wrk, each query once from the Python client threads."""
    if not wrk.available():
        return (*_measure(http, queries, "always"), f"{CLIENTS} Python client threads (no wrk)")
    load = _served(port, queries, 4)
    return load.p50_ms, load.p99_ms, f"{CLIENTS} connections (wrk), {load.requests:,} searches"


def _serve(w, port: int) -> subprocess.Popen:
    env = {**w.env(), "API_TOKENS": TOKEN, "SEARCH_ENRICH_WAIT": f"{int(WAIT_S * 1000)}ms",
           "SEARCH_ENRICH_MAX_IN_FLIGHT": "16", "SPOTIFY_RATE_LIMIT": "100000/30s"}
    cli = str(Path(sys.executable).parent / "spotify-sync")
    process = subprocess.Popen([cli, "serve", "--port", str(port), "--workers", "2"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("spotify-sync serve did not become ready")


def _measure(http: httpx.Client, queries: list[str], enrich: str, *, other: bool = False) -> tuple[float, float]:
    """(p50, p99) in ms of one search per query, CLIENTS at a time. `other`: a second pass (each
    query asked again by another client, so every client meets the cache)."""
    order = queries[1:] + queries[:1] if other else queries

    def one(q: str) -> float:
        started = time.perf_counter()
        response = http.get("/v1/search", params={"q": q, "enrich": enrich})
        response.raise_for_status()
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(CLIENTS) as pool:
        times = sorted(pool.map(one, order))
    return _percentile(times, 50), _percentile(times, 99)


def _wait_until_cached(http: httpx.Client, queries: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    for q in queries:
        while time.monotonic() < deadline:
            status = http.get("/v1/search", params={"q": q, "enrich": "always"}).json()["enrichment"]["status"]
            if status == "cached":
                break
            time.sleep(0.2)


def _percentile(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run(quick="--quick" in sys.argv))
    os._exit(0)
