"""search: the fold functions (unaccent + lower + punctuation, mirroring pipeline/search/normalize.py)
and the search's own table song_search (each song's folded title, artist, album, document and
tsvector, and its popularity), kept in step by a trigger on songs, filled in short batches, and
indexed CONCURRENTLY (tsvector GIN, pg_trgm GIN, title btree, popularity btree). songs gets no
column, no rewrite and no long lock.

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
# Every function of ours is called schema-qualified: PostgreSQL 17 and later build (and check)
# index expressions with search_path = pg_catalog, pg_temp, where an unqualified
# spotify_search_fold does not exist (the embedded PostgreSQL is 18).
DOC = """
CREATE OR REPLACE FUNCTION spotify_search_doc(title text, artist text, album text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT btrim(public.spotify_search_fold(coalesce(title, '') || ' ' || coalesce(artist, '') || ' '
                                          || coalesce(album, ''))
               || ' ' || replace(public.spotify_search_fold(coalesce(artist, '')), ' ', ''))
$$
"""

# The search's own table: one row per song, its folded text and tsvector stored once (computing
# the document means two unaccent calls, per row and per recheck, the cost that made a broad
# search take seconds), beside the popularity the results are ordered by. A trigger on songs keeps
# it in step; songs itself gets no column and no rewrite. pipeline/store/search.py queries it.
TABLE = """
CREATE TABLE IF NOT EXISTS song_search (
    song_id text PRIMARY KEY REFERENCES songs (id) ON DELETE CASCADE ON UPDATE CASCADE,
    title text NOT NULL,
    artist text NOT NULL,
    album text NOT NULL,
    doc text NOT NULL,
    words tsvector NOT NULL,
    popularity integer
)
"""
# Every word of the documents, once (mostly: two writers bringing the same new word at the same
# moment may both add it; no unique key, so no writer ever waits on another for a word). A typo
# is looked up here, among a few hundred thousand words, not in a trigram index of every song,
# where a common trigram ("the") lists a large share of the table.
VOCABULARY = """
CREATE TABLE IF NOT EXISTS song_search_words (word text NOT NULL)
"""
_NEW_WORDS = ("INSERT INTO song_search_words (word) SELECT DISTINCT w FROM {rows}, unnest(tsvector_to_array(x.words)) AS w "
              "WHERE {which} AND NOT EXISTS (SELECT FROM song_search_words v WHERE v.word = w)")

# One definition of a song_search row, from songs rows `r` of a {source} (NEW in the trigger, a
# batch of songs in the backfill).
_COLUMNS = ("song_id", "title", "artist", "album", "doc", "words", "popularity")
_ROWS = (
    f"INSERT INTO song_search ({', '.join(_COLUMNS)}) "
    "SELECT r.id, spotify_search_fold(r.title), spotify_search_fold(r.artist), "
    "coalesce(spotify_search_fold(r.album), ''), "
    "d.doc, to_tsvector('simple'::regconfig, d.doc), r.\"spotifyPopularity\" "
    "FROM {source} CROSS JOIN LATERAL (SELECT spotify_search_doc(r.title, r.artist, r.album) AS doc) AS d "
)
# A popularity refresh (the most frequent write) updates only the popularity. While the backfill
# runs the row may not be there yet: then the whole row is written; the backfill's ON CONFLICT DO
# NOTHING keeps whatever a concurrent writer wrote, which is newer than the backfill's snapshot.
SYNC = f"""
CREATE OR REPLACE FUNCTION song_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND (NEW.title, NEW.artist, NEW.album) IS NOT DISTINCT FROM (OLD.title, OLD.artist, OLD.album)
  THEN
    UPDATE song_search SET popularity = NEW."spotifyPopularity" WHERE song_id = NEW.id;
    IF FOUND THEN RETURN NULL; END IF;
  END IF;
  {_ROWS.format(source="(SELECT NEW.*) AS r")}
  ON CONFLICT (song_id) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[1:])};
  {_NEW_WORDS.format(rows="song_search x", which="x.song_id = NEW.id")};
  RETURN NULL;
END $$
"""
# How many songs the planner expects to hold these words (from the tsvector's statistics; the
# search counts a broad query's matches only when this says the count may be under its cap).
ESTIMATE = """
CREATE OR REPLACE FUNCTION song_search_estimate(query tsquery) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$  -- VOLATILE: PostgreSQL allows EXPLAIN in no other
DECLARE plan json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) SELECT FROM song_search WHERE words @@ $1' INTO plan USING query;
  RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::bigint;
