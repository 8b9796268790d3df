"""Local search: latency through HTTP, recall@10 per query class, and the index build.

    python -m bench.search [--rows 1000000] [--queries 200] [--clients 8]
    python -m bench --only search [--quick]

On a songs table of synthetic rows (INSERT ... SELECT generate_series; titles of three words
from a vocabulary with accents, unique (a number is appended past 80^3 rows), artists of two
names), with `spotify-sync serve --workers 2` as
a child process and 8 client threads:
- p50/p95/p99 of GET /v1/search?enrich=never against the same queries as a baseline
  `title ILIKE '%q%' OR artist ILIKE '%q%'` sent straight to PostgreSQL (goal: p99 <= 30 ms);
- recall@10 per query class (exact title, accents stripped, one typo, artist + title, a prefix),
  for both: is the row the query was made from among the first 10?
- the index build (the migration, CREATE INDEX CONCURRENTLY) on the filled table, while a writer
  keeps inserting and updating songs: how long it took, and the writes done meanwhile.
Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

from bench.harness import fresh_database, redis_namespace, redis_url
from bench.report import Figure, print_table
from pipeline.search.normalize import fold, unaccent
from shared import migrate

HEAD_WITHOUT_SEARCH = "20261122_04"
def _words(text: str) -> list[str]:
    return text.split()


VOCABULARY = _words(
    "love night fire heart dream rain summer winter river ocean golden silver paper electric midnight city "
    "shadow light storm wild blue black white red green sweet lonely broken crazy happy sad young old new "
    "dance song moon star sun sky road home back time world life girl boy baby angel devil king queen "
    "café señor über naïve soleil corazón niño jalapeño fiancée mañana déjà vu crème brûlée façade "
    "ærø smørrebrød straße göteborg zürich kraków łódź čaj šťastný española noël garçon"
)
FIRST = _words("Anna Björk Chloé Dmitri Élodie Franz Gaël Hélène Iñigo Jürgen Kåre Léa Miloš Nuño Oskar Paweł " \
        "Rafaël Søren Tomás Zoë Marcus Sarah John Emily Carlos Yuki Amara Liam Noah Mia")
LAST = _words("Müller Núñez Dvořák Sørensen Lefèvre García Ødegaard Kowalski Brontë Öztürk Smith Johnson " \
       "Williams Brown Jones Davis Martin Moreau Rossi Silva Novák Horváth Nilsson Popescu")
CLASSES = ("exact", "accents", "typo", "artist_title", "prefix")


def _array(words: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + w.replace("'", "''") + "'" for w in words) + "]"


def fill(url: str, rows: int) -> float:
    """Insert `rows` synthetic songs in one statement; seconds it took."""
    v, f, la = _array(VOCABULARY), _array(FIRST), _array(LAST)
    nv, nf, nl = len(VOCABULARY), len(FIRST), len(LAST)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"""
            INSERT INTO songs ("spotifyId", title, artist, album, "spotifyPopularity")
            SELECT 'bench' || lpad(g::text, 17, '0'),
                   initcap(({v})[1 + g % {nv}]) || ' ' || ({v})[1 + (g / {nv}) % {nv}] || ' '
                     || ({v})[1 + (g / {nv * nv}) % {nv}]
                     || CASE WHEN g > {nv ** 3} THEN ' ' || (g / {nv ** 3}) ELSE '' END,
                   ({f})[1 + (g * 31) % {nf}] || ' ' || ({la})[1 + (g * 17 / 3) % {nl}],
                   initcap(({v})[1 + (g * 613) % {nv}]) || ' ' || ({v})[1 + (g * 389 / 5) % {nv}],
                   (g * 7919) % 101
            FROM generate_series(1::bigint, {rows}::bigint) AS g""")
        conn.execute("ANALYZE songs")
    return time.perf_counter() - started


def build_index_while_writing(url: str) -> tuple[float, int, float]:
    """Run the search migration while a writer inserts and updates songs: (build seconds,
    writes during the build, the slowest write in ms)."""
    stop = threading.Event()
    writes: list[float] = []

    def writer() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                t0 = time.perf_counter()
                conn.execute('INSERT INTO songs ("spotifyId", title, artist) VALUES (%s, %s, %s)',
                             (f"write{os.getpid()}{n:012d}", f"Written {n}", "Writer"))
                conn.execute('UPDATE songs SET "spotifyPopularity" = %s WHERE "spotifyId" = %s',
                             (n % 100, f"bench{n:017d}"))
                writes.append(time.perf_counter() - t0)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    started = time.perf_counter()
    migrate.upgrade(url)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE songs")
    return elapsed, len(writes), max(writes, default=0.0) * 1000


def query_set(url: str, per_class: int, seed: int = 7) -> list[tuple[str, str, str]]:
    """(class, query, spotifyId it was made from), per_class of each."""
    rng = random.Random(seed)
    with psycopg.connect(url) as conn:
        sample = conn.execute('SELECT "spotifyId", title, artist FROM songs WHERE "spotifyId" LIKE %s '
                              "ORDER BY random() LIMIT %s", ("bench%", per_class * 20)).fetchall()
    queries: list[tuple[str, str, str]] = []
    accented = [r for r in sample if unaccent(r[1]) != r[1]]
    for n in range(per_class):
        sid, title, _artist = sample[n]
        queries.append(("exact", title, sid))
        asid, atitle, _artist = accented[n % len(accented)]
        queries.append(("accents", fold(atitle), asid))
        tsid, ttitle, _ = sample[per_class + n]
        queries.append(("typo", _typo(ttitle, rng), tsid))
        psid, ptitle, partist = sample[2 * per_class + n]
        queries.append(("artist_title", f"{partist} {ptitle}", psid))
        xsid, xtitle, _ = sample[3 * per_class + n]
        queries.append(("prefix", xtitle[:-2] if len(xtitle.split()[-1]) > 3 else xtitle[:-1], xsid))
    return queries


def _typo(title: str, rng: random.Random) -> str:
    """One letter of the longest word replaced by its neighbour on the keyboard row."""
    words = title.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[longest]
    if len(word) < 4:
        return title
    at = rng.randrange(1, len(word) - 1)
    words[longest] = word[:at] + ("x" if word[at] != "x" else "z") + word[at + 1:]
    return " ".join(words)


def measure(run_one: Callable[[str], list[str]], queries: list[tuple[str, str, str]], clients: int,
            rounds: int) -> tuple[list[float], dict[str, float]]:
    """Latencies (ms) of every query (`rounds` times, `clients` at once) and recall@10 per class."""
    latencies: list[float] = []
    hits: dict[str, list[bool]] = {c: [] for c in CLASSES}
    lock = threading.Lock()

    def one(item: tuple[str, str, str], first: bool) -> None:
        kind, q, sid = item
        t0 = time.perf_counter()
        found = run_one(q)
        elapsed = (time.perf_counter() - t0) * 1000
        with lock:
            latencies.append(elapsed)
            if first:
                hits[kind].append(sid in found[:10])

    with ThreadPoolExecutor(clients) as pool:
        for round_ in range(rounds):
            first = round_ == 0
            list(pool.map(lambda item, first=first: one(item, first), queries))
    return latencies, {c: sum(h) / len(h) for c, h in hits.items() if h}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(url: str, namespace: str, port: int, workers: int):
    import subprocess

    token = "bench-token-0123456789abcdef"
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url(), "REDIS_NAMESPACE": namespace,
           "API_TOKENS": token, "LOG_LEVEL": "WARNING"}
    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"):
        env.pop(name, None)  # local search only
    cli = str(Path(sys.executable).parent / "spotify-sync")
    process = subprocess.Popen([cli, "serve", "--port", str(port), "--workers", str(workers)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, token
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("spotify-sync serve did not start")


def run(quick: bool = False, rows: int | None = None, per_class: int | None = None, clients: int = 8,
        rounds: int | None = None) -> list[Figure]:
    rows = rows or (20_000 if quick else 1_000_000)
    per_class = per_class or (10 if quick else 40)
    rounds = rounds or (1 if quick else 3)
    figures: list[Figure] = []
    with fresh_database() as url, redis_namespace(redis_url()) as namespace:
        migrate.downgrade(url, HEAD_WITHOUT_SEARCH)
        fill_s = fill(url, rows)
        build_s, writes, slowest_write_ms = build_index_while_writing(url)
        figures += [
            Figure(f"search: fill {rows:,} rows", round(fill_s, 1), "s"),
            Figure(f"search: index build on {rows:,} rows (CONCURRENTLY)", round(build_s, 1), "s"),
            Figure("search: writes to songs during the build", writes, "writes",
                   f"slowest {slowest_write_ms:.0f} ms", "> 0 (not blocked)", writes > 0),
        ]
        queries = query_set(url, per_class)
        port = _free_port()
        process, token = _serve(url, namespace, port, workers=2)
        try:
            local = threading.local()

            def api(q: str) -> list[str]:
                if not hasattr(local, "http"):
                    local.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                              headers={"Authorization": f"Bearer {token}"})
                body = local.http.get("/v1/search", params={"q": q, "limit": 10, "enrich": "never"}).json()
                return [s["spotifyId"] for s in body["items"]]

            def baseline(q: str) -> list[str]:
                if not hasattr(local, "pg"):
                    local.pg = psycopg.connect(url, autocommit=True)
                pattern = "%" + q + "%"
                found = local.pg.execute('SELECT "spotifyId" FROM songs WHERE title ILIKE %s OR artist ILIKE %s '
                                         'ORDER BY "spotifyPopularity" DESC NULLS LAST LIMIT 10',
                                         (pattern, pattern)).fetchall()
                return [r[0] for r in found]

            measure(api, queries[:20], clients, 1)  # warm the pools and caches
            api_ms, api_recall = measure(api, queries, clients, rounds)
            base_ms, base_recall = measure(baseline, queries, clients, rounds)
        finally:
            process.terminate()
            process.wait(15)
    for p in (50, 95, 99):
        figures.append(Figure(f"search: HTTP latency p{p} ({clients} clients)", round(percentile(api_ms, p), 1), "ms",
                              f"ILIKE baseline {percentile(base_ms, p):.1f} ms",
                              "<= 30 ms" if p == 99 else "", percentile(api_ms, p) <= 30 if p == 99 else None))
    for kind in CLASSES:
        figures.append(Figure(f"search: recall@10 {kind}", round(api_recall.get(kind, 0.0), 2), "",
                              f"ILIKE baseline {base_recall.get(kind, 0.0):.2f}"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=40, help="queries per class")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="times each query is sent (latency)")
    args = parser.parse_args(argv)
    print_table(run(rows=args.rows, per_class=args.queries, clients=args.clients, rounds=args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
