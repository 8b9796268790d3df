"""Ad-hoc search latency against a kept 1M-row database, with the CPU time per request of each
side: this database's PostgreSQL backends, the API server's processes, the client.

    python -m bench.search --fill URL ... ; spotify-sync db upgrade    # once (see bench/README.md)
    python -m bench.search_drive URL single [--rounds 2] [--top 15]    # one client, in process
    python -m bench.search_drive URL inproc                            # 8 clients, in process
    python -m bench.search_drive URL http [--workers 2]                # 8 clients through serve

The same queries and measurement as bench.search (query_set, measure), without the ILIKE
baseline (minutes at 1M rows). Prints; asserts nothing. With other work on the host, compare
the CPU per request, which the queueing behind that work does not change.
"""

from __future__ import annotations

import argparse
import os
import time

import psutil

from bench.cpu import cpu_seconds
from bench.harness import redis_namespace, redis_url
from bench.search import CLASSES, _free_port, _serve, every, http_searcher, measure, percentile, query_set
from pipeline.search.query import parse
from pipeline.store.search import search_songs
from shared.db import make_engine


def _backends(database: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name"]):
        try:
            if (p.info["name"] or "").startswith("postgres") and f" {database} " in " ".join(p.cmdline()) + " ":
                found.append(p)
        except psutil.Error:
            pass
    return found


def _backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each of this database's backends, by pid."""
    return {p.pid: cpu_seconds([p]) for p in _backends(database)}


def _backend_cpu_since(database: str, before: dict[int, float]) -> float:
    """CPU seconds this database's backends spent since `before`, counting the backends started
    since then (a pool that grows during the timing) whole, not leaving them out."""
    return sum(now - before.get(pid, 0.0) for pid, now in _backend_cpu(database).items())


def _summary(name: str, latencies: dict[str, list[float]], requests: int, cpu: dict[str, float]) -> None:
    print(f"--- {name}  load {os.getloadavg()}")
    values = every(latencies)
    print("all p50/95/99/max " + "/".join(f"{percentile(values, p):.1f}" for p in (50, 95, 99)) + f"/{max(values):.1f} ms")
    for kind in CLASSES:
        v = latencies[kind]
        print(f"  {kind:13s} p50/95/99/max " + "/".join(f"{percentile(v, p):6.1f}" for p in (50, 95, 99)) + f"/{max(v):6.1f}")
    print("  CPU ms/request: " + ", ".join(f"{k} {v * 1000 / requests:.2f}" for k, v in cpu.items()))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search_drive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("mode", choices=["single", "inproc", "http"])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    database = args.url.rsplit("/", 1)[-1]
    queries = query_set(args.url, args.per_class)
    me = psutil.Process()
    requests = len(queries) * args.rounds
    if args.mode in ("single", "inproc"):
        clients = 1 if args.mode == "single" else args.clients
        engine = make_engine(args.url, pool_size=clients)
        slowest: dict[tuple[str, str], float] = {}

        def run_one(q: str) -> list[str]:
            started = time.perf_counter()
            found = [s["spotifyId"] for s in search_songs(engine, parse(q), limit=10, offset=0).songs]
            slowest[("", q)] = min(slowest.get(("", q), 1e9), (time.perf_counter() - started) * 1000)
            return found

        measure(run_one, queries, clients, 1)
        before = cpu_seconds([me]), _backend_cpu(database)
        latencies, recall = measure(run_one, queries, clients, args.rounds)
        _summary(f"{clients} client(s), in process", latencies, requests,
                 {"search (python)": cpu_seconds([me]) - before[0],
                  "postgres": _backend_cpu_since(database, before[1])})
        print("  recall", {k: round(v, 3) for k, v in recall.items()})
        for (_, q), ms in sorted(slowest.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"  {ms:7.1f} ms  {q!r}")
        engine.dispose()
        return
    port = _free_port()

    with redis_namespace(redis_url()) as namespace:
        process, token = _serve(args.url, namespace, port, workers=args.workers)
        api = http_searcher(port, token)
        server = psutil.Process(process.pid)
        try:
            measure(api, queries, args.clients, 1)
            servers = [server, *server.children(recursive=True)]
            start = cpu_seconds([me]), cpu_seconds(servers), _backend_cpu(database)
            latencies, recall = measure(api, queries, args.clients, args.rounds)
            cpu = {"client (httpx)": cpu_seconds([me]) - start[0], "api server": cpu_seconds(servers) - start[1],
                   "postgres": _backend_cpu_since(database, start[2])}
        finally:
            process.terminate()
            process.wait(15)
    _summary(f"HTTP, {args.clients} clients, serve --workers {args.workers}", latencies, requests, cpu)
    print("  recall", {k: round(v, 3) for k, v in recall.items()})


if __name__ == "__main__":
    main()
