"""Upserts: one statement per batch, keyed on natural keys, so running a job twice changes nothing."""

from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import event, text

from pipeline import songs
from shared.db import transaction

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
    """The SQL sent through `engine` in the block, each with whether its connection was in
    autocommit (no BEGIN/COMMIT round trips around it)."""
    seen: list[tuple[str, bool]] = []

    def record(connection, cursor, statement, *_):
        seen.append((statement, connection.connection.dbapi_connection.autocommit))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_batch_of_fifty_is_one_statement_and_a_second_run_leaves_the_same_rows(clean_db):
    engine = clean_db
    rows = songs.merge_rows([track(i) for i in range(50)], {f"{i:022d}": features(i) for i in range(50)}, AT,
                            features_checked=True)
    with recorded_statements(engine) as statements, transaction(engine) as session:
        first = songs.upsert_songs(session, rows)
    assert len([s for s, _ in statements if "INSERT INTO songs" in s]) == 1
    assert len(first) == 50 and all(u.inserted for u in first)
    every_column = "id, " + ", ".join(f'"{c}"' for c in songs.SONG_COLUMNS) + ', "createdAt"'
    before = table(engine, f'SELECT {every_column} FROM songs ORDER BY "spotifyId"')

    with transaction(engine) as session:
        second = songs.upsert_songs(session, rows)
    assert not any(u.inserted for u in second)
    assert {u.song_id for u in second} == {u.song_id for u in first}
    after = table(engine, f'SELECT {every_column} FROM songs ORDER BY "spotifyId"')
    assert len(after) == 50 and after == before
    assert table(engine, 'SELECT count(*) FROM songs WHERE "audioFeaturesSynced" AND danceability = 0.50') == [(50,)]


def test_a_tier_without_popularity_or_features_keeps_what_the_row_had(clean_db):
    engine = clean_db
    songs.write_songs(engine, songs.merge_rows([track(1)], {track(1)["id"]: features(1)}, AT, features_checked=True))
    later = AT + timedelta(days=2)
    songs.write_songs(engine, songs.merge_rows([track(1, popularity=None, name="Renamed")], None, later))
    assert table(engine, 'SELECT title, "spotifyPopularity", danceability, "audioFeaturesSynced", "spotifyLastSync" '
                         "FROM songs") == [("Renamed", 1, songs.features_row(features(1))["danceability"], True, later)]


def test_existing_songs_of_the_application_are_enriched_in_place(clean_db):
    engine = clean_db
    with engine.begin() as conn:
        conn.execute(text('INSERT INTO songs (id, "spotifyId", title, artist) VALUES (\'app-1\', :s, \'Old\', \'X\')'),
                     {"s": track(7)["id"]})
    [upserted] = songs.write_songs(engine, songs.merge_rows([track(7)], None, AT))
    assert (upserted.song_id, upserted.inserted) == ("app-1", False)
    assert table(engine, 'SELECT id, title, "spotifyLastSync" FROM songs') == [("app-1", "Song 7", AT)]


def test_saved_track_links_and_popularity_history(clean_db):
    engine = clean_db
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES ('u1')"))
    upserted = songs.write_songs(engine, songs.merge_rows([track(i) for i in range(3)], None, AT))
    links = [(u.song_id, u.spotify_id, AT - timedelta(days=i)) for i, u in enumerate(upserted)]
    with transaction(engine) as session:
        assert songs.link_saved_tracks(session, "u1", links, AT) == 3
        assert songs.link_saved_tracks(session, "u1", links, AT) == 3  # again: same rows
        assert songs.known_saved(session, "u1", [f"{i:022d}" for i in (0, 1, 9)]) == {f"{i:022d}" for i in (0, 1)}
    assert table(engine, "SELECT count(*) FROM spotify_saved_tracks") == [(3,)]

    with transaction(engine) as session:
        songs.link_saved_tracks(session, "u1", links[:1], AT + timedelta(hours=1))
        assert songs.remove_unseen_links(session, "u1", AT + timedelta(hours=1)) == 2
    assert table(engine, 'SELECT "spotifyId" FROM spotify_saved_tracks') == [(f"{0:022d}",)]

    with transaction(engine) as session:
        assert songs.record_popularity(session, [(f"{0:022d}", 42), (f"{1:022d}", 43), ("missing" * 3, 1)], AT, "job-1") == 2
    assert table(engine, 'SELECT "spotifyPopularity", "lastPopularityUpdate" FROM songs WHERE "spotifyId" = '
                         f"'{0:022d}'") == [(42, AT)]
    assert table(engine, 'SELECT popularity, "jobId" FROM song_popularity_history ORDER BY popularity') == [
        (42, "job-1"), (43, "job-1")]


def test_a_popularity_job_run_twice_records_each_song_once(clean_db):
    songs.write_songs(clean_db, songs.merge_rows([track(i) for i in range(2)], None, AT))
    observed = [(f"{0:022d}", 42), (f"{1:022d}", 43)]
    for run_at in (AT, AT + timedelta(minutes=5)):  # the same job, delivered again
        with transaction(clean_db) as session:
            songs.record_popularity(session, observed, run_at, "job-1")
    with transaction(clean_db) as session:
        songs.record_popularity(session, observed, AT + timedelta(hours=1), "job-2")  # a later refresh
    assert table(clean_db, 'SELECT "jobId", count(*) FROM song_popularity_history GROUP BY 1 ORDER BY 1') == [
        ("job-1", 2), ("job-2", 2)]


def test_write_songs_is_one_autocommitted_statement_and_unknown_features_read_as_not_synced(clean_db):
    engine = clean_db
    with recorded_statements(engine) as statements:
        songs.write_songs(engine, songs.merge_rows([track(3)], None, AT))  # no features asked for
    assert [(s.split()[0], autocommit) for s, autocommit in statements if "songs" in s] == [("INSERT", True)]
    # The row's JSON carries no audioFeaturesSynced key: the column gets false, not NULL.
    assert table(engine, 'SELECT "audioFeaturesSynced", danceability FROM songs') == [(False, None)]
