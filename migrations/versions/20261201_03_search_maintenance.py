"""search maintenance off the write path: a write to songs only queues the song's id
(song_search_queue); the folding, the GIN inserts and the new words are done in batches by
song_search_drain (called every second by a worker process or the API), or at once for given
songs by song_search_index (the API's enrichment, so the next search finds what Spotify just
returned).

Why (measured on a 50-row upsert, backend CPU): the row trigger of 20261201_01 made the upsert
about 8x dearer (about 28 ms against 3.5 ms a statement). Most of it is the five folds and the
tsvector a row (about 6 ms for 50 rows at rest, regexp_replace over a multibyte bracket being
the larger part), then the vocabulary insert, the GIN (pg_trgm) insert, the foreign key check and
the per-row plpgsql call; dropping any one of them left the write several times dearer than
without search, so no synchronous form could come near. Queueing the ids costs a few per cent.

- Inserts queue their ids once per statement (a transition table, one INSERT ... SELECT).
- Updates queue a row only when title, artist, album or popularity really changed: the WHEN
  clause is evaluated without calling any function, so a re-sync or a popularity refresh with
  equal values does no search work at all. A popularity-only change is queued with refold false:
  the drain then updates the popularity alone, without folding.
- song_search_drain takes a batch of queued entries (SKIP LOCKED) and locks their songs rows
  (FOR NO KEY UPDATE SKIP LOCKED): it reads the newest committed version, no writer can change
  it until the drain commits, and a row a writer holds is left queued for the next drain; so a
  drain can never write an older version over a newer one, whatever runs concurrently. One
  drain at a time (a transaction advisory lock: the others return at once; they would only
  compete for the same CPU). A rewritten row equal to what song_search holds is not written.
- A song deleted is removed from song_search by the foreign key's cascade, as before; its
  queued entries are dropped by the next drain.

No table is rewritten: one new table, functions, and the triggers swapped in one transaction
(DROP TRIGGER takes songs' ACCESS EXCLUSIVE lock for an instant; lock_timeout keeps the
migration from queueing every writer behind a long reader: it fails instead, run it again).

Revision ID: 20261201_03
Revises: 20261201_02
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "20261201_03"
down_revision = "20261201_02"
branch_labels = None
depends_on = None

# No index and no key: an insert into it costs a heap tuple, nothing else; a song written twice
# is queued twice and indexed once. refold: title, artist or album may have changed.
QUEUE = """
CREATE TABLE IF NOT EXISTS song_search_queue (
    song_id text NOT NULL,
    refold boolean NOT NULL
)
"""
ENQUEUE_INSERTED = """
CREATE OR REPLACE FUNCTION song_search_enqueue_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO song_search_queue (song_id, refold) SELECT id, true FROM inserted;
  RETURN NULL;
END $$
"""
ENQUEUE_UPDATED = """
CREATE OR REPLACE FUNCTION song_search_enqueue_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO song_search_queue (song_id, refold)
  VALUES (NEW.id, (NEW.title, NEW.artist, NEW.album) IS DISTINCT FROM (OLD.title, OLD.artist, OLD.album));
  RETURN NULL;
END $$
"""
INSERTED_TRIGGER = """
CREATE TRIGGER song_search_enqueue_inserted AFTER INSERT ON songs REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION song_search_enqueue_inserted()
"""
UPDATED_TRIGGER = """
CREATE TRIGGER song_search_enqueue_updated AFTER UPDATE OF title, artist, album, "spotifyPopularity" ON songs
FOR EACH ROW WHEN ((NEW.title, NEW.artist, NEW.album, NEW."spotifyPopularity")
                   IS DISTINCT FROM (OLD.title, OLD.artist, OLD.album, OLD."spotifyPopularity"))
