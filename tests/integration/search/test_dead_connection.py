"""An engine pings a pooled connection only when it sat idle (shared/db.py), not before every
search: a pooled connection PostgreSQL dropped in between is found by the search's own statement,
which store.db.read runs once more on a new connection."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from pipeline.errors import StoreUnavailable
from pipeline.search.query import parse
from pipeline.store.db import read
from pipeline.store.search import get_song, search_songs
from shared.db import make_engine
from tests.integration.search.conftest import TRICKY, insert_songs


@pytest.fixture
def unpinged(clean_db, database_url):
    insert_songs(clean_db, TRICKY)
    # Never idle long enough to be pinged: the statement finds the dead connection.
    engine = make_engine(database_url, pool_size=1, max_overflow=0, ping_idle_s=3600)
    yield engine
    engine.dispose()


def _drop_pooled_connection(engine, admin) -> None:
    """PostgreSQL ends the backend of the one pooled connection (as a restart would)."""
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()


def test_a_search_on_a_dropped_connection_is_answered(unpinged, clean_db):
    assert search_songs(unpinged, parse("halo"), limit=10, offset=0).songs
    _drop_pooled_connection(unpinged, clean_db)
    found = search_songs(unpinged, parse("halo"), limit=10, offset=0)
    assert [s["title"] for s in found.songs][:2] == ["Halo", "Halo"]
    _drop_pooled_connection(unpinged, clean_db)
    assert get_song(unpinged, found.songs[0]["spotifyId"])["title"] == "Halo"


def test_a_read_is_tried_once_more_only(unpinged):
    calls = []

    def drops_its_connection(conn):  # every attempt: PostgreSQL ends this very backend
        calls.append(1)
        return conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    with pytest.raises(StoreUnavailable):
        read(unpinged, drops_its_connection)
    assert len(calls) == 2  # the first attempt and one more, not a loop
