"""Songs, saved-track links and popularity history: mapping Spotify objects to rows, and writing
them a batch per statement (design.md, decisions 2 and 6).

Mapping is pure (`track_row`, `features_row`, `merge_rows`); it takes Spotify's JSON objects or
the client's dataclasses alike. Every write is one statement per batch, keyed on natural keys
("spotifyId"; ("userId", "songId")), so running a job twice leaves the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, TextClause, text
from sqlalchemy.orm import Session

from pipeline.metrics import ROWS_WRITTEN

# Song columns a track_sync writes, with their PostgreSQL types.
SONG_COLUMNS: dict[str, str] = {
    "spotifyId": "text",
    "title": "text",
    "artist": "text",
    "album": "text",
    "duration": "int",
    "spotifyPopularity": "int",
    "spotifyPreviewUrl": "text",
    "spotifyExternalUrl": "text",
    "spotifyLastSync": "timestamp",
    "lastPopularityUpdate": "timestamp",
    "danceability": "numeric",
    "energy": "numeric",
    "valence": "numeric",
    "acousticness": "numeric",
    "instrumentalness": "numeric",
    "speechiness": "numeric",
    "liveness": "numeric",
    "tempo": "numeric",
    "loudness": "numeric",
    "audioFeaturesSynced": "boolean",
}
# Always overwritten by a fresh fetch (the track's identity and where it lives).
_OVERWRITE = ("title", "artist", "album", "duration", "spotifyExternalUrl", "spotifyLastSync")
_UNIT_FEATURES = ("danceability", "energy", "valence", "acousticness", "instrumentalness", "speechiness", "liveness")


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a JSON object or of a dataclass."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _decimal(value: Any, places: str, low: float, high: float) -> Decimal | None:
    if value is None:
        return None
    try:
        number = min(max(float(value), low), high)
    except (TypeError, ValueError):
        return None
    return Decimal(str(number)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def utc_naive(moment: datetime | str | None) -> datetime | None:
    """An aware datetime or an ISO-8601 string ('2026-01-02T03:04:05Z') -> naive UTC."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def track_row(track: Any, synced_at: datetime) -> dict[str, Any]:
    """A Spotify Track -> the songs columns it fills. Popularity is None when the app's tier
    leaves it out; the upsert then keeps what the row had."""
    artists = [_get(a, "name") for a in (_get(track, "artists") or [])]
    duration_ms = _get(track, "duration_ms")
    popularity = _get(track, "popularity")
    if popularity is not None:
        popularity = min(max(int(popularity), 0), 100)
    external_url = _get(track, "external_url") or _get(_get(track, "external_urls"), "spotify")
    return {
        "spotifyId": _get(track, "id"),
        "title": _get(track, "name") or "",
        "artist": ", ".join(a for a in artists if a) or "",
        "album": _get(_get(track, "album"), "name"),
        "duration": round(duration_ms / 1000) if duration_ms is not None else None,
        "spotifyPopularity": popularity,
        "spotifyPreviewUrl": _get(track, "preview_url"),
        "spotifyExternalUrl": external_url,
        "spotifyLastSync": synced_at,
        "lastPopularityUpdate": synced_at if popularity is not None else None,
    }


def features_row(features: Any) -> dict[str, Any]:
    """Spotify AudioFeatures -> the songs columns. Values are clamped to what the columns'
    check constraints and precision allow (0..1 for the unit features)."""
    row = {name: _decimal(_get(features, name), "0.01", 0.0, 1.0) for name in _UNIT_FEATURES}
    row["tempo"] = _decimal(_get(features, "tempo"), "0.01", 0.0, 9999.99)
    row["loudness"] = _decimal(_get(features, "loudness"), "0.01", -999.99, 999.99)
    row["audioFeaturesSynced"] = True
    return row


def merge_rows(tracks: Iterable[Any], features: Mapping[str, Any] | None, synced_at: datetime,
               *, features_checked: bool = False) -> list[dict[str, Any]]:
    """Song rows for these tracks (None entries skipped), with their audio features when given.

    `features` maps a track id to its AudioFeatures or None (Spotify has no analysis for it).
    `features_checked` says the app asked for features: a track Spotify has none for is then
    marked synced too, so it is not asked for again."""
    rows: dict[str, dict[str, Any]] = {}
    for track in tracks:
        if track is None or not _get(track, "id"):
            continue
        row = track_row(track, synced_at)
        found = (features or {}).get(row["spotifyId"])
        if found is not None:
            row.update(features_row(found))
        elif features_checked:
            row["audioFeaturesSynced"] = True
        rows[row["spotifyId"]] = row  # a duplicate id in one batch: the last one wins
    return list(rows.values())


# --- writes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpsertedSong:
    song_id: str
    spotify_id: str
    inserted: bool


