"""Keeping song_search in step with songs (migration 20261201_03) against real PostgreSQL: a write
queues the song, the indexer makes it searchable within a tick, the enrichment's writes are
searchable at once, the application's own SQL is followed too, and a write that changes nothing
searchable does no search work."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from sqlalchemy import text

from pipeline import mapping
from pipeline.search.query import parse
from pipeline.search_indexer import SearchIndexer
from pipeline.store import search_index, songs
from pipeline.store.search import search_songs

AT = datetime(2026, 12, 1, 12, 0, 0)
BOUND_S = 5.0  # a store write is searchable within a tick (1 s) and a drain; generous for a loaded CI


@pytest.fixture
def db(clean_db):
    with clean_db.begin() as conn:
        conn.execute(text("TRUNCATE song_search_queue"))  # no FK to songs: clean_db leaves it
    return clean_db


def rows(*names: tuple[str, str, str, int]) -> list[dict]:
    tracks = [{"id": f"{i:022d}", "name": title, "artists": [{"name": artist}], "album": {"name": album},
               "duration_ms": 200_000, "popularity": popularity, "external_urls": {}}
              for i, (title, artist, album, popularity) in enumerate(names)]
    return mapping.merge_rows(tracks, None, AT)


def found(engine, q: str) -> list[str]:
    return [s["title"] for s in search_songs(engine, parse(q), limit=10, offset=0).songs]


def search_state(engine) -> dict[str, tuple]:
    """song_search by song id: (row version, doc, popularity)."""
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(
            text("SELECT song_id, xmin::text, doc, popularity FROM song_search"))}


def wait_for(condition, timeout_s: float) -> float:
    """Seconds until `condition()` held (polled); fails past `timeout_s`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"not within {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_store_write_is_queued_then_searchable_within_a_tick(db):
    songs.write_songs(db, rows(("Halo", "Beyoncé", "I Am... Sasha Fierce", 80)))
    assert search_index.queued(db) == 1 and search_state(db) == {}  # the write itself did no search work
    indexer = SearchIndexer(db)
    indexer.start()
    try:
        waited = wait_for(lambda: found(db, "beyonce halo") == ["Halo"], BOUND_S)
    finally:
        indexer.stop()
    assert waited < BOUND_S and search_index.queued(db) == 0


def test_the_enrichment_write_is_searchable_at_once(db):
    songs.write_songs(db, rows(("Hoppípolla", "Sigur Rós", "Takk...", 55)), searchable_now=True)
    assert found(db, "hoppipolla") == ["Hoppípolla"]  # no indexer ran
    search_index.drain_all(db)  # its queued entry finds the row as it is and writes nothing
    assert search_index.queued(db) == 0 and len(search_state(db)) == 1


def test_the_application_writing_songs_directly_is_followed(db):
    with db.begin() as conn:
        conn.execute(text('INSERT INTO songs ("spotifyId", title, artist, album) '
                          "VALUES ('app00000000000000000001', 'Back in Black', 'AC/DC', NULL), "
                          "('app00000000000000000002', 'Straße', 'Ørsted', 'Æther')"))
    assert search_index.drain_all(db) == 2
    assert found(db, "acdc") == ["Back in Black"]
    with db.begin() as conn:
        conn.execute(text("UPDATE songs SET title = 'Hells Bells' WHERE title = 'Back in Black'"))
        conn.execute(text("DELETE FROM songs WHERE title = 'Straße'"))
    assert found(db, "hells bells") == []  # until the indexer's next tick
    SearchIndexer(db).tick()
    assert found(db, "hells bells") == ["Hells Bells"] and found(db, "black") == [] and found(db, "strasse") == []
    assert search_index.queued(db) == 0


def test_an_unchanged_rewrite_does_no_search_work(db):
    batch = rows(("Crazy in Love", "Beyoncé", "Dangerously in Love", 85), ("Jazz", "Queen", "Jazz", 70))
    songs.write_songs(db, batch)
    search_index.drain_all(db)
    before = search_state(db)
    songs.write_songs(db, batch)  # a re-sync: every songs row rewritten, nothing searchable changed
    songs.record_popularity(db, [("0000000000000000000000", 85)], job_id=None)  # a refresh, same value
    assert search_index.queued(db) == 0
    SearchIndexer(db).tick()
    assert search_state(db) == before  # not a tuple of song_search rewritten (same xmin)


def test_a_popularity_change_updates_the_popularity_alone(db):
    songs.write_songs(db, rows(("Crazy in Love", "Beyoncé", "Dangerously in Love", 85)))
    search_index.drain_all(db)
    (song_id, (_, doc, _)), = search_state(db).items()
    songs.record_popularity(db, [("0000000000000000000000", 90)], job_id=None)
    with db.connect() as conn:
        assert conn.execute(text("SELECT refold FROM song_search_queue")).scalars().all() == [False]
    search_index.drain_all(db)
    assert search_state(db)[song_id][1:] == (doc, 90)


def test_a_row_a_writer_holds_stays_queued_and_is_indexed_as_committed(db):
    """The drain never writes an older version over a newer one: a song being written is left for
    the next drain, which reads the committed row."""
    songs.write_songs(db, rows(("Halo", "Lovebugs", "Naked", 20)))
    search_index.drain_all(db)
    with db.begin() as writer:
        writer.execute(text("UPDATE songs SET title = 'Halo (Remix)'"))
        assert search_index.drain(db) == 0  # the writer holds the row: its entry stays
    assert search_index.queued(db) == 1
    assert search_index.drain_all(db) == 1
    assert found(db, "halo remix") == ["Halo (Remix)"]
