"""Benchmark 3b, the database stage alone: our upsert against COPY into a table of the same shape.

The same song rows (mapped by pipeline/songs.merge_rows, as a worker maps them) are written
  - by COPY into a table of the same shape (`LIKE songs INCLUDING ALL`: the same columns,
    defaults, checks and indexes, unique "spotifyId" included), once from one connection and once
    from WORKER_THREADS connections at once, each with its share: PostgreSQL's ceiling for
    loading rows is the faster of the two, and that is what the target is judged against (the
    upsert below writes from as many connections, so it must not be held to a one-stream COPY);
  - by `songs.write_songs` as a worker process writes: WORKER_THREADS threads, each writing one
    track_sync job's 50 rows per statement (its own transaction), over a pool like the worker's.
    This is the figure judged against the target;
  - for context, by `songs.write_songs` from one thread, and by COPY in transactions of 50 rows:
    what a lone job's statement costs, and how much of that is the commit per job.
Each method writes into a table that starts empty, so every one pays for index inserts, not
lookups of existing rows; all are ordinary (WAL-logged) tables in a fresh database. The methods
take turns over ROUNDS rounds and each figure is the median of its rounds, so a slow spell of the
machine's disk falls on all of them alike.
Target: upsert (as a worker writes) >= 0.4 of COPY's rows per second.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import Engine, text

from bench.harness import fresh_database
from bench.report import Figure
from pipeline import mapping
from pipeline.store import songs
from shared.db import make_engine

BATCH = 50  # one track_sync job's rows
WORKER_THREADS = 8  # `spotify-sync worker`'s default --threads
TARGET_SHARE = 0.4


def synthetic_rows(count: int) -> list[dict]:
    """Song rows as a worker builds them from Spotify JSON (tracks with audio features)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    tracks, features = [], {}
    for i in range(count):
        track_id = f"{i:022d}"
        tracks.append({
            "id": track_id, "name": f"Track {i}", "artists": [{"name": f"Artist {i % 997}"}, {"name": "Guest"}],
            "album": {"name": f"Album {i % 4999}"}, "duration_ms": 180_000 + i % 60_000,
            "popularity": i % 101, "preview_url": f"https://p.scdn.co/mp3-preview/{track_id}",
            "external_urls": {"spotify": f"https://open.spotify.com/track/{track_id}"},
        })
        features[track_id] = {
            "danceability": (i % 100) / 100, "energy": 0.5, "valence": 0.25, "acousticness": 0.1,
            "instrumentalness": 0.0, "speechiness": 0.05, "liveness": 0.12, "tempo": 120.5, "loudness": -7.25,
        }
    return mapping.merge_rows(tracks, features, now, features_checked=True)


def _rows_per_s(rows: list[dict], write: Callable[[], None]) -> float:
    started = time.perf_counter()
    write()
    return len(rows) / (time.perf_counter() - started)


def upsert_rows_per_s(engine: Engine, rows: list[dict], threads: int) -> float:
    """write_songs of one job's batch at a time, from `threads` threads at once, into empty songs."""
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE songs CASCADE"))
    batches = [rows[start:start + BATCH] for start in range(0, len(rows), BATCH)]

    def write() -> None:
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(lambda batch: songs.write_songs(engine, batch), batches):
                pass  # re-raises a failed write

    return _rows_per_s(rows, write)


def copy_rows_per_s(engine: Engine, rows: list[dict], table: str, batch: int | None = None,
                    streams: int = 1) -> float:
    """COPY `rows` into an empty table shaped like songs: one COPY per stream (batch None), or one
    COPY and one transaction per `batch` rows; `streams` connections at once, each with its share."""
    columns = list(songs.SONG_COLUMNS)
    quoted = ", ".join(f'"{c}"' for c in columns)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
        connection.execute(text(f"CREATE TABLE {table} (LIKE songs INCLUDING ALL)"))
    shares = [rows[i::streams] for i in range(streams)]

    def copy_share(share: list[dict]) -> None:
        raw = engine.raw_connection()
        try:
            step = batch or len(share)
            for start in range(0, len(share), step):
                with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                    for row in share[start:start + step]:
                        copy.write_row([row.get(c) for c in columns])
                raw.commit()
        finally:
            raw.close()

    def write() -> None:
        with ThreadPoolExecutor(streams) as pool:
            for _ in pool.map(copy_share, shares):
                pass  # re-raises a failed COPY

    return _rows_per_s(rows, write)


def run(quick: bool) -> list[Figure]:
    count, rounds = (10_000, 1) if quick else (100_000, 3)
    rows = synthetic_rows(count)
    methods: dict[str, Callable[[Engine], float]] = {
        "copy": lambda engine: copy_rows_per_s(engine, rows, "songs_copy"),
        "copy streams": lambda engine: copy_rows_per_s(engine, rows, "songs_copy_streams", streams=WORKER_THREADS),
        "worker": lambda engine: upsert_rows_per_s(engine, rows, WORKER_THREADS),
        "one thread": lambda engine: upsert_rows_per_s(engine, rows, 1),
        "copy per job": lambda engine: copy_rows_per_s(engine, rows, "songs_copy_batched", BATCH),
    }
    measured: dict[str, list[float]] = {name: [] for name in methods}
    with fresh_database() as database_url:
        engine = make_engine(database_url, pool_size=WORKER_THREADS)  # as workers/setup.py
        try:
            for _ in range(rounds):
                for name, measure in methods.items():
                    measured[name].append(measure(engine))
        finally:
            engine.dispose()
    rate = {name: statistics.median(values) for name, values in measured.items()}
    ceiling = max(rate["copy"], rate["copy streams"])
    share = rate["worker"] / ceiling
    return [Figure(
        "upsert rows/s (db stage)", round(rate["worker"]), "rows/s",
        against=(f"COPY {ceiling:,.0f} rows/s ({share:.2f}x; the faster of 1 stream {rate['copy']:,.0f} and "
                 f"{WORKER_THREADS} streams {rate['copy streams']:,.0f}); {WORKER_THREADS} threads x one {BATCH}-row "
                 f"statement per job as a worker writes. One thread: {rate['one thread']:,.0f} "
                 f"({rate['one thread'] / ceiling:.2f}x); COPY in {BATCH}-row transactions "
                 f"{rate['copy per job']:,.0f}; {count:,} rows, median of {rounds}"),
        target=f">= {TARGET_SHARE} of COPY", met=share >= TARGET_SHARE,
    )]
