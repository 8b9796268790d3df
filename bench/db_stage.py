"""Benchmark 3b, the database stage alone: our batch upsert against COPY.

The same song rows (mapped by pipeline/songs.merge_rows, as a worker maps them) are written
  - by `songs.write_songs`: one INSERT ... SELECT FROM unnest ... ON CONFLICT statement and one
    transaction per batch of 50 (a track_sync job's batch), into `songs`;
  - by COPY, into `songs_copy`, a table of the same shape (`LIKE songs INCLUDING ALL`: the same
    columns, defaults, checks and indexes, unique "spotifyId" included), in one COPY statement:
    PostgreSQL's ceiling for loading rows, what the target is judged against;
  - for context, by COPY in transactions of 50 rows like the upsert's: what is left of the gap
    once the cost of a commit per job is taken out is the statement's own.
Both tables are ordinary (WAL-logged) tables in a fresh database, so neither gets a cheaper
path; both start empty, so both pay for index inserts, not lookups of existing rows.
Target: upsert >= 0.4 of COPY's rows per second.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from bench.harness import fresh_database
from bench.report import Figure
from pipeline import songs
from shared.db import make_engine

BATCH = 50  # one track_sync job's rows
TARGET_SHARE = 0.4


def synthetic_rows(count: int) -> list[dict]:
    """Song rows as a worker builds them from Spotify JSON (tracks with audio features)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
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
    return songs.merge_rows(tracks, features, now, features_checked=True)


def upsert_rows_per_s(engine, rows: list[dict]) -> float:
    started = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        songs.write_songs(engine, rows[start:start + BATCH])
    return len(rows) / (time.perf_counter() - started)


def copy_rows_per_s(engine, rows: list[dict], table: str, batch: int | None = None) -> float:
    """COPY `rows` into a new table shaped like songs: one COPY (batch None) or one COPY and one
    transaction per `batch` rows."""
    columns = list(songs.SONG_COLUMNS)
    quoted = ", ".join(f'"{c}"' for c in columns)
    step = batch or len(rows)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {table} (LIKE songs INCLUDING ALL)")
        raw.commit()
        started = time.perf_counter()
        for start in range(0, len(rows), step):
            with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for row in rows[start:start + step]:
                    copy.write_row([row.get(c) for c in columns])
            raw.commit()
        return len(rows) / (time.perf_counter() - started)
    finally:
        raw.close()


def run(quick: bool) -> list[Figure]:
    count = 10_000 if quick else 100_000
    rows = synthetic_rows(count)
    with fresh_database() as database_url:
        engine = make_engine(database_url)
        try:
            copy_rate = copy_rows_per_s(engine, rows, "songs_copy")
            batched_copy_rate = copy_rows_per_s(engine, rows, "songs_copy_batched", BATCH)
            upsert_rate = upsert_rows_per_s(engine, rows)
        finally:
            engine.dispose()
    share = upsert_rate / copy_rate
    return [Figure(
        "upsert rows/s (db stage)", round(upsert_rate), "rows/s",
        against=(f"COPY {copy_rate:,.0f} rows/s ({share:.2f}x); COPY in {BATCH}-row transactions "
                 f"{batched_copy_rate:,.0f} ({upsert_rate / batched_copy_rate:.2f}x); {count:,} rows"),
        target=f">= {TARGET_SHARE} of COPY", met=share >= TARGET_SHARE,
    )]
