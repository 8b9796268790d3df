"""search: the fold functions (unaccent + lower + punctuation, mirroring pipeline/search/normalize.py)
and three indexes over songs' title, artist and album (btree, tsvector, pg_trgm), built
CONCURRENTLY (no long lock, no table rewrite: expression indexes, no stored generated column)

Revision ID: 20261201_01
Revises: 20261122_04
Create Date: 2026-12-01
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "20261201_01"
down_revision = "20261122_04"
branch_labels = None
depends_on = None

# Frozen copies of pipeline/search/normalize.py's APOSTROPHES and SEPARATORS (a migration must not
# change when the code does); tests/integration/search/test_fold_parity.py keeps them in step.
APOSTROPHES = "'’‘`ʼ"
SEPARATORS = (
    " \t\n\r\f\v\u00a0"
    + "!\"#$%&()*+,-./:;<=>?@[\\]^_{|}~"
    + "‐‑‒–—―…‚‛“”„‟«»‹›¡¿·•"
)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _bracket(chars: str) -> str:
    """A PostgreSQL regex bracket expression matching exactly these characters."""
    body = "".join(ch for ch in chars if ch not in "]\\-^")
    return "[]" + body + "\\\\^-]"  # ']' first, then the rest, an escaped backslash, '^' not first, '-' last


FOLD = f"""
CREATE OR REPLACE FUNCTION spotify_search_fold(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
  SELECT btrim(regexp_replace(
    translate(lower(public.unaccent('public.unaccent'::regdictionary, $1)), {_literal(APOSTROPHES)}, ''),
    {_literal(_bracket(SEPARATORS))} || '+', ' ', 'g'))
$$
"""

# Plain || and coalesce, not concat_ws (STABLE): an IMMUTABLE body the planner inlines, so the
# index expressions and the queries' are the same expression and no per-row function call is made.
# One fold over the joined fields (a space is a separator, so it equals the folds joined) plus the
# artist without spaces ("acdc"): two folds a row, the cost of every recheck.
DOC = """
CREATE OR REPLACE FUNCTION spotify_search_doc(title text, artist text, album text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT btrim(spotify_search_fold(coalesce(title, '') || ' ' || coalesce(artist, '') || ' ' || coalesce(album, ''))
               || ' ' || replace(spotify_search_fold(coalesce(artist, '')), ' ', ''))
$$
"""

TRGM_INDEX = "idx_songs_search_trgm"  # substrings and typos (pg_trgm), lossy: rows are rechecked
WORDS_INDEX = "idx_songs_search_words"  # whole words and word prefixes (tsvector), exact: no recheck
TITLE_INDEX = "idx_songs_search_title"  # the folded title's prefix (someone typing), exact titles
INDEXES = {
    TITLE_INDEX: "USING btree (spotify_search_fold(title) text_pattern_ops)",
    TRGM_INDEX: "USING gin (spotify_search_doc(title, artist, album) gin_trgm_ops)",
    WORDS_INDEX: "USING gin (to_tsvector('simple'::regconfig, spotify_search_doc(title, artist, album)))",
}


def upgrade() -> None:
    available = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM pg_available_extensions WHERE name IN ('pg_trgm', 'unaccent')")).scalar_one()
    if available < 2:
        # The embedded PostgreSQL (pgserver) ships neither: the rest of the system runs without
        # them, and `spotify-sync serve` answers searches 503 saying what is missing. With the
        # extensions installed, `spotify-sync db downgrade 20261122_04 && spotify-sync db upgrade`.
        logging.getLogger("alembic.runtime.migration").warning(
            "search indexes not built: this PostgreSQL has no pg_trgm and unaccent extensions")
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public")
    op.execute(FOLD)
    op.execute(DOC)
    with op.get_context().autocommit_block():
        for name, definition in INDEXES.items():
            # A build interrupted before (CONCURRENTLY leaves an INVALID index behind) is redone.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} ON songs {definition}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute("DROP FUNCTION IF EXISTS spotify_search_doc(text, text, text)")
    op.execute("DROP FUNCTION IF EXISTS spotify_search_fold(text)")
    # The extensions stay: other objects (or other applications) may use them.
