"""Songs, saved-track links, popularity history and unknown ids: every statement on them, each
write one statement per batch keyed on natural keys ("spotifyId"; ("userId", "songId")), so a job
run twice leaves the same rows (docs/architecture.md, decisions 2 and 6).

What is fresh is decided in pipeline/store/freshness.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection, Engine, text

from pipeline.mapping import FEATURE_COLUMNS, SONG_COLUMNS, features_row
from pipeline.metrics import ROWS_WRITTEN
from pipeline.store import ledger, search_index
from pipeline.store.db import NOW, autocommit, driver_autocommit, transaction

# --- songs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpsertedSong:
    song_id: str
    spotify_id: str
    inserted: bool


def _song_upsert(batch: str) -> str:
    """INSERT ... SELECT FROM json_to_recordset(batch) ON CONFLICT ("spotifyId") DO UPDATE, `batch` its placeholder.

    The batch goes to PostgreSQL as one JSON text parameter: binding twenty arrays (or a VALUES
    list of 1,000 parameters) made psycopg's parameter conversion the larger part of the cost,
    and json parses faster than jsonb (bench/db_stage.py). Keys a row lacks read as NULL.
    A value the new row lacks (NULL) never overwrites a stored one: a tier that hides
    popularity, a track without an album, keep what the row had. Only the sync time always moves."""
    columns = list(SONG_COLUMNS)
    quoted = ", ".join(f'"{c}"' for c in columns)
    record = ", ".join(f'"{c}" {SONG_COLUMNS[c]}' for c in columns)
    selected = (quoted.replace('"audioFeaturesSynced"', 'coalesce("audioFeaturesSynced", false)')
                .replace('"title"', "coalesce(\"title\", '')").replace('"artist"', "coalesce(\"artist\", '')"))
    updates = ['"spotifyLastSync" = EXCLUDED."spotifyLastSync"']
    updates += [
        f'"{c}" = coalesce(EXCLUDED."{c}", songs."{c}")'
        for c in columns
        if c not in ("spotifyId", "spotifyLastSync", "audioFeaturesSynced", "title", "artist")
    ]
    # New rows get '' for a missing title or artist (NOT NULL); an update keeps the stored one.
    updates += [f'"{c}" = coalesce(nullif(EXCLUDED."{c}", \'\'), songs."{c}")' for c in ("title", "artist")]
    updates.append('"audioFeaturesSynced" = EXCLUDED."audioFeaturesSynced" OR coalesce(songs."audioFeaturesSynced", false)')
    updates.append(f'"updatedAt" = {NOW}')
    return (
        f"INSERT INTO songs ({quoted}) SELECT {selected} FROM json_to_recordset(CAST({batch} AS json)) AS r({record}) "
        f'ON CONFLICT ("spotifyId") DO UPDATE SET {", ".join(updates)} '
        f'RETURNING id, "spotifyId", (xmax = 0) AS inserted'
    )


# psycopg's own placeholder: the upsert runs on the driver's connection, SQLAlchemy's execution
# around it cost nearly the statement's own CPU again. Alone (a track_sync's whole unit of work)
# on db.driver_autocommit's; in a transaction, on the driver connection under SQLAlchemy's.
_SONG_UPSERT = _song_upsert("%(batch)s")


def _upsert_songs(driver: psycopg.Connection, rows: Sequence[Mapping[str, Any]]) -> list[UpsertedSong]:
    if not rows:
        return []
    with driver.cursor() as cursor:
        cursor.execute(_SONG_UPSERT, {"batch": _batch(rows)})
        upserted = [UpsertedSong(*r) for r in cursor.fetchall()]
    ROWS_WRITTEN.labels("songs").inc(len(upserted))
    return upserted


def _upsert_songs_alone(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> list[UpsertedSong]:
    """_upsert_songs as its own transaction: one statement, one round trip."""
    with driver_autocommit(engine) as driver:
        return _upsert_songs(driver, rows)


def _in(conn: Connection) -> psycopg.Connection:
    """The psycopg connection under `conn`, inside its transaction."""
    return conn.connection.driver_connection  # type: ignore[return-value]


def _batch(rows: Sequence[Mapping[str, Any]]) -> str:
    by_id = {r["spotifyId"]: r for r in rows}  # ON CONFLICT may not touch a row twice
    return _json(list(by_id.values()))


def _json(value: Any) -> str:
    # Floats go as their shortest decimal form (as repr writes them), which the numeric columns
    # round (pipeline/mapping.py); Decimals, should a caller pass any, as strings, digits exact.
    return orjson.dumps(value, default=str).decode()


def write_songs(engine: Engine, rows: Sequence[Mapping[str, Any]], *, searchable_now: bool = False
                ) -> list[UpsertedSong]:
    """Upsert these song rows (pipeline.mapping's dicts) in one statement, its own transaction
    (autocommit: one round trip); what each became. Search finds them once the search indexer
    drains the queue (about a second); with `searchable_now` their search rows are written in the
    same transaction instead (a search that just asked Spotify finds them at its next call)."""
    if not rows:
        return []
    if searchable_now:
        with transaction(engine) as conn:
            upserted = _upsert_songs(_in(conn), rows)
            search_index.index_now(conn, [u.song_id for u in upserted])
            return upserted
    return _upsert_songs_alone(engine, rows)


def write_tracks(engine: Engine, rows: Sequence[Mapping[str, Any]], not_found: Sequence[str],
                 checked_at: datetime) -> list[UpsertedSong]:
    """A fetch's answer, in one transaction: the songs it found, and the ids Spotify answered
    null for remembered (within TRACK_TTL they are not asked for again). With none of the
    latter, the upsert is the whole unit of work: one statement, one round trip (autocommit)."""
    if not not_found:
        return _upsert_songs_alone(engine, rows)
    with transaction(engine) as conn:
        upserted = _upsert_songs(_in(conn), rows)
        _remember_unknown(conn, not_found, checked_at)
    return upserted


def write_features(engine: Engine, features: Mapping[str, Any], checked_ids: Sequence[str]) -> int:
    """Audio features onto existing songs, one statement; ids Spotify has no analysis for (None)
    are marked synced too, so they are not asked for again."""
    rows = {i: (features_row(features[i]) if features.get(i) is not None else {}) for i in checked_ids}
    if not rows:
        return 0
    arrays = ", ".join(f"CAST(CAST(:{n} AS text[]) AS numeric[])" for n in FEATURE_COLUMNS)
    sets = ", ".join(f'"{n}" = coalesce(f.{n}, songs."{n}")' for n in FEATURE_COLUMNS)
    # As text: the columns round a value's shortest decimal form, as the upsert's JSON gives it;
    # bound as floats they would reach numeric through float8's 15 digits.
    params: dict[str, Any] = {n: [_numeric_text(r.get(n)) for r in rows.values()] for n in FEATURE_COLUMNS}
    params["ids"] = list(rows)
    with autocommit(engine) as conn:
        result = conn.execute(
            text(
                f'UPDATE songs SET {sets}, "audioFeaturesSynced" = true, "updatedAt" = {NOW} '
                f"FROM unnest(CAST(:ids AS text[]), {arrays}) AS f(sid, {', '.join(FEATURE_COLUMNS)}) "
                'WHERE songs."spotifyId" = f.sid'
            ),
            params,
        )
    ROWS_WRITTEN.labels("songs").inc(result.rowcount or 0)
    return result.rowcount or 0


def _numeric_text(value: float | None) -> str | None:
    return None if value is None else repr(value)


def features_pending(engine: Engine, spotify_ids: Sequence[str]) -> list[str]:
    """Those of these ids whose song exists and lacks audio features, in the order given."""
    if not spotify_ids:
        return []
    with transaction(engine) as conn:
        due = set(conn.execute(
            text('SELECT "spotifyId" FROM songs WHERE "spotifyId" = ANY(:ids) '
                 'AND NOT coalesce("audioFeaturesSynced", false)'),
            {"ids": list(spotify_ids)},
        ).scalars())
    return [i for i in dict.fromkeys(spotify_ids) if i in due]


def get_song(engine: Engine, spotify_id: str) -> dict[str, Any] | None:
    """Every column of the song with this Spotify id, by column name; None when unknown."""
    with transaction(engine) as conn:
        row = conn.execute(text('SELECT * FROM songs WHERE "spotifyId" = :id'), {"id": spotify_id}).first()
    return dict(row._mapping) if row is not None else None


# --- unknown ids --------------------------------------------------------------------------------


def _remember_unknown(conn: Connection, spotify_ids: Sequence[str], at: datetime) -> None:
    if spotify_ids:
        conn.execute(
            text('INSERT INTO spotify_unknown_tracks ("spotifyId", "checkedAt") SELECT unnest(CAST(:ids AS text[])), :at '
                 'ON CONFLICT ("spotifyId") DO UPDATE SET "checkedAt" = EXCLUDED."checkedAt"'),
            {"ids": list(dict.fromkeys(spotify_ids)), "at": at},
        )


# --- users' libraries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LibraryPage:
    """One page of a user's saved tracks, as rows: songs, and (spotify id, added at) links."""

    rows: Sequence[Mapping[str, Any]]
    links: Sequence[tuple[str, datetime | None]]


def save_library_page(engine: Engine, job: ledger.Job, lease_s: int, user_id: str, page: LibraryPage,
                      checkpoint: Callable[[int], dict]) -> tuple[int, bool]:
    """A page of a library sync in one transaction: the songs, the user's links to them, and the
    job's checkpoint saying the page was done (so a run cut short resumes after it and fetches
    no page twice). `checkpoint(known)` builds the checkpoint from how many of the page's tracks
    the user's links already held. Returns (known, lease held); with the lease lost nothing is
    written."""
    with transaction(engine) as conn:
        spotify_ids = [spotify_id for spotify_id, _ in page.links]
        known = _known_saved(conn, user_id, spotify_ids)
        upserted = _upsert_songs(_in(conn), page.rows)
        song_ids = {u.spotify_id: u.song_id for u in upserted}
        _link_saved_tracks(conn, user_id, [(song_ids[s], s, at) for s, at in page.links if s in song_ids])
        if not ledger.save_checkpoint(conn, job, lease_s, checkpoint(len(known))):
            conn.rollback()
            return len(known), False
    return len(known), True


def _link_saved_tracks(conn: Connection, user_id: str, links: Sequence[tuple[str, str, datetime | None]]) -> int:
    """(song id, spotify id, added at) links of a user, one statement; returns how many."""
    if not links:
        return 0
    unique = {song_id: (song_id, spotify_id, added_at) for song_id, spotify_id, added_at in links}
    conn.execute(
        text(
            'INSERT INTO spotify_saved_tracks ("userId", "songId", "spotifyId", "addedAt", "lastSeenAt") '
            f"SELECT :user_id, s, sp, a, {NOW} "
            "FROM unnest(CAST(:song_ids AS text[]), CAST(:spotify_ids AS text[]), CAST(:added AS timestamp[])) "
            "AS t(s, sp, a) "
            'ON CONFLICT ("userId", "songId") DO UPDATE SET "addedAt" = EXCLUDED."addedAt", '
            '"lastSeenAt" = EXCLUDED."lastSeenAt", "spotifyId" = EXCLUDED."spotifyId"'
        ),
        {
            "user_id": user_id,
            "song_ids": [u[0] for u in unique.values()],
            "spotify_ids": [u[1] for u in unique.values()],
            "added": [u[2] for u in unique.values()],
        },
    )
    ROWS_WRITTEN.labels("spotify_saved_tracks").inc(len(unique))
    return len(unique)


def _known_saved(conn: Connection, user_id: str, spotify_ids: Sequence[str]) -> set[str]:
    if not spotify_ids:
        return set()
    found = conn.execute(
        text('SELECT "spotifyId" FROM spotify_saved_tracks WHERE "userId" = :u AND "spotifyId" = ANY(:ids)'),
        {"u": user_id, "ids": list(spotify_ids)},
    )
    return set(found.scalars())


def remove_unseen_links(engine: Engine, user_id: str, seen_since: datetime) -> int:
    """After a full library sync: drop links to tracks the user no longer has saved."""
    with transaction(engine) as conn:
        removed = conn.execute(
            text('DELETE FROM spotify_saved_tracks WHERE "userId" = :u AND "lastSeenAt" < :since'),
            {"u": user_id, "since": seen_since},
        )
    return removed.rowcount or 0


def saved_track_ids(engine: Engine, user_id: str) -> list[str]:
    """The Spotify ids of the user's saved tracks, newest saved first."""
    with transaction(engine) as conn:
        return list(conn.execute(
            text('SELECT "spotifyId" FROM spotify_saved_tracks WHERE "userId" = :u '
                 'ORDER BY "addedAt" DESC NULLS LAST, "spotifyId"'), {"u": user_id}).scalars())


# --- popularity ---------------------------------------------------------------------------------


def record_popularity(engine: Engine, observations: Sequence[tuple[str, int]], job_id: str | None = None) -> int:
    """Set spotifyPopularity/lastPopularityUpdate and add a history row per song: one statement.
    A job run twice records a song's observation once."""
    if not observations:
        return 0
    unique = dict(observations)
    with transaction(engine) as conn:
        result = conn.execute(
            text(
                "WITH v(sid, pop) AS (SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:pops AS int[]))), "
                f'u AS (UPDATE songs SET "spotifyPopularity" = v.pop, "lastPopularityUpdate" = {NOW}, '
                f'"updatedAt" = {NOW} FROM v WHERE songs."spotifyId" = v.sid RETURNING songs.id, v.pop) '
                'INSERT INTO song_popularity_history ("songId", popularity, "recordedAt", "jobId") '
                f"SELECT id, pop, {NOW}, :job_id FROM u "
                'ON CONFLICT ("songId", "jobId") DO NOTHING'
            ),
            {"ids": list(unique), "pops": [min(max(int(p), 0), 100) for p in unique.values()], "job_id": job_id},
        )
    ROWS_WRITTEN.labels("song_popularity_history").inc(result.rowcount or 0)
    return result.rowcount or 0


def touch_popularity_checked(engine: Engine, spotify_ids: Sequence[str]) -> None:
    """Popularity could not be had: stamp lastPopularityUpdate so the hourly refresh does not pick
    these songs again and again (the job's result says why the column is empty)."""
    if spotify_ids:
        with transaction(engine) as conn:
            conn.execute(
                text(f'UPDATE songs SET "lastPopularityUpdate" = {NOW} WHERE "spotifyId" = ANY(:ids)'),
                {"ids": list(spotify_ids)},
            )


# --- the demo's view ----------------------------------------------------------------------------


def add_placeholder_songs(engine: Engine, spotify_ids: Sequence[str], artist: str) -> int:
    """Songs the existing application already has: a title, an artist and a Spotify id, nothing
    from Spotify yet (the demo's stand-in for an application's table). Returns how many were new."""
    with transaction(engine) as conn:
        return conn.execute(text("""
            INSERT INTO songs (title, artist, "spotifyId")
            SELECT 'Existing song ' || n, :artist, sid FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS t(sid, n)
            ON CONFLICT ("spotifyId") DO NOTHING"""), {"ids": list(spotify_ids), "artist": artist}).rowcount or 0


def known_spotify_ids(engine: Engine, limit: int) -> list[str]:
    with transaction(engine) as conn:
        return list(conn.execute(text('SELECT "spotifyId" FROM songs WHERE "spotifyId" IS NOT NULL LIMIT :n'),
                                 {"n": limit}).scalars())


@dataclass(frozen=True)
class SongsWritten:
    synced_since: int  # songs whose Spotify data was fetched since the moment
    written_since: int  # songs written (any column) since the moment
    total: int


def songs_written(engine: Engine, since: datetime) -> SongsWritten:
    with transaction(engine) as conn:
        row = conn.execute(text("""
            SELECT count(*) FILTER (WHERE "spotifyLastSync" >= :since), count(*) FILTER (WHERE "updatedAt" >= :since),
                   count(*) FROM songs"""), {"since": since}).one()
    return SongsWritten(*row)


def sample_enriched(engine: Engine, n: int) -> list[tuple]:
    """A stable sample of synced songs: title, artist, popularity, danceability, energy, tempo, id."""
    with transaction(engine) as conn:
        return [tuple(r) for r in conn.execute(text("""
            SELECT title, artist, "spotifyPopularity", danceability, energy, tempo, "spotifyId"
            FROM songs WHERE "spotifyLastSync" IS NOT NULL ORDER BY md5("spotifyId") LIMIT :n"""), {"n": n})]
