"""Keeping song_search in step with songs (migration 20261201_03): a write to songs only queues
the song's id (song_search_queue, by triggers, whoever writes); the search work is done here,
in batches (`drain`, called by pipeline/search_indexer.py every second) or at once for given
songs in the writer's own transaction (`index_now`: the API's enrichment).

The SQL lives in the database functions song_search_drain / song_search_index, so that an
application writing songs directly, or an operator, can drain with the same definition
(`SELECT song_search_drain(1000)`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from pipeline.store.db import autocommit, transaction

DRAIN_BATCH = 250  # entries a transaction: about 25 ms of folding, songs rows locked as long (a
# worker writing audio features to one of them waits that long; at 1,000 it waited a tenth of a second)


def installed(engine: Engine) -> bool:
    """The search tables exist (20261201_01 builds none on a PostgreSQL without pg_trgm and unaccent)."""
    with transaction(engine) as conn:
        return bool(conn.execute(text("SELECT to_regclass('song_search_queue') IS NOT NULL")).scalar_one())


def drain(engine: Engine, batch: int = DRAIN_BATCH) -> int:
    """Index up to `batch` queued entries, one transaction; how many it removed (0: nothing queued,
    or another drain has the turn)."""
    with autocommit(engine) as conn:
        return int(conn.execute(text("SELECT song_search_drain(CAST(:batch AS integer))"), {"batch": batch}).scalar_one())


def drain_all(engine: Engine, batch: int = DRAIN_BATCH) -> int:
    """Drain until a drain removes less than a full batch; how many entries in all."""
    total = 0
    while (removed := drain(engine, batch)) > 0:
        total += removed
        if removed < batch:
            break
    return total


def queued(engine: Engine, *, at_most: int | None = None) -> int:
    """How many entries wait (a song written twice counts twice), counted up to `at_most`: a bulk
    load can queue millions, and `status` need not read them all to say "more than"."""
    with transaction(engine) as conn:
        if at_most is None:
            return int(conn.execute(text("SELECT count(*) FROM song_search_queue")).scalar_one())
        return int(conn.execute(text("SELECT count(*) FROM (SELECT FROM song_search_queue LIMIT :n) AS q"),
                                {"n": at_most}).scalar_one())


def index_now(conn: Connection, song_ids: Sequence[str]) -> int:
    """These songs' search rows written in the caller's transaction (visible when it commits);
    how many rows were written."""
    if not song_ids:
        return 0
    return int(conn.execute(text("SELECT song_search_index(CAST(:ids AS text[]))"),
                            {"ids": list(song_ids)}).scalar_one())
