"""A database migrated without pg_trgm/unaccent (the embedded pgserver has neither): the search
says so, as a 503 naming what is missing, instead of a database error."""

import pytest
from sqlalchemy import create_engine, text

from pipeline.search.query import parse
from pipeline.store.search import SearchUnavailable, search_songs
from shared import migrate
from shared.db import sqlalchemy_url


def test_search_without_its_functions_names_what_is_missing(create_database):
    url = create_database()
    migrate.upgrade(url, "20261122_04")  # as far as a database without the extensions gets
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM pg_proc WHERE proname = 'spotify_search_doc'")).scalar() == 0
        with pytest.raises(SearchUnavailable, match="pg_trgm and unaccent"):
            search_songs(engine, parse("halo"), limit=10, offset=0)
    finally:
        engine.dispose()
