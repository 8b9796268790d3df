"""Local search: latency through HTTP, recall@10 per query class, and the index build.

    python -m bench.search [--rows 1000000] [--queries 40] [--clients 8] [--rounds 3]
    python -m bench.search --rows 200000 --fill URL   # fill a database (migrated to 20261122_04 or head)
    python -m bench.search --database URL             # the searches only, against a database filled before
    python -m bench.search --explain URL              # EXPLAIN (ANALYZE, BUFFERS) of the search's statements
    python -m bench --only search [--quick]

On a songs table of synthetic rows shaped like a real catalogue (fill(): a vocabulary of
rows / 10 words drawn Zipf-like, so "the" and "love" are in a large share of titles and most
words are rare; accents, punctuation, Cyrillic, kana and Greek; artists with many songs and
artists with one), with `spotify-sync serve --workers 2` as a child process and 8 clients (wrk's
connections when wrk is installed, bench/wrk.py; the Python client threads' figures beside them):
- p50/p95/p99 of GET /v1/search?enrich=never against the same queries as a baseline
  `title ILIKE '%q%' OR artist ILIKE '%q%'` sent straight to PostgreSQL (goal: p99 <= 30 ms);
- recall@10 per query class (exact title, accents stripped, one typo, artist + title, a prefix
  as typed: songs named by at most 3 songs' title; broad: one of the commonest words, whose
  most popular song of that exact title is expected), for both: is the expected row among the
  first 10?
- the search migration on the filled table (backfill of song_search in batches, CREATE INDEX
  CONCURRENTLY), while a writer keeps inserting and updating songs: how long it took, and the
  writes done meanwhile.
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
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg

from bench import wrk
from bench.harness import fresh_database, redis_namespace, redis_url, serve_client
from bench.report import Figure, print_table
from pipeline.search.normalize import fold, unaccent
from shared import migrate

HEAD_WITHOUT_SEARCH = "20261122_04"
CLASSES = ("exact", "accents", "typo", "artist_title", "prefix", "broad")

# The most common words of song titles first (rank 1 is the most frequent): a real catalogue's
# vocabulary is Zipf-like, a few words ("the", "love", "you") in a large share of titles and a long
# tail of rare ones. Ranks past these are made-up words (some accented, some in other scripts).
COMMON = (
    "the love you me my a i of in to and it is be on your all we night heart baby girl time life world "
    "don't know like want need feel go way day just one with no can what up down boy eyes dream home fire "
    "light rain sun summer dance song blue man good away back little let come never get stay tonight "
    "forever alone kiss crazy wild free young old new sweet black white red gold star moon sky road city "
    "run fall hold only still more over out lost wait believe remember tell say think mind soul body "
    "blood angel devil king queen dark shadow storm river ocean fly high feat remix live edit version "
    "remastered mix original acoustic radio part intro amor corazón noche vida mañana café señor über "
    "déjà vu naïve fiancée"
).split()
_ONSETS = "b c d f g h j k l m n p r s t v w z br cr dr fl gr pl st tr ch sh th kr sl".split()
_VOWELS = "a e i o u ai ea ou ie".split()
_CODAS = ["", "", "n", "r", "s", "l", "m", "t", "nd", "st", "x"]
_ACCENTED = {"a": "àáâäå", "e": "éèêë", "i": "íï", "o": "óöøô", "u": "úüù", "n": "ñ", "c": "ç", "s": "ß"}
_CYRILLIC = "ба ве го да же зи ко ла ми но пу ра си то фу ха цы че ша юр яв".split()
_KANA = "か き く け こ さ し す せ そ た ち つ て と な に ぬ ね の ま み む め も".split()
_GREEK = "κα λη μι νο πα ρο σε τα φι χο".split()


def vocabulary(size: int, seed: int = 13) -> list[str]:
    """`size` distinct words, most frequent first: COMMON, then made-up words of 1 to 4
    syllables, about 15% of them accented, 8% Cyrillic, 4% Japanese kana, 3% Greek."""
    rng = random.Random(seed)
    words, seen = list(dict.fromkeys(COMMON)), set(COMMON)
    while len(words) < size:
        script = rng.random()
        if script < 0.08:
            word = "".join(rng.choice(_CYRILLIC) for _ in range(rng.randint(2, 4)))
        elif script < 0.12:
            word = "".join(rng.choice(_KANA) for _ in range(rng.randint(2, 4)))
        elif script < 0.15:
            word = "".join(rng.choice(_GREEK) for _ in range(rng.randint(2, 4)))
        else:
            word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                           for _ in range(rng.choice((1, 2, 2, 2, 3, 3, 4))))
            if rng.random() < 0.15:
                at = rng.randrange(len(word))
                if word[at] in _ACCENTED:
                    word = word[:at] + rng.choice(_ACCENTED[word[at]]) + word[at + 1:]
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


FIRST = ("Anna Björk Chloé Dmitri Élodie Franz Gaël Hélène Iñigo Jürgen Kåre Léa Miloš Nuño Oskar Paweł "
         "Rafaël Søren Tomás Zoë Marcus Sarah John Emily Carlos Yuki Amara Liam Noah Mia DJ Lil MC").split()


def fill(url: str, rows: int, seed: float = 0.42) -> float:
    """Insert `rows` synthetic songs in one statement; seconds it took.

    Title words, album words and artists are drawn log-uniformly by rank (P(rank k) ~ 1/k, Zipf
    with s = 1) from a vocabulary that grows with the table (rows / 10 words, at least 5,000), so
    "the" and "love" are in a large share of rows and most words are rare. Titles have 1 to 5 words,
    some with "(feat. ...)", " - Remastered 1987", "!" or "?"; artists are a person ("Léa Brontëx")
    or a band ("The Storms"), songs per artist Zipf-like too; popularity skews low (most songs are
    obscure)."""
    words = vocabulary(max(5_000, rows // 10))
    nv, artists = len(words), max(100, rows // 8)

    def rank(n: int) -> str:  # a rank in 1..n drawn log-uniformly: P(k) ~ 1/k
        return f"least({n}, floor(exp(random() * ln({n} + 1)))::int)"

    def words_of(count_sql: str) -> str:  # that many words drawn by rank, title-cased, as one text
        return (f"(SELECT string_agg((SELECT initcap(v.w) FROM vocab v WHERE v.rank = p.r), ' ' ORDER BY p.k) "
                f"FROM (SELECT k, {rank(nv)} AS r FROM generate_series(1, {count_sql}) AS k) AS p)")

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT setseed(%s)", (seed,))
        conn.execute("CREATE TEMP TABLE vocab (rank int PRIMARY KEY, w text NOT NULL)")
        with conn.cursor().copy("COPY vocab (rank, w) FROM STDIN") as copy:
            for n, w in enumerate(words, 1):
                copy.write_row((n, w))
        conn.execute("ANALYZE vocab")
        conn.execute(f"""
            INSERT INTO songs ("spotifyId", title, artist, album, "spotifyPopularity")
            SELECT 'bench' || lpad(g::text, 17, '0'),
                   {words_of("shape.title_words")}
                     || (ARRAY['', '', '', '', '', '', '', '', '', '', '', '', '', '', '!', '?', ' - Remastered ' ||
                               (1960 + g % 60), ' (feat. ' || a.name || ')', ' (Live)', ' - Radio Edit'])
                        [1 + (random() * 19)::int],
                   artist.name,
                   {words_of("shape.album_words")},
                   (100 * random() ^ 2)::int
            FROM generate_series(1::bigint, {rows}::bigint) AS g
            CROSS JOIN LATERAL (
                SELECT (ARRAY[1, 1, 2, 2, 2, 3, 3, 3, 4, 5])[1 + (random() * 9)::int] AS title_words,
                       1 + (random() * 2)::int AS album_words, {rank(artists)}::bigint AS artist,
                       {rank(artists)}::bigint AS featured
                WHERE g > 0) AS shape
            CROSS JOIN LATERAL (SELECT {_artist("shape.artist", nv)} AS name) AS artist
            CROSS JOIN LATERAL (SELECT {_artist("shape.featured", nv)} AS name) AS a""")
        conn.execute("ANALYZE songs")
    return time.perf_counter() - started


def _artist(n: str, vocabulary_size: int) -> str:
    """SQL: artist number `n` -> its name, a band ("The Storms") or a person (a first name and a word)."""
    def word(multiplier: int) -> str:
        return f"(SELECT initcap(w) FROM vocab WHERE rank = 1 + ({n} * {multiplier}) % {vocabulary_size})"
    first = "ARRAY[" + ", ".join(f"'{f}'" for f in FIRST) + "]"
    return (f"CASE WHEN {n} % 3 = 0 THEN 'The ' || {word(7919)} || 's' "
            f"ELSE ({first})[1 + {n} % {len(FIRST)}] || ' ' || {word(104729)} END")


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
        # The writes made during the build, indexed as the search indexer would within a second.
        while conn.execute("SELECT song_search_drain(10000)").fetchone()[0]:
            pass
        # What autovacuum would do soon after, done before the timing rather than during it.
        conn.execute("VACUUM (ANALYZE) songs")
        conn.execute("VACUUM (ANALYZE) song_search")
    return elapsed, len(writes), max(writes, default=0.0) * 1000


def query_set(url: str, per_class: int, seed: int = 7) -> list[tuple[str, str, str]]:
    """(class, query, spotifyId it should find), per_class of each, drawn from the table.

    The classes that name one song (exact, accents, typo, artist_title, prefix) come from songs
    whose title at most 3 songs share: "Love" names no song in particular among thousands.
    `broad` is one of the 40 most common words of titles (3 letters or more), and the song it
    should find first is the most popular one with that word as its whole title (of equal
    popularity, the first by id, as the search orders the same title's songs: dozens of songs
    titled "The" share the top popularity at 1M rows)."""
    rng = random.Random(seed)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT setseed(0.7)")
        sample = conn.execute('SELECT "spotifyId", title, artist FROM songs WHERE "spotifyId" LIKE %s '
                              "ORDER BY random() LIMIT %s", ("bench%", per_class * 40)).fetchall()
        shared: dict[str, int] = dict(conn.execute("SELECT title, count(*) FROM songs WHERE title = ANY(%s) GROUP BY title",
                                   ([r[1] for r in sample],)).fetchall())
        broad = conn.execute("""
            SELECT DISTINCT ON (w) w, s."spotifyId" FROM (
                SELECT w FROM unnest(%s::text[]) WITH ORDINALITY AS t(w, rank) WHERE length(w) >= 3
                ORDER BY rank LIMIT 40) AS common
            JOIN songs s ON lower(s.title) = w
            ORDER BY w, s."spotifyPopularity" DESC NULLS LAST, s.id
            """, (COMMON,)).fetchall()
    specific = [r for r in sample if shared.get(r[1], 0) <= 3]
    accented = [r for r in specific if unaccent(r[1]) != r[1]]
    queries: list[tuple[str, str, str]] = []
    for n in range(per_class):
        sid, title, _artist = specific[n]
        queries.append(("exact", title, sid))
        asid, atitle, _artist = accented[n % len(accented)]
        queries.append(("accents", fold(atitle), asid))
        tsid, ttitle, _ = specific[per_class + n]
        queries.append(("typo", _typo(ttitle, rng), tsid))
        psid, ptitle, partist = specific[2 * per_class + n]
        queries.append(("artist_title", f"{partist} {ptitle}", psid))
        xsid, xtitle, _ = specific[3 * per_class + n]
        queries.append(("prefix", xtitle[:-2] if len(xtitle.split()[-1]) > 3 else xtitle[:-1], xsid))
        bword, bsid = broad[n % len(broad)]
        queries.append(("broad", bword, bsid))
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
            rounds: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Latencies (ms) per class of every query (`rounds` times, `clients` at once) and recall@10
    per class."""
    latencies: dict[str, list[float]] = {c: [] for c in CLASSES}
    hits: dict[str, list[bool]] = {c: [] for c in CLASSES}
    lock = threading.Lock()

    def one(item: tuple[str, str, str], first: bool) -> None:
        kind, q, sid = item
        t0 = time.perf_counter()
        found = run_one(q)
        elapsed = (time.perf_counter() - t0) * 1000
        with lock:
            latencies[kind].append(elapsed)
            if first:
                hits[kind].append(sid in found[:10])

    with ThreadPoolExecutor(clients) as pool:
        for round_ in range(rounds):
            first = round_ == 0
            list(pool.map(lambda item, first=first: one(item, first), queries))
    return latencies, {c: sum(h) / len(h) for c, h in hits.items() if h}