EXECUTE FUNCTION song_search_enqueue_updated()
"""

_COLUMNS = ("title", "artist", "album", "doc", "words", "popularity")
# song_search's rows for these songs (the caller holds their rows locked): the whole row for
# those in `refold` (or not in song_search yet), the popularity alone for the others. The row's
# definition is 20261201_01's (_ROWS), with the same functions. A row equal to the stored one
# is not written (no new tuple, no GIN entries); new words go to song_search_words.
WRITE = f"""
CREATE OR REPLACE FUNCTION song_search_write(ids text[], refold text[]) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
  WITH source AS (SELECT * FROM songs WHERE id = ANY(ids)),
  whole AS (SELECT * FROM source r
            WHERE r.id = ANY(refold) OR NOT EXISTS (SELECT FROM song_search x WHERE x.song_id = r.id)),
  written AS (
    INSERT INTO song_search (song_id, {", ".join(_COLUMNS)})
    SELECT r.id, spotify_search_fold(r.title), spotify_search_fold(r.artist), coalesce(spotify_search_fold(r.album), ''),
           d.doc, to_tsvector('simple'::regconfig, d.doc), r."spotifyPopularity"
    FROM whole AS r CROSS JOIN LATERAL (SELECT spotify_search_doc(r.title, r.artist, r.album) AS doc) AS d
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
# The drains' turn: one at a time (pg_try_advisory_xact_lock's key, any constant of our own).
DRAIN_LOCK = 0x5EA2C4  # "search"
# Up to `batch` queued entries: their songs indexed, the entries removed (those of songs gone
# too); returns how many entries it removed (0 also when another drain holds the turn). Entries
# whose song a writer holds locked stay queued for the next drain.
DRAIN = f"""
CREATE OR REPLACE FUNCTION song_search_drain(batch integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  entries tid[]; queued_ids text[]; refold_ids text[]; locked_ids text[]; removed integer;
BEGIN
  IF NOT pg_try_advisory_xact_lock({DRAIN_LOCK}) THEN RETURN 0; END IF;
  SELECT array_agg(q.ctid), array_agg(DISTINCT q.song_id), coalesce(array_agg(DISTINCT q.song_id) FILTER (WHERE q.refold), '{{}}')
    INTO entries, queued_ids, refold_ids
    FROM (SELECT e.ctid, e.song_id, e.refold FROM song_search_queue e LIMIT batch FOR UPDATE SKIP LOCKED) AS q;
  IF entries IS NULL THEN RETURN 0; END IF;
  SELECT coalesce(array_agg(s.id), '{{}}') INTO locked_ids
    FROM (SELECT id FROM songs WHERE id = ANY(queued_ids) FOR NO KEY UPDATE SKIP LOCKED) AS s;
  PERFORM song_search_write(locked_ids, refold_ids);
  DELETE FROM song_search_queue q WHERE q.ctid = ANY(entries)
    AND (q.song_id = ANY(locked_ids) OR NOT EXISTS (SELECT FROM songs s WHERE s.id = q.song_id));
  GET DIAGNOSTICS removed = ROW_COUNT;
  RETURN removed;
END $$
"""
# These songs indexed now, in the caller's transaction (their queued entries stay: the next drain
# finds the rows equal and writes nothing). Waits for a writer holding one of them.
INDEX = """
CREATE OR REPLACE FUNCTION song_search_index(ids text[]) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE locked_ids text[];
BEGIN
  SELECT coalesce(array_agg(s.id), '{}') INTO locked_ids FROM (SELECT id FROM songs WHERE id = ANY(ids) FOR NO KEY UPDATE) AS s;
  RETURN song_search_write(locked_ids, locked_ids);
END $$
"""
# 20261201_01's trigger, put back by the downgrade (its function song_search_sync stays defined).
OLD_TRIGGER = """
CREATE OR REPLACE TRIGGER song_search_sync AFTER INSERT OR UPDATE OF title, artist, album, "spotifyPopularity"
ON songs FOR EACH ROW EXECUTE FUNCTION song_search_sync()
"""
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '10s'"


def _searchable(bind: sa.Connection) -> bool:
    """20261201_01 built song_search (it does not on a PostgreSQL without pg_trgm and unaccent)."""
    return bind.execute(sa.text("SELECT to_regclass('song_search') IS NOT NULL")).scalar_one()


def upgrade() -> None:
    if not _searchable(op.get_bind()):
        return
    op.execute(QUEUE)
    op.execute(ENQUEUE_INSERTED)
    op.execute(ENQUEUE_UPDATED)
    op.execute(WRITE)
    op.execute(DRAIN)
    op.execute(INDEX)
    op.execute(LOCK_TIMEOUT)
    # Swapped in one transaction: every write commits under exactly one of the two.
    op.execute("DROP TRIGGER IF EXISTS song_search_sync ON songs")
    op.execute("DROP TRIGGER IF EXISTS song_search_enqueue_inserted ON songs")
    op.execute("DROP TRIGGER IF EXISTS song_search_enqueue_updated ON songs")
    op.execute(INSERTED_TRIGGER)
    op.execute(UPDATED_TRIGGER)


def downgrade() -> None:
    bind = op.get_bind()
    if not _searchable(bind):
        return
    op.execute(LOCK_TIMEOUT)
    op.execute("DROP TRIGGER IF EXISTS song_search_enqueue_inserted ON songs")
    op.execute("DROP TRIGGER IF EXISTS song_search_enqueue_updated ON songs")
    op.execute(OLD_TRIGGER)
    # What is still queued is indexed before the queue goes (the old trigger covers what follows).
    while bind.execute(sa.text("SELECT count(*) FROM song_search_queue")).scalar_one():
        bind.execute(sa.text("SELECT song_search_drain(5000)"))
    op.execute("DROP TABLE song_search_queue")
    for function in ("song_search_index(text[])", "song_search_drain(integer)", "song_search_write(text[], text[])",
                     "song_search_enqueue_inserted()", "song_search_enqueue_updated()"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