def _song_upsert() -> TextClause:
    """INSERT ... SELECT FROM json_to_recordset(:batch) ON CONFLICT ("spotifyId") DO UPDATE.

    The batch goes to PostgreSQL as one JSON text parameter: binding twenty arrays (or a VALUES
    list of 1,000 parameters) made psycopg's parameter conversion the larger part of the cost,
    and json parses faster than jsonb (bench/db_stage.py). Keys a row lacks read as NULL.
    Identity columns are overwritten; popularity, preview URL and audio features only when the
    new value is known (a tier that hides popularity does not erase the one we had)."""
    columns = list(SONG_COLUMNS)
    quoted = ", ".join(f'"{c}"' for c in columns)
    record = ", ".join(f'"{c}" {SONG_COLUMNS[c]}' for c in columns)
    selected = quoted.replace('"audioFeaturesSynced"', 'coalesce("audioFeaturesSynced", false)')
    updates = [f'"{c}" = EXCLUDED."{c}"' for c in _OVERWRITE]
    updates += [
        f'"{c}" = coalesce(EXCLUDED."{c}", songs."{c}")'
        for c in columns
        if c not in _OVERWRITE and c not in ("spotifyId", "audioFeaturesSynced")
    ]
    updates.append('"audioFeaturesSynced" = EXCLUDED."audioFeaturesSynced" OR coalesce(songs."audioFeaturesSynced", false)')
    updates.append('"updatedAt" = (statement_timestamp() AT TIME ZONE \'UTC\')')
    return text(
        f"INSERT INTO songs ({quoted}) SELECT {selected} FROM json_to_recordset(CAST(:batch AS json)) AS r({record}) "
        f'ON CONFLICT ("spotifyId") DO UPDATE SET {", ".join(updates)} '
        f'RETURNING id, "spotifyId", (xmax = 0) AS inserted'
    )


_SONG_UPSERT = _song_upsert()


def upsert_songs(db: Session | Connection, rows: Sequence[Mapping[str, Any]]) -> list[UpsertedSong]:
    """Upsert these song rows (merge_rows' dicts) in one statement; what each became."""
    if not rows:
        return []
    by_id = {r["spotifyId"]: r for r in rows}  # ON CONFLICT may not touch a row twice
    connection = db.connection() if isinstance(db, Session) else db
    upserted = [UpsertedSong(*r) for r in connection.execute(_SONG_UPSERT, {"batch": _json(list(by_id.values()))})]
    ROWS_WRITTEN.labels("songs").inc(len(upserted))
    return upserted


def _json(value: Any) -> str:
    # Decimals as strings keep their digits exactly; PostgreSQL reads them into numeric columns.
    return orjson.dumps(value, default=str).decode()