def every(latencies: dict[str, list[float]]) -> list[float]:
    return [ms for per_class in latencies.values() for ms in per_class]


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
    deadline = time.monotonic() + 90  # two workers importing the app take 30 s and more on a loaded host
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, token
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("spotify-sync serve did not start")


def run(quick: bool = False, rows: int | None = None, per_class: int | None = None, clients: int = 8,
        rounds: int | None = None, database: str | None = None) -> list[Figure]:
    """The whole benchmark in a fresh database; with `database` (one --fill and the search
    migration made, kept between runs), only the searches against it."""
    per_class = per_class or (10 if quick else 40)
    rounds = rounds or (1 if quick else 3)
    if database:
        return searches(database, per_class, clients, rounds, quick)
    rows = rows or (20_000 if quick else 1_000_000)
    figures: list[Figure] = []
    with fresh_database() as url:
        migrate.downgrade(url, HEAD_WITHOUT_SEARCH)
        fill_s = fill(url, rows)
        build_s, writes, slowest_write_ms = build_index_while_writing(url)
        figures += [
            Figure(f"search: fill {rows:,} rows", round(fill_s, 1), "s"),
            Figure(f"search: index build on {rows:,} rows (CONCURRENTLY)", round(build_s, 1), "s"),
            Figure("search: writes to songs during the build", writes, "writes",
                   f"slowest {slowest_write_ms:.0f} ms", "> 0 (not blocked)", writes > 0),
        ]
        return figures + searches(url, per_class, clients, rounds, quick)


