"""The songs store against real PostgreSQL: one statement per batch, keyed on natural keys, so
running a job twice changes nothing; a value a new answer lacks never overwrites a stored one."""

from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import text

from pipeline import mapping
from pipeline.errors import StoreError
from pipeline.store import ledger, songs
from pipeline.store.db import transaction
from pipeline.store.ledger import NewJob
from shared.db import make_engine

AT = datetime(2026, 11, 22, 12, 0, 0)


def track(i, **extra):
    return {"id": f"{i:022d}", "name": f"Song {i}", "duration_ms": 200_000 + i, "popularity": i % 101,
            "external_urls": {"spotify": f"https://open.spotify.com/track/{i:022d}"},
            "artists": [{"name": "Artist"}], "album": {"name": "Album"}, **extra}


def features(i):
    return {"id": f"{i:022d}", "danceability": 0.5, "energy": 0.6, "valence": 0.7, "acousticness": 0.1,
            "instrumentalness": 0.0, "speechiness": 0.04, "liveness": 0.2, "loudness": -7.5, "tempo": 120.0}


def table(engine, sql):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


@contextmanager
def recorded_statements(engine):
    """The SQL sent in the block, each with whether its connection was in autocommit (no
    BEGIN/COMMIT round trips around it). Seen at psycopg's cursor, under SQLAlchemy: the store
    runs some statements on the driver's connection itself (db.driver_autocommit)."""
    seen: list[tuple[str, bool]] = []
    execute = psycopg.Cursor.execute

    def record(cursor, query, *args, **kwargs):
        seen.append((str(query), cursor.connection.autocommit))
        return execute(cursor, query, *args, **kwargs)

    psycopg.Cursor.execute = record  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]


def test_a_batch_of_fifty_is_one_statement_and_a_second_run_leaves_the_same_rows(clean_db):
    engine = clean_db
    rows = mapping.merge_rows([track(i) for i in range(50)], {f"{i:022d}": features(i) for i in range(50)}, AT,
                              features_checked=True)
    with recorded_statements(engine) as statements:
        first = songs.write_songs(engine, rows)
    assert len([s for s, _ in statements if "INSERT INTO songs" in s]) == 1
    assert len(first) == 50 and all(u.inserted for u in first)
    every_column = "id, " + ", ".join(f'"{c}"' for c in mapping.SONG_COLUMNS) + ', "createdAt"'
    before = table(engine, f'SELECT {every_column} FROM songs ORDER BY "spotifyId"')

    second = songs.write_songs(engine, rows)
    assert not any(u.inserted for u in second)
    assert {u.song_id for u in second} == {u.song_id for u in first}
    after = table(engine, f'SELECT {every_column} FROM songs ORDER BY "spotifyId"')
    assert len(after) == 50 and after == before
    assert table(engine, 'SELECT count(*) FROM songs WHERE "audioFeaturesSynced" AND danceability = 0.50') == [(50,)]


def test_stored_features_are_rounded_half_away_from_zero_by_both_writes(clean_db):
    engine = clean_db
    # Ties in their shortest decimal form (0.125 is one in binary too; 0.145 and 113.335 are not).
    ties = {"danceability": 0.125, "energy": 0.145, "valence": 0.995, "acousticness": 0.004, "instrumentalness": 0.0,
            "speechiness": 0.005, "liveness": 1.2, "loudness": -11.855, "tempo": 113.335}
    expected = [(Decimal("0.13"), Decimal("0.15"), Decimal("1.00"), Decimal("0.00"), Decimal("0.01"), Decimal("1.00"),
                 Decimal("-11.86"), Decimal("113.34"))]
    columns = "danceability, energy, valence, acousticness, speechiness, liveness, loudness, tempo"
    songs.write_songs(engine, mapping.merge_rows([track(1)], {track(1)["id"]: {"id": track(1)["id"], **ties}}, AT,
                                                 features_checked=True))
    assert table(engine, f"SELECT {columns} FROM songs") == expected
    songs.write_songs(engine, mapping.merge_rows([track(2)], None, AT))
    assert songs.write_features(engine, {track(2)["id"]: {"id": track(2)["id"], **ties}}, [track(2)["id"]]) == 1
    assert table(engine, f"SELECT {columns} FROM songs WHERE \"spotifyId\" = '{track(2)['id']}'") == expected


def test_a_tier_without_popularity_or_features_keeps_what_the_row_had(clean_db):
    engine = clean_db
    songs.write_songs(engine, mapping.merge_rows([track(1)], {track(1)["id"]: features(1)}, AT, features_checked=True))
    later = AT + timedelta(days=2)
    songs.write_songs(engine, mapping.merge_rows([track(1, popularity=None, name="Renamed")], None, later))
    assert table(engine, 'SELECT title, "spotifyPopularity", danceability, "audioFeaturesSynced", "spotifyLastSync" '
                         "FROM songs") == [("Renamed", 1, mapping.features_row(features(1))["danceability"], True, later)]


def test_a_value_an_answer_lacks_never_overwrites_a_stored_one(clean_db):
    engine = clean_db
    songs.write_songs(engine, mapping.merge_rows([track(1)], None, AT))
    stored = table(engine, 'SELECT title, artist, album, duration, "spotifyExternalUrl" FROM songs')
    # An answer without album, duration or link (a row mapped from an incomplete object): only the sync time moves.
    later = AT + timedelta(days=2)
    songs.write_songs(engine, [{"spotifyId": track(1)["id"], "title": None, "artist": None, "album": None,
                                "duration": None, "spotifyExternalUrl": None, "spotifyLastSync": later}])
    assert table(engine, 'SELECT title, artist, album, duration, "spotifyExternalUrl" FROM songs') == stored
    assert table(engine, 'SELECT "spotifyLastSync" FROM songs') == [(later,)]
    # A negative duration is unknown, not a negative number of seconds.
    assert mapping.track_row(track(2, duration_ms=-5), AT)["duration"] is None


