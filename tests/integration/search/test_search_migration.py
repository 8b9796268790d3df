"""The search migration on a database that already holds songs: indexes built, downgrade drops them."""

from sqlalchemy import create_engine, text

from shared import migrate
from shared.db import sqlalchemy_url
from tests.integration.search.conftest import TRICKY, insert_songs

INDEXES = {"idx_songs_search_title", "idx_songs_search_trgm", "idx_songs_search_words"}


def _state(engine) -> tuple[set[str], set[str], int]:
    with engine.connect() as conn:
        indexes = set(conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'songs'")).scalars())
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
        assert _state(engine) == (INDEXES, {"spotify_search_fold", "spotify_search_doc"}, len(TRICKY))
        with engine.connect() as conn:  # built CONCURRENTLY and valid
            invalid = conn.execute(text("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                        "WHERE c.relname LIKE 'idx_songs_search_%' AND NOT i.indisvalid")).scalar_one()
        assert invalid == 0
        migrate.downgrade(url, "20261122_04")
        assert _state(engine) == (set(), set(), len(TRICKY))
        migrate.upgrade(url)
        assert _state(engine)[0] == INDEXES
        migrate.check(url)  # models and migrations agree (the search indexes are SQL-only)
    finally:
        engine.dispose()