def http_searcher(port: int, token: str) -> Callable[[str], list[str]]:
    """A query's top ten Spotify ids from the served API (local only), one client per thread."""
    local = threading.local()

    def api(q: str) -> list[str]:
        if not hasattr(local, "http"):
            local.http = serve_client(port, token)
        body = local.http.get("/v1/search", params={"q": q, "limit": 10, "enrich": "never"}).json()
        return [s["spotifyId"] for s in body["items"]]
    return api


def searches(url: str, per_class: int, clients: int, rounds: int, quick: bool = False) -> list[Figure]:
    """Latency and recall through HTTP, the same queries' latency calling search_songs in
    process (the SQL's share of it), and the ILIKE baseline's."""
    from pipeline.search.query import parse
    from pipeline.store.search import search_songs
    from shared.db import make_engine

    queries = query_set(url, per_class)
    port = _free_port()
    local = threading.local()

    def baseline(q: str) -> list[str]:
        if not hasattr(local, "pg"):
            local.pg = psycopg.connect(url, autocommit=True)
        pattern = "%" + q + "%"
        found = local.pg.execute('SELECT "spotifyId" FROM songs WHERE title ILIKE %s OR artist ILIKE %s '
                                 'ORDER BY "spotifyPopularity" DESC NULLS LAST LIMIT 10',
                                 (pattern, pattern)).fetchall()
        return [r[0] for r in found]

    with redis_namespace(redis_url()) as namespace:
        process, token = _serve(url, namespace, port, workers=2)
        api = http_searcher(port, token)
        try:
            measure(api, queries, clients, 1)  # warm every pooled connection and the caches
            api_ms, api_recall = measure(api, queries, clients, rounds)
            served = served_latency(port, token, queries, clients, quick) if wrk.available() else None
        finally:
            process.terminate()
            process.wait(15)
    engine = make_engine(url, pool_size=clients)
    try:
        def in_process(q: str) -> list[str]:
            return [s["spotifyId"] for s in search_songs(engine, parse(q), limit=10, offset=0).songs]

        sql_ms, _ = measure(in_process, queries, clients, rounds)
    finally:
        engine.dispose()
    # Once: every ILIKE reads the whole table (seconds at 1M rows, the machine's both cores).
    base_ms, base_recall = measure(baseline, queries, clients, 1)
    return _figures(clients, api_ms, api_recall, sql_ms, base_ms, base_recall, served)