END $$
"""
TRIGGER = """
CREATE OR REPLACE TRIGGER song_search_sync AFTER INSERT OR UPDATE OF title, artist, album, "spotifyPopularity"
ON songs FOR EACH ROW EXECUTE FUNCTION song_search_sync()
"""
BACKFILL_BATCH = 2_000  # songs a transaction: a write to one of them (its trigger) waits for it at most
# One batch after the id :after; answers the batch's last id (NULL: no songs left).
BACKFILL = f"""
WITH batch AS (SELECT * FROM songs WHERE id > :after ORDER BY id LIMIT {BACKFILL_BATCH}),
     written AS ({_ROWS.format(source="batch AS r")} ON CONFLICT (song_id) DO NOTHING RETURNING words),
     vocabulary AS ({_NEW_WORDS.format(rows="written AS x", which="true")} RETURNING 1)
SELECT (SELECT max(id) FROM batch) FROM (SELECT count(*) FROM vocabulary) AS w
"""

WORDS_INDEX = "idx_song_search_words"  # whole words and word prefixes (tsvector): exact, no recheck
TRGM_INDEX = "idx_song_search_trgm"  # substrings and typos (pg_trgm), lossy: rechecked (cheaply: doc is stored)
TITLE_INDEX = "idx_song_search_title"  # the folded title's prefix (someone typing), exact titles
POPULARITY_INDEX = "idx_song_search_popularity"  # a broad word's most popular matches, without sorting them all
VOCABULARY_INDEX = "idx_song_search_words_word"  # is this word known yet (the trigger's question)
LOOKALIKE_INDEX = "idx_song_search_words_trgm"  # the known words a mistyped one looks like
INDEXES = {
    WORDS_INDEX: "ON song_search USING gin (words)",
    TRGM_INDEX: "ON song_search USING gin (doc gin_trgm_ops)",
    TITLE_INDEX: "ON song_search USING btree (title text_pattern_ops)",
    POPULARITY_INDEX: "ON song_search USING btree (popularity DESC NULLS LAST)",
    VOCABULARY_INDEX: "ON song_search_words USING btree (word)",
    LOOKALIKE_INDEX: "ON song_search_words USING gin (word gin_trgm_ops)",
}
# The expression indexes on songs of this revision's first version (recomputing the document on
# every recheck): dropped where a database still has them.
OLD_INDEXES = ("idx_songs_search_trgm", "idx_songs_search_words", "idx_songs_search_title")


def upgrade() -> None:
    available = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM pg_available_extensions WHERE name IN ('pg_trgm', 'unaccent')")).scalar_one()
    if available < 2:
        # A PostgreSQL without contrib has neither: the rest of the system runs without them, and
        # `spotify-sync serve` answers searches 503 saying what is missing. With the extensions
        # installed, `spotify-sync db downgrade 20261122_04 && spotify-sync db upgrade`.
        logging.getLogger("alembic.runtime.migration").warning(
            "search indexes not built: this PostgreSQL has no pg_trgm and unaccent extensions")
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public")
    op.execute(FOLD)
    op.execute(DOC)
    op.execute(TABLE)
    op.execute(VOCABULARY)
    # Before the backfill: the trigger asks it whether a word is known, once a row.
    op.execute(f"CREATE INDEX IF NOT EXISTS {VOCABULARY_INDEX} {INDEXES[VOCABULARY_INDEX]}")
    op.execute(SYNC)
    op.execute(ESTIMATE)
    op.execute(TRIGGER)  # from its commit on, every write to songs reaches song_search
    with op.get_context().autocommit_block():
        _backfill()
        for name, definition in INDEXES.items():
            if name == VOCABULARY_INDEX:
                continue
            # A build interrupted before (CONCURRENTLY leaves an INVALID index behind) is redone.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} {definition}")
        for name in OLD_INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        op.execute("ANALYZE song_search")  # the planner needs the words' frequencies at once
        op.execute("ANALYZE song_search_words")


def _backfill() -> None:
    """Every song already there, BACKFILL_BATCH at a time in id order, a transaction each."""
    after: str | None = ""
    while after is not None:
        after = op.get_bind().execute(sa.text(BACKFILL), {"after": after}).scalar()


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in OLD_INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute("DROP TRIGGER IF EXISTS song_search_sync ON songs")
    op.execute("DROP TABLE IF EXISTS song_search")
    op.execute("DROP TABLE IF EXISTS song_search_words")
    op.execute("DROP FUNCTION IF EXISTS song_search_sync()")
    op.execute("DROP FUNCTION IF EXISTS song_search_estimate(tsquery)")
    op.execute("DROP FUNCTION IF EXISTS spotify_search_doc(text, text, text)")
    op.execute("DROP FUNCTION IF EXISTS spotify_search_fold(text)")
    # The extensions stay: other objects (or other applications) may use them.
