"""The search migration on a database that already holds songs: indexes built, downgrade drops them."""

from sqlalchemy import create_engine, text

from shared import migrate
from shared.db import sqlalchemy_url
from tests.integration.search.conftest import TRICKY, insert_songs

INDEXES = {"idx_song_search_title_popularity", "idx_song_search_trgm", "idx_song_search_words",
           "idx_song_search_by_popularity", "idx_song_search_words_word", "idx_song_search_words_trgm"}


def _state(engine) -> tuple[set[str], set[str], int]:
    with engine.connect() as conn:
        indexes = set(conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('songs', 'song_search', 'song_search_words')")).scalars())
        functions = set(conn.execute(
            text("SELECT proname FROM pg_proc WHERE proname LIKE 'spotify_search_%'")).scalars())
        songs = conn.execute(text("SELECT count(*) FROM songs")).scalar_one()
    return indexes & INDEXES, functions, songs


def test_upgrade_over_existing_songs_then_downgrade_and_again(create_database):
    url = create_database()
    migrate.upgrade(url, "20261122_04")
    engine = create_engine(sqlalchemy_url(url))
    try:
        insert_songs(engine, TRICKY)
        migrate.upgrade(url)
        assert _state(engine) == (INDEXES, {"spotify_search_fold", "spotify_search_doc",
                                                   "spotify_search_doc_of_folds"}, len(TRICKY))
        with engine.connect() as conn:  # built CONCURRENTLY and valid
            invalid = conn.execute(text("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                        "WHERE c.relname LIKE 'idx_song_search_%' AND NOT i.indisvalid")).scalar_one()
        assert invalid == 0
        migrate.downgrade(url, "20261122_04")
        assert _state(engine) == (set(), set(), len(TRICKY))
        migrate.upgrade(url)
        assert _state(engine)[0] == INDEXES
        migrate.check(url)  # models and migrations agree (the search indexes are SQL-only)
    finally:
        engine.dispose()


def _entries(engine) -> dict[str, tuple]:
    """song_search's rows by their song's title and artist."""
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(text(
            "SELECT s.title || ' / ' || s.artist, x.title, x.artist, x.album, x.doc, x.popularity, "
            "x.words = to_tsvector('simple', x.doc) FROM song_search x JOIN songs s ON s.id = x.song_id"))}


def test_song_search_is_filled_over_existing_songs_and_follows_every_write(create_database):
    url = create_database()
    migrate.upgrade(url, "20261122_04")
    engine = create_engine(sqlalchemy_url(url))
    try:
        insert_songs(engine, TRICKY)
        migrate.upgrade(url)  # the backfill
        entries = _entries(engine)
        assert len(entries) == len(TRICKY)
        assert entries["Halo Theme / Martin O'Donnell"] == ("halo theme", "martin odonnell", "halo",
                                        "halo theme martin odonnell halo martinodonnell", 40, True)
        with engine.begin() as conn:
            conn.execute(text("UPDATE songs SET \"spotifyPopularity\" = 41 WHERE title = 'Halo Theme'"))
            conn.execute(text("UPDATE songs SET title = 'Halo Theme (Reprise)', album = NULL "
                              "WHERE title = 'Halo Theme'"))
            conn.execute(text("DELETE FROM songs WHERE title = 'Straße'"))
        insert_songs(engine, [("Café Olé", "Zoë", None, 3)])
        entries = _entries(engine)
        assert entries["Halo Theme (Reprise) / Martin O'Donnell"] == ("halo theme reprise", "martin odonnell", "",
                                                  "halo theme reprise martin odonnell martinodonnell", 41, True)
        assert "Straße / Ørsted & Søn" not in entries and len(entries) == len(TRICKY)
        assert entries["Café Olé / Zoë"][:3] == ("cafe ole", "zoe", "")
        with engine.connect() as conn:  # every word of the documents, in the typo search's vocabulary
            words = conn.execute(text("SELECT word FROM song_search_words")).scalars().all()
            expected = conn.execute(text("SELECT DISTINCT unnest(tsvector_to_array(words)) FROM song_search")
                                    ).scalars().all()
        assert set(expected) <= set(words) and {"reprise", "ole", "zoe", "odonnell"} <= set(words)
    finally:
        engine.dispose()