def served_latency(port: int, token: str, queries: list[tuple[str, str, str]], clients: int,
                   quick: bool) -> dict[str, wrk.Load]:
    """The same searches' latency with wrk as the `clients` (bench/wrk.py: why not Python
    clients): every class's queries cycled through for a few seconds, then all classes mixed
    ("all"), each query sent many times over (nothing caches a local search's answer)."""
    def paths(kind: str | None) -> list[str]:
        return ["/v1/search?" + urlencode({"q": q, "limit": 10, "enrich": "never"})
                for k, q, _ in queries if kind in (None, k)]

    seconds = 2 if quick else 6
    base = f"http://127.0.0.1:{port}"
    served = {kind: wrk.run(base, paths(kind), duration_s=seconds, connections=clients, token=token)
              for kind in CLASSES}
    served["all"] = wrk.run(base, paths(None), duration_s=2 * seconds, connections=clients, token=token)
    return served


def _figures(clients: int, api_ms: dict[str, list[float]], api_recall: dict[str, float],
             sql_ms: dict[str, list[float]], base_ms: dict[str, list[float]],
             base_recall: dict[str, float], served: dict[str, wrk.Load] | None) -> list[Figure]:
    """The headline latency is wrk's (`served`) when wrk is installed, else the Python clients'."""
    figures: list[Figure] = []
    for p in (50, 95, 99):
        api_p, sql_p, base_p = (percentile(every(ms), p) for ms in (api_ms, sql_ms, base_ms))
        context = f"in process {sql_p:.1f} ms, ILIKE baseline {base_p:.1f} ms"
        if served is None:
            value, name = api_p, f"search: HTTP latency p{p} ({clients} client threads; no wrk)"
        else:
            load = served["all"]
            value, name = getattr(load, f"p{p}_ms"), f"search: HTTP latency p{p} ({clients} connections, wrk)"
            context = f"{load.per_s:,.0f} searches/s; {clients} Python client threads {api_p:.1f} ms, " + context
        figures.append(Figure(name, round(value, 1), "ms", context,
                              "<= 30 ms" if p == 99 else "", value <= 30 if p == 99 else None))
    for kind in CLASSES:
        threads = "/".join(f"{percentile(api_ms[kind], p):.0f}" for p in (50, 95, 99))
        in_process = "/".join(f"{percentile(sql_ms[kind], p):.0f}" for p in (50, 95, 99))
        if served is None:
            value, spread = percentile(api_ms[kind], 99), f"p50/95/99 {threads} ms"
        else:
            load = served[kind]
            value = load.p99_ms
            spread = (f"p50/95/99 {load.p50_ms:.0f}/{load.p95_ms:.0f}/{load.p99_ms:.0f} ms (wrk, "
                      f"{load.per_s:,.0f}/s), Python client threads {threads} ms")
        figures.append(Figure(f"search: {kind} HTTP p99", round(value, 1), "ms", f"{spread}, in process {in_process} ms"))
    for kind in CLASSES:
        figures.append(Figure(f"search: recall@10 {kind}", round(api_recall.get(kind, 0.0), 2), "",
                              f"ILIKE baseline {base_recall.get(kind, 0.0):.2f}"))
    return figures


