"""search doc from folds: the drain (song_search_write) folds each field of a song once and builds
the document from those folds, instead of folding the joined fields again, twice.

Why (measured, PostgreSQL backend CPU, 20,000 catalog songs): a song_search row cost seven folds.
The title, artist and album were folded for their columns; then spotify_search_doc folded the
joined fields and the artist once more, and the planner, flattening the LATERAL subquery that
named the document once, wrote that inlined expression out twice (the doc column and its
tsvector). The document of the three folds is the same string: a space is a separator, so
folding fields joined by spaces gives the fields' non-empty folds joined by one space (unaccent
and lower map each character alone, and a separator never joins two words). Three folds and a
concatenation instead: about 2 ms less a drain of 100 songs (of about 10), the part of every
track_sync job's PostgreSQL CPU that search costs.

- spotify_search_doc_of_folds(title, artist, album): the document of fields already folded; the
  one definition of how a document is made of its parts.
- spotify_search_doc(title, artist, album) is that of the three folds (same results; the parity
  tests hold it to pipeline/search/ranking.py's `document`).
- song_search_write: the folds in a subquery the planner may not flatten (OFFSET 0), so each is
  computed once a row.

Only functions are replaced: no table is touched, instant at any size; song_search's rows need no
rewrite, the document being the same string. The downgrade puts back 20261201_01's
spotify_search_doc and 20261201_03's song_search_write, read from those migrations (frozen).

Revision ID: 20261202_01
Revises: 20261201_04
Create Date: 2026-12-02
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "20261202_01"
down_revision = "20261201_04"
branch_labels = None
depends_on = None

# Schema-qualified, as 20261201_01's functions are (PostgreSQL 17+ builds index expressions with
# search_path = pg_catalog, pg_temp). Plain || and coalesce: IMMUTABLE, inlined. NULL reads as ''.
DOC_OF_FOLDS = """
CREATE OR REPLACE FUNCTION spotify_search_doc_of_folds(title text, artist text, album text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT btrim(coalesce(nullif(title, '') || ' ', '') || coalesce(nullif(artist, '') || ' ', '')
               || coalesce(nullif(album, '') || ' ', '') || replace(coalesce(artist, ''), ' ', ''))
$$
"""
DOC = """
CREATE OR REPLACE FUNCTION spotify_search_doc(title text, artist text, album text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT public.spotify_search_doc_of_folds(public.spotify_search_fold(coalesce(title, '')),
                                            public.spotify_search_fold(coalesce(artist, '')),
                                            public.spotify_search_fold(coalesce(album, '')))
$$
"""

_COLUMNS = ("title", "artist", "album", "doc", "words", "popularity")
# 20261201_03's song_search_write with the row made of its folds (see the docstring); the rest as
# it was: a row equal to the stored one is not written, new words go to song_search_words, the
# popularity alone for the songs not in `refold`.
WRITE = f"""
CREATE OR REPLACE FUNCTION song_search_write(ids text[], refold text[]) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
  WITH source AS (SELECT * FROM songs WHERE id = ANY(ids)),
  whole AS (SELECT * FROM source r
            WHERE r.id = ANY(refold) OR NOT EXISTS (SELECT FROM song_search x WHERE x.song_id = r.id)),
  written AS (
    INSERT INTO song_search (song_id, {", ".join(_COLUMNS)})
    SELECT f.id, f.title, f.artist, f.album, d.doc, to_tsvector('simple'::regconfig, d.doc), f.popularity
    FROM (SELECT r.id, r."spotifyPopularity" AS popularity, spotify_search_fold(r.title) AS title,
                 spotify_search_fold(r.artist) AS artist, coalesce(spotify_search_fold(r.album), '') AS album
          FROM whole AS r OFFSET 0) AS f
    CROSS JOIN LATERAL (SELECT spotify_search_doc_of_folds(f.title, f.artist, f.album) AS doc OFFSET 0) AS d
    ON CONFLICT (song_id) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS)}
    WHERE (song_search.title, song_search.artist, song_search.album, song_search.doc, song_search.popularity)
          IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.artist, EXCLUDED.album, EXCLUDED.doc, EXCLUDED.popularity)
    RETURNING words),
  vocabulary AS (
    INSERT INTO song_search_words (word) SELECT DISTINCT w FROM written x, unnest(tsvector_to_array(x.words)) AS w
    WHERE NOT EXISTS (SELECT FROM song_search_words v WHERE v.word = w) RETURNING 1),
  popular AS (
    UPDATE song_search x SET popularity = r."spotifyPopularity" FROM source r
    WHERE x.song_id = r.id AND NOT r.id = ANY(refold) AND x.popularity IS DISTINCT FROM r."spotifyPopularity"
    RETURNING 1)
  SELECT (SELECT count(*) FROM written) + (SELECT count(*) FROM popular) + 0 * (SELECT count(*) FROM vocabulary)
$$
"""


def _searchable(bind: sa.Connection) -> bool:
    """20261201_01 built song_search (it does not on a PostgreSQL without pg_trgm and unaccent)."""
    return bind.execute(sa.text("SELECT to_regclass('song_search') IS NOT NULL")).scalar_one()


def _earlier(filename: str):
    """An earlier migration's module, for the definitions it froze (they only define constants and
    functions at import)."""
    spec = importlib.util.spec_from_file_location(filename, Path(__file__).with_name(filename))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    if not _searchable(op.get_bind()):
        return
    op.execute(DOC_OF_FOLDS)
    op.execute(DOC)
    op.execute(WRITE)


def downgrade() -> None:
    if not _searchable(op.get_bind()):
        return
    op.execute(_earlier("20261201_03_search_maintenance.py").WRITE)
    op.execute(_earlier("20261201_01_search_indexes.py").DOC)
    op.execute("DROP FUNCTION IF EXISTS spotify_search_doc_of_folds(text, text, text)")