def test_existing_songs_of_the_application_are_enriched_in_place(clean_db):
    engine = clean_db
    with engine.begin() as conn:
        conn.execute(text('INSERT INTO songs (id, "spotifyId", title, artist) VALUES (\'app-1\', :s, \'Old\', \'X\')'),
                     {"s": track(7)["id"]})
    [upserted] = songs.write_songs(engine, mapping.merge_rows([track(7)], None, AT))
    assert (upserted.song_id, upserted.inserted) == ("app-1", False)
    assert table(engine, 'SELECT id, title, "spotifyLastSync" FROM songs') == [("app-1", "Song 7", AT)]


def library_run(engine, user_id):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES (:u) ON CONFLICT DO NOTHING"), {"u": user_id})
    [job_id] = ledger.create_jobs(engine, [NewJob("user_library", {}, user_id=user_id)])
    return ledger.claim(engine, job_id, 60, max_retries=5).job


def test_a_library_page_writes_songs_links_and_its_checkpoint_together(clean_db):
    engine = clean_db
    run = library_run(engine, "u1")
    rows = mapping.merge_rows([track(i) for i in range(3)], None, AT)
    page = songs.LibraryPage(rows, [(r["spotifyId"], AT - timedelta(days=i)) for i, r in enumerate(rows)])
    assert songs.save_library_page(engine, run, 60, "u1", page, lambda known: {"pages": 1, "known": known}) == (0, True)
    assert songs.save_library_page(engine, run, 60, "u1", page, lambda known: {"pages": 2, "known": known}) == (3, True)
    assert table(engine, "SELECT count(*) FROM spotify_saved_tracks") == [(3,)]
    assert ledger.get_job(engine, run.id).result == {"pages": 2, "known": 3}
    assert songs.saved_track_ids(engine, "u1") == [r["spotifyId"] for r in rows]

    ledger.cancel(engine, [run.id])  # the run lost its job: the next page writes nothing
    more = mapping.merge_rows([track(9)], None, AT)
    assert songs.save_library_page(engine, run, 60, "u1", songs.LibraryPage(more, [(more[0]["spotifyId"], AT)]),
                                   lambda known: {"pages": 3}) == (0, False)
    assert table(engine, "SELECT count(*) FROM songs") == [(3,)]

    # A full sync drops the links it did not see again.
    rerun = library_run(engine, "u1")
    seen_since = ledger.db_now(engine)
    one = songs.LibraryPage(rows[:1], [(rows[0]["spotifyId"], AT)])
    songs.save_library_page(engine, rerun, 60, "u1", one, lambda known: {})
    assert songs.remove_unseen_links(engine, "u1", seen_since) == 2
    assert songs.saved_track_ids(engine, "u1") == [rows[0]["spotifyId"]]


def test_popularity_and_its_history(clean_db):
    engine = clean_db
    songs.write_songs(engine, mapping.merge_rows([track(i) for i in range(3)], None, AT))
    assert songs.record_popularity(engine, [(f"{0:022d}", 42), (f"{1:022d}", 43), ("missing" * 3, 1)], "job-1") == 2
    [(popularity, refreshed)] = table(engine, 'SELECT "spotifyPopularity", "lastPopularityUpdate" FROM songs '
                                              f"WHERE \"spotifyId\" = '{0:022d}'")
    assert popularity == 42 and refreshed > AT
    assert table(engine, 'SELECT popularity, "jobId" FROM song_popularity_history ORDER BY popularity') == [
        (42, "job-1"), (43, "job-1")]


def test_a_popularity_job_run_twice_records_each_song_once(clean_db):
    songs.write_songs(clean_db, mapping.merge_rows([track(i) for i in range(2)], None, AT))
    observed = [(f"{0:022d}", 42), (f"{1:022d}", 43)]
    for _ in range(2):  # the same job, delivered again
        songs.record_popularity(clean_db, observed, "job-1")
    songs.record_popularity(clean_db, observed, "job-2")  # a later refresh
    assert table(clean_db, 'SELECT "jobId", count(*) FROM song_popularity_history GROUP BY 1 ORDER BY 1') == [
        ("job-1", 2), ("job-2", 2)]


def test_write_songs_is_one_autocommitted_statement_and_unknown_features_read_as_not_synced(clean_db):
    engine = clean_db
    with recorded_statements(engine) as statements:
        songs.write_songs(engine, mapping.merge_rows([track(3)], None, AT))  # no features asked for
    assert [(s.split()[0], autocommit) for s, autocommit in statements if "songs" in s] == [("INSERT", True)]
    # The row's JSON carries no audioFeaturesSynced key: the column gets false, not NULL.
    assert table(engine, 'SELECT "audioFeaturesSynced", danceability FROM songs') == [(False, None)]
    assert songs.features_pending(engine, [track(3)["id"], "never-seen"]) == [track(3)["id"]]


def test_the_upserts_driver_connection_goes_back_to_the_pool_as_a_transaction_expects_it(clean_db):
    # write_songs runs on the driver's connection in autocommit (db.driver_autocommit); the next
    # borrower of that connection (a pool of one) must get it back out of autocommit, or a
    # transaction's rollback would undo nothing.
    engine = make_engine(clean_db.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    try:
        songs.write_songs(engine, mapping.merge_rows([track(1)], None, AT))
        with pytest.raises(StoreError), transaction(engine) as conn:
            conn.execute(text("UPDATE songs SET title = 'changed'"))
            conn.execute(text("SELECT 1/0"))
        assert table(engine, "SELECT title FROM songs") == [("Song 1",)]
    finally:
        engine.dispose()