def explain(url: str, queries: list[tuple[str, str, str]]) -> None:
    """Print EXPLAIN (ANALYZE, BUFFERS) of every statement search_songs sends, for the first query
    of each class: where the time goes."""
    from sqlalchemy import event

    from pipeline.search.query import parse
    from pipeline.store.search import search_songs
    from shared.db import make_engine

    engine = make_engine(url, pool_size=1)
    sent: list[tuple[str, Any]] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, statement, params, *_: sent.append((statement, params)))
    firsts = {kind: q for kind, q, _ in reversed(queries)}
    try:
        for kind, q in [*firsts.items(), *firsts.items()]:  # the second time with warm caches
            sent.clear()
            search_songs(engine, parse(q), limit=10, offset=0)
            print(f"=== {kind}: {q!r}")
            with engine.raw_connection() as raw:  # the same statements, in order, in one transaction
                cursor = raw.cursor()
                for statement, params in list(sent):
                    if "set_config" in statement:
                        cursor.execute(statement, params)
                        continue
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                    print("\n".join(r[0] for r in cursor.fetchall()), "\n")
                raw.rollback()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=40, help="queries per class")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="times each query is sent (latency)")
    parser.add_argument("--explain", metavar="DATABASE_URL",
                        help="a database bench.search filled (see --fill): print the plans of its queries, no timing")
    parser.add_argument("--fill", metavar="DATABASE_URL", help="fill this (migrated, empty) database with --rows songs")
    parser.add_argument("--database", metavar="DATABASE_URL",
                        help="a database filled (--fill) and migrated to head: the searches only, no fill or build")
    args = parser.parse_args(argv)
    if args.fill:
        print(f"filled {args.rows:,} rows in {fill(args.fill, args.rows):.1f} s")
        return 0
    if args.explain:
        explain(args.explain, query_set(args.explain, 1))
        return 0
    print_table(run(rows=args.rows, per_class=args.queries, clients=args.clients, rounds=args.rounds,
                    database=args.database))
    return 0


if __name__ == "__main__":
    sys.exit(main())