def write_songs(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> list[UpsertedSong]:
    """upsert_songs in a transaction of its own. The statement is the whole transaction, so it
    runs in autocommit: one round trip instead of three (BEGIN, statement, COMMIT)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return upsert_songs(connection, rows)


def link_saved_tracks(session: Session, user_id: str, links: Sequence[tuple[str, str, datetime | None]],
                      seen_at: datetime) -> int:
    """(song id, spotify id, added at) links of a user, one statement; returns how many."""
    if not links:
        return 0
    unique = {song_id: (song_id, spotify_id, added_at) for song_id, spotify_id, added_at in links}
    session.execute(
        text(
            'INSERT INTO spotify_saved_tracks ("userId", "songId", "spotifyId", "addedAt", "lastSeenAt") '
            "SELECT :user_id, s, sp, a, :seen_at "
            "FROM unnest(CAST(:song_ids AS text[]), CAST(:spotify_ids AS text[]), CAST(:added AS timestamp[])) "
            "AS t(s, sp, a) "
            'ON CONFLICT ("userId", "songId") DO UPDATE SET "addedAt" = EXCLUDED."addedAt", '
            '"lastSeenAt" = EXCLUDED."lastSeenAt", "spotifyId" = EXCLUDED."spotifyId"'
        ),
        {
            "user_id": user_id,
            "seen_at": seen_at,
            "song_ids": [u[0] for u in unique.values()],
            "spotify_ids": [u[1] for u in unique.values()],
            "added": [u[2] for u in unique.values()],
        },
    )
    ROWS_WRITTEN.labels("spotify_saved_tracks").inc(len(unique))
    return len(unique)


def known_saved(session: Session, user_id: str, spotify_ids: Sequence[str]) -> set[str]:
    """Which of these tracks the user's links already hold."""
    if not spotify_ids:
        return set()
    found = session.execute(
        text('SELECT "spotifyId" FROM spotify_saved_tracks WHERE "userId" = :u AND "spotifyId" = ANY(:ids)'),
        {"u": user_id, "ids": list(spotify_ids)},
    )
    return set(found.scalars())


def remove_unseen_links(session: Session, user_id: str, seen_since: datetime) -> int:
    """After a full library sync: drop links to tracks the user no longer has saved."""
    removed = session.execute(
        text('DELETE FROM spotify_saved_tracks WHERE "userId" = :u AND "lastSeenAt" < :since'),
        {"u": user_id, "since": seen_since},
    )
    return removed.rowcount or 0


def record_popularity(session: Session, observations: Sequence[tuple[str, int]], at: datetime,
                      job_id: str | None = None) -> int:
    """Set spotifyPopularity/lastPopularityUpdate and add a history row per song: one statement."""
    if not observations:
        return 0
    unique = dict(observations)
    result = session.execute(
        text(
            "WITH v(sid, pop) AS (SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:pops AS int[]))), "
            'u AS (UPDATE songs SET "spotifyPopularity" = v.pop, "lastPopularityUpdate" = :at, '
            "\"updatedAt\" = (statement_timestamp() AT TIME ZONE 'UTC') "
            'FROM v WHERE songs."spotifyId" = v.sid RETURNING songs.id, v.pop) '
            'INSERT INTO song_popularity_history ("songId", popularity, "recordedAt", "jobId") '
            "SELECT id, pop, :at, :job_id FROM u "
            'ON CONFLICT ("songId", "jobId") DO NOTHING'  # the job ran before: recorded once
        ),
        {"ids": list(unique), "pops": [min(max(int(p), 0), 100) for p in unique.values()], "at": at,
         "job_id": job_id},
    )
    ROWS_WRITTEN.labels("song_popularity_history").inc(result.rowcount or 0)
    return result.rowcount or 0


def touch_popularity_checked(session: Session, spotify_ids: Sequence[str], at: datetime) -> None:
    """Popularity could not be had: stamp lastPopularityUpdate so the hourly refresh does not pick
    these songs again and again (the job's result says why the column is empty)."""
    if spotify_ids:
        session.execute(
            text('UPDATE songs SET "lastPopularityUpdate" = :at WHERE "spotifyId" = ANY(:ids)'),
            {"at": at, "ids": list(spotify_ids)},
        )


def sync_state(session: Session, spotify_ids: Sequence[str]) -> dict[str, tuple[datetime | None, bool]]:
    """(spotifyLastSync, audioFeaturesSynced) of the songs we have among these ids."""
    if not spotify_ids:
        return {}
    found = session.execute(
        text('SELECT "spotifyId", "spotifyLastSync", coalesce("audioFeaturesSynced", false) FROM songs '
             'WHERE "spotifyId" = ANY(:ids)'),
        {"ids": list(spotify_ids)},
    )
    return {sid: (at, synced) for sid, at, synced in found}


def unknown_since(session: Session, spotify_ids: Sequence[str]) -> dict[str, datetime]:
    """When Spotify last answered null for these ids (those it ever did)."""
    if not spotify_ids:
        return {}
    found = session.execute(
        text('SELECT "spotifyId", "checkedAt" FROM spotify_unknown_tracks WHERE "spotifyId" = ANY(:ids)'),
        {"ids": list(spotify_ids)},
    )
    return {spotify_id: checked_at for spotify_id, checked_at in found}


def remember_unknown(session: Session, spotify_ids: Sequence[str], at: datetime) -> None:
    """Spotify answered null for these ids at `at`: within TRACK_TTL they are not asked again."""
    if spotify_ids:
        session.execute(
            text('INSERT INTO spotify_unknown_tracks ("spotifyId", "checkedAt") SELECT unnest(CAST(:ids AS text[])), :at '
                 'ON CONFLICT ("spotifyId") DO UPDATE SET "checkedAt" = EXCLUDED."checkedAt"'),
            {"ids": list(dict.fromkeys(spotify_ids)), "at": at},
        )


def write_features(session: Session, features: Mapping[str, Any], checked_ids: Sequence[str]) -> int:
    """Audio features onto existing songs, one statement; ids Spotify has no analysis for (None)
    are marked synced too, so they are not asked for again."""
    rows = {i: (features_row(features[i]) if features.get(i) is not None else {}) for i in checked_ids}
    if not rows:
        return 0
    names = [*_UNIT_FEATURES, "tempo", "loudness"]
    arrays = ", ".join(f"CAST(:{n} AS numeric[])" for n in names)
    sets = ", ".join(f'"{n}" = coalesce(f.{n}, songs."{n}")' for n in names)
    params: dict[str, Any] = {n: [r.get(n) for r in rows.values()] for n in names}
    params["ids"] = list(rows)
    result = session.execute(
        text(
            f"UPDATE songs SET {sets}, \"audioFeaturesSynced\" = true, "
            "\"updatedAt\" = (statement_timestamp() AT TIME ZONE 'UTC') "
            f"FROM unnest(CAST(:ids AS text[]), {arrays}) AS f(sid, {', '.join(names)}) "
            'WHERE songs."spotifyId" = f.sid'
        ),
        params,
    )
    ROWS_WRITTEN.labels("songs").inc(result.rowcount or 0)
    return result.rowcount or 0

